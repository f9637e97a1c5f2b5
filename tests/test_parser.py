"""The front end: what the grammar accepts, the tree it builds, and where syntax errors point."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl.syntax import ast


def layers(text: str):
    net = cnndsl.parse(text).networks[0]
    return [stage for stmt in net.body if isinstance(stmt, ast.Line) for stage in stmt.pipeline.stages]


def syntax_error(text: str):
    with pytest.raises(cnndsl.ParseError) as e:
        cnndsl.parse(text)
    assert len(e.value.diagnostics) == 1
    return e.value.diagnostics[0]


def test_one_liner_is_a_network_named_after_the_file(tmp_cnn):
    path = tmp_cnn("conv 3->16 k3 s2 p1 | relu | maxpool 2 | flatten | linear 10\n", name="my-first_net.cnn")
    file = cnndsl.parse(path)
    assert [n.name for n in file.networks] == ["MyFirstNet"]
    assert file.networks[0].implicit
    assert [s.op for s in layers(path.read_text())] == ["conv", "relu", "maxpool", "flatten", "linear"]


def test_trailing_pipe_continues_and_comments_are_ignored():
    text = "network N:  # a comment\n    input 3x8x8\n    conv 8 k3 |   # continues\n\n        relu\n    # a whole-line comment\n    bn\n"
    assert [s.op for s in layers(text)] == ["conv", "relu", "bn"]


def test_arguments_keep_their_forms_and_positions():
    (conv,) = layers("conv 3->16 k3x5 s=stride padding=(1, 2) nobias as stem\n")
    assert conv.name == "stem"
    chans, k, s, p, flag = conv.args
    assert isinstance(chans, ast.Channels) and (chans.in_.value, chans.out.value) == (3, 16)
    assert isinstance(k.value, ast.Name) and k.value.id == "k3x5"
    assert s.key == "s" and s.value.id == "stride"
    assert isinstance(p.value, ast.Tuple) and [i.value for i in p.value.items] == [1, 2]
    assert (flag.span.line, flag.span.col) == (1, 41)


def test_dims_literal_and_expressions():
    (layer,) = layers("adaptiveavgpool 7x7 | linear c*4 + 1\n")[:1]
    assert [i.value for i in layer.args[0].value.items] == [7, 7]
    lin = layers("linear c*4 + 1\n")[0]
    expr = lin.args[0].value
    assert isinstance(expr, ast.BinOp) and expr.op == "+"


def test_positional_minus_is_binary_and_negatives_need_parentheses():
    (layer,) = layers("linear c - 1\n")
    assert len(layer.args) == 1 and layer.args[0].value.op == "-"
    (layer,) = layers("permute 0 (2) (3) 1\n")
    assert len(layer.args) == 4


def test_a_name_directly_followed_by_a_parenthesis_is_a_call():
    stages = layers("conv 16 k3 | BasicBlock(64, stride=2) x2\n")
    assert isinstance(stages[1], ast.Call) and stages[1].callee == "BasicBlock"
    (conv,) = layers("conv 16 (3, 5)\n")
    assert isinstance(conv.args[1].value, ast.Tuple)


def test_windows_line_endings_tabs_bom_and_unicode_comments():
    text = "\ufeffnetwork N:\r\n\tinput 3x8x8  # entrée, 输入\r\n\tconv 8 k3 | relu\r\n"
    assert [s.op for s in layers(text)] == ["conv", "relu"]


def test_composition_parses_whole():
    text = """block Basic(planes, stride=1):
    add:
        conv planes k3 s=stride p1 | bn
        (conv planes k1 s=stride | bn) as downsample  if stride != 1 or in != planes
    relu

network R:
    input 3x32x32
    layer1: Basic(64) x2
    e1 = conv 8 k3 p1
    d = e1 | maxpool 2 as pool | unpool pool | cat(e1)
    output d
