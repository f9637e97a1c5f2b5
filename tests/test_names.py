"""One allocator for every generated name: a user's names never collide with the generated code's, and
renaming a block or a value changes nothing the network computes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import cnndsl
from cnndsl.backend.pytorch.loader import instantiate
from cnndsl.names import Namespace

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ["nn", "torch", "build", "x", "y", "model", "device", "params", "DeformConv", "StochasticDepth", "self",
           "m", "in_channels", "super", "B_2", "Net_2", "branch1", "float"]


def _run(code: str, cls: str, shape, state=None):
    model = instantiate(code, cls, "cpu").eval()
    if state is not None:
        model.load_state_dict(state)
    torch.manual_seed(0)
    with torch.no_grad():
        y = model(torch.randn(2, *shape))
    return model, y


def test_namespace_claims_and_numbers():
    ns = Namespace({"torch", "B_2"})
    assert ns.claim("B") == "B"
    assert ns.claim("B") == "B_3"  # B_2 is taken
    assert ns.claim("torch") == "torch_2"
    assert ns.claim("class") == "class_2"  # a keyword is never a name
    assert [ns.fresh("branch"), ns.fresh("branch")] == ["branch1", "branch2"]
    ns.claim("part1")
    assert ns.fresh("part") == "part2"


SECOND_CLASS = """
block B(c):
    relu inplace | conv c k1 | bn

block B_2(c):
    conv c k3 p1 | bn | conv c k3 p1

network N:
    input 8x8x8
    conv 8 k1
    B(8)
    add:
        identity
        B(8)
    B_2(8)
"""


def test_a_second_class_never_replaces_a_users_class():
    net = cnndsl.check(SECOND_CLASS)
    code = cnndsl.compile(SECOND_CLASS)
    classes = re.findall(r"^class (\w+)\(", code, re.M)
    assert len(classes) == len(set(classes)) == 4, classes  # B, its second class, B_2, N
    model, _ = _run(code, "N", (8, 8, 8))
    assert sum(p.numel() for p in model.parameters()) == net.total_params


def test_a_network_named_like_a_second_class_loads():
    source = SECOND_CLASS.replace("network N:", "network B_3:")
    net = cnndsl.check(source)
    model, y = _run(cnndsl.compile(source), "B_3", (8, 8, 8))
    assert sum(p.numel() for p in model.parameters()) == net.total_params and y.shape == (2, 8, 8, 8)


VALUES = """
network N(m=4):
    input 4x8x8
    init conv weight=ones
    a = conv m k1 | relu
    b = maxpool 2 as pool1 | conv m k3 p1
    c = unpool pool1
    add:
        identity
        relu if m > 2
    cat(a)
    conv 4 k1
    split 2:
        relu
        identity
    add(c)
    d = conv 4 k1
    output d, a
"""


@pytest.mark.parametrize("names", [("x", "branch1", "part1", "pool1_indices"), ("torch", "nn", "self", "use_add1"),
                                   ("m_2", "build", "float", "y")])
def test_values_may_take_any_name(names):
    plain = cnndsl.compile(VALUES)
    renamed_source = VALUES
    for old, new in zip("abcd", names):
        renamed_source = re.sub(rf"\b{old}\b", new, renamed_source)
    renamed = cnndsl.compile(renamed_source)
    ref, y0 = _run(plain, "N", (4, 8, 8))
    model, y1 = _run(renamed, "N", (4, 8, 8), ref.state_dict())
    assert all(torch.equal(s, t) for s, t in zip(y0, y1))


def _blocks(source: str) -> list[str]:
    return re.findall(r"^block (\w+)", source, re.M)


EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.cnn") if _blocks(p.read_text()))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_renaming_blocks_changes_nothing(path, monkeypatch):
    """Metamorphic: every block renamed to a name the generated code uses gives the same state_dict and outputs."""
    monkeypatch.syspath_prepend(str(path.parent))  # the generated text is run as it is: custom_layers.py is there
    source = path.read_text()
    net = cnndsl.check(path, input=None)
    shape = net.input_shape
    if shape is not None and len(shape) == 3:
        side = {"unet": 64, "segnet": 64, "unet_original": 188}.get(path.stem, 32)
        shape = (shape[0], side, side)
    renamed = source
    for block, new in zip(_blocks(source), HOSTILE):
        renamed = re.sub(rf"\b{block}\b", new, renamed)
    kwargs = {"input": "x".join(map(str, shape))} if shape else {}
    plain = cnndsl.compile(source, **kwargs)
    hostile = cnndsl.compile(renamed, **kwargs)
    example = tuple(cnndsl.check(source, **kwargs).example_shape)
    ref, y0 = _run(plain, net.name, example)
    model, y1 = _run(hostile, net.name, example, ref.state_dict())
    assert list(model.state_dict()) == list(ref.state_dict())
    y0, y1 = [list(y.values()) if isinstance(y, dict) else [y] if torch.is_tensor(y) else list(y) for y in (y0, y1)]
    assert all(torch.equal(a, b) for a, b in zip(y0, y1, strict=True))


@pytest.mark.parametrize("name", ["self", "torch", "nn", "in_channels", "device", "super", "isinstance", "float"])
def test_parameters_keep_the_generated_signatures_names(name):
    with pytest.raises(cnndsl.CnnDslError, match="name of the generated `__init__`"):
        cnndsl.check(f"network N({name}=4):\n    input 3x8x8\n    conv 4 k1\n")


def test_layers_may_not_shadow_module_attributes():
    with pytest.raises(cnndsl.CnnDslError, match="attribute of nn.Module"):
        cnndsl.check("network N:\n    input 3x8x8\n    conv 4 k1 as training\n")
