"""The cost of a source at the size limit (cnndsl/limits.py, `file_bytes`): whatever its shape, a file at the limit
is checked within 1 GB of memory and 60 s. Each case runs in a subprocess that measures its peak RSS
(getrusage) and its time. In CI each shape is checked at an eighth and a quarter of the limit and the cost is
extrapolated linearly to the limit (a cost that grows faster than the size shows in the slope between the two);
the slow profile (`pytest -m slow`) checks the full size."""

from __future__ import annotations

import os

import pytest
from conftest import check_cost

from cnndsl import limits

GB = 1 << 30
MAX_MEMORY, MAX_SECONDS = 1 * GB, 60
HEAD = "network Net:\n    input 3x8x8\n"


def _fill(unit: str, size: int, head: str = HEAD, tail: str = "") -> str:
    return head + unit * max(1, (size - len(head) - len(tail)) // len(unit)) + tail


def _numbered(unit: str, size: int, head: str = HEAD, tail: str = "") -> str:
    """`unit` with {0} numbered 1, 2, 3, ... ({1} one less) until the text has about `size` bytes."""
    parts, total, i = [head], len(head) + len(tail), 1
    while total < size:
        parts.append(unit.format(i, i - 1))
        total += len(parts[-1])
        i += 1
    return "".join(parts) + tail


# the shapes that cost the most per byte (measured; docs/LANGUAGE.md, "Limits")
SHAPES = {
    "long-line": lambda n: _fill("relu | ", n, HEAD + "    relu | ", "relu\n"),
    "many-lines": lambda n: _fill("    relu\n", n),
    "deep-groups": lambda n: _fill("    " + "(" * 95 + "relu" + ")" * 95 + "\n", n),
    "deep-expressions": lambda n: _fill("    conv " + "(1+" * 95 + "8" + ")" * 95 + " k1\n", n),
    "positional-arguments": lambda n: _fill(" 3", n, HEAD + "    conv 8", "\n"),
    "keyword-arguments": lambda n: _fill(" k=3", n, HEAD + "    conv 8", "\n"),
    "long-tuple": lambda n: _fill(",3", n, HEAD + "    conv 8 k=(3", ")\n"),
    "branches": lambda n: _fill("        relu if true\n", n, HEAD + "    add:\n"),
    "values": lambda n: _numbered("    e{0} = e{1}\n", n, HEAD + "    e0 = relu\n"),
    "unused-values": lambda n: _numbered("    e{0} = e0\n", n, HEAD + "    e0 = relu\n", "    e0\n"),
    "blocks": lambda n: _numbered("block B{0}:\n    relu\n", n, "", HEAD + "    relu\n"),
    "unknown-ops": lambda n: _fill("    reluu\n", n),
    "comment-lines": lambda n: _fill("# c\n", n, HEAD + "    relu\n"),
    # the forms of families: repetition counts, splices, functions, optional lines, defaults
    "repeat-counts": lambda n: _fill("    relu x(n)\n", n, "network Net(n=1000):\n    input 3x8x8\n"),
    "nested-splices": lambda n: _fill("    *(*(*(relu) x(n, i)) x(n)) x(n)\n", n, "network Net(n=30):\n    input 3x8x8\n"),
    "functions": lambda n: _fill("    conv max(1, min(8, int(sqrt(n * 16)))) k1\n", n, "network Net(n=4):\n    input 3x8x8\n"),
    "optional-lines": lambda n: _fill("    relu if n > 1\n", n, "network Net(n=2):\n    input 3x8x8\n"),
    "defaults": lambda n: _fill("    defaults bn eps=0.001 momentum=0.01\n    bn\n", n),
}

def _cost(tmp_path, text: str) -> tuple[str, float, int]:
    """(the first message or "ok", seconds, peak RSS in bytes) of `cnndsl check` of `text` as a file."""
    path = tmp_path / f"shape{len(text)}.cnn"
    path.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != limits.LIMITS["file_bytes"].env}
    return check_cost(path=path, seconds=2 * MAX_SECONDS, memory=4 * GB, env=env)


def _at_most(shape: str, size: int) -> str:
    text = SHAPES[shape](size)
    while len(text.encode("utf-8")) > size:  # the shapes overshoot by less than a unit
        text = SHAPES[shape](size - (len(text.encode("utf-8")) - size) - 64)
    return text


def test_the_shapes_are_what_they_say():
    limit = limits.LIMITS["file_bytes"].default
    for name, make in SHAPES.items():
        text = _at_most(name, limit)
        assert limit - 512 <= len(text.encode("utf-8")) <= limit, name
    import cnndsl

    assert cnndsl.check(SHAPES["values"](200)).layers and cnndsl.check(SHAPES["blocks"](200)).layers


@pytest.mark.parametrize("shape", SHAPES)
def test_the_cost_per_byte_is_linear_and_within_bounds_at_the_limit(tmp_path, shape):
    """At an eighth and a quarter of the limit; the slope between them, extrapolated to the limit."""
    limit = limits.LIMITS["file_bytes"].default
    small, large = limit // 8, limit // 4
    _, t1, m1 = _cost(tmp_path, _at_most(shape, small))
    result, t2, m2 = _cost(tmp_path, _at_most(shape, large))
    memory = m2 + max(0, m2 - m1) / (large - small) * (limit - large)
    seconds = t2 + max(0.0, t2 - t1) / (large - small) * (limit - large)
    assert "Traceback" not in result
    # margins: CI machines are slower and noisier than the one where these were measured (0.45 GB, 10 s at most)
    assert memory < 0.8 * MAX_MEMORY, (shape, result, m1, m2, memory)
    assert seconds < 0.5 * MAX_SECONDS, (shape, result, t1, t2, seconds)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_a_file_at_the_size_limit_is_checked_within_1_gb_and_60_s(tmp_path, shape):
    result, seconds, memory = _cost(tmp_path, _at_most(shape, limits.LIMITS["file_bytes"].default))
    assert "Traceback" not in result
    assert memory < MAX_MEMORY and seconds < MAX_SECONDS, (shape, result, seconds, memory)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    limit = limits.LIMITS["file_bytes"].default
    result, seconds, memory = _cost(tmp_path, SHAPES["positional-arguments"](limit + 1024))
    assert "CNNDSL_MAX_FILE_BYTES" in result and seconds < 2 and memory < 0.2 * GB, (result, seconds, memory)
