"""The generated code names what an expert would name (cnndsl.backend.pytorch.emit.plan): a conditional `add` that adds the
block's input back keeps its condition in `use_res_connect` (torchvision's name), and an expression an
`__init__` prints twice or more is a local, named once (`hidden_dim = in_channels * expand`).

Properties over every example and golden case, a metamorphic check that the names change nothing torch sees
(state_dict keys and shapes, outputs), and the corners where a name is taken already."""

from __future__ import annotations

import ast
from collections import Counter

import pytest
from conftest import EXAMPLES
from test_golden import OK, case_args, run_cli

import cnndsl
from cnndsl.backend.pytorch import codegen
from cnndsl.backend.pytorch.emit import Plan
from cnndsl.backend.pytorch.loader import instantiate
from cnndsl.ir.network import MergeStep

torch = pytest.importorskip("torch")

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.cnn"))
CASES = [*EXAMPLE_FILES, *OK]
IDS = [f"{p.parent.name}/{p.stem}" for p in CASES]


def generated(path) -> str:
    code, out, err = run_cli(path, "-o", "-")
    assert code == 0, err
    return out


def unnamed(path, monkeypatch) -> str:
    """The code as it was before the names: no expression named (a plan of the flags alone; the checker no
    longer names flags, so the backend always does)."""
    real = codegen.plan

    def flags_only(*args):
        p = real(*args)
        return Plan(flags=p.flags, ns=p.ns)

    with monkeypatch.context() as m:
        m.setattr(codegen, "plan", flags_only)
        return generated(path)


def inits(code: str):
    """(class name, its __init__) for every class of a generated module."""
    for node in ast.parse(code).body:
        if isinstance(node, ast.ClassDef):
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
                    yield node.name, fn


def compound(node) -> bool:
    """An expression that is neither a bare name nor a constant (nor a negated one)."""
    if isinstance(node, ast.UnaryOp):
        return not isinstance(node.operand, (ast.Constant, ast.Name))
    return isinstance(node, (ast.BinOp, ast.BoolOp, ast.Compare))


def repeated(fn) -> dict[str, int]:
    counts = Counter(ast.unparse(n) for n in ast.walk(fn) if compound(n))
    return {text: n for text, n in counts.items() if n > 1}


def conditional_adds(net) -> tuple[int, int]:
    """(residual, other) conditional adds in the network and its block instances."""
    counts = [0, 0]

    def walk(steps):
        for step in steps:
            if isinstance(step, MergeStep):
                if step.condition is not None and step.merge == "add":
                    residual = any(b.identity and b.condition is None for b in step.branches)
                    counts[0 if residual else 1] += 1
                for branch in step.branches:
                    walk(branch.steps)

    walk(net.steps)
    for inst in net.instances:
        walk(inst.steps)
    return counts[0], counts[1]


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_no_compound_expression_is_printed_twice_in_an_init(path):
    for cls, fn in inits(generated(path)):
        assert not repeated(fn), f"{cls}.__init__ repeats {repeated(fn)}"


@pytest.mark.parametrize("path", [p for p in CASES if not case_args(p)], ids=lambda p: p.stem)
def test_identity_residuals_are_use_res_connect(path):
    code = generated(path)
    residual, other = conditional_adds(cnndsl.check(path))
    assert ("self.use_res_connect = " in code) == (residual > 0)
    assert ("self.use_add" in code) == (other > 0)
    assert "use_add1" not in code and "use_mul1" not in code and "use_cat1" not in code


