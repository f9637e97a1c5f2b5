"""The installed package works on its own: a wheel built from this checkout, installed into a fresh
virtual environment with lark, pydantic and pyyaml but without torch, compiles and checks networks from a
folder outside the source tree, with the grammar found inside the installed package.

Slow (about a minute: it builds a wheel and a venv; pip may fetch the three small dependencies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cnndsl

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = """\
# an example outside the source tree
network Example(num_classes=10):
    input 3x32x32
    conv 16 k3 p1 | bn | relu | maxpool 2
    conv 32 k3 p1 | bn | relu | gap | flatten
    linear num_classes
"""
COPY_IGNORE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", ".venv", "*.pyc"
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that could put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA"))}
    env["PYTHONNOUSERSITE"] = "1"
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    env.update(extra)
    return env


def sh(*cmd, cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, env=clean_env(**env), timeout=timeout
    )
    return proc


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{proc.args}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (so that the build leaves nothing in the source tree)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    out = base / "dist"
    ok(sh(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "-w", out, cwd=base))
    (found,) = out.glob("cnndsl-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and only lark, pydantic and pyyaml: no torch."""
    base = tmp_path_factory.mktemp("venv")
    env_dir = base / "env"
    ok(sh(sys.executable, "-m", "venv", env_dir, cwd=base))
    py = env_dir / "bin" / "python"
    ok(sh(py, "-m", "pip", "install", "--no-deps", wheel, cwd=base))
    ok(sh(py, "-m", "pip", "install", "lark", "pydantic", "pyyaml", cwd=base))
    return env_dir


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A folder outside the source tree with an example network in it."""
    assert ROOT not in tmp_path.parents
    (tmp_path / "example.cnn").write_text(EXAMPLE, encoding="utf-8")
    return tmp_path


def test_wheel_ships_the_grammar_and_no_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "cnndsl/grammar/cnndsl.lark" in names
    assert "cnndsl/cli.py" in names and "cnndsl/ops/conv.py" in names and "cnndsl/decompile/trace.py" in names
    assert not any(n.startswith(("tests/", "grammar/", "examples/")) for n in names), names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert f"Version: {cnndsl.__version__}" in zipfile.ZipFile(wheel).read(metadata).decode()
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "cnndsl = cnndsl.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_fresh_venv_has_no_torch_and_no_checkout_on_its_path(venv, workdir):
    py = venv / "bin" / "python"
    assert sh(py, "-c", "import torch", cwd=workdir).returncode != 0
    probe = ok(sh(py, "-c", "import sys, cnndsl; print(cnndsl.__file__); print('\\n'.join(sys.path))", cwd=workdir))
    lines = probe.stdout.splitlines()
    assert Path(lines[0]).resolve().is_relative_to(venv.resolve()), lines[0]
    assert not any(p and Path(p).resolve() == ROOT for p in lines[1:]), lines[1:]


def test_installed_cli_builds_and_checks_without_torch(venv, workdir):
    cli = venv / "bin" / "cnndsl"
    assert cli.exists()
    built = ok(sh(cli, "build", "example.cnn", "-o", "out.py", cwd=workdir))
    assert built.stderr == "wrote out.py (Example, 10 layers)\n"
    code = (workdir / "out.py").read_text(encoding="utf-8")
    assert code == cnndsl.compile(workdir / "example.cnn"), "the installed package generates the same module"
    checked = ok(sh(cli, "check", "example.cnn", "-D", "num_classes=5", cwd=workdir))
    assert checked.stdout.splitlines()[-1] == "ok: Example: 10 layers"
    assert checked.stdout.splitlines()[-3].split() == ["linear1", "linear", "(N,", "5)", "165"]
    assert ok(sh(venv / "bin" / "python", "-m", "cnndsl", "--version", cwd=workdir)).stdout == f"cnndsl {cnndsl.__version__}\n"


def test_installed_package_finds_its_grammar(venv, workdir):
    """The grammar comes from inside the installed package, and Lark's error paths work with it."""
    py = venv / "bin" / "python"
    probe = ok(sh(py, "-c", "from cnndsl.syntax import parser; print(parser._grammar_path())", cwd=workdir))
    grammar = Path(probe.stdout.strip())
    assert grammar.resolve().is_relative_to(venv.resolve())
    assert grammar.parts[-3:] == ("cnndsl", "grammar", "cnndsl.lark")
    (workdir / "bad.cnn").write_text("network Net:\n    input 3x32x32\n    conv 16 k3 | | relu\n", encoding="utf-8")
    proc = sh(venv / "bin" / "cnndsl", "build", "bad.cnn", cwd=workdir)
    assert proc.returncode == 1
    assert proc.stderr == (
        "bad.cnn:3:18: error: expected a layer, found `|`\n"
        " 3 |     conv 16 k3 | | relu\n"
        "   |                  ^\n"
        "1 error\n"
    )
