"""Limits (cnndsl/limits.py): an absurd size is a located diagnostic that names the limit and how to raise it,
never an exhausted memory, a hang or a traceback; each limit is adjustable by its environment variable and
from Python. Also: determinism of every example across hash seeds, and what a new user meets first."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLES, ROOT, check_cost

import cnndsl
from cnndsl import limits

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.cnn"))
NET = "network Net(a=3):\n    input 3x8x8\n    "


def _diagnostic(text: str, **params):
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.compile(text, **params)
    return info.value.diagnostics[0]


# one case per limit: (limit, source, line, column of the diagnostic)
CASES = [
    ("channels", NET + "conv 99999999 k3", 3, 10),
    ("channels", NET + "conv 3->2000000 k1", 3, 13),
    ("channels", NET + "flatten | linear 5000000", 3, 22),
    ("channels", "network Net:\n    input 2000000x8x8\n    relu", 2, 11),
    ("channels", "network Net:\n    input 3x128x128\n    conv 1024 k1 | pixelunshuffle 64", 3, 20),
    ("kernel", NET + "conv 8 k5000 p2500", 3, 12),
    ("kernel", NET + "maxpool kernel_size=(2, 99999)", 3, 13),
    ("spatial", NET + "conv 8 k3 p=99999999", 3, 5),
    ("spatial", NET + "upsample 1e300", 3, 5),
    ("spatial", "network Net:\n    input 3x100000000x8\n    relu", 2, 11),
    ("repeat", NET + "relu x1001", 3, 10),
    ("repeat", NET + "(conv 3 k1 | relu) x99999999999", 3, 24),
    ("layers", NET + "((relu x100) x100) x2", 3, 7),
    ("params", NET + "conv 1000000 k3 | conv 1000000 k3", 1, 1),
    ("integer", NET + "conv " + "9" * 30 + " k3", 3, 10),
    ("integer", NET + "conv 8 k" + "9" * 5000, 3, 12),
    ("integer", NET + "conv 8 k3 x" + "9" * 5000, 3, 15),
    ("integer", "network Net:\n    input 3x" + "9" * 5000 + "x8\n    relu", 2, 13),
    ("integer", NET + "conv 8 k3 | dropout " + "9" * 18 + "*" + "9" * 18 + "*0.5", 3, 25),
    ("integer", NET + "conv a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a k1", 3, 10),
    ("integer", "network Net(a=" + "9" * 400 + "):\n    input 3x8x8\n    conv a k3", 1, 15),
    ("nesting", NET + "conv " + "(1+" * 3000 + "8" + ")" * 3000 + " k3", 3, None),
    ("nesting", NET + "conv 8 k3 if " + "not " * 3000 + "true", 3, None),
    ("nesting", NET + "conv " + "+".join(["1"] * 5000) + " k1", 3, None),
    ("call_depth", "".join(f"block B{i}:\n    B{i + 1}()\n" for i in range(3000)) + "block B3000:\n    relu\n"
     "network Net:\n    input 3x8x8\n    B0()\n", 200, 5),
]


@pytest.mark.parametrize("name, text, line, col", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_limit_is_a_located_diagnostic_that_names_it(name, text, line, col):
    start = time.monotonic()
    d = _diagnostic(text)
    assert time.monotonic() - start < 20
    env = limits.LIMITS[name].env
    assert env in d.message, d.message
    assert d.line == line and d.col >= 1 and (col is None or d.col == col), (d.line, d.col, d.message)
    assert "Traceback" not in d.message and len(d.message) < 300
    if name != "nesting":
        assert "exceeds the limit of" in d.message
        assert env in d.hint and f"set_limit({name!r}" in d.hint


def test_deep_parentheses_alone_are_no_nesting():
    """`((((8))))` is the number 8, however many parentheses: no tree, no recursion, no limit."""
    assert cnndsl.check(NET + "conv " + "(" * 5000 + "8" + ")" * 5000 + " k3").output_shape == (8, 6, 6)


def test_limits_are_not_met_by_the_examples():
    for path in EXAMPLE_FILES:
        cnndsl.compile(path)


def test_the_limit_message_reads_well():
    d = _diagnostic(NET + "conv 99999999 k3")
    assert d.message == "`out` (99,999,999) exceeds the limit of 1,048,576 channels (CNNDSL_MAX_CHANNELS)"
    assert d.hint == "set the environment variable CNNDSL_MAX_CHANNELS or call cnndsl.limits.set_limit('channels', N) to raise it"
    huge = _diagnostic(NET + "conv 8 k" + "9" * 5000)
    assert "about 10**" in huge.message


def test_python_api_raises_and_restores_a_limit():
    text = NET + "relu x1500"
    with pytest.raises(cnndsl.CnnDslError):
        cnndsl.check(text)
    with limits.override(repeat=2000):
        assert len(cnndsl.check(text).layers) == 1500
    with pytest.raises(cnndsl.CnnDslError):
        cnndsl.check(text)
    limits.set_limit("channels", 16)
    try:
        assert "CNNDSL_MAX_CHANNELS" in _diagnostic(NET + "conv 17 k1").message
        cnndsl.check(NET + "conv 16 k1")
    finally:
        limits.set_limit("channels", None)
    cnndsl.check(NET + "conv 17 k1")
    with pytest.raises(ValueError):
        limits.set_limit("channels", 0)
    with pytest.raises(KeyError):
        limits.set_limit("no_such_limit", 3)


def test_lowering_a_limit_through_python_applies_to_every_place(tmp_path):
    with limits.override(kernel=3):
        assert "CNNDSL_MAX_KERNEL" in _diagnostic(NET + "conv 8 k5").message
    with limits.override(spatial=100):
        assert "CNNDSL_MAX_SPATIAL" in _diagnostic(NET + "upsample 16").message
    with limits.override(layers=5):
        assert "CNNDSL_MAX_LAYERS" in _diagnostic(NET + "relu x6").message
    with limits.override(params=100):
        assert "CNNDSL_MAX_PARAMS" in _diagnostic(NET + "conv 8 k3").message
    with limits.override(nesting=5):
        assert "CNNDSL_MAX_NESTING" in _diagnostic(NET + "conv ((((((8)))))) k1").message
    with limits.override(call_depth=1):
        d = _diagnostic("block A:\n    B()\nblock B:\n    relu\nnetwork Net:\n    input 3x8x8\n    A()\n")
        assert "CNNDSL_MAX_CALL_DEPTH" in d.message and d.line == 2
    with limits.override(integer=1000):
        assert "CNNDSL_MAX_INTEGER" in _diagnostic(NET + "conv 1001 k1").message
        assert "CNNDSL_MAX_INTEGER" in _diagnostic(NET + "conv a k1", a=10**6).message
    with limits.override(file_bytes=64):
        path = tmp_path / "net.cnn"
        path.write_text(NET + "conv 8 k3 | relu | relu | relu\n", encoding="utf-8")
        for src in (path, path.read_text(encoding="utf-8")):
            with pytest.raises(cnndsl.CnnDslError) as info:
                cnndsl.check(src)
            assert "CNNDSL_MAX_FILE_BYTES" in str(info.value)


def test_a_huge_keyword_parameter_or_input_is_refused_not_a_traceback():
    assert "CNNDSL_MAX_INTEGER" in _diagnostic(NET + "conv a k1", a=10**5000).message
    assert "CNNDSL_MAX_CHANNELS" in _diagnostic(NET + "conv a k1", a=10**7).message
    with pytest.raises(cnndsl.UsageError, match="CNNDSL_MAX_SPATIAL"):
        cnndsl.check(NET + "relu", input=(3, 10**9, 8))


def _cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "cnndsl", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_environment_variables_raise_and_lower_the_limits(tmp_path):
    (tmp_path / "net.cnn").write_text(NET + "conv 2000000 k1 | relu x1500\n", encoding="utf-8")
    refused = _cli("check", "net.cnn", cwd=tmp_path)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "CNNDSL_MAX_CHANNELS" in refused.stderr and "CNNDSL_MAX_REPEAT" in refused.stderr
    ok = _cli("check", "net.cnn", cwd=tmp_path, env={"CNNDSL_MAX_CHANNELS": "4_000_000", "CNNDSL_MAX_REPEAT": "2000"})
    assert ok.returncode == 0, ok.stderr
    lowered = _cli("check", "net.cnn", cwd=tmp_path, env={"CNNDSL_MAX_CHANNELS": "4000000", "CNNDSL_MAX_REPEAT": "2000",
                                                          "CNNDSL_MAX_KERNEL": "0"})
    assert (lowered.returncode, lowered.stderr) == (2, "cnndsl: error: CNNDSL_MAX_KERNEL must be a positive integer, got '0'\n")
    big = tmp_path / "big.cnn"
    big.write_text(NET + "relu\n" + "# padding\n" * 100, encoding="utf-8")
    small = _cli("check", "big.cnn", cwd=tmp_path, env={"CNNDSL_MAX_FILE_BYTES": "100"})
    assert small.returncode == 1
    assert re.match(r"big\.cnn:1:1: error: the source's size \(1,0\d\d\) exceeds the limit of 100 bytes \(CNNDSL_MAX_FILE_BYTES\)\n", small.stderr)


def test_a_file_over_the_size_limit_is_not_read(tmp_path):
    """Refused from its size alone: a 12 MiB file gives the diagnostic at once."""
    path = tmp_path / "huge.cnn"
    with path.open("wb") as f:
        f.truncate(12 << 20)  # sparse, NUL bytes: were it read, it would be "not a text file" instead
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.check(path)
    (d,) = info.value.diagnostics
    assert "CNNDSL_MAX_FILE_BYTES" in d.message and (d.line, d.col) == (1, 1)


def test_the_documented_limits_are_the_limits():
    text = (ROOT / "docs" / "LANGUAGE.md").read_text(encoding="utf-8")
    section = text[text.index("## Limits"):]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| `(\w+)` \|", section, re.M)
    assert {name: env for name, _, env in rows} == {name: lim.env for name, lim in limits.LIMITS.items()}
    for name, default, _ in rows:
        shown = default.strip().replace(",", "")
        expected = limits.LIMITS[name].default
        for unit, shift in ((" MiB", 20), (" KiB", 10), ("", 0)):
            if shown.endswith(unit) and shown[:len(shown) - len(unit)].isdigit():
                assert int(shown[:len(shown) - len(unit)]) << shift == expected, name
                break
        else:
            assert name == "integer", (name, default)


# -- determinism across hash seeds: every example (the golden tests cover tests/golden/ok) -----------

_SEED_SCRIPT = """
import json, sys, cnndsl
print(json.dumps({p: cnndsl.compile(p) for p in sys.argv[1:]}))
"""


def test_every_example_compiles_to_the_same_bytes_across_hash_seeds():
    outputs = []
    for seed in ("0", "1", "123456"):
        proc = subprocess.run([sys.executable, "-c", _SEED_SCRIPT, *map(str, EXAMPLE_FILES)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1] == outputs[2]
    in_process = {str(p): cnndsl.compile(p) for p in EXAMPLE_FILES}
    assert in_process == outputs[0]


# -- what a new user meets first ---------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    bytes(range(256)) * 4,
    b"\x7fELF\x02\x01\x01" + b"\x00" * 64,
    b"PK\x03\x04" + bytes(range(200)),
    "conv 3->8 k3".encode("utf-16"),
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xfe\xfd" * 100,
], ids=["bytes", "elf", "zip", "utf16", "png", "invalid-utf8"])
def test_a_binary_file_given_by_mistake_is_a_one_line_error(tmp_path, content):
    (tmp_path / "model.cnn").write_bytes(content)
    for command in ("check", "build"):
        proc = _cli(command, "model.cnn", "-o", "out.py", cwd=tmp_path) if command == "build" else _cli(command, "model.cnn", cwd=tmp_path)
        assert proc.returncode == 1
        first, *rest = proc.stderr.splitlines()
        assert first.startswith("model.cnn:1:1: error: this is not ") and rest == ["1 error"], proc.stderr
        assert not (tmp_path / "out.py").exists()


# -- overrides are per context: threads do not see each other's, and any order of leaving restores ----------


def test_an_override_in_one_thread_is_not_seen_by_another():
    import threading

    entered, looked = threading.Event(), threading.Event()
    seen = {}

    def overriding():
        with limits.override(repeat=5):
            seen["inside"] = limits.get("repeat")
            entered.set()
            looked.wait(10)

    def looking():
        entered.wait(10)
        seen["other"] = limits.get("repeat")
        seen["check"] = len(cnndsl.check(NET + "relu x6").layers)  # 6 > 5: refused only where the override is
        looked.set()

    threads = [threading.Thread(target=overriding), threading.Thread(target=looking)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"inside": 5, "other": 1000, "check": 6}
    assert limits.get("repeat") == 1000


def test_interleaved_overrides_in_two_threads_restore_every_limit():
    """A enters, B enters, A leaves, B leaves: in the old process-wide dict, B saved A's value and put it back."""
    import threading

    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with limits.override(repeat=5, layers=50):
            a_in.set()
            b_in.wait(10)
            seen["a"] = (limits.get("repeat"), limits.get("layers"))
        a_out.set()

    def b():
        a_in.wait(10)
        with limits.override(repeat=7, channels=9):
            b_in.set()
            a_out.wait(10)
            seen["b"] = (limits.get("repeat"), limits.get("layers"), limits.get("channels"))
        seen["b after"] = limits.get("repeat")

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"a": (5, 50), "b": (7, 10_000, 9), "b after": 1000}
    assert {name: limits.get(name) for name in limits.LIMITS} == {name: lim.default for name, lim in limits.LIMITS.items()}


