"""`cnndsl summary`: the static table against what torch measures on the real modules.

Parameters against torchinfo, mult-adds against forward hooks on every conv and linear module (fvcore's
convention, computed from the tensors the hooks see), buffers against the state_dict, and receptive fields
and jumps against the gradient of one output position with respect to the input (all weights positive, max
pools swapped for average pools of the same window, so every input pixel in the field gets a gradient)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import torchinfo
import yaml
from conftest import EXAMPLES
from torch import nn

import cnndsl
from cnndsl.tools.summary import render, summarize

REFERENCE = ("resnet18", "resnet50", "vgg16_bn", "alexnet", "mobilenet_v2", "squeezenet1_1")


def hook_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Conv and linear mult-adds of one forward pass, measured on the tensors the modules see (bias excluded)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        inp = inputs[0]
        if isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, nn.modules.conv._ConvTransposeNd):
            total += inp.numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, nn.modules.conv._ConvNd):
            total += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total // x.shape[0]


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_totals_match_torchinfo_and_hooks(name, one_thread):
    size = "3x112x112"
    s = summarize(cnndsl.check(EXAMPLES / f"{name}.cnn", input=size))
    model = cnndsl.load(EXAMPLES / f"{name}.cnn", input=size, device="cpu")
    info = torchinfo.summary(model, input_size=(1, 3, 112, 112), verbose=0, device="cpu")
    assert s.total_params == info.total_params
    assert s.trainable_params == info.trainable_params
    assert s.non_trainable_params == info.total_params - info.trainable_params
    assert s.total_macs == hook_macs(model, torch.randn(2, 3, 112, 112))
    assert s.buffers == sum(b.numel() for b in model.buffers())
    assert s.weights_mb == round(sum(t.numel() for t in model.state_dict().values()) * 4 / 1e6, 2)
    per_layer = {row.name: row.params for row in s.layers}
    for layer_name, module in model.named_modules():
        if layer_name in per_layer:
            assert per_layer[layer_name] == sum(p.numel() for p in module.parameters()), layer_name


def test_resnet18_known_figures():
    """The figures torchvision publishes for ResNet-18 at 224x224: 1.81 GFLOPs (mult-adds), RF 435."""
    s = summarize(cnndsl.check(EXAMPLES / "resnet18.cnn"))
    assert s.total_params == 11_689_512
    assert round(s.total_macs / 1e9, 2) == 1.81
    rows = {r.name: r for r in s.layers}
    assert rows["conv1"].receptive_field == [7, 7] and rows["conv1"].jump == [2, 2]
    assert rows["maxpool1"].receptive_field == [11, 11] and rows["maxpool1"].jump == [4, 4]
    assert rows["layer4.1.conv2"].receptive_field == [435, 435] and rows["layer4.1.conv2"].jump == [32, 32]
    assert rows["fc"].receptive_field == "global"


def test_a_new_op_gets_its_field_from_the_catalog():
    """lppool (kernel 4, stride 4) once fell back to "pointwise" and was reported exact with a field of 3 and
    a jump of 1; its facts in the catalog give 6 and 4 (exact), as the gradient shows."""
    rows = {r.name: r for r in summarize(cnndsl.check("network N:\n    input 1x32x32\n    conv 4 k3 | lppool 2 4\n")).layers}
    assert (rows["lppool1"].receptive_field, rows["lppool1"].jump, rows["lppool1"].exact) == ([6, 6], [4, 4], True)
    assert rows["lppool1"].macs == 0 and rows["lppool1"].params == 0


def test_a_channels_last_mlp_has_no_field_but_global_pooling_does():
    """After `permute 0 2 3 1`, a linear layer mixes channels, not pixels: the field is unknown (it was
    reported `global`), until global pooling makes it global."""
    rows = {r.name: r for r in summarize(cnndsl.check(EXAMPLES / "mobile_block.cnn")).layers}
    assert [rows[n].receptive_field for n in ("permute1", "linear1", "permute2")] == [None, None, None]
    assert rows["avgpool1"].receptive_field == "global"


def test_other_ops_macs():
    net = cnndsl.check("""\
network Net:
    input 4x10x10
    convt 6 k3 s2 groups=2 | upsample 2 | pixelunshuffle 2 | dwconv k3 p1 | deform 5 k3 p1 modulated
    bn | relu | flatten | linear 7
