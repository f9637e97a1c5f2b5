"""Every examples/*.cnn builds, runs, has the shapes and parameter count the checker promises, and trains.

The examples are found by glob, so a new example is covered as soon as it is added. Each one is built with
the real command line (`python -m cnndsl build`), and the generated files are run as `__main__` in a single
Python subprocess (torch is imported once, not once per example), so the smoke runs stay quick.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import EXAMPLES

import cnndsl
from cnndsl import cli

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.cnn"))
IDS = [p.stem for p in EXAMPLE_FILES]

# Runs each generated file given on the command line as __main__ and prints one JSON line per file with
# what it printed (or the traceback), so one broken example fails only its own test.
_RUNNER = r"""
import contextlib, io, json, runpy, sys, traceback
for path in sys.argv[1:]:
    buf = io.StringIO()
    ok = True
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
    except BaseException:
        ok = False
        buf.write(traceback.format_exc())
    print(json.dumps({"path": path, "ok": ok, "output": buf.getvalue()}), flush=True)
"""

SMOKE_LINE = re.compile(r"^(\w+): (\([\d, ]*\)) -> (.+)$", re.M)  # one shape, a list of them, or a dict


def _small_input(path) -> tuple[int, ...] | None:
    """The input the large reference architectures run at here (tests/test_torchvision.py runs them at 224): 64x64,
    the unpadded U-Net at its smallest (each level's unpadded convolutions need the room); None for the others."""
    net = cnndsl.check(path)
    if (net.total_params or 0) <= 5_000_000:
        return None
    side = 188 if path.stem == "unet_original" else 64
    return (net.example_shape[0], *(side,) * (len(net.example_shape) - 1))


def _tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.strip("()").split(",") if x.strip())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{stem: {"build": CompletedProcess, "path": Path, "run": {"ok", "output"} or None}} for every example."""
    out_dir = tmp_path_factory.mktemp("examples_built")
    results = {}
    for src in EXAMPLE_FILES:  # the command line in this process (its own process per file took a second each)
        out = out_dir / f"{src.stem}.py"
        stdout, stderr = io.StringIO(), io.StringIO()
        small = _small_input(src)
        size = ["--input", "x".join(map(str, small))] if small else []
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = cli.main(["build", str(src), "-o", str(out), *size])
        proc = SimpleNamespace(returncode=status, stdout=stdout.getvalue(), stderr=stderr.getvalue())
        results[src.stem] = {"build": proc, "path": out, "run": None}
    runnable = [str(r["path"]) for r in results.values() if r["build"].returncode == 0]
    if runnable:
        # run from examples/, as `python model.py` beside its modules would: custom_module.cnn imports custom_layers.py
        proc = subprocess.run([sys.executable, "-c", _RUNNER, *runnable], capture_output=True, text=True, timeout=600,
                              cwd=EXAMPLES)
        by_path = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                by_path[record["path"]] = record
        for r in results.values():
            r["run"] = by_path.get(str(r["path"]), {"ok": False, "output": f"the runner did not report this file\n{proc.stderr}"})
    return results


def test_examples_are_found():
    assert len(EXAMPLE_FILES) >= 6, EXAMPLE_FILES
    assert {"lenet5", "oneliner", "vgg_small", "ecg1d", "video3d", "deform"} <= set(IDS)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=IDS)
def test_example_checks_cleanly(path):
    net = cnndsl.check(path)
    assert net.layers
    assert all(layer.output_shape is not None for layer in net.layers)
    if net.input_shape is not None:  # a declared input leaves nothing lazy: no warnings, every count known
        assert net.warnings == (), [w.message for w in net.warnings]
        assert net.total_params is not None or any(layer.external for layer in net.layers)  # known only once loaded


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=IDS)
def test_example_builds_and_runs(path, built):
    result = built[path.stem]
    proc = result["build"]
    assert proc.returncode == 0, proc.stderr
    assert result["path"].is_file()
    run = result["run"]
    assert run["ok"], run["output"]

    net = cnndsl.check(path, input=_small_input(path))
    match = SMOKE_LINE.search(run["output"])
    assert match, run["output"]
    name, x_shape, y_shape = match.group(1), _tuple(match.group(2)), ast.literal_eval(match.group(3))
    assert name == net.name
    assert x_shape == (2, *net.example_shape)
    shapes = [(2, *s) for s in net.outputs]
    assert y_shape == (dict(zip(net.output_keys, shapes)) if net.output_keys else shapes if len(shapes) > 1 else shapes[0])


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=IDS)
def test_example_loads_counts_and_trains(path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = cnndsl.check(path)
    given = _small_input(path)
    if given is not None:
        net = cnndsl.check(path, input=given)
    model = cnndsl.load(path, device="cpu", input=given)
    x = torch.randn(2, *net.example_shape)

    model.eval()
    with torch.no_grad():
        ys = _tensors(model(x))
    assert [tuple(y.shape) for y in ys] == [(2, *s) for s in net.outputs]
    assert all(torch.isfinite(y).all() for y in ys)

    # after the first forward even lazy modules have their real parameters
    real = sum(p.numel() for p in model.parameters())
    if net.total_params is not None:
        assert real == net.total_params
    else:  # external modules: the layers the checker counted, and more
        assert real >= sum(layer.params or 0 for layer in net.layers)

    model.train()
    model.zero_grad()
    loss = sum(y.sum() for y in _tensors(model(x)))
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"no gradient reached {missing}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    # one SGD step changes the weights: the model trains
    before = {n: p.detach().clone() for n, p in params}
    with torch.no_grad():
        for _, p in params:
            p -= 0.01 * p.grad
    assert any(not torch.equal(before[n], p) for n, p in params)


def _tensors(y) -> list:
    """A forward's outputs as a list: one tensor, a tuple of them, or a dict of them (its values in order)."""
    return list(y.values()) if isinstance(y, dict) else list(y) if isinstance(y, tuple) else [y]
