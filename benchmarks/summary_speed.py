"""How fast `cnndsl summary` gives its table against torchinfo's summary of the same model: a benchmark, not a test.

End to end, as a user waits for it: `cnndsl summary examples/NAME.cnn` (static: parse, check, count; no torch)
against a Python process that imports torch, torchvision and torchinfo, builds torchvision's model and runs
`torchinfo.summary` (a forward pass at batch 1), alternating the two commands; medians. It also prints both
tools' totals, which agree on parameters; their mult-adds differ by convention (torchinfo counts biases and
norms, cnndsl counts conv and linear weights, bias excluded, as fvcore does).

    python benchmarks/summary_speed.py                    # resnet18, resnet50, vgg16_bn, mobilenet_v2
    python benchmarks/summary_speed.py --models resnet18 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet18", "resnet50", "vgg16_bn", "mobilenet_v2")
TORCHINFO = """\
import sys, torch, torchvision, torchinfo
torch.set_num_threads({threads})
s = torchinfo.summary(getattr(torchvision.models, sys.argv[1])(), input_size=(1, 3, 224, 224), verbose=0, device="cpu")
print(s.total_params, s.total_mult_adds)
"""


def once(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    threads = os.cpu_count() or 1
    print(f"Python {platform.python_version()}, {platform.machine()}, {threads} CPUs; medians of {args.runs} alternating runs")
    print()
    print("| model | `cnndsl summary` | torchinfo.summary (with imports and model) | ratio | params (both) | mult-adds: cnndsl | torchinfo |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        ours = [sys.executable, "-m", "cnndsl", "summary", str(ROOT / "examples" / f"{name}.cnn"), "--format", "json"]
        theirs = [sys.executable, "-c", TORCHINFO.format(threads=threads), name]
        once(ours), once(theirs)  # warm the file cache
        a, b = [], []
        for _ in range(args.runs):
            t, out_ours = once(ours)
            a.append(t)
            t, out_theirs = once(theirs)
            b.append(t)
        data = json.loads(out_ours)
        params, adds = (int(x) for x in out_theirs.split())
        assert params == data["total_params"], (name, params, data["total_params"])
        ta, tb = statistics.median(a), statistics.median(b)
        print(f"| {name} | {ta:.2f} s | {tb:.2f} s | {ta / tb:.2f} | {params:,} | {data['total_macs'] / 1e9:.2f} G | {adds / 1e9:.2f} G |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
