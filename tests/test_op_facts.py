"""Every op's facts for the in-place rule, checked against torch: whether its backward keeps its output
(`keeps_output`, and `keeps_output_in_place` when it runs in place) and whether it may return its input or a
view of it (`returns_input`). An op without a sample here fails the test, so no op joins the catalog without
its facts being measured."""

from __future__ import annotations

import pytest
import torch

import cnndsl
from cnndsl.ops import REGISTRY

# op -> (input, the layer as written)
SAMPLES = {
    "relu": ("4x6x6", "relu"), "relu6": ("4x6x6", "relu6"), "leakyrelu": ("4x6x6", "leakyrelu 0.1"),
    "prelu": ("4x6x6", "prelu"), "rrelu": ("4x6x6", "rrelu"), "elu": ("4x6x6", "elu"), "selu": ("4x6x6", "selu"),
    "gelu": ("4x6x6", "gelu"), "silu": ("4x6x6", "silu"), "mish": ("4x6x6", "mish"), "hardswish": ("4x6x6", "hardswish"),
    "hardsigmoid": ("4x6x6", "hardsigmoid"), "sigmoid": ("4x6x6", "sigmoid"), "tanh": ("4x6x6", "tanh"),
    "softsign": ("4x6x6", "softsign"), "tanhshrink": ("4x6x6", "tanhshrink"), "lppool": ("4x6x6", "lppool 2 3 s1"),
    "softmax": ("4x6x6", "softmax"), "logsoftmax": ("4x6x6", "logsoftmax"), "dropout": ("4x6x6", "dropout 0.5"),
    "dropout1d": ("4x6", "dropout1d 0.5"), "dropout2d": ("4x6x6", "dropout2d 0.5"), "dropout3d": ("4x4x4x4", "dropout3d 0.5"),
    "conv": ("4x6x6", "conv 4 k3 p1"), "convt": ("4x6x6", "convt 4 k3 p1"), "dwconv": ("4x6x6", "dwconv 4 k3 p1"),
    "deform": ("4x6x6", "deform 4 k3 p1"), "bn": ("4x6x6", "bn"), "gn": ("4x6x6", "gn 2"), "ln": ("4x6x6", "ln"),
    "instnorm": ("4x6x6", "instnorm affine=true"), "maxpool": ("4x6x6", "maxpool 3 s1 p1"), "avgpool": ("4x6x6", "avgpool 3 s1 p1"),
    "adaptiveavgpool": ("4x6x6", "adaptiveavgpool 6"), "adaptivemaxpool": ("4x6x6", "adaptivemaxpool 6"), "gap": ("4x6x6", "gap"),
    "linear": ("4x6", "linear 6"), "flatten": ("4x6x6", "flatten"), "identity": ("4x6x6", "identity"),
    "upsample": ("4x6x6", "upsample 2"), "pixelshuffle": ("4x6x6", "pixelshuffle 2"), "pixelunshuffle": ("4x6x6", "pixelunshuffle 2"),
    "shuffle": ("4x6x6", "shuffle 2"), "permute": ("4x6x6", "permute 0 2 3 1"), "layerscale": ("4x6x6", "layerscale 0.5"),
    "crop": ("4x6x6", "crop 3x4"),
    "droppath": ("4x6x6", "droppath 0.5"), "unflatten": ("4x36", "unflatten 6x6 dim=2"), "pad": ("4x6x6", "pad 1"),
    "frozenbn": ("4x6x6", "frozenbn"), "ln2d": ("4x6x6", "ln2d"),
}
SPECS = sorted({spec.name: spec for spec in REGISTRY.values()}.values(), key=lambda s: s.name)


def test_every_op_has_a_sample():
    assert {s.name for s in SPECS} <= set(SAMPLES), "an op without a sample: add it to SAMPLES"


def _measure(shape: str, layer: str) -> tuple[bool, bool]:
    """(keeps its output for backward, returned its input or a view of it), in train or in eval mode."""
    source = f"network T:\n    input {shape}\n    conv 4 k1 as producer | {layer} as probe | identity as after\n"
    model = cnndsl.load(source, device="cpu").double()
    keeps = aliases = False
    for train in (True, False):
        model.train(train)
        seen = {}
        model.producer.register_forward_hook(lambda m, i, o: seen.__setitem__("made", o))

        def overwrite(m, args):
            y = args[0]
            seen["alias"] = y.untyped_storage().data_ptr() == seen["made"].untyped_storage().data_ptr()
            y.add_(0)  # an in-place change: backward fails where an op kept this tensor

        model.after.register_forward_pre_hook(overwrite)
        x = torch.randn(2, *(int(d) for d in shape.split("x")), dtype=torch.float64, requires_grad=True)
        torch.manual_seed(0)
        try:
            model(x).sum().backward()
        except RuntimeError as e:
            assert "modified by an inplace operation" in str(e), e
            keeps = True
        aliases = aliases or seen["alias"]
        model.producer._forward_hooks.clear()
        model.after._forward_pre_hooks.clear()
    return keeps, aliases


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_op_facts_agree_with_torch(spec):
    shape, layer = SAMPLES[spec.name]
    keeps, aliases = _measure(shape, layer)
    assert (keeps, aliases) == (spec.keeps_output, spec.returns_input), (
        f"{spec.name}: torch says keeps_output={keeps}, returns_input={aliases}")
    if spec.option("inplace") is not None:
        keeps_in_place, _ = _measure(shape, f"{layer} inplace")
        assert keeps_in_place == (spec.keeps_output or spec.keeps_output_in_place), (
            f"{spec.name} inplace: torch says keeps its output={keeps_in_place}")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_same_shape_agrees_with_torch_and_keeps_checking_after_a_mistake(spec):
    """`same_shape`: the module's output has its input's shape (torch says, on the sample and on a second input
    size); such an op's mistake leaves the shape known, so a later line's mistake is reported too."""
    shape, layer = SAMPLES[spec.name]
    sizes = [shape, "x".join(str(int(d) + 2 if i else int(d)) for i, d in enumerate(shape.split("x")))]
    same = True
    for size in sizes:
        try:
            model = cnndsl.load(f"network N:\n    input {size}\n    {layer}\n", device="cpu").eval()
        except cnndsl.CheckError:
            same = False  # (a layer made for one size only, such as a fixed unflatten)
            break
        x = torch.randn(2, *map(int, size.split("x")))
        with torch.no_grad():
            y = model(x)
        same = same and tuple(y.shape) == tuple(x.shape)
    if spec.same_shape:
        assert same, f"{spec.name}: torch changes the shape"
        src = f"network N:\n    input {shape}\n    {spec.name} nosuchoption=1\n    conv 4 k99\n"
        with pytest.raises(cnndsl.CheckError) as info:
            cnndsl.check(src)
        assert [d.span.line for d in info.value.diagnostics] == [3, 4]