def test_overrides_left_out_of_order_in_one_thread_restore_every_limit():
    first, second = limits.override(repeat=5), limits.override(repeat=7, kernel=3)
    first.__enter__()
    second.__enter__()
    assert (limits.get("repeat"), limits.get("kernel")) == (7, 3)
    first.__exit__(None, None, None)
    assert (limits.get("repeat"), limits.get("kernel")) == (7, 3)
    second.__exit__(None, None, None)
    assert (limits.get("repeat"), limits.get("kernel")) == (1000, 4096)
    with limits.override(repeat=5):
        with limits.override(repeat=6):
            assert limits.get("repeat") == 6
        assert limits.get("repeat") == 5
    assert limits.get("repeat") == 1000


def test_set_limit_is_process_wide_and_an_override_wins_over_it():
    import threading

    limits.set_limit("repeat", 20)
    try:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(limits.get("repeat")))
        thread.start()
        thread.join(10)
        assert seen == [20]
        with limits.override(repeat=30):
            assert limits.get("repeat") == 30
        assert limits.get("repeat") == 20
    finally:
        limits.set_limit("repeat", None)
    assert limits.get("repeat") == 1000
    with pytest.raises(ValueError):
        with limits.override(repeat=0):
            pass
    with pytest.raises(KeyError):
        with limits.override(no_such_limit=3):
            pass
    assert limits.get("repeat") == 1000


