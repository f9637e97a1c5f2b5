"""The language server's memo of block calls (cnndsl/semantics/memo.py) changes nothing but the time: a file
checked with the walks its previous version kept gives the diagnostics, the layers and the generated code that a
check from scratch gives. Checked along chains of random edits of every example and port (digits changed, lines
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
        fresh = observed(analyze(name, text, _read))
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


def test_an_edit_outside_the_blocks_walks_no_block_again():
    text = RESNET.read_text()
    memo = CallMemo()
    analyze(str(RESNET), text, _read, memo)
    assert memo.hits == 0
    a = analyze(str(RESNET), text.replace("num_classes=1000", "num_classes=10"), _read, memo)
    assert not a.diagnostics and memo.hits == 16  # every Bottleneck call: a new head changes none of them
    before = memo.hits
    analyze(str(RESNET), text.replace("Bottleneck(64) x3", "Bottleneck(32) x3"), _read, memo)
    assert memo.hits - before == 12  # layer1's three calls and layer2's first (its input) change; not the others
    before = memo.hits
    analyze(str(RESNET), text.replace("relu inplace\n\nnetwork", "relu\n\nnetwork"), _read, memo)
    assert memo.hits == before  # an edit inside the block: nothing kept applies


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
        fresh = observed(analyze(str(RESNET), heavier, _read))
    assert kept == fresh and "exceeds the limit" in kept[0][0]["message"]