""")
    rows = {r.name: r for r in summarize(net).layers}
    assert rows["convt1"].macs == 4 * 10 * 10 * (6 // 2) * 9
    assert rows["dwconv1"].macs == 24 * 21 * 21 * 1 * 9
    assert rows["deform1"].macs == 5 * 21 * 21 * 24 * 9 + 21 * 21 * (3 * 9) * 24 * 9
    assert rows["linear1"].macs == 7 * 5 * 21 * 21
    assert rows["bn1"].macs == rows["upsample1"].macs == 0


# -- receptive fields against gradients -----------------------------------------------------------------


def _positive(model: nn.Module) -> nn.Module:
    """All weights positive, biases zero, max pools as average pools of the same window: every input pixel in
    a field then reaches the output with a positive gradient."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif isinstance(child, nn.MaxPool1d):
                setattr(module, child_name, nn.AvgPool1d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.rand_like(p) * 0.9 + 0.1 if not name.endswith("bias") else torch.zeros_like(p))
    return model.double().eval()


def measured(model: nn.Module, module: nn.Module, shape: tuple[int, ...], position: tuple[int, ...]):
    """The input box (start, extent per axis) that reaches `module`'s output at `position` (all channels)."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    seen = {}
    handle = module.register_forward_hook(lambda m, i, o: seen.setdefault("y", o))
    model(x)
    handle.remove()
    y = seen["y"]
    y[(0, slice(None), *position)].sum().backward()
    nonzero = (x.grad[0].abs().sum(0) > 0).nonzero()
    lo, hi = nonzero.min(0).values, nonzero.max(0).values
    return tuple(lo.tolist()), tuple((hi - lo + 1).tolist())


FIELDS = {
    "chain": "input 1x64x64\n    conv 4 k3 s2 | conv 4 k5 d=2 | avgpool 3 s2 p1 | conv 4 k3 s2 p1 | relu",
    "maxpool": "input 1x48x48\n    conv 4 k3 | maxpool 2 | conv 4 k3 | maxpool 3 s2 p1 | conv 4 k1",
    "convt": "input 1x40x40\n    conv 4 k3 s2 | convt 4 k3 s2 | conv 4 k3 | convt 4 k2 s2 | conv 4 k3",
    "upsample": "input 1x40x40\n    conv 4 k3 s2 | upsample 2 | conv 4 k3 | upsample 2 mode=bilinear | conv 4 k3",
    "shuffle": "input 1x48x48\n    conv 4 k3 | pixelunshuffle 2 | conv 4 k3 | pixelshuffle 2 | conv 4 k3",
    "adaptive": "input 1x40x40\n    conv 4 k3 | adaptiveavgpool 12 | conv 4 k3",
    "residual": "input 1x64x64\n    conv 4 k3\n    add:\n        conv 4 k3 s2 p1 | conv 4 k5 p2\n        conv 4 k1 s2\n    conv 4 k3",
    "cat": "input 1x64x64\n    a = conv 4 k3\n    a | conv 4 k7 p3 | conv 4 k3 p1 | cat(a) | conv 4 k3 s2",
    "conv1d": "input 1x200\n    conv1d 4 k7 s2 | maxpool 3 s2 | conv 4 k3 d=4",
    "lppool": "input 1x64x64\n    conv 4 k3 | lppool 2 4 | conv 4 k3 | lppool 2 3 s2 | conv 4 k3",
    "convt_stride1": "input 1x40x40\n    conv 4 k3 s2 | convt 4 k3 p1 | conv 4 k3",
    "upsample_down": "input 1x64x64\n    conv 4 k3 | upsample 0.5 mode=bilinear | conv 4 k3 | upsample size=15 mode=area | conv 4 k3",
}


@pytest.mark.parametrize("case", sorted(FIELDS))
def test_receptive_fields_match_gradients(case, one_thread):
    source = f"network Net:\n    {FIELDS[case]}\n"
    net = cnndsl.check(source)
    rows = {r.name: r for r in summarize(net).layers}
    model = _positive(cnndsl.load(source, device="cpu"))
    modules = dict(model.named_modules())
    checked = 0
    for layer in net.layers:
        row = rows[layer.name]
        if layer.name not in modules or not isinstance(row.receptive_field, list):
            continue
        spatial = layer.output_shape[1:]
        centre = tuple(d // 2 for d in spatial)
        boxes = {}
        for step in range(4):  # the widest box over a few neighbouring positions (transposed convs vary)
            pos = tuple(min(c + step, d - 1) for c, d in zip(centre, spatial))
            boxes[pos] = measured(model, modules[layer.name], net.input_shape, pos)
        widest = [max(box[1][axis] for box in boxes.values()) for axis in range(len(spatial))]
        checked += 1
        if not row.exact:  # after an uneven op: the arithmetic's estimate, close to the widest field measured
            assert widest == pytest.approx(row.receptive_field, rel=0.2), (case, layer.name, widest, row.receptive_field)
            continue
        assert widest == row.receptive_field, (case, layer.name, widest, row.receptive_field)
        if all(c + 4 < d for c, d in zip(centre, spatial)):  # the jump: how far the box moves per output position
            starts = [measured(model, modules[layer.name], net.input_shape, tuple(c + k for c in centre))[0] for k in (0, 4)]
            assert [(b - a) / 4 for a, b in zip(*starts)] == pytest.approx(row.jump), (case, layer.name)
    assert checked >= 3


def test_resnet18_fields_match_gradients(one_thread):
    """The deepest fields of ResNet-18 (up to 435 pixels) at 3x480x480, where they fit inside the input."""
    net = cnndsl.check(EXAMPLES / "resnet18.cnn", input="3x480x480")
    rows = {r.name: r for r in summarize(net).layers}
    model = _positive(cnndsl.load(EXAMPLES / "resnet18.cnn", input="3x480x480", device="cpu"))
    modules = dict(model.named_modules())
    for name in ("maxpool1", "layer1.1.conv2", "layer2.0.downsample.0", "layer3.1.conv2", "layer4.1.conv2"):
        spatial = net.layer(name).output_shape[1:]
        _, extent = measured(model, modules[name], net.input_shape, tuple(d // 2 for d in spatial))
        assert list(extent) == rows[name].receptive_field, name


# -- formats and the command line -----------------------------------------------------------------------


def test_formats_hold_the_same_data():
    s = summarize(cnndsl.check(EXAMPLES / "lenet5.cnn"))
    data = json.loads(render(s, "json"))
    assert data["total_params"] == s.total_params and data["total_macs"] == s.total_macs
    assert [row["name"] for row in data["layers"]] == [row.name for row in s.layers]
    assert set(data["layers"][0]) >= {"name", "op", "output_shape", "params", "macs", "receptive_field", "jump"}
    assert yaml.safe_load(render(s, "yaml")) == data
    table = render(s, "table")
    assert f"{s.total_params:,}" in table and "mult-adds per sample" in table


def test_unknown_input_gives_unknown_figures():
    s = summarize(cnndsl.check("conv 3->16 k3 s2 p1 | relu | maxpool 2 | flatten | linear 10"))
    assert s.input_shape is None and s.total_params is None and s.total_macs is None
    assert "?" in render(s) and "~" not in render(s)
    rows = {r.name: r for r in s.layers}  # windows need no sizes: their fields are known
    assert rows["maxpool1"].receptive_field == [5, 5] and rows["maxpool1"].jump == [4, 4]
    assert rows["flatten1"].receptive_field is None and rows["linear1"].receptive_field == "global"


def test_cli_summary(tmp_path):
    run = subprocess.run([sys.executable, "-m", "cnndsl", "summary", str(EXAMPLES / "lenet5.cnn"), "--format", "json",
                          "-D", "num_classes=5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["layers"][-1]["output_shape"] == [5]
    assert "torch" not in subprocess.run(
        [sys.executable, "-c", "import sys; from cnndsl import cli; cli.main(['summary', sys.argv[1]]); "
         "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'torch'), file=sys.stderr)", str(EXAMPLES / "lenet5.cnn")],
        capture_output=True, text=True).stderr
    bad = tmp_path / "bad.cnn"
    bad.write_text("network Net:\n    input 3x8x8\n    conv 4->8 k3\n")
    run = subprocess.run([sys.executable, "-m", "cnndsl", "summary", str(bad)], capture_output=True, text=True)
    assert run.returncode == 1 and f"{bad}:3:10: error:" in run.stderr and "Traceback" not in run.stderr