# -- a did-you-mean hint costs bounded time, whatever the number of names ------------------------------------


def test_a_hint_among_45000_long_names_takes_bounded_time():
    """45,000 names of 190 characters that difflib finds alike: get_close_matches ran its full comparison (190 x
    180 steps) on every one, minutes per hint; 20 errors took 326 s."""
    from cnndsl.errors import did_you_mean

    names = ["p" * 180 + f"{i:010d}" for i in range(45000)]
    start = time.monotonic()
    hints = [did_you_mean("p" * 180 + f"{i * 1000 + 17:08d}x{i % 10}", names) for i in range(20)]
    assert time.monotonic() - start < 10
    assert all(h is not None and h[len("did you mean `"):-2] in names for h in hints)
    hint = did_you_mean("p" * 180 + "00000432x0", names)  # one character wrong: a name one character away
    assert hint is not None and sum(a != b for a, b in zip(hint[len("did you mean `") + 180:-2], "00000432x0")) == 1, hint
    assert did_you_mean("q" * 5000, names) is None  # no hint for an absurdly long word, at once


def test_hints_on_ordinary_typos_still_work():
    assert _diagnostic(NET + "conv 8 k3 | linaer 10").hint == "did you mean `linear`?"
    d = _diagnostic("network Net(width=8, depth=2):\n    input 3x8x8\n    conv widht k3\n")
    assert d.hint == "did you mean `width`?"
    names = [f"layer_{i}_width" for i in range(5000)]
    from cnndsl.errors import did_you_mean

    assert did_you_mean("layer_1234_widht", names) == "did you mean `layer_1234_width`?"


