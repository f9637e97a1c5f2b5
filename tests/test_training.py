"""The generated modules train: one process and DistributedDataParallel over 2 processes (gloo), with
scikit-learn's bundled digits; and a model from cnndsl.load is an ordinary module (deepcopy, save/load)."""

from __future__ import annotations

import os
from pathlib import Path
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import EXAMPLES

sys.path.insert(0, str(EXAMPLES))
import train_digits  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_training_reaches_its_accuracy():
    torch.set_num_threads(1)
    try:
        accuracy = train_digits.train(quiet=True)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    assert accuracy >= 0.97


def test_the_script_runs_under_torchrun_and_prints_its_accuracy_last_once():
    """Started by torch's own launcher (2 processes, gloo): the process group comes from torchrun's environment,
    and only rank 0 prints."""
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29541", str(EXAMPLES / "train_digits.py"),
                          "--epochs", "1"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1].startswith("test accuracy: ") and 0 <= float(lines[-1].split(": ")[1]) <= 1
    assert sum(line.startswith("test accuracy") for line in lines) == 1
    assert "on 2 processes (torchrun)" in run.stderr


def _one_step(rank: int, world: int, port: int, out: str) -> None:
    """One DDP training step on this rank's shard; saves the gradients each rank ends up with."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        train_set, _ = train_digits.digits()
        model = torch.nn.parallel.DistributedDataParallel(train_digits.cnndsl.load(train_digits.NETWORK, device="cpu"))
        sampler = torch.utils.data.DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=0)
        x, y = next(iter(torch.utils.data.DataLoader(train_set, batch_size=32, sampler=sampler)))
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads = {n: p.grad for n, p in model.module.named_parameters()}
        torch.save({"x": x, "grads": grads}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_are_identical_across_ranks(tmp_path):
    out = str(tmp_path / "step")
    mp.spawn(_one_step, args=(2, _free_port(), out), nprocs=2, join=True)
    r0, r1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert not torch.equal(r0["x"], r1["x"])  # each rank saw its own shard...
    assert r0["grads"].keys() == r1["grads"].keys()
    for name in r0["grads"]:  # ...and all-reduce left every rank with the same gradient
        assert torch.equal(r0["grads"][name], r1["grads"][name]), name


@pytest.mark.slow
def test_two_process_training_reaches_its_accuracy():
    run = subprocess.run([sys.executable, str(EXAMPLES / "train_digits.py"), "--nproc", "2", "--port", str(_free_port())],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert float(run.stdout.strip().splitlines()[-1].split(": ")[1]) >= 0.95


def test_the_autoencoder_learns_to_reconstruct_the_digits():
    """examples/autoencoder.cnn (flatten, linear, unflatten, transposed convs) on the 8x8 digits, pixels in [0, 1]:
    a few epochs of Adam cut the held-out reconstruction error at least threefold."""
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        images = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        train_x, test_x = images[order[:1400]], images[order[1400:]]
        model = train_digits.cnndsl.load(EXAMPLES / "autoencoder.cnn", device="cpu")
        assert tuple(model.encoder(test_x[:2]).shape) == (2, 12)  # the code, and the decoder draws from it
        assert tuple(model.decoder(torch.zeros(2, 12)).shape) == (2, 1, 8, 8)

        def error() -> float:
            model.eval()
            with torch.no_grad():
                return torch.nn.functional.mse_loss(model(test_x), test_x).item()

        before = error()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(8):
            model.train()
            for batch in torch.split(train_x[torch.randperm(len(train_x))], 64):
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(batch), batch).backward()
                optimizer.step()
        after = error()
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    assert after * 3 <= before, f"reconstruction error {before:.4f} at initialisation, {after:.4f} after training"
