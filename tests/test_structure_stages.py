"""Taps from inside named groups, every op as a stage of a group, and merges nested in merges: torch as the oracle."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.ops.misc import Permute

import cnndsl
from conftest import EXAMPLES

pytestmark = pytest.mark.usefixtures("one_thread")


# -- taps: values named on the lines of a named group ---------------------------------------------------------


class Scale(nn.Module):
    """layerscale as a stage: its parameter named as torchvision's CNBlock names it."""

    def __init__(self, c: int, init: float):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((c, 1, 1), init))

    def forward(self, x):
        return x * self.layer_scale


class Crop(nn.Module):
    """The documented centre crop: where a margin is odd, the extra element is cut at the end."""

    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x):
        top, left = (x.shape[2] - self.h) // 2, (x.shape[3] - self.w) // 2
        return x[:, :, top:top + self.h, left:left + self.w]


@st.composite
def tapped_groups(draw):
    """A named group of stages (each one line: convs, norms, activations, the channels-last layer norm as
    permute | ln | permute, layerscale, a crop), some of them taps; the group's last line is a tap too."""
    c = c_in = draw(st.integers(1, 4))
    h = w = 12
    lines, modules = [], []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["conv", "bn", "relu", "ln", "layerscale", "crop"]))
        if kind == "conv":
            out = draw(st.integers(1, 5))
            lines.append([f"conv {out} k3 p1"]), modules.append([nn.Conv2d(c, out, 3, padding=1)])
            c = out
        elif kind == "bn":
            lines.append(["bn"]), modules.append([nn.BatchNorm2d(c)])
        elif kind == "relu":
            lines.append(["relu"]), modules.append([nn.ReLU()])
        elif kind == "ln":
            lines.append(["permute 0 2 3 1", "ln eps=1e-6", "permute 0 3 1 2"])
            modules.append([Permute([0, 2, 3, 1]), nn.LayerNorm(c, eps=1e-6), Permute([0, 3, 1, 2])])
        elif kind == "layerscale":
            init = draw(st.sampled_from([0.5, 1e-6, 2.0]))
            lines.append([f"layerscale init={init}"]), modules.append([Scale(c, init)])
        elif h > 2 and w > 2:
            h, w = draw(st.integers(2, h)), draw(st.integers(2, w))
            lines.append([f"crop {h}x{w}"]), modules.append([Crop(h, w)])
    flat = [line for group in lines for line in group]
    if not flat:
        flat, modules = ["relu"], [[nn.ReLU()]]
    taps = sorted(set(draw(st.lists(st.integers(0, len(flat) - 1), max_size=3))) | {len(flat) - 1})
    return flat, [m for group in modules for m in group], taps, c_in


def _tapped_source(flat, taps, c_in, tapped=True) -> str:
    body = "\n".join(f"        {f't{i} = ' if tapped and i in taps else ''}{line}" for i, line in enumerate(flat))
    output = ", ".join(f"t{i}" for i in taps) if tapped else "last"
    last = "" if tapped else "    last = relu\n"
    return f"network Tapped:\n    input {c_in}x12x12\n    body:\n{body}\n{last}    output {output}\n"


@settings(max_examples=25, deadline=None, derandomize=True)
@given(tapped_groups())
def test_taps_inside_a_named_group_equal_running_the_stages_one_by_one(case):
    flat, modules, taps, c_in = case
    ours = cnndsl.load(_tapped_source(flat, taps, c_in)).eval()
    theirs = nn.Module()
    theirs.body = nn.Sequential(*modules)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ours.state_dict().items()}
    state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
    ours.load_state_dict(state, strict=True)
    theirs.load_state_dict(state, strict=True)
    theirs.eval()
    x = torch.randn(2, c_in, 12, 12)
    expected, y = [], x
    for i, m in enumerate(theirs.body):
        y = m(y)
        if i in taps:
            expected.append(y)
    with torch.no_grad():
        got = ours(x)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    # without taps the group is called whole, and computes the same last value
    plain = cnndsl.load(_tapped_source(flat, taps, c_in, tapped=False)).eval()
    plain.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), torch.relu(expected[-1]))


def test_a_tapped_group_is_called_stage_by_stage_and_scripts():
    src = """network Backbone:
    input 3x32x32
    body:
        conv 8 k3 s2 p1 | bn
        c1 = relu
        (conv 16 k3 s2 p1 | bn | relu)
        c2 = conv 16 k1
        maxpool 2 as "pool-1"
    head = gap
    output c1, c2, head
"""
    code = cnndsl.compile(src)
    assert "        c1 = x\n" in code and "x = self.body[3](x)  # (N, 16, 8, 8)" in code
    assert 'x = getattr(self.body, "pool-1")(x)  # (N, 16, 4, 4)' in code
    model = cnndsl.load(src).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        c1, c2, head = model(x)
        scripted = torch.jit.script(model)(x)
    assert c1.shape == (2, 8, 16, 16) and c2.shape == (2, 16, 8, 8) and head.shape == (2, 16, 1, 1)
    for a, b in zip((c1, c2, head), scripted):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(c2, model.body[4](model.body[3](c1)))