def test_a_hint_is_difflibs_choice_below_the_bounds():
    import difflib
    import random

    from cnndsl.errors import did_you_mean

    rng = random.Random(7)
    words = ["".join(rng.choice("abcdel_") for _ in range(rng.randint(1, 12))) for _ in range(400)]
    for _ in range(3000):
        word, choices = rng.choice(words), rng.sample(words, rng.randint(0, 60))
        close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
        assert did_you_mean(word, choices) == (f"did you mean `{close[0]}`?" if close else None), (word, choices)


# -- a --params file is read within bounds: no alias expands, no message quotes a whole value -----------------


def _bounded_cli(*args, cwd, seconds=60):
    """The CLI in a subprocess that may use 4 GiB of address space and `seconds` of time."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cnndsl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=seconds, preexec_fn=cap)
    return proc, time.monotonic() - start


def test_a_yaml_alias_bomb_in_params_is_refused_at_once(tmp_path):
    """298 bytes whose aliases expand to 9**8 numbers: the message repr()'d the expanded value (17 MB for 9**7,
    minutes and gigabytes for 9**8)."""
    items = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
    (tmp_path / "bomb.yaml").write_text("bomb: [" + ", ".join(items) + "]\n", encoding="utf-8")
    (tmp_path / "net.cnn").write_text("network Net(bomb=1):\n    input 3x8x8\n    conv 8 k3\n", encoding="utf-8")
    proc, took = _bounded_cli("check", "net.cnn", "--params", "bomb.yaml", cwd=tmp_path)
    assert took < 20 and proc.returncode == 2 and len(proc.stderr) < 300, (took, proc.returncode, proc.stderr[:300])
    assert proc.stderr.startswith("cnndsl: error: bomb.yaml:1:") and "alias" in proc.stderr


@pytest.mark.parametrize("content, expected", [
    ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "bad.yaml:1:11: nesting deeper than 8 levels"),
    ("a: " + "9" * 10_000 + "\n", "bad.yaml:1:4: an integer of 10,000 characters exceeds the limit of 9,223,372,036,854,775,807 (CNNDSL_MAX_INTEGER)"),
    ("a: " + "x " * 50_000 + "\n", "bad.yaml:1:4: the parameter 'a' must be a number, true/false, a word or a list of numbers, found a string 'x x"),
    ("a: [" + "1, " * 100_000 + "1]\n", "bad.yaml:1:4: the list 'a' has 100,001 items, more than the limit of 100 (CNNDSL_MAX_EXPRESSION)"),
    ("a: 1\n" + "# padding\n" * 200_000, "the params file's size (2,000,005) exceeds the limit of 1,000,000 bytes (CNNDSL_MAX_FILE_BYTES)"),
], ids=["deep", "long-integer", "long-string", "long-list", "too-big"])
def test_a_params_file_is_read_within_bounds_and_quoted_briefly(tmp_path, content, expected):
    (tmp_path / "bad.yaml").write_text(content, encoding="utf-8")
    (tmp_path / "net.cnn").write_text("network Net(a=1):\n    input 3x8x8\n    conv 8 k3\n", encoding="utf-8")
    env = {"CNNDSL_MAX_FILE_BYTES": "1000000"}
    proc = _cli("check", "net.cnn", "--params", "bad.yaml", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[:500]
    assert len(proc.stderr) < 300, proc.stderr[:500]
    (tmp_path / "ok.yaml").write_text("a: 2\n", encoding="utf-8")
    assert _cli("check", "net.cnn", "--params", "ok.yaml", cwd=tmp_path, env=env).returncode == 0


def test_quote_is_brief_and_cheap():
    from cnndsl.errors import quote

    big = [[list(range(10))] * 1000] * 1000  # ten million numbers, shared: repr() would take seconds
    start = time.monotonic()
    assert len(quote(big)) <= 80 and len(quote("x" * 10**6)) <= 80 and quote("a") == "'a'" and quote(1.5) == "1.5"
    assert time.monotonic() - start < 1


# -- the work of a check: block calls and repetitions multiply, and the `work` limit bounds the product ---------
# The walk charges cnndsl.limits.Budget through limits.charge at each block call and repetition (hooks in
# calls.py and scope.py). The two tests that check through cnndsl.check fail until those hooks are in place.


def _nested_calls(levels: int, times: int, body: str = "    add:\n        identity\n        identity\n") -> str:
    text = "block A(c):\n" + body
    for i in range(levels):
        text += f"block B{i}(c):\n    {'A' if i == 0 else f'B{i - 1}'}(c) x{times}\n"
    return text + f"network Net:\n    input 3x8x8\n    B{levels - 1}(3)\n"


def test_the_budget_counts_syntax_nodes_and_names_its_limit():
    file = cnndsl.parse(_nested_calls(1, 30) + "    relu x3\n")
    budget = limits.Budget()
    block = next(b for b in file.blocks if b.name == "A")
    assert budget.size(block) == 9  # Block, Param, Labeled, and per branch Line, Pipeline, Layer
    assert budget.size(block) == 9 and budget.limit == 500_000
    assert budget.charge(499_999) is None and budget.charge(1) is None
    message, hint = budget.charge(1)
    assert "exceeds the limit of 500,000 syntax nodes walked (CNNDSL_MAX_WORK)" in message
    assert "CNNDSL_MAX_WORK" in hint and "set_limit('work', N)" in hint
    with limits.override(work=10):
        small = limits.Budget()
    assert small.limit == 10 and small.charge(10) is None and small.charge(1) is not None


def test_charge_raises_a_located_check_error_past_the_limit():
    from types import SimpleNamespace

    from cnndsl.errors import Source
    from cnndsl.semantics.scope import Program

    file = cnndsl.parse(_nested_calls(1, 30))
    block = next(b for b in file.blocks if b.name == "A")
    prog = Program(blocks={})
    if not hasattr(prog, "work"):
        prog.work = limits.Budget()  # until Program has its field
    source = Source(name="net.cnn", text=_nested_calls(1, 30))
    scope = SimpleNamespace(prog=prog, source=source)
    with limits.override(work=100):
        prog.work = limits.Budget()
        limits.charge(scope, block, times=0)
        for _ in range(3):
            limits.charge(scope, block)  # 29 each: 9 nodes and a call's 20
        with pytest.raises(cnndsl.CheckError) as info:
            limits.charge(scope, block, span=file.blocks[1].body[0].span)
    (d,) = info.value.diagnostics
    assert (d.file, d.line, d.col) == ("net.cnn", 6, 5) and "CNNDSL_MAX_WORK" in d.message and prog.work.spent == 116


def test_nested_block_calls_without_layers_are_bounded_by_the_work_limit():
    """Three levels of `x30` over a block of identity branches: 27,930 block calls and no layer (4 s and 200 MB
    before the work limit); with the limit lowered to 20,000 nodes, refused after a few hundred calls."""
    start = time.monotonic()
    with limits.override(work=20_000):
        d = _diagnostic(_nested_calls(3, 30))
    assert time.monotonic() - start < 2
    assert "CNNDSL_MAX_WORK" in d.message and "exceeds the limit of 20,000" in d.message, d.message
    assert (d.line, d.col) == (6, 5) and d.notes  # the call that crossed the limit, and the calls that led there
    with limits.override(work=2_000_000):
        with pytest.raises(cnndsl.CnnDslError, match="has no layers"):
            cnndsl.check(_nested_calls(3, 30))  # raised: the check goes through


def _measured(text: str, *, seconds: int = 30, memory: int = 2 << 30, env=None):
    """(first message or "ok", seconds, peak RSS in bytes) of cnndsl.check(text) in a subprocess that may use
    `memory` bytes of address space and `seconds` of time."""
    return check_cost(text, seconds=seconds, memory=memory, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("levels, times", [(4, 30), (3, 60)])
def test_the_work_limit_bounds_block_call_bombs_by_default(levels, times):
    """4 levels of x30 (810,000 block calls from 215 bytes) took 127 s and 5.3 GB; 3 levels of x60, 45 s and
    1.4 GB. The default work limit refuses both in a few seconds."""
    message, took, peak = _measured(_nested_calls(levels, times))
    assert "CNNDSL_MAX_WORK" in message and took < 20 and peak < 1 << 30, (message, took, peak)


@pytest.mark.parametrize("body", [
    "    e0 = identity\n" + "".join(f"    e{i} = e{i - 1}\n" for i in range(1, 1000)),
    "    add:\n" + "        identity\n" * 1000,
    "    e0 = identity\n    e0 | " + " | ".join(["add(e0)"] * 1000) + "\n",
    "    add:\n        identity\n        relu x1000 if false\n" * 10,
], ids=["values", "identity-branches", "joins", "inactive-repetitions"])
def test_the_work_limit_bounds_a_large_body_called_many_times(body):
    """900 calls of a body of 1,000 statements, branches or joins make at most 900 layers: 28 s and 1.5 GB
    (values), 16 s and 2.3 GB (joins), 15 s (the names of inactive `relu x1000`) before the work limit, which
    charges a block call with the block's nodes, not 1."""
    message, took, peak = _measured(_nested_calls(2, 30, body))
    assert "CNNDSL_MAX_WORK" in message and took < 20 and peak < 1 << 30, (message, took, peak)


