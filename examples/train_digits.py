"""Train examples/lenet5.cnn on scikit-learn's bundled 8x8 digits (no download), on one process or several.

    python examples/train_digits.py               # one process
    python examples/train_digits.py --nproc 2     # DistributedDataParallel, gloo, 2 processes on this machine
    torchrun --nproc_per_node 2 examples/train_digits.py   # the same, started by torch's own launcher

The digits are upsampled to LeNet-5's 28x28 input. The model comes straight from the .cnn file with
`cnndsl.load`; nothing else about it is special: it is a plain nn.Module. The last line printed is
`test accuracy: X`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import cnndsl

NETWORK = Path(__file__).resolve().parent / "lenet5.cnn"


def digits(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1,797 digits as 1x28x28 tensors, standardised, split 80/20 (stratified, fixed seed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / x.std()  # zero mean, unit variance: what tanh units train best on
    y = torch.tensor(data.target)
    train_idx, test_idx = train_test_split(range(len(y)), test_size=0.2, random_state=seed, stratify=data.target)
    return TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[test_idx], y[test_idx])


def shift(x: torch.Tensor, pixels: int = 2) -> torch.Tensor:
    """Augmentation: the whole batch moved by a random offset of up to `pixels` in each direction."""
    dy, dx = torch.randint(-pixels, pixels + 1, (2,)).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def progress(epoch: int, epochs: int, loss: float, width: int = 30) -> None:
    done = int(width * epoch / epochs)
    end = "\n" if epoch == epochs else ""
    print(f"\repoch {epoch:>3}/{epochs} [{'#' * done}{'.' * (width - done)}] loss {loss:.4f}", end=end, flush=True)


def evaluate(model: torch.nn.Module, data: TensorDataset) -> float:
    model.eval()
    with torch.no_grad():
        x, y = data.tensors
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train(rank: int = 0, world: int = 1, epochs: int = 20, batch: int = 32, seed: int = 0, quiet: bool = False) -> float:
    """Train on this process's shard; returns the test accuracy (every rank computes the same)."""
    torch.manual_seed(seed)
    train_set, test_set = digits(seed)
    model = cnndsl.load(NETWORK, device="cpu")
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=seed) if world > 1 else None
    loader = DataLoader(train_set, batch_size=batch, shuffle=sampler is None, sampler=sampler,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    for epoch in range(1, epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        total = 0.0
        for x, y in loader:
            x = shift(x)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        scheduler.step()
        if rank == 0 and not quiet:
            progress(epoch, epochs, total / (len(loader.dataset) // world))
    return evaluate(model.module if world > 1 else model, test_set)


def _worker(rank: int, world: int, epochs: int, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        accuracy = train(rank, world, epochs)
        if rank == 0:
            Path(out).write_text(f"{accuracy}\n")
    finally:
        dist.destroy_process_group()


def _launched(epochs: int, start: float) -> int:
    """One of torchrun's processes: the process group from its environment; rank 0 prints the result."""
    dist.init_process_group("gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        accuracy = train(rank, world, epochs)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        print(f"trained in {time.perf_counter() - start:.1f} s on {world} process{'es' * (world > 1)} (torchrun)", file=sys.stderr)
        print(f"test accuracy: {accuracy:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=1, help="processes (DistributedDataParallel with gloo when > 1)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--port", type=int, default=29533)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a model this small runs fastest on one thread (and one per process under DDP)
    start = time.perf_counter()
    if "LOCAL_RANK" in os.environ:  # started by torchrun, which set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
        return _launched(args.epochs, start)
    if args.nproc == 1:
        accuracy = train(epochs=args.epochs)
    else:
        import tempfile

        import torch.multiprocessing as mp

        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "accuracy")
            mp.spawn(_worker, args=(args.nproc, args.epochs, args.port, out), nprocs=args.nproc, join=True)
            accuracy = float(Path(out).read_text())
    print(f"trained in {time.perf_counter() - start:.1f} s on {args.nproc} process{'es' * (args.nproc > 1)}", file=sys.stderr)
    print(f"test accuracy: {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
