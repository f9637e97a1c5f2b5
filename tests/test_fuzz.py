"""Fuzzing the front end: every input gives a result or a CnnDslError whose diagnostics are located inside the
text (1 <= line <= lines + 1, col >= 1) — never another exception, never a RecursionError, never a hang.

Three sources of input: text drawn from the grammar (ops from the registry, arguments, expressions,
groups, calls, merges, values, blocks, comments, with garbage words and stray characters mixed in),
random mutations of every example (characters and lines inserted, deleted, replaced, duplicated), and
random characters. The CI profile is derandomized; CNNDSL_DEEP=1 runs a deeper, random one. What is
generated must be valid Python (compiled, not run: the injection tests run it)."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

import pytest
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.ops import REGISTRY

DEEP = os.environ.get("CNNDSL_DEEP", "") not in ("", "0")
TIME_LIMIT = 5.0  # seconds per input (most take milliseconds; room for a loaded CI machine)

settings.register_profile("cnndsl-fuzz-ci", derandomize=True, deadline=None, database=None, print_blob=False,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("cnndsl-fuzz-deep", derandomize=False, deadline=None, database=None, print_blob=True,
                          suppress_health_check=list(HealthCheck))
PROFILE = settings.get_profile("cnndsl-fuzz-deep" if DEEP else "cnndsl-fuzz-ci")


def _examples(n: int) -> int:
    return n * 20 if DEEP else n


EXAMPLE_TEXTS = {p.name: p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.cnn"))}


class Timeout(BaseException):  # not caught by an `except Exception` in the code under test
    pass


@contextmanager
def _time_limit(seconds: float):
    def expire(signum, frame):
        raise Timeout(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _lines(text: str) -> int:
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1


def _located(d: cnndsl.Diagnostic, lines: int, text: str) -> None:
    assert 1 <= d.line <= lines + 1 and d.col >= 1, (d.line, d.col, d.message, text[:2000])
    assert d.message, text[:2000]
    for note in d.notes:
        _located(note, lines, text)


def outcome(text: str, seconds: float = TIME_LIMIT) -> str:
    """`ok` or `error`; fails the test on anything else. The generated source must compile as Python."""
    start = time.monotonic()
    try:
        with _time_limit(seconds):
            try:  # a one-line text that reads as a path (`net.cnn`, `a.b`): a final line break keeps it text
                code = cnndsl.compile(text + "\n" if cnndsl.reads_as_path(text) else text)
            except cnndsl.CnnDslError as e:
                assert e.diagnostics, text[:2000]
                for d in e.diagnostics:
                    _located(d, _lines(text), text)
                str(e)  # the rendering, too, must work
                return "error"
    except Timeout:
        pytest.fail(f"took more than {seconds} s on:\n{text[:2000]}")
    except RecursionError:  # pragma: no cover - the failure being tested for
        pytest.fail(f"RecursionError on:\n{text[:2000]}")
    assert time.monotonic() - start < seconds
    compile(code, "<generated>", "exec")
    return "ok"


# -- strategies: text from the grammar ------------------------------------------------------------

OPS = sorted(REGISTRY)
KEYWORDS = ["in", "if", "as", "and", "or", "not", "network", "block", "input", "init", "output", "import",
            "true", "false", "identity", "add", "cat", "mul", "split"]
GARBAGE = ["x", "x2", "x0", "x1000", "k3", "k1x3", "s2", "p1", "d2", "g2", "op1", "nobias", "ceil", "same", "valid",
           "reflect", "zeros", "tanh", "kaiming", "normal", "xavier", "foo", "__import__", "os", "self", "nn", "torch",
           "forward", "_x", "Net", "B", "c", "n", "planes", "stride", "e1", "pool1", "kk3", "k", "s", "bias", "p"]
NAMES = ["c", "n", "planes", "stride", "e1", "e2", "pool1", "B", "Blk", "Net", "fc", "head", "layer1"]

numbers = st.one_of(
    st.integers(0, 12).map(str),
    st.sampled_from(["16", "32", "64", "3", "1", "0", "2", "128", "1000", "99999999999999999999999", "1e400", "0.5",
                     "1.5", ".5", "1e-3", "3x32x32", "1x28x28", "3x8", "16x8x8x8", "0x0", "007"]),
)
words = st.sampled_from(OPS + KEYWORDS + GARBAGE + NAMES)


def exprs(depth: int = 2):
    atom = st.one_of(numbers, words, st.sampled_from(['"reflect"', '"x"', '""', '"a b"']))
    if depth == 0:
        return atom
    sub = exprs(depth - 1)
    return st.one_of(
        atom,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "//", "/", "==", "!=", "<", ">=", "and", "or"]), sub).map(" ".join),
        sub.map(lambda e: f"({e})"),
        sub.map(lambda e: f"-{e}"),
        sub.map(lambda e: f"not {e}"),
        st.lists(sub, min_size=0, max_size=3).map(lambda xs: "(" + ", ".join(xs) + ("," if len(xs) == 1 else "") + ")"),
    )


args = st.one_of(
    numbers, words, exprs(1).map(lambda e: f"({e})"),
    st.tuples(words, exprs(1)).map(lambda t: f"{t[0]}={t[1]}"),
    st.tuples(exprs(0), exprs(0)).map(lambda t: f"{t[0]}->{t[1]}"),
    st.sampled_from(["x2", "x3", "k3", "s2", "p1", "nobias", "init=normal(0, 0.01)", "init=zeros()", "as head"]),
)


@st.composite
def stages(draw, depth: int = 2):
    kind = draw(st.sampled_from(["layer", "layer", "layer", "call", "group", "join"] if depth else ["layer"]))
    tail = " ".join(draw(st.lists(args, max_size=4)))
    named = draw(st.sampled_from(["", "", "", " as fc", " as head", " as pool1", " as in", " as x"]))
    if kind == "layer":
        return f"{draw(st.sampled_from(OPS) if draw(st.booleans()) else words)} {tail}{named}"
    if kind == "call":
        inner = ", ".join(draw(st.lists(st.one_of(exprs(1), st.tuples(words, exprs(0)).map("=".join)), max_size=3)))
        return f"{draw(st.sampled_from(['B', 'Blk', 'conv', 'Nope', 'cat', 'add', 'mul']))}({inner}){' ' + tail if tail else ''}{named}"
    if kind == "join":
        return f"{draw(st.sampled_from(['cat', 'add', 'mul']))}({', '.join(draw(st.lists(st.sampled_from(NAMES), max_size=3)))})"
    return f"({draw(pipelines(depth - 1))}) {tail}{named}"


def pipelines(depth: int = 2):
    return st.lists(stages(depth), min_size=1, max_size=4).map(" | ".join)


@st.composite
def statements(draw, indent: str, depth: int = 2):
    kind = draw(st.sampled_from(["line", "line", "line", "cond", "assign", "labeled", "merge", "input", "init", "output"]))
    p = draw(pipelines())
    if kind == "cond":
        return [f"{indent}{p} if {draw(exprs(2))}"]
    if kind == "assign":
        return [f"{indent}{draw(st.sampled_from(NAMES + ['in', 'x']))} = {p}"]
    if kind == "labeled":
        return [f"{indent}{draw(st.sampled_from(NAMES))}: {p}"]
    if kind == "merge" and depth:
        head = draw(st.sampled_from(["add", "cat", "mul", "split 2", "add if stride == 1", "layer1", "split"]))
        inner = indent + draw(st.sampled_from(["    ", "\t", "  ", "        "]))
        branches = [f"{inner}{draw(st.one_of(pipelines(), st.just('identity')))}" for _ in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            branches += draw(statements(inner, depth - 1))
        return [f"{indent}{head}:", *branches]
    if kind == "input":
        return [f"{indent}input {draw(st.one_of(numbers, exprs(1)))}"]
    if kind == "init":
        return [f"{indent}init {draw(words)} {draw(words)}={draw(st.sampled_from(['normal(0, 0.01)', 'zeros', 'kaiming_normal()', '1', 'x(']))}"]
    if kind == "output":
        return [f"{indent}output {', '.join(draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3)))}"]
    return [f"{indent}{p}"]


@st.composite
def params(draw):
    if draw(st.booleans()):
        return ""
    items = draw(st.lists(st.one_of(st.sampled_from(NAMES), st.tuples(st.sampled_from(NAMES + ["in", "if"]), exprs(1)).map("=".join)), max_size=3))
    return "(" + ", ".join(items) + ")"


@st.composite
def files(draw):
    lines: list[str] = []
    if draw(st.integers(0, 5)) == 0:  # a bare pipeline file
        lines += [draw(pipelines())]
    else:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f"block {draw(st.sampled_from(['B', 'Blk', 'B']))}{draw(params())}:")
            for _ in range(draw(st.integers(1, 3))):
                lines += draw(statements("    "))
        lines.append(f"network {draw(st.sampled_from(['Net', 'N2', 'in', 'forward', 'B']))}{draw(params())}:")
        if draw(st.integers(0, 3)):
            lines.append(f"    input {draw(st.sampled_from(['3x32x32', '3x16x16', '1x28x28', '3x8', '4x8x8x8', '3', '(3, 32, 32)']))}")
        for _ in range(draw(st.integers(1, 5))):
            lines += draw(statements("    "))
    # noise: comments, blank lines, stray characters, odd indentation
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines)))
        lines.insert(i, draw(st.sampled_from(["# a comment é", "", "   ", "\t", "  # x", "|", ")", "(", ":", "    relu", "\\"])))
    sep = draw(st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"]))
    text = sep.join(lines) + draw(st.sampled_from(["\n", "", sep, "\n\n"]))
    return ("\ufeff" if draw(st.integers(0, 10)) == 0 else "") + text


@settings(PROFILE, max_examples=_examples(120))
@given(files())
def test_text_from_the_grammar(text):
    outcome(text)


# -- strategies: mutations of the examples -----------------------------------------------------------

CHARS = st.one_of(st.sampled_from(list("()|:,=->#\"\\ \t\n\rx0123456789+*/<!.") + ["\ufeff", "é", "\x00", "\x0b", "\u2028"]),
                  st.characters(codec="utf-8"))


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))
    text = EXAMPLE_TEXTS[name]
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup-line", "del-line", "swap-lines", "word", "indent"]))
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        if kind == "insert":
            text = text[:at] + draw(st.text(CHARS, min_size=1, max_size=3)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == "replace":
            text = text[:at] + draw(CHARS) + text[at + 1:]
        elif kind == "word":
            text = text[:at] + " " + draw(st.one_of(words, numbers, args)) + " " + text[at:]
        else:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "dup-line":
                lines.insert(i, lines[j])
            elif kind == "del-line":
                del lines[i]
            elif kind == "swap-lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] = draw(st.sampled_from(["  ", "\t", "        ", ""])) + lines[i].lstrip(" ")
            text = "\n".join(lines)
    return text


@settings(PROFILE, max_examples=_examples(350))
@given(mutated())
def test_mutated_examples(text):
    outcome(text)


@settings(PROFILE, max_examples=_examples(300))
@given(st.text(CHARS, max_size=200))
def test_random_characters(text):
    outcome(text)


@settings(PROFILE, max_examples=_examples(200))
@given(st.lists(st.one_of(words, numbers, st.sampled_from(list("()|:,=\n") + ["->", "    ", "\n    ", "\n        "])), max_size=60))
def test_random_tokens(tokens):
    outcome(" ".join(tokens))


@pytest.mark.parametrize("name", sorted(EXAMPLE_TEXTS))
def test_every_example_and_every_prefix_of_it(name):
    """Each example compiles, and each of its line prefixes (a file being typed) gives a result or a diagnostic."""
    text = EXAMPLE_TEXTS[name]
    assert outcome(text) == "ok"
    lines = text.split("\n")
    step = max(1, len(lines) // 12)
    for n in range(0, len(lines), step):
        outcome("\n".join(lines[:n]))
        outcome("\n".join(lines[:n]) + "\n" + lines[n][: len(lines[n]) // 2])


# -- deep nesting: a diagnostic (or a result), never RecursionError ----------------------------------

NET = "network Net:\n    input 3x8x8\n    "
DEEP_CASES = {
    "parentheses": NET + "conv " + "(" * 5000 + "8" + ")" * 5000 + " k1",
    "nested sums": NET + "conv " + "(1+" * 3000 + "1" + ")" * 3000 + " k1",
    "long sum": NET + "conv " + "+".join(["1"] * 10000) + " k1",
    "long product": NET + "conv " + "*".join(["1"] * 10000) + " k1",
    "negations": NET + "dropout " + "-" * 5000 + "(1)",
    "negations in parentheses": NET + "dropout " + "(-" * 3000 + "1" + ")" * 3000,
    "nots": NET + "relu if " + "not " * 5000 + "true",
    "ands": NET + "relu if " + " and ".join(["true"] * 5000),
    "unclosed": NET + "conv " + "(" * 10000,
    "unopened": NET + "conv " + ")" * 10000,
    "groups": NET + "(" * 3000 + "relu" + ")" * 3000,
    "groups with repeats": NET + "(" * 500 + "relu" + ") x2" * 500,
    "tuples": NET + "conv 8 k=" + "(1, " * 3000 + "1" + ")" * 3000,
    "merges": "network Net:\n    input 3x8x8\n" + "".join(" " * (4 * i) + "add:\n" for i in range(1, 1500)) + " " * 6000 + "relu\n",
    "indentation": "network Net:\n" + "".join(" " * i + "relu |\n" for i in range(1, 3000)) + "    relu\n",
    "block chain": "".join(f"block B{i}:\n    B{i + 1}()\n" for i in range(3000)) + "block B3000:\n    relu\n" + NET + "B0()\n",
    "block chain, reversed": "block B3000:\n    relu\n" + "".join(f"block B{i}:\n    B{i + 1}()\n" for i in reversed(range(3000))) + NET + "B0()\n",
    # 2**40 calls: stopped by the `layers` limit, which bounds the time (the slowest input within the limits)
    "block fan-out": "".join(f"block B{i}:\n    B{i + 1}() | B{i + 1}()\n" for i in range(40)) + "block B40:\n    relu\n" + NET + "B0()\n",
    "block cycle": "".join(f"block B{i}:\n    B{(i + 1) % 2000}()\n" for i in range(2000)) + NET + "B0()\n",
    "call arguments": "block B(a):\n    relu\n" + NET + "B(" + "(" * 3000 + "1" + ")" * 3000 + ")\n",
    "parameter defaults": "network Net(" + ", ".join(f"p{i}=p{i - 1}+1" if i else "p0=1" for i in range(3000)) + "):\n    input 3x8x8\n    relu\n",
    "many networks": "".join(f"network N{i}:\n    relu\n" for i in range(2000)),
    "many lines": NET + "\n    ".join(["relu"] * 5000),
    "a long line": NET + " | ".join(["relu"] * 5000),
    "many values": NET + "\n    ".join(f"v{i} = relu" for i in range(3000)) + "\n    cat(" + ", ".join(f"v{i}" for i in range(3000)) + ")",
}


@pytest.mark.parametrize("name", sorted(DEEP_CASES))
def test_deep_and_long_inputs(name):
    outcome(DEEP_CASES[name], seconds=20)


@pytest.mark.parametrize("expr, message", [
    ("(1 < (1, 2))", "cannot compare `1` and `(1, 2)` with <"),
    ("((1, 2) >= (1, 3))", "cannot compare `(1, 2)` and `(1, 3)` with >="),
    ("(relu < 2)", "cannot compare `relu` and `2` with <"),
])
def test_ordering_what_is_not_a_number_is_a_diagnostic(expr, message):
    """Found by random fuzzing of the formatter: these raised a TypeError inside the checker."""
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.check(f"network N:\n    input 3x8x8\n    conv 8 k={expr}\n")
    assert info.value.diagnostics[0].message == message and info.value.diagnostics[0].line == 3
