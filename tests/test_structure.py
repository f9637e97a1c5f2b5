"""Dataflow beyond a pipeline: resizing and cropping to another value's size, torch as the oracle."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

import cnndsl

pytestmark = pytest.mark.usefixtures("one_thread")

LIKE = """network Net(mode=nearest):
    input 3x{h}x{w}
    e1 = conv 8 k3 p1 | relu
    e2 = e1 | maxpool 2 | conv 16 k3 p1 | relu
    d1 = e2 | upsample like=e1 mode=mode | conv 8 k1 | cat(e1)
    d1 | crop like=e2 | conv 2 k1
"""


class Direct(nn.Module):
    """LIKE written with torch alone."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.conv3, self.conv4 = nn.Conv2d(16, 8, 1), nn.Conv2d(16, 2, 1)

    def forward(self, x):
        e1 = F.relu(self.conv1(x))
        e2 = F.relu(self.conv2(F.max_pool2d(e1, 2)))
        d1 = torch.cat([self.conv3(F.interpolate(e2, size=e1.shape[-2:], mode=self.mode)), e1], dim=1)
        top, left = (d1.shape[2] - e2.shape[2]) // 2, (d1.shape[3] - e2.shape[3]) // 2
        return self.conv4(d1[:, :, top:top + e2.shape[2], left:left + e2.shape[3]])


@settings(max_examples=12, deadline=None, derandomize=True)
@given(h=st.integers(2, 40), w=st.integers(2, 40), mode=st.sampled_from(["nearest", "bilinear", "bicubic", "area", "nearest-exact"]),
       run_h=st.integers(2, 40), run_w=st.integers(2, 40))