# -- every op a stage: ConvNeXt's blocks, weight for weight ---------------------------------------------------


def test_convnext_equals_torchvision_weight_for_weight():
    import torchvision

    ref = torchvision.models.convnext_tiny(weights=None).eval()
    ours = cnndsl.load(EXAMPLES / "convnext.cnn", input="3x64x64").eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert [b.stochastic_depth.p for b in ours.features[5]] == pytest.approx([b.stochastic_depth.p for b in ref.features[5]])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))
    small = cnndsl.check(EXAMPLES / "convnext.cnn", depths=(3, 3, 27, 3), stochastic_depth_prob=0.4)
    shapes = {layer.name: layer.params for layer in small.layers}
    assert len([n for n in shapes if re.fullmatch(r"features\.5\.\d+\.block\.0", n)]) == 27


# -- merges nested in merges ----------------------------------------------------------------------------------


@st.composite
def merge_trees(draw, c_in: int, c_out: int | None, depth: int, root: bool = False):
    """(lines, channels out, a torch function of (input, convs)): a branch that is a line or a merge whose
    branches are again lines or merges; add and mul keep one channel count, cat sums its branches'."""
    if not root and (depth == 0 or draw(st.booleans())):
        c = c_out if c_out is not None else draw(st.integers(1, 4))
        if c == c_in and draw(st.booleans()):
            return ["identity"], c, lambda x, convs: x
        return [f"conv {c} k1"], c, lambda x, convs: next(convs)(x)
    kind = draw(st.sampled_from(["add", "mul", "cat"]))
    n = draw(st.integers(2, 3))
    if kind == "cat" and c_out is not None and c_out < n:
        kind = "add"
    if kind == "cat" and c_out is not None:
        cuts = sorted(draw(st.lists(st.integers(1, c_out - 1), min_size=n - 1, max_size=n - 1, unique=True)))
        wants = [b - a for a, b in zip([0, *cuts], [*cuts, c_out])]
    else:
        c = c_out if c_out is not None else draw(st.integers(1, 4))
        wants = [None if kind == "cat" else c] * n
    kids = [draw(merge_trees(c_in, want, depth - 1)) for want in wants]
    lines = [f"{kind}:"] + ["    " + line for kid in kids for line in kid[0]]
    combine = {"add": lambda ys: sum(ys[1:], ys[0]), "mul": lambda ys: torch.stack(ys).prod(0),
               "cat": lambda ys: torch.cat(ys, dim=1)}[kind]
    return lines, sum(k[1] for k in kids) if kind == "cat" else kids[0][1], \
        lambda x, convs: combine([k[2](x, convs) for k in kids])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 4).flatmap(lambda c: st.tuples(st.just(c), merge_trees(c, None, 3, root=True))))
def test_nested_merges_equal_torch(case):
    c_in, (lines, c_out, fn) = case
    body = "\n".join("    " + line for line in lines)
    ours = cnndsl.load(f"network Nested:\n    input {c_in}x5x5\n{body}\n").eval()
    convs = [m for m in ours.modules() if isinstance(m, nn.Conv2d)]
    assert [f"conv{i + 1}.weight" for i in range(len(convs))] == [k for k in ours.state_dict() if k.endswith("weight")]
    x = torch.randn(2, c_in, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), fn(x, iter(convs)))


# -- diagnostics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lines, message", [
    (["body:", "    c1 = conv 8 k1", "    c1 | relu"],
     "the stages of a named group run one after another, so a line in it cannot start again from `c1`"),
    (["e = relu", "body:", "    upsample like=e"],
     "`upsample` reads the value `e`, so it cannot be a stage of a named group, whose stages take one tensor"),
    (["body:", "    c1 = conv 8 k1", "c1 = relu"], "the value `c1` is already defined"),
    (["e = relu", "body:", "    e = conv 8 k1"], "the value `e` is already defined"),
    (["add:", "    identity", "    body: relu"], "the body of `add:` holds branches, one pipeline or merge per line"),
    (["cat:", "    identity", "    add:", "        conv 4 k1", "        conv 3 k1"],
     "`add` needs branches of the same shape, but branch 1 gives (N, 4, 8, 8) and branch 2 gives (N, 3, 8, 8)"),
])
def test_mistakes_in_the_new_forms_are_located(lines, message):
    src = "network N:\n    input 3x8x8\n" + "".join(f"    {line}\n" for line in lines)
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check(src)
    d = info.value.diagnostics[0]
    assert d.message.startswith(message), d.message