def test_a_listing_of_names_in_a_message_is_brief():
    from cnndsl.errors import listing

    assert listing(["a", "b", "c"]) == "a, b, c" and listing([]) == ""
    assert listing([f"N{i}" for i in range(6898)]) == "N0, N1, N2, N3, N4, N5, N6, N7, N8, N9 and 6,888 more"
    long = listing(["p" * 190 + str(i) for i in range(45000)])
    assert len(long) < 300 and long.endswith(" more")


def test_messages_that_list_names_stay_brief(tmp_path):
    """A file of 6,000 networks, a network or block of 3,000 parameters, a -D value of 100 KB: every message
    and hint that names them stays a few hundred characters."""
    nets = "".join(f"network N{i}:\n    relu\n" for i in range(6000))
    params = ", ".join(f"p{i}=1" for i in range(3000))
    cases = [
        (lambda: cnndsl.check(nets), "choose one"),
        (lambda: cnndsl.check(nets, network="Nope"), "no network"),
        (lambda: cnndsl.check(f"network N({params}):\n    input 3x4x4\n    relu\n", params={"q": 1}), "no parameter"),
        (lambda: cnndsl.check(f"block B({params}):\n    relu\n\nnetwork N:\n    input 3x4x4\n    B(q=1)\n"), "no parameter"),
        (lambda: cnndsl.check(f"block B({params}):\n    relu\n\nnetwork N:\n    input 3x4x4\n    B({', '.join(['1'] * 3001)})\n"),
         "too many"),
    ]
    for run, expected in cases:
        with pytest.raises(cnndsl.CnnDslError) as info:
            run()
        d = info.value.diagnostics[0]
        assert expected in d.message and len(d.message) + len(d.hint or "") < 600, (d.message[:300], (d.hint or "")[:300])
    path = tmp_path / "n.cnn"
    path.write_text("network N(c=1):\n    input 3x4x4\n    conv c k1\n")
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(path), "-D", "c=" + "z" * 100_000],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "takes a number" in proc.stderr and len(proc.stderr) < 500, proc.stderr[:500]


