"""Shared helpers for the tests: torch is the oracle, so most tests build the real module."""

from __future__ import annotations

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
