"""Expressions (cnndsl/ir/values.py): channel expressions are simplified to a canonical form (constants folded, like
terms collected), printed with the parentheses Python's precedence needs, bounded in size, and numbers that
are not finite print as Python; so the generated code of a chain of blocks stays small and black-stable."""

from __future__ import annotations

import math

import black
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl import limits
from cnndsl.backend.pytorch.pyexpr import val_code
from cnndsl.ir.values import Val
from cnndsl.semantics.resolve import LocatedError, evaluate
from cnndsl.syntax import ast

NAMES = ("a", "b", "c")

# -- the printed code computes what the value computes ------------------------------------------------

numbers = st.recursive(
    st.one_of(st.sampled_from(NAMES), st.integers(-6, 12), st.sampled_from([0.5, -1.5, 2.0, 1e-3, 3.25, 1e999])),
    lambda children: st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "//", "/"]), children, children),
        st.tuples(st.just("neg"), children),
    ),
    max_leaves=12,
)
conditions = st.recursive(
    st.tuples(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), numbers, numbers),
    lambda children: st.one_of(
        st.tuples(st.just("not"), children),
        st.tuples(st.sampled_from(["and", "or"]), st.one_of(children, numbers), st.one_of(children, numbers)),
    ),
    max_leaves=4,
)


def _ast(tree):
    """The tree as the parser would give it."""
    if isinstance(tree, str):
        return ast.Name(id=tree)
    if not isinstance(tree, tuple):
        return ast.Num(value=tree) if tree >= 0 else ast.Neg(operand=ast.Num(value=-tree))
    if tree[0] == "neg":
        return ast.Neg(operand=_ast(tree[1]))
    if tree[0] == "not":
        return ast.Not(operand=_ast(tree[1]))
    op, left, right = tree
    node = ast.BoolOp if op in ("and", "or") else ast.Compare if op in ("==", "!=", "<", "<=", ">", ">=") else ast.BinOp
    return node(op=op, left=_ast(left), right=_ast(right))


def _build(tree, env):
    """The tree evaluated by the checker (cnndsl.semantics.resolve.evaluate): names are network parameters bound by `env`."""
    return evaluate(_ast(tree), {name: Val(v, name) for name, v in env.items()})


def _same(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return type(x) is type(y) and x == y


def _value_or_error(f):
    try:
        return f()
    except (ZeroDivisionError, OverflowError, LocatedError):
        return "error"


bindings = st.fixed_dictionaries({name: st.integers(-9, 9) for name in NAMES})
CASES = {"symbolic": 0, "pinned": 0}


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.one_of(numbers, conditions), bindings, bindings)
def test_printed_code_computes_the_value_for_every_binding(tree, first, second):
    """The code printed for a value evaluated with one binding computes, with any binding, what the checker
    computes with that binding: the simplification is exact and the parentheses are where Python needs them.
    (Where the code prints a number that the parameters decide, the `and` of two numbers, that number is the
    compiled value and its parameters are pinned.)"""
    val = _value_or_error(lambda: _build(tree, first))
    assume(val != "error")
    code = val_code(val)
    assert _same(eval(code, {"float": float}, dict(first)), val.v), (tree, code)
    if val.lost:  # printed as the number it is: its parameters are pinned
        assert val.lost <= set(NAMES)
        CASES["pinned"] += 1
    else:
        CASES["symbolic"] += 1
        again = _value_or_error(lambda: _build(tree, second).v)
        if again != "error":  # (where the tree divides by zero, `0 * (a // a)` printed as 0 need not)
            printed = _value_or_error(lambda: eval(code, {"float": float}, dict(second)))
            assert _same(printed, again), (tree, code, second, printed, again)
    if len(code) < 70:  # black leaves the expression as it is
        line = f"x = {code}\n"
        assert black.format_str(line, mode=black.Mode()) == line


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["+", "-"]), st.integers(0, 40)), min_size=1, max_size=60))
def test_a_chain_of_sums_stays_one_term_and_a_constant(steps):
    x = Val(8, "c")
    for op, k in steps:
        x = x + k if op == "+" else x - k
    total = sum(k if op == "+" else -k for op, k in steps)
    expected = "c" if total == 0 else f"c + {total}" if total > 0 else f"c - {-total}"
    assert val_code(x) == expected