def _chain(depth: int, params: list[str], args: list[str], body: str) -> str:
    """Blocks B0..B{depth}, each calling the one below with `args` over its parameters, over the network's."""
    sig = ", ".join(params)
    lines = [f"block B0({sig}):", body]
    for i in range(1, depth + 1):
        lines += [f"block B{i}({sig}):", f"    B{i - 1}({', '.join(args)})"]
    net_params = ", ".join(f"p{i}=0" for i in range(len(params)))
    lines += [f"network N({net_params}):", "    input 4x8x8", f"    conv 4 k1 | B{depth}({', '.join(f'p{i}' for i in range(len(params)))})"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("depth, params, args, repeat", [
    (6, ["a", "b"], ["(a+b)*(a+b+1)", "(a+1)*(b+1)"], ""),  # degree 64 in the network's parameters: 20 s
    (4, list("abcdefgh"), ["(a+b)*(c+d)", "(b+c)*(d+e)", "(c+d)*(e+f)", "(d+e)*(f+g)", "(e+f)*(g+h)", "(f+g)*(h+a)",
                           "(g+h)*(a+b)", "(h+a)*(b+c)"], ""),  # over 240 s and growing
    (5, list("abcdefgh"), [f"({x}+{y})//({z}+1)//({w}+1)" for x, y, z, w in zip("abcdefgh", "bcdefgha", "cdefghab", "defghabc")],
     " x30"),  # refused by the work limit after 39 s and 2.3 GB
], ids=["squares", "products", "floor-divisions"])
def test_arithmetic_passed_down_block_calls_is_bounded(depth, params, args, repeat):
    """A block argument is expanded into the network's parameters (for the parameters each size depends on):
    the expansion is bounded (past it the expression is opaque: it knows its parameters, and equals only
    itself), and expression arithmetic counts against the work limit."""
    body = "    add if " + " + ".join(params) + " >= 0:\n        identity\n        identity"
    text = _chain(depth, params, args, body).replace(")\nblock", f"){repeat}\nblock")
    message, took, peak = _measured(text)
    assert took < 20 and peak < 1 << 30, (message, took, peak)  # 6 s on a quiet 2-core machine, as the others here
    assert message == "ok" or "CNNDSL_MAX_WORK" in message, message
