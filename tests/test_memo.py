"""Replaying the walks of block calls (cnndsl/semantics/memo.py) changes nothing but the time: a file checked
with the walks its previous version kept (the language server's memo), and with the walks its own check made
for an earlier call, gives the diagnostics, the layers and the generated code that a check walking every call
gives. Checked along chains of random edits of every example and port (digits changed, lines
cut, text inserted), and where a kept walk would cross the `work` limit."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cnndsl import limits, read_source
from cnndsl.backend.pytorch.codegen import generate
from cnndsl.lsp.analysis import Analysis, analyze
from cnndsl.semantics.memo import CallMemo

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "examples").glob("*.cnn")) + sorted((ROOT / "tests" / "ports").glob("*.cnn"))
EDITS = 6  # per file, one after another (the slow profile: 60)
SNIPPETS = ["1", "2", "0", "|", " relu", " x2", ", stride=2", "\n", "(", "#", " if false", "=3"]


def _read(path) -> object:
    return read_source(Path(path))


def observed(a: Analysis) -> tuple:
    """What a user of the analysis sees: its diagnostics, each network's layers and generated code."""
    nets = []
    for n in a.networks:
        code = generate(n.checked) if n.checked is not None else None
        pinned = n.checked.pinned if n.checked is not None else None
        nets.append((n.node.name, code, pinned, [repr(layer.model_dump()) for layer in n.layers]))  # a Val is equal only to itself
    return [d.model_dump() for d in a.diagnostics], nets


def edit(text: str, rng: random.Random) -> str:
    """A keystroke or a few: a digit changed (a channel count, a stride, a default), a snippet inserted, a span cut."""
    kind = rng.choice(("digit", "digit", "digit", "insert", "delete"))
    if kind == "digit":
        digits = [i for i, c in enumerate(text) if c.isdigit()]
        if digits:
            at = rng.choice(digits)
            return text[:at] + rng.choice("0123456789") + text[at + 1:]
    at = rng.randrange(len(text) + 1)
    if kind == "insert":
        return text[:at] + rng.choice(SNIPPETS) + text[at:]
    return text[:at] + text[at + rng.randint(1, 12):]


def _chain(path: Path, edits: int) -> None:
    rng = random.Random(path.name)
    text, memo = path.read_text(), CallMemo()
    name = str(path)
    for step in range(edits + 1):
        kept = observed(analyze(name, text, _read, memo))
        fresh = observed(analyze(name, text, _read, False))
        assert kept == fresh, f"{path.name}, after {step} edits:\n{text}"
        text = edit(text, rng) if step % 3 != 2 else path.read_text()  # and back, where every walk is kept


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_check_with_the_memo_is_a_check_without_it(path):
    _chain(path, EDITS)


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_a_check_with_the_memo_is_a_check_without_it_deep(path):
    _chain(path, EDITS * 10)


RESNET = ROOT / "examples" / "resnet50.cnn"


def test_a_walk_is_replayed_wherever_its_call_is_the_same():
    text = RESNET.read_text()
    memo = CallMemo()
    analyze(str(RESNET), text, _read, memo)
    # 16 Bottleneck calls, 8 different: each layer's first call (its input, its stride) and the 2, 3, 5, 2 after it
    assert memo.hits == 8
    a = analyze(str(RESNET), text.replace("num_classes=1000", "num_classes=10"), _read, memo)
    assert not a.diagnostics and memo.hits == 8 + 16  # a new head changes no call: every walk is kept
    before = memo.hits
    analyze(str(RESNET), text.replace("Bottleneck(64) x3", "Bottleneck(32) x3"), _read, memo)
    assert memo.hits - before == 13  # new walks: layer1's first two calls (its third repeats its second), layer2's first
    before = memo.hits
    analyze(str(RESNET), text.replace("relu inplace\n\nnetwork", "relu\n\nnetwork"), _read, memo)
    assert memo.hits - before == 8  # an edit inside the block: only the check's own repeats


def _spent(text: str) -> int:
    """The work a check of resnet50's text spends: the least `work` limit it passes."""
    low, high = 1, limits.get("work")
    while low < high:
        mid = (low + high) // 2
        with limits.override(work=mid):
            ok = not analyze(str(RESNET), text, _read).diagnostics
        low, high = (low, mid) if ok else (mid + 1, high)
    return low


def test_a_kept_walk_that_would_cross_the_work_limit_is_walked_and_reported():
    text = RESNET.read_text()
    heavier = text.replace("maxpool 3 s2 p1", "maxpool 3 s2 p1 | (identity) x400")  # more work before the blocks, same calls
    limit = _spent(text)
    assert _spent(heavier) > limit
    with limits.override(work=limit):
        memo = CallMemo()
        assert not analyze(str(RESNET), text, _read, memo).diagnostics
        kept = observed(analyze(str(RESNET), heavier, _read, memo))
        fresh = observed(analyze(str(RESNET), heavier, _read, False))
    assert kept == fresh and "exceeds the limit" in kept[0][0]["message"]