"""
    file = cnndsl.parse(text)
    assert [b.name for b in file.blocks] == ["Basic"] and [n.name for n in file.networks] == ["R"]


@pytest.mark.parametrize(
    "text, line, col, words",
    [
        ("conv 3->16 k3 ) relu\n", 1, 15, "a `)` that no `(` opened"),
        ("conv 3->16 k3 | | relu\n", 1, 17, "expected a layer"),
        ("network N:\ninput 3x8x8\n", 2, 1, "expected an indented block"),
        ("network N:\n    conv 8 k3\n      relu\n", 3, 7, "unexpected indentation"),
        ("network N:\n        conv 8 k3\n    relu\n", 3, 5, "matches no enclosing block"),
        ("conv 8 k3 @ relu\n", 1, 11, "unexpected character '@'"),
        ("linear (3, \n", 1, 12, "expected `)` to close the `(` at line 1, column 8"),
        ("network N(a=1:\n    relu\n", 1, 14, "found `:`"),
    ],
)
def test_syntax_errors_point_at_the_culprit(text, line, col, words):
    d = syntax_error(text)
    assert (d.line, d.col) == (line, col), d.render()
    assert words in d.message
    assert d.render().startswith(f"<string>:{line}:{col}: error: ")


# -- the parse of a valid file without Lark, against Lark's own ----------------------------------------------


def _both_parses(text: str):
    """(the fast parse's root, or "fallback"; Lark's root, or its exception's class name), each with the
    mistake the callbacks recorded, for `text` as parse_tree prepares it."""
    from cnndsl.syntax import parser as p

    tables = p._tables()
    assert tables is not None
    state = p._ParseState(10**30)
    reset = p._parse_state.set(state)
    try:
        try:
            root = p._fast_parse(text, tables)
            fast = (repr(root.items), root._h, state.error and state.error.message)
        except p._Fallback:
            fast = "fallback"
        state.error = None
        try:
            root = p._lark_parse(text)
            slow = (repr(root.items), root._h, state.error and state.error.message)
        except Exception as e:  # noqa: BLE001 - Lark's failures, by name
            slow = type(e).__name__
    finally:
        p._parse_state.reset(reset)
    return fast, slow


def _sources() -> list[str]:
    from conftest import EXAMPLES, ROOT

    paths = sorted(EXAMPLES.glob("*.cnn")) + sorted((ROOT / "tests" / "golden").rglob("*.cnn"))
    texts = [path.read_bytes().decode("utf-8", "replace") for path in paths]
    return [t.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n" for t in texts]


def test_the_fast_parse_equals_larks_on_every_example():
    """Every example and golden file: the same tree (spans and heights included) as Lark's parse with the same
    callbacks, or, where Lark fails, a fallback to Lark (whose errors are the diagnostics)."""
    for text in _sources():
        fast, slow = _both_parses(text)
        if isinstance(slow, str):
            assert fast == "fallback", text
        else:
            assert fast == slow, text


def test_the_fast_parse_equals_larks_on_mutated_sources():
    """Random edits of the examples (tokens inserted, text deleted or repeated): never a different tree, and
    a fallback only where Lark fails too (an input that is only a line continuation aside)."""
    import random

    rnd = random.Random(11)
    texts = _sources()
    pieces = [" ", "\n", "\n    ", "\n        ", "|", "|\n", "(", ")", ",", ":", "=", "->", "in", "if", "as", "input",
              "init", "output", "network", "block", "import", "and", "or", "not", "x", "3x3", "1.5", "1e3", "-", "+",
              "*", "//", "==", "<", '"s"', "# c\n", "\\\n", "\t", "conv", "add:", "cat(", "f(", "N", "12"]
    fallbacks = 0
    for _ in range(600):
        text = rnd.choice(texts)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(text) + 1)
            kind = rnd.random()
            if kind < 0.4:
                text = text[:i] + rnd.choice(pieces) + text[i:]
            elif kind < 0.7:
                text = text[:i] + text[i + rnd.randint(1, 6):]
            else:
                j = rnd.randrange(len(text) + 1)
                text = text[:i] + text[j:j + rnd.randint(1, 20)] + text[i:]
        text = text if text.endswith("\n") else text + "\n"
        fast, slow = _both_parses(text)
        if fast == "fallback":
            fallbacks += 1
            assert isinstance(slow, str) or not text.strip("\\\n"), text
        else:
            assert fast == slow, text
    assert 0 < fallbacks < 600


def test_a_valid_file_parses_without_importing_lark(tmp_path):
    """Once the tables are cached, a valid file is parsed without Lark (its import and its parser cost more
    than the parse); the first process builds Lark's parser to make them."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys, cnndsl; cnndsl.parse('examples/resnet50.cnn'); cnndsl.parse('conv 3->8 k3 | relu'); "
            "print('lark' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                           check=True) for _ in range(2)]
    assert [done.stdout.split() for done in runs] == [["True"], ["False"]]
