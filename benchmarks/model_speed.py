"""How fast the generated models run against torchvision's own: a benchmark script, not a test.

For each reference architecture in examples/ (the ones that load torchvision's weights), the generated module
and torchvision's model get the same weights and the same input; forward (eval, no_grad) and forward+backward
(train) are timed side by side, alternating A and B, and the medians' ratio is printed (goal: within ±3%).
A second copy of torchvision's model is timed in the same rotation (A, B, B'): the ratio B'/B of two identical
models is the noise floor of the machine, against which A/B is to be read. On CUDA when available (with
synchronisation), else on the CPU.

    python benchmarks/model_speed.py                      # all six, batch 8 at 224x224 (CPU: a few minutes)
    python benchmarks/model_speed.py --models resnet18 --batch 2 --size 112 --runs 5
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402

MODELS = ("resnet18", "resnet50", "vgg16_bn", "alexnet", "mobilenet_v2", "squeezenet1_1")


def _time(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench(name: str, batch: int, size: int, runs: int, device: torch.device) -> dict:
    ours = cnndsl.load(ROOT / "examples" / f"{name}.cnn", device=device)
    theirs = getattr(torchvision.models, name)().to(device)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    control = copy.deepcopy(theirs)
    x = torch.randn(batch, 3, size, size, device=device)

    def forward(model):
        model.eval()
        with torch.no_grad():
            model(x)

    def train_step(model):
        model.train()
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    out = {}
    for label, step in (("forward", forward), ("forward+backward", train_step)):
        for model in (ours, theirs, control):  # warm-up
            step(model)
        times = ([], [], [])
        for _ in range(runs):  # rotate, so that drifts of the machine hit all alike
            for t, model in zip(times, (ours, theirs, control)):
                t.append(_time(lambda: step(model), device))
        out[label] = tuple(statistics.median(t) for t in times)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {where}; batch {args.batch}, {args.size}x{args.size}, "
          f"medians of {args.runs} alternating runs")
    print()
    print("| architecture | forward: cnndsl | torchvision | ratio | noise floor | forward+backward: cnndsl | torchvision | ratio "
          "| noise floor |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.models:
        r = bench(name, args.batch, args.size, args.runs, device)
        (fa, fb, fc), (ta, tb, tc) = r["forward"], r["forward+backward"]
        print(f"| {name} | {fa * 1e3:.1f} ms | {fb * 1e3:.1f} ms | {fa / fb:.3f} | {fc / fb:.3f} "
              f"| {ta * 1e3:.1f} ms | {tb * 1e3:.1f} ms | {ta / tb:.3f} | {tc / tb:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