def test_resize_and_crop_to_a_value_equal_torch_at_every_input_size(h, w, mode, run_h, run_w):
    """Compiled at one input size, the module computes torch's result at any other: the sizes are read when it runs."""
    ours = cnndsl.load(LIKE.format(h=h, w=w), mode=mode).eval()
    theirs = Direct(mode).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    for size in ((h, w), (run_h, run_w)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x))
    net = cnndsl.check(LIKE.format(h=h, w=w), mode=mode)
    assert net.output_shape == (2, h // 2, w // 2)


def test_the_code_reads_the_values_size_when_it_runs():
    code = cnndsl.compile(LIKE.format(h=37, w=45))
    assert 'x = nn.functional.interpolate(e2, size=e1.shape[2:], mode="nearest")  # (N, 16, 37, 45)' in code
    assert "x = _center_crop(d1, e2.shape[2:])  # (N, 16, 18, 22)" in code
    assert code.count("def _center_crop(") == 1


@pytest.mark.parametrize("line, message", [
    ("e2 | upsample like=e9", "`e9` is not a value here"),
    ("e2 | upsample like=e3", "the value `e3` is used before it is defined (on line 6)"),
    ("e2 | upsample 2 like=e1", "`upsample like=e1` takes its size from the value; give no `scale_factor` beside it"),
    ("e2 | upsample like=3", "`like` takes the name of a value, such as `like=e1`, found `3`"),
    ("e1 | crop like=e2 | crop like=e1", "`crop` cannot enlarge: the input (N, 8, 8, 8) is smaller than the target (16, 16) in spatial axis 1"),
    ("e2 | flatten | upsample like=e1", "`upsample` needs a 3-D or 4-D or 5-D input (N, C, ...), found 2-D input (N, 512)"),
])
def test_mistakes_are_located(line, message):
    src = f"network N:\n    input 3x16x16\n    e1 = conv 8 k3 p1\n    e2 = e1 | maxpool 2\n    {line}\n    e3 = e2 | relu\n    e3\n"
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check(src)
    d = info.value.diagnostics[0]
    assert d.message.startswith(message), d.message
    assert d.line == 5


FPN = """block Lateral(out=8):
    input top, skip
    t = top | upsample like=skip
    skip | conv out k1 | add(t)

block Heads(c):
    a = conv c k3 p1
    b = a | maxpool 1 s2
    output a, b

network FPNLike:
    input 3x{h}x{w}
    c1 = conv 8 k3 p1 | relu
    c2 = c1 | conv 16 k3 s2 p1 | relu
    c3 = c2 | conv 32 k3 s2 p1 | relu
    i3 = c3 | conv 8 k1
    i2 = i3 | Lateral(skip=c2)
    i1 = i2 | Lateral(skip=c1)
    p1, pool = i1 | Heads(8)
    output p1 as "0", i2 as "1", pool
"""


class _Lateral(nn.Module):
    def __init__(self, c_skip):
        super().__init__()
        self.conv1 = nn.Conv2d(c_skip, 8, 1)

    def forward(self, top, skip):
        return self.conv1(skip) + F.interpolate(top, size=skip.shape[-2:], mode="nearest")


class _Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        a = self.conv1(x)
        return a, F.max_pool2d(a, 1, 2)


class DirectFPN(nn.Module):
    """FPN written with torch alone: a top-down pathway over three levels, a dict of outputs."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.conv3, self.conv4 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.Conv2d(32, 8, 1)
        self.lateral1, self.lateral2, self.heads1 = _Lateral(16), _Lateral(8), _Heads()

    def forward(self, x):
        c1 = F.relu(self.conv1(x))
        c2 = F.relu(self.conv2(c1))
        c3 = F.relu(self.conv3(c2))
        i2 = self.lateral1(self.conv4(c3), c2)
        p1, pool = self.heads1(self.lateral2(i2, c1))
        return {"0": p1, "1": i2, "pool": pool}


@pytest.mark.parametrize("h, w", [(32, 32), (29, 23)])
def test_blocks_with_several_inputs_and_outputs_and_a_dict_of_outputs_equal_torch(h, w):
    ours = cnndsl.load(FPN.format(h=h, w=w)).eval()
    theirs = DirectFPN().eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    for size in ((h, w), (40, 37)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            got, want = ours(x), theirs(x)
        assert list(got) == ["0", "1", "pool"]
        for key in want:
            torch.testing.assert_close(got[key], want[key])
    net = cnndsl.check(FPN.format(h=h, w=w))
    assert net.output_keys == ("0", "1", "pool") and len(net.outputs) == 3


def test_the_generated_code_passes_inputs_and_unpacks_outputs():
    code = cnndsl.compile(FPN.format(h=32, w=32))
    assert "def forward(self, top, skip):" in code and "return a, b" in code
    assert "x = self.lateral1(i3, c2)" in code and "p1, pool = self.heads1(i1)" in code
    assert 'return {"0": p1, "1": i2, "pool": pool}' in code


@pytest.mark.parametrize("network, message", [
    ("    p1 = conv 8 k1 | Heads(8)\n", "the block gives 2 values, but 1 name is given"),
    ("    a, b = conv 8 k1\n", "2 names, but this line gives one value"),
    ("    a, b, c = Heads(8)\n", "the block gives 2 values, but 3 names are given"),
    ("    i = conv 8 k1\n    Lateral(top=i)\n", "`Lateral` needs a value for its input `skip`"),
    ("    i = conv 8 k1\n    Lateral(skip=j)\n", "the input `skip` of `Lateral` takes a named value: `j` is not a value here"),
    ("    a = conv 8 k1\n    output a as x, a as x\n", "the key `x` is given twice"),
])
def test_inputs_and_outputs_mistakes_are_located(network, message):
    blocks = FPN.split("network")[0]
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check(blocks + "network N:\n    input 3x16x16\n" + network)
    assert info.value.diagnostics[0].message.startswith(message), info.value.diagnostics[0].message


def test_resizing_padding_and_cropping_to_a_value_script_with_torchscript():
    """The helpers the file defines (`_pad_to`, `_center_crop`) are typed for TorchScript; scripted, the module
    computes what it computes in eager mode, at another input size too."""
    import warnings

    src = """network N:
    input 3x37x45
    e1 = conv 8 k3 p1
    e2 = e1 | maxpool 2 | conv 8 k3 p1
    u = e2 | convt 8 k2 s2 | pad like=e1 mode=reflect | cat(e1) | crop 5x7
    v = u | upsample like=e2 mode=bilinear | pad like=e1 value=0.5
    v | crop like=u
"""
    model = cnndsl.load(src).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated, and still what many deploy with
        scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 31, 29)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
    assert model(x).shape == (2, 16, 5, 7)


def test_an_error_behind_a_blocks_output_is_reported_once_without_a_crash():
    """Found by the mutation fuzzer: a block's output whose value failed left a shape of None for the caller."""
    src = FPN.split("network")[0] + "block Bad:\n    a = conv 8 k1\n    b = zz | relu\n    output a, b\n\n" + \
        "network N:\n    input 3x8x8\n    p, q = Bad()\n    output p, q\n"
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check(src)
    assert [d.message for d in info.value.diagnostics if d.severity == "error"] == ["unknown op `zz`"]


def test_a_blocks_own_modules_keyed_by_digits_are_attributes():
    """DeepLabV3's ASPPPooling keeps its modules as "1" and "2" in a plain nn.Module: the block's forward reads
    them by getattr, not by indexing (which only a group, an nn.Sequential, has)."""
    src = ("block Pool:\n    gap | conv 8 k1 nobias as \"1\" | bn as \"2\" | relu\n"
           "network N:\n    input 3x8x8\n    conv 8 k3 p1 as stem\n    Pool() as pool\n")
    model = cnndsl.load(src).eval()
    assert {"pool.1.weight", "pool.2.weight"} <= set(model.state_dict())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        stem = model.stem(x)
        want = F.relu(model.pool.get_submodule("2")(model.pool.get_submodule("1")(stem.mean((2, 3), keepdim=True))))
        assert torch.equal(model(x), want)
