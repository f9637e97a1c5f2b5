"""Properties of the family forms over random programs, with torch as the oracle.

A hypothesis strategy draws a family: parameters of every kind (a repetition count, possibly 0; a true/false
that decides optional lines; a word that chooses the activation; a float width rounded with
`make_divisible`; a tuple kernel), a block with an optional line and a per-copy stride from the repetition
index, a named group holding a repeated splice and an optional stage, and per-op `defaults`. For each drawn
program and parameter values:

- differential: the same network built directly from torch.nn (never from cnndsl's output), layer by layer,
  has the state_dict shapes of the generated module in order and, with its tensors copied in, the same
  outputs in eval mode;
- metamorphic: the program with every family form written out by hand (copies written one by one, absent
  optional lines left out, `defaults` written on each layer, parameters replaced by their values) gives the
  same tensors and outputs;
- a named group numbers only the stages present (its keys are 0, 1, ... without a gap);
- the generated class accepts the values it was compiled with and refuses, at construction and naming the
  parameter, another repetition count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnndsl
from cnndsl.ir.values import make_divisible

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore")]

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish, "tanh": nn.Tanh}
HW = 12


@dataclass
class Family:
    """One drawn program: its parameter values, the family text, the same network written out, and torch."""

    params: dict
    defaults_bn: tuple[float, float] | None
    nobias: bool
    block_lines: list[str] = field(default_factory=list)
    family: list[str] = field(default_factory=list)
    flat: list[str] = field(default_factory=list)
    torch_layers: list[nn.Module] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)  # named group -> stages present
    c: int = 3
    hw: int = HW

    def header(self, flat: bool) -> str:
        if flat:
            return "network Net:"
        p = self.params
        return (f"network Net(n={p['n']}, m={p['m']}, use_bn={str(p['use_bn']).lower()}, act={p['act']}, "
                f"w={p['w']}, k=({p['k'][0]}, {p['k'][1]})):")

    def source(self, flat: bool) -> str:
        lines = [] if flat else [*self.block_lines, ""]
        lines += [self.header(flat), f"    input 3x{HW}x{HW}"]
        if not flat:
            if self.defaults_bn:
                lines.append(f"    defaults bn eps={self.defaults_bn[0]} momentum={self.defaults_bn[1]}")
            if self.nobias:
                lines.append("    defaults conv nobias")
        lines += ["    " + line for line in (self.flat if flat else self.family)]
        return "\n".join(lines) + "\n"

    # -- the layers, as text written out and as torch modules --

    def bn_opts(self) -> str:
        return f" eps={self.defaults_bn[0]} momentum={self.defaults_bn[1]}" if self.defaults_bn else ""

    def bn(self) -> tuple[str, nn.Module]:
        eps, momentum = self.defaults_bn or (1e-5, 0.1)
        return "bn" + self.bn_opts(), nn.BatchNorm2d(self.c, eps=eps, momentum=momentum)

    def conv(self, out: int, k: tuple[int, int], stride: int, bias: bool) -> tuple[str, nn.Module]:
        pad = (k[0] // 2, k[1] // 2)
        layer = nn.Conv2d(self.c, out, k, stride=stride, padding=pad, bias=bias)
        text = f"conv {out} k={k[0]}x{k[1]} s{stride} p={pad[0]}x{pad[1]}" + ("" if bias else " nobias")
        self.c, self.hw = out, (self.hw + 2 * pad[0] - k[0]) // stride + 1
        return text, layer

    def act(self) -> tuple[str, nn.Module]:
        return self.params["act"], ACTS[self.params["act"]]()


def stem(f: Family) -> None:
    p = f.params
    out = make_divisible(16 * p["w"], 8)
    f.family += ["conv make_divisible(16*w, 8) k=k p=(k[0]//2, k[1]//2)", "bn if use_bn", "act"]
    text, layer = f.conv(out, p["k"], 1, not f.nobias)
    f.flat.append(text)
    f.torch_layers.append(layer)
    if p["use_bn"]:
        text, layer = f.bn()
        f.flat.append(text)
        f.torch_layers.append(layer)
    text, layer = f.act()
    f.flat.append(text)
    f.torch_layers.append(layer)


def repeated_block(f: Family, name: str, out: int) -> None:
    """A named stage of `n` copies of block B, the first with stride 2, each with an optional bn."""
    p = f.params
    f.family.append(f"{name}: B({out}, stride=(2 if i == 0 else 1), act=act, norm_on=use_bn) x(n, i)")
    if p["n"] == 0:
        return
    copies = []
    for i in range(p["n"]):
        conv_text, conv = f.conv(out, (3, 3), 2 if i == 0 else 1, False)  # k3 p1: every size stays >= 1
        parts, layers = [conv_text], [conv]
        if p["use_bn"]:
            text, layer = f.bn()
            parts.append(text)
            layers.append(layer)
        text, layer = f.act()
        parts.append(text)
        layers.append(layer)
        copies.append("(" + " | ".join(parts) + ")")
        f.torch_layers += layers
    f.flat.append(f"{name}: " + " | ".join(copies))
    f.groups[name] = p["n"]


def spliced_group(f: Family, name: str, out: int) -> None:
    """A named group: `m` copies of conv and act spliced flat, then an optional bn."""
    p = f.params
    f.family += [f"{name}:", f"    *(conv {out} k3 p1 | act) x(m)", "    bn if use_bn"]
    stages = []
    for _ in range(p["m"]):
        text, layer = f.conv(out, (3, 3), 1, not f.nobias)
        stages.append(text)
        f.torch_layers.append(layer)
        text, layer = f.act()
        stages.append(text)
        f.torch_layers.append(layer)
    if p["use_bn"]:
        text, layer = f.bn()
        stages.append(text)
        f.torch_layers.append(layer)
    if stages:
        f.flat += [f"{name}:"] + ["    " + s for s in stages]
        f.groups[name] = len(stages)


BLOCK = [
    "block B(out, stride=1, act=relu, norm_on=true):",
    "    conv out k3 s=stride p1 nobias",
    "    bn if norm_on",
    "    act",
]


@st.composite
def families(draw) -> Family:
    params = {
        "n": draw(st.integers(0, 3)),
        "m": draw(st.integers(0, 2)),
        "use_bn": draw(st.booleans()),
        "act": draw(st.sampled_from(sorted(ACTS))),
        "w": draw(st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.4])),
        "k": draw(st.sampled_from([(1, 3), (3, 1), (3, 3), (1, 1)])),
    }
    defaults_bn = draw(st.sampled_from([None, (0.001, 0.01), (0.0001, 0.3)]))
    f = Family(params, defaults_bn, nobias=draw(st.booleans()), block_lines=BLOCK)
    stem(f)
    order = draw(st.permutations(["block", "group", "block2"]))
    for i, kind in enumerate(order):
        out = draw(st.sampled_from([4, 8, 12]))
        if kind == "group":
            spliced_group(f, f"g{i}", out)
        else:
            repeated_block(f, f"s{i}", out)
    f.family += ["gap | flatten | linear 5"]
    f.flat += ["gap | flatten | linear 5"]
    f.torch_layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(f.c, 5)]
    return f


def tensors(model: nn.Module) -> list[torch.Tensor]:
    return list(model.state_dict().values())


def copy_into(source: nn.Module, target: nn.Module) -> None:
    with torch.no_grad():
        for a, b in zip(tensors(source), tensors(target), strict=True):
            assert a.shape == b.shape
            b.copy_(a)


def check_family(f: Family) -> None:
    ours = cnndsl.load(f.source(flat=False), **f.params).eval()
    flat = cnndsl.load(f.source(flat=True)).eval()
    theirs = nn.Sequential(*f.torch_layers).eval()
    assert [t.shape for t in tensors(ours)] == [t.shape for t in tensors(theirs)]
    assert [t.shape for t in tensors(ours)] == [t.shape for t in tensors(flat)]
    for m in ours.modules():  # every value of the state (BN's running statistics too) drawn, not default
        for t in (*m.parameters(recurse=False), *(b for b in m.buffers(recurse=False) if b.is_floating_point())):
            with torch.no_grad():
                t.uniform_(0.5, 1.5)
    copy_into(ours, theirs)
    copy_into(ours, flat)
    x = torch.randn(2, 3, HW, HW)
    with torch.no_grad():
        want = theirs(x)
        torch.testing.assert_close(ours(x), want)
        torch.testing.assert_close(flat(x), want)
    keys = ours.state_dict().keys()
    for group, present in f.groups.items():  # numbered without gaps
        indices = {int(k.split(".")[1]) for k in keys if k.startswith(group + ".")}
        assert indices <= set(range(present)) and (max(indices) + 1 if indices else 0) <= present


def check_generated_class(f: Family) -> None:
    ns: dict = {}
    exec(cnndsl.compile(f.source(flat=False), **f.params), ns)  # noqa: S102 - our own generated code
    ns["Net"](**f.params)
    other = dict(f.params, n=f.params["n"] + 1)
    with pytest.raises(ValueError, match=rf"^n: this module was compiled with n={f.params['n']} "):
        ns["Net"](**other)


PROFILE = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(families())
def test_family_forms_equal_torch_built_directly_and_the_program_written_out(f):
    check_family(f)


@settings(PROFILE, max_examples=10)
@given(families())
def test_the_generated_class_refuses_another_repetition_count_at_construction(f):
    check_generated_class(f)


@pytest.mark.slow
@settings(PROFILE, max_examples=800, derandomize=False)
@given(families())
def test_family_forms_deep(f):
    check_family(f)
