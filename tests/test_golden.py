"""Golden tests, modelled on sqlglot's fixture files: every case is a file pair, compared byte for byte.

    tests/golden/ok/NAME.cnn   -> NAME.py    the exact generated module (`cnndsl build NAME.cnn`, stdout)
                               -> NAME.warn  the exact warnings on stderr, only for cases that warn
    tests/golden/bad/NAME.cnn  -> NAME.err   the exact diagnostics on stderr (exit status 1)

The CLI runs inside the case's folder with a relative file name, so the text is stable wherever the
checkout lives. A case whose first line is `# cnndsl-args: ...` passes those arguments to the CLI too
(`-D`, `--input`, `--network`).

To accept the current output as the new expected text, after reading the diff:

    CNNDSL_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

which rewrites the .py/.warn/.err files (and deletes a .warn that is no longer produced).

Every generated module is also checked for what section 6 of the language promises: black-stable,
byte-identical across compiles and hash seeds, importing only torch and torchvision.ops, and runnable.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import black
import pytest

from cnndsl import cli, params

GOLDEN = Path(__file__).resolve().parent / "golden"
OK = sorted((GOLDEN / "ok").glob("*.cnn"))
BAD = sorted((GOLDEN / "bad").glob("*.cnn"))
UPDATE = os.environ.get("CNNDSL_UPDATE_GOLDEN") == "1"
ARGS_PREFIX = b"# cnndsl-args:"


def case_args(path: Path) -> list[str]:
    """The extra CLI arguments from a case's first line (`# cnndsl-args: -D c=4`), or none."""
    first = path.read_bytes().split(b"\n", 1)[0]
    if not first.startswith(ARGS_PREFIX):
        return []
    return shlex.split(first[len(ARGS_PREFIX):].decode("utf-8"))


def run_cli(path: Path, *extra: str) -> tuple[int, str, str]:
    """Run `cnndsl build NAME.cnn` in the case's folder, in process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(["build", path.name, *case_args(path), *extra])
            except SystemExit as e:  # argparse's own errors
                code = e.code
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def compare(expected_file: Path, actual: str | None) -> None:
    """Assert that `expected_file` holds `actual` (None: that the file does not exist); rewrite it in update mode."""
    if UPDATE:
        if actual is None:
            expected_file.unlink(missing_ok=True)
        else:
            expected_file.write_text(actual, encoding="utf-8", newline="\n")
        return
    if actual is None:
        assert not expected_file.exists(), f"{expected_file.name} exists, but nothing was produced for it"
        return
    assert expected_file.exists(), f"{expected_file.name} is missing; create it with CNNDSL_UPDATE_GOLDEN=1"
    expected = expected_file.read_text(encoding="utf-8")
    assert actual == expected, f"{expected_file.name} differs; if the change is intended, run with CNNDSL_UPDATE_GOLDEN=1"


def load_kwargs(path: Path) -> dict:
    """The case's CLI arguments as keyword arguments of cnndsl.check / cnndsl.load."""
    args, kwargs = case_args(path), {}
    it = iter(args)
    for a in it:
        if a == "-D":
            name, _, text = next(it).partition("=")
            kwargs[name] = params.value(text, name)
        elif a == "--input":
            kwargs["input"] = next(it)
        elif a == "--network":
            kwargs["network"] = next(it)
        else:  # pragma: no cover - keep the cases to the options above
            raise AssertionError(f"{path.name}: unsupported argument {a!r} in # cnndsl-args")
    return kwargs


def _ids(paths):
    return [p.stem for p in paths]


def test_there_are_enough_cases():
    assert len(OK) >= 8 and len(BAD) >= 20


# -- ok cases -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", OK, ids=_ids(OK))
def test_ok(path: Path):
    code, out, err = run_cli(path)
    assert code == 0, err
    compare(path.with_suffix(".py"), out)
    compare(path.with_suffix(".warn"), err or None)
    for line in err.splitlines():  # warnings only: never an error, never a traceback
        assert ": error:" not in line and "Traceback" not in line


def _golden_code(path: Path) -> str:
    return path.with_suffix(".py").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", OK, ids=_ids(OK))
def test_ok_is_black_stable(path: Path):
    code = _golden_code(path)
    assert black.format_str(code, mode=black.Mode()) == code


@pytest.mark.parametrize("path", OK, ids=_ids(OK))
def test_ok_is_deterministic_in_process(path: Path):
    first, second = run_cli(path), run_cli(path)
    assert first == second
    assert first[1] == _golden_code(path)


_HASHSEED_SCRIPT = """
import contextlib, io, json, os, shlex, sys
from pathlib import Path
from cnndsl import cli
out = {}
for name in sys.argv[1:]:
    path = Path(name)
    first = path.read_bytes().split(b"\\n", 1)[0]
    args = shlex.split(first[len(b"# cnndsl-args:"):].decode()) if first.startswith(b"# cnndsl-args:") else []
    buf = io.StringIO()
    os.chdir(path.parent)
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        cli.main(["build", path.name, *args])
    out[name] = buf.getvalue()
print(json.dumps(out))
"""


@pytest.mark.parametrize("seed", ["0", "1", "4242"])
def test_ok_is_identical_across_hash_seeds(seed: str):
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run(
        [sys.executable, "-c", _HASHSEED_SCRIPT, *map(str, OK)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    produced = json.loads(proc.stdout)
    for path in OK:
        assert produced[str(path)] == _golden_code(path), f"{path.name} differs under PYTHONHASHSEED={seed}"


@pytest.mark.parametrize("path", OK, ids=_ids(OK))
def test_ok_imports_only_torch(path: Path):
    tree = ast.parse(_golden_code(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            modules.add(node.module)
    assert "torch" in modules
    assert modules <= {"torch", "torchvision.ops"}, modules
    uses_vision = "torchvision.ops" in modules
    source = path.read_text(encoding="utf-8")
    assert uses_vision == ("deform" in source or "droppath" in source)


@pytest.mark.parametrize("path", OK, ids=_ids(OK))
def test_ok_loads_and_runs(path: Path):
    import torch

    import cnndsl

    kwargs = load_kwargs(path)
    net = cnndsl.check(path, **kwargs)
    model = cnndsl.load(path, device="cpu", **kwargs).eval()
    assert type(model).__name__ == net.name
    torch.manual_seed(0)
    x = torch.randn(2, *net.example_shape)
    with torch.no_grad():
        y = model(x)
    ys = y if isinstance(y, tuple) else (y,)  # `output a, b` returns a tuple
    assert len(ys) == len(net.outputs)
    for t, shape in zip(ys, net.outputs):
        assert t.shape[0] == 2
        if shape is not None and None not in shape:
            assert tuple(t.shape[1:]) == tuple(shape)
    if net.total_params is not None:
        assert sum(p.numel() for p in model.parameters()) == net.total_params


# -- bad cases ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BAD, ids=_ids(BAD))
def test_bad(path: Path):
    code, out, err = run_cli(path)
    assert out == "", "nothing may be written to stdout when there are errors"
    assert "Traceback" not in err
    compare(path.with_suffix(".err"), err)
    assert code == 1, err


def test_linear_without_input_is_a_warning_not_an_error():
    path = GOLDEN / "ok" / "oneliner.cnn"
    code, out, err = run_cli(path)
    assert code == 0 and out
    assert "warning: the input features of `linear` are unknown" in err
    assert "error" not in err
    assert "nn.LazyLinear(10)" in out
