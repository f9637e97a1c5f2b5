"""The round trip, built in: the decompiled source loaded by cnndsl, the original's state_dict loaded into it with
strict=True, and both modules' eval outputs compared on one random input."""

from __future__ import annotations

from typing import Any

TOLERANCE = 1e-4


def _flat(out: Any) -> list:
    if isinstance(out, dict):
        return [v for v in out.values()]
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]


def verify(original, source: Any, input: tuple[int, ...], import_root: Any = None) -> tuple[bool, str]:
    """(whether they agree, a report): the keys that differ, or the largest difference of the outputs."""
    import torch

    from .. import load

    built = load(source, import_root=import_root).eval()
    state = original.state_dict()
    try:
        built.load_state_dict(state, strict=True)
    except RuntimeError as e:
        return False, f"the decompiled network does not load the original's state_dict strictly:\n{e}"
    was = original.training
    original.eval()
    try:
        x = torch.randn(2, *input, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            theirs, ours = _flat(original(x)), _flat(built(x))
    finally:
        original.train(was)
    if len(theirs) != len(ours):
        return False, f"the original returns {len(theirs)} outputs, the decompiled network {len(ours)}"
    worst = 0.0
    for a, b in zip(theirs, ours):
        if a.shape != b.shape:
            return False, f"an output's shape differs: {tuple(a.shape)} (original) against {tuple(b.shape)} (decompiled)"
        scale = max(1.0, a.abs().max().item())
        worst = max(worst, (a - b).abs().max().item() / scale)
    if worst > TOLERANCE:
        return False, f"the outputs differ: max abs difference {worst:.3g} (relative to the outputs' scale), over {TOLERANCE}"
    return True, f"verified: {len(state)} state_dict entries loaded strictly; outputs equal within {worst:.2g} (max abs difference)"
