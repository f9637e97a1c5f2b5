"""Shared helpers for the tests: torch is the oracle, so most tests build the real module."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def tmp_cnn(tmp_path):
    """Write a .cnn file and return its path: tmp_cnn("conv 3->8 k3", name="net.cnn")."""

    def write(text: str, name: str = "net.cnn") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: torch's thread pool only adds wake-up latency (milliseconds per call on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# `cnndsl.check` of stdin or of the file named by argv[1], in a fresh interpreter: (first message or "ok", seconds,
# peak resident memory in bytes). The peak is VmHWM, this process's own high-water mark: ru_maxrss keeps the
# parent's across fork and exec, so a child of a 700 MB pytest process would report 700 MB.
_CHECK_COST = """
import sys, time
import cnndsl
start = time.monotonic()
try:
    cnndsl.check(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
    result = "ok"
except cnndsl.CnnDslError as e:
    result = e.diagnostics[0].message
took = time.monotonic() - start
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
print(repr((result, took, peak)))
"""


def check_cost(text: str | None = None, *, path: Path | None = None, seconds: float = 30, memory: int = 2 << 30,
               env: dict | None = None) -> tuple[str, float, int]:
    """(first message or "ok", seconds, peak RSS in bytes) of cnndsl.check of `text` (on stdin) or of the file
    `path`, in a subprocess that may use `memory` bytes of address space and `seconds` of time."""
    import resource

    def cap():  # a runaway case fails here instead of exhausting the machine
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    args = [sys.executable, "-c", _CHECK_COST] + ([str(path)] if path is not None else [])
    proc = subprocess.run(args, input=text, capture_output=True, text=True, timeout=seconds, preexec_fn=cap,
                          env=env if env is not None else dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def pytest_sessionfinish(session):
    """In a pytest-xdist worker, hand the differential counters to the controller (pytest_testnodedown)."""
    config = session.config
    if hasattr(config, "workeroutput"):
        config.workeroutput["cnndsl_differential"] = dict(getattr(config, "cnndsl_differential", None) or {})
        config.workeroutput["cnndsl_differential_seconds"] = getattr(config, "cnndsl_differential_seconds", None)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: add up the workers' differential counters (the seconds: the longest worker's)."""
    output = getattr(node, "workeroutput", {})
    config = node.config
    counts = getattr(config, "cnndsl_differential", None)
    if counts is None:
        counts = config.cnndsl_differential = Counter()
    for key, n in output.get("cnndsl_differential", {}).items():
        counts[key] = counts.get(key, 0) + n
    seconds = output.get("cnndsl_differential_seconds")
    if seconds is not None:
        config.cnndsl_differential_seconds = max(seconds, getattr(config, "cnndsl_differential_seconds", 0) or 0)


def pytest_terminal_summary(terminalreporter, config):
    """The number of cases the differential property tests (tests/test_differential.py) ran, per family."""
    counts = getattr(config, "cnndsl_differential", None)
    if not counts:
        return
    extra = ("accepted", "rejected", "executed")
    families = {k: v for k, v in counts.items() if "." not in k and k not in extra}
    seconds = getattr(config, "cnndsl_differential_seconds", None)
    per = ", ".join(f"{k} {v}" for k, v in sorted(families.items()))
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    terminalreporter.write_line(
        f"differential: {sum(families.values())} cases{took} ({per}); "
        f"{counts['accepted']} accepted, {counts['rejected']} rejected, {counts['executed']} generated modules run"
    )