def test_the_repeated_examples_name_their_widths():
    code = generated(EXAMPLES / "mobilenet_v2.cnn")
    assert "        hidden_dim = in_channels * expand\n        self.use_res_connect = stride == 1 and in_channels == out\n" in code
    assert code.count("in_channels * expand") == 1
    assert "        if self.use_res_connect:\n            x = out + x\n" in code


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_names_change_nothing_torch_sees(path, monkeypatch, one_thread):
    """Metamorphic: the module with the names and without (an empty plan) have the same state_dict keys and
    shapes, and with the same weights compute the same outputs (goldens; the examples' keys only)."""
    before, after = unnamed(path, monkeypatch), generated(path)
    assert before != after or "hidden_dim" not in after
    cls = [name for name, _ in inits(after)][-1]
    try:
        m0, m1 = instantiate(before, cls, "cpu").eval(), instantiate(after, cls, "cpu").eval()
    except ImportError as e:  # torchvision.ops where it is missing
        pytest.skip(str(e))
    s0, s1 = m0.state_dict(), m1.state_dict()
    assert list(s0) == list(s1)
    lazy = any(isinstance(v, torch.nn.parameter.UninitializedParameter) for v in s1.values())
    if not lazy:
        assert [tuple(v.shape) for v in s0.values()] == [tuple(v.shape) for v in s1.values()]
    if path in EXAMPLE_FILES or lazy:
        return
    m1.load_state_dict(s0)
    shape = next(line for line in after.splitlines() if "x = torch.randn(2, " in line)
    dims = [int(d) for d in shape.split("torch.randn(2, ")[1].split(", device")[0].split(", ")]
    x = torch.randn(2, *dims)
    with torch.no_grad():
        y0, y1 = m0(x), m1(x)
    for a, b in zip(y0 if isinstance(y0, tuple) else (y0,), y1 if isinstance(y1, tuple) else (y1,)):
        assert torch.equal(a, b)


def build(source: str):
    code = cnndsl.compile(source)
    cls = [name for name, _ in inits(code)][-1]
    return instantiate(code, cls, "cpu").eval(), code


def test_a_second_residual_gets_the_next_name_and_a_users_layer_keeps_its_own():
    m, code = build("""
block Twice(res=true):
    add if res:
        conv in k3 p1 as use_res_connect
        identity
    add if res:
        identity
        conv in k1
    add if res:
        conv in k1
        conv in k1

network N:
    input 8x8x8
    Twice() | Twice(res=false)
""")
    assert "self.use_res_connect_2 = res" in code and "self.use_res_connect_3 = res" in code
    assert "self.use_add = res" in code
    b = m.twice1
    assert isinstance(b.use_res_connect, torch.nn.Conv2d) and b.use_res_connect_2 is True and b.use_res_connect_3 is True
    assert m.twice2.use_res_connect_2 is False
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        h = b.use_res_connect(x) + x
        h = h + b.conv1(h)
        assert torch.allclose(b(x), b.conv2(h) + b.conv3(h), atol=1e-5)


def test_a_named_expression_never_takes_a_parameters_or_a_classs_name():
    m, code = build("""
block hidden_dim(out):
    conv out k1

block B(out, hidden_dim=2, value=1):
    conv in*hidden_dim k1 | bn | conv out*value k1
    hidden_dim(in*hidden_dim) | bn
    conv out*value k1

network N:
    input 4x8x8
    B(6) | B(6, hidden_dim=3)
""")
    init = dict(inits(code))["B"]
    text = ast.unparse(init)
    # the parameter `hidden_dim`, the module's class `hidden_dim` (renamed `hidden_dim_2` beside the parameter)
    # and the attribute `hidden_dim1` (the call's automatic name) are all taken: the two widths are numbered on
    assert "hidden_dim2 = in_channels * hidden_dim\n    hidden_dim3 = out * value\n" in text
    assert "self.hidden_dim1 = hidden_dim_2(hidden_dim3, hidden_dim2)" in text
    assert not repeated(init)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert m(x).shape == (2, 6, 8, 8)


def test_an_expression_only_in_a_conditional_branch_is_not_computed_unconditionally():
    # c // g where g == 0 leaves the branch off: naming it first would divide by zero in __init__
    m, code = build("""
block B(g=1):
    add:
        identity
        conv in//g k1 | bn | conv in k1 if g > 0

network N:
    input 4x8x8
    B() | B(g=0) | B(g=2)
""")
    assert "hidden_dim" not in code
    assert m.b2.conv1 is None


def test_several_widths_are_numbered_in_order_of_first_use():
    _, code = build("""
network N(c=4):
    input 3x8x8
    conv c*2 k1 | bn | conv c*4 k1 | bn | conv c*2 k1 | bn
""")
    assert "hidden_dim1 = c * 2\n" in code and "hidden_dim2 = c * 4\n" in code
    assert code.index("hidden_dim1 = ") < code.index("hidden_dim2 = ") < code.index("self.conv1 = ")


def test_a_keyword_names_what_it_always_is():
    _, code = build("""
block B(k=3):
    conv in k=k p=k//2 | conv in k=k p=k//2

network N:
    input 3x8x8
    B() | B(k=5)
""")
    assert "padding = k // 2\n" in code and "padding=padding" in code