@pytest.mark.parametrize("build, code", [
    (lambda c: c + 1 - 1, "c"),
    (lambda c: c + 32 + 32 + 32, "c + 96"),
    (lambda c: c * 2 * 2, "c * 4"),
    (lambda c: 2 * c * 2, "c * 4"),
    (lambda c: (c + 1) * 2, "c * 2 + 2"),
    (lambda c: c - c, "0"),
    (lambda c: -c, "-c"),
    (lambda c: 3 - c, "-c + 3"),
    (lambda c: c * -3, "-c * 3"),
    (lambda c: c * 4 // 2, "c * 2"),
    (lambda c: (c * 4 + 6) // 4, "c + 1"),
    (lambda c: c // 2 // 2, "c // 4"),
    (lambda c: (c // 2 + 1) // 2, "(c + 2) // 4"),
    (lambda c: -(c // 2), "-(c // 2)"),
    (lambda c: c // 2 * 3, "(c // 2) * 3"),
    (lambda c: c // -2, "c // (-2)"),
    (lambda c: c / 2, "c / 2"),
    (lambda c: c / 2 * 2, "c / 2 * 2"),
    (lambda c: c * (c + 1), "c * c + c"),
    (lambda c: c * 0.5 - 1, "c * 0.5 - 1"),
    (lambda c: c - (c * 0.5 - 1), "c - (c * 0.5 - 1)"),
    (lambda c: c + 1e999, 'c + float("inf")'),
])
def test_simplified_forms(build, code):
    assert val_code(build(Val(8, "c"))) == code


def test_floats_are_not_reassociated():
    """Float arithmetic is kept as written: (p + 0.1) + 0.2 is not p + 0.3 in floats."""
    p = Val(0.7, "p")
    assert val_code((p + 0.1) + 0.2) == "p + 0.1 + 0.2"
    assert val_code(p + (Val(0.1) + 0.2)) == "p + 0.30000000000000004"  # constants fold as Python computes them


# -- generated files ---------------------------------------------------------------------------------


def _longest(code: str) -> int:
    return max(len(line) for line in code.splitlines())


D1000 = """\
block D():
    conv in+1-1 k1

network N(c=3):
    input 3x8x8
    conv c k1
    D() x1000
"""


def test_a_thousand_calls_of_a_block_give_a_small_file():
    """Before: 5,082,843 bytes with a line of 10,002 characters (`in+1-1` written out once per call)."""
    code = cnndsl.compile(D1000)
    assert len(code.encode()) < 80_000 and _longest(code) <= 100
    assert "self.d1000 = D(c)" in code
    assert "nn.Conv2d(in_channels, in_channels, kernel_size=1)" in code


NESTED = """\
block D():
    conv in*2//2+1-1 k1

block E():
    D() x30

network N(c=3):
    input 3x8x8
    conv c k1
    E() x30
"""


def test_nested_repetitions_stay_small():
    code = cnndsl.compile(NESTED)
    assert len(code.encode()) < 20_000 and _longest(code) <= 100
    assert "self.e30 = E(c)" in code and "self.d30 = D(in_channels)" in code


DENSE = """\
block Layer(g=32):
    cat:
        identity
        bn | relu | conv g k3 p1

block Stage():
    Layer() x6
    conv in//2 k1

network Dense(c=64):
    input 3x32x32
    conv c k3 p1
    Stage() x3
"""


def test_a_dense_chain_prints_sums():
    code = cnndsl.compile(DENSE)
    for k in range(1, 6):
        assert f"self.layer{k + 1} = Layer(in_channels + {32 * k})" in code
    assert "nn.Conv2d(in_channels + 192, in_channels // 2, kernel_size=1)" in code
    assert "self.stage2 = Stage(c // 2)" in code and "self.stage3 = Stage(c // 4)" in code
    assert _longest(code) <= 100
    assert black.format_str(code, mode=black.Mode()) == code


def test_a_dense_chain_of_joins_prints_sums():
    text = "network N(c=8):\n    input 3x16x16\n    x0 = conv c k1\n" + "".join(
        f"    x{i} = x{i - 1} | conv 4 k1 | cat(x{i - 1})\n" for i in range(1, 9)) + "    x8 | conv c k1\n"
    code = cnndsl.compile(text)
    assert "nn.Conv2d(c + 32, c, kernel_size=1)" in code


GROWING = "network N(c=1):\n    input 1x4x4\n    conv " + "*".join(["(c+1)"] * 12) + " k1\n"


def test_an_expression_too_large_is_a_located_diagnostic():
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.compile(GROWING)
    (d,) = info.value.diagnostics
    assert "exceeds the limit of" in d.message and "CNNDSL_MAX_EXPRESSION" in d.message, d.message
    assert d.line == 3 and d.col >= 10
    with limits.override(expression=1000):
        assert "nn.Conv2d" in cnndsl.compile(GROWING)


SQUARING = """\
block Square():
    conv in*in k1

network N(c=1):
    input 1x4x4
    conv c k1
    Square() x12
"""


def test_an_expression_that_grows_through_calls_is_a_located_diagnostic():
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.compile(SQUARING)
    d = info.value.diagnostics[0]
    assert "exceeds the limit of" in d.message, d.message
    assert d.line == 7


def test_expressions_under_the_limit_compile():
    text = "network N(c=1):\n    input 1x4x4\n    conv " + "*".join(["(c+1)"] * 3) + " k1\n"
    code = cnndsl.compile(text)
    assert "nn.Conv2d(1, c * c * c + c * c * 3 + c * 3 + 1, kernel_size=1)" in code
    assert limits.LIMITS["expression"].default >= 50


# -- numbers that are not finite ---------------------------------------------------------------------


INFINITE = """\
block B():
    add if in < 1e999:
        conv in k1
        identity

network N(c=4):
    input 3x8x8
    conv c k1
    add if c < 1e999:
        conv c k1
        identity
    B()
    conv c+1e999//1e999 k1
"""


def test_an_infinite_number_in_a_condition_prints_as_python():
    with pytest.raises(cnndsl.CnnDslError):  # c + nan channels: the last line is an error
        cnndsl.compile(INFINITE)
    code = cnndsl.compile(INFINITE.rsplit("\n    conv c+1e999", 1)[0] + "\n")
    assert 'self.use_res_connect = c < float("inf")' in code and 'self.use_res_connect = in_channels < float("inf")' in code
    assert "< inf" not in code
    namespace: dict = {}
    exec(compile(code, "<generated>", "exec"), namespace)  # loads: no NameError
    import torch

    model = namespace["N"]()
    assert tuple(model(torch.randn(2, 3, 8, 8)).shape) == (2, 4, 8, 8)


# -- functions (min, max, int, round, floor, ceil, sqrt, make_divisible, if) ----------------------------------


def _torchvision_make_divisible(v, divisor, min_value=None):  # torchvision/models/_utils.py, as published
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("width", [0.25, 0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 2.0])
def test_make_divisible_is_torchvisions(width):
    from cnndsl.ir.values import make_divisible

    for c in (3, 8, 16, 24, 32, 64, 96, 160, 320, 1280):
        assert make_divisible(c * width, 8) == _torchvision_make_divisible(c * width, 8)
        assert make_divisible(c * width, 8, 16) == _torchvision_make_divisible(c * width, 8, 16)


def test_functions_simplify_and_evaluate_as_printed():
    from cnndsl.ir.values import FConst, apply_function, call, const, mul, symbol

    c = symbol("c", 16)
    assert call("max", (c, c)) == c  # one distinct argument
    assert call("int", (c,)) == c and call("floor", (c,)) == c  # an integer rounds to itself
    assert call("sqrt", (const(16),)) == FConst(4.0)  # computed where every argument is a constant
    assert call("if", (const(True), c, const(3))) == c
    e = call("make_divisible", (mul(c, FConst(0.75)), const(8)))
    assert e.is_int and e.evaluate({"c": 32}) == 24 and e.evaluate({"c": 37}) == _torchvision_make_divisible(37 * 0.75, 8)
    assert not call("min", (c, FConst(2.5))).is_int and call("min", (c, const(2))).is_int
    for x in (-2.5, -2.0, -0.5, 0.0, 0.5, 1.5, 2.5, 7.2):
        assert call("floor", (FConst(x),)) == const(math.floor(x))
        assert call("ceil", (FConst(x),)) == const(math.ceil(x))
        assert call("round", (FConst(x),)) == const(round(x))
    v = apply_function("min", (Val(16, "c"), Val(8)))
    assert v.v == 8 and v.symbolic  # the code prints min(c, 8): generic in c
    assert apply_function("max", (Val(16), Val(8))).e is None
