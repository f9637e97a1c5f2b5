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
