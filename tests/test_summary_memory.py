"""`cnndsl summary`'s memory columns and totals, `--depth`, FLOPs beside mult-adds, and `cnndsl.summary()`.

The figures themselves are measured against torch in tests/test_memory.py; here, --depth's folded rows against
the real modules (parameters, output shapes, mult-adds from forward hooks), and the options and formats."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import torch
from conftest import EXAMPLES
from torch import nn

import cnndsl
from cnndsl.tools.memory import memory
from cnndsl.tools.summary import render, summarize

RESNET = EXAMPLES / "resnet18.cnn"


def _module_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return out[0].numel() * module.in_features
    if isinstance(module, nn.modules.conv._ConvNd) and not isinstance(module, nn.modules.conv._ConvTransposeNd):
        return out[0].numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
    return 0


def test_depth_folds_rows_into_the_modules_torch_has():
    """At depth 1 and 2, each row is a module of the real model: its parameters, its output shape and the
    mult-adds of the convs and linears inside it (forward hooks) are the folded row's."""
    model = cnndsl.load(RESNET, input="3x64x64", device="cpu").eval()
    modules = dict(model.named_modules())
    shapes, macs = {}, {}

    def hook(name):
        def record(module, args, out):
            shapes[name] = list(out.shape[1:])
            macs[name] = _module_macs(module, args[0], out)
        return record

    for name, module in modules.items():
        if name:
            module.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    net = cnndsl.check(RESNET, input="3x64x64")
    full = summarize(net, batch=4)
    for depth in (1, 2):
        s = summarize(net, batch=4, depth=depth)
        assert [r.name for r in s.layers] == [n for n in modules if n and n.count(".") < depth and
                                               (n.count(".") == depth - 1 or not list(modules[n].children()))]
        for row in s.layers:
            inside = [n for n in macs if n == row.name or n.startswith(row.name + ".")]
            assert row.params == sum(p.numel() for p in modules[row.name].parameters()), row.name
            assert row.output_shape == shapes[row.name], row.name
            assert row.macs == sum(macs[n] for n in inside), row.name
            below = [r for r in full.layers if r.name == row.name or r.name.startswith(row.name + ".")]
            assert row.saved_bytes == sum(r.saved_bytes for r in below)
            assert row.output_bytes == sum(r.output_bytes for r in below)
        assert (s.total_params, s.total_macs, s.saved_bytes, s.peak_bytes) == (full.total_params, full.total_macs,
                                                                               full.saved_bytes, full.peak_bytes)
    rows = {r.name: r for r in summarize(net, depth=2).layers}
    assert rows["layer2.0"].op == "BasicBlock"
    assert summarize(net, depth=1).layers[4].op == "group"
    assert summarize(net, depth=0).layers == []


def test_flops_are_twice_the_mult_adds_and_labelled():
    s = summarize(cnndsl.check(RESNET))
    assert s.total_flops == 2 * s.total_macs
    table = render(s)
    assert f"mult-adds per sample: 1.81 G MACs ({s.total_macs:,})" in table
    assert f"FLOPs per sample:     3.63 G FLOPs ({s.total_flops:,}: 2 x mult-adds)" in table
    data = json.loads(render(s, "json"))
    assert data["total_flops"] == s.total_flops and data["layers"][0]["saved_bytes"] == s.layers[0].saved_bytes


def test_memory_scales_with_batch_and_dtype():
    """Without batch norm (whose statistics are per channel, not per sample), the bytes scale exactly."""
    net = cnndsl.check(EXAMPLES / "lenet5.cnn")
    one, many = memory(net), memory(net, batch=8, dtype="bfloat16")
    assert (many.saved_bytes, many.peak_bytes, many.output_bytes) == (4 * one.saved_bytes, 4 * one.peak_bytes, 4 * one.output_bytes)
    with_bn = cnndsl.check("network N:\n    input 3x8x8\n    conv 4 k3 | bn | relu\n")
    a, b = memory(with_bn, batch=1), memory(with_bn, batch=2)
    assert b.layers["bn1"].saved_bytes == 2 * a.layers["bn1"].saved_bytes - 2 * 4 * 4  # the statistics: once


def test_in_place_layers_and_views_allocate_nothing():
    """`relu inplace` and flatten share their input's storage: the peak is lower, what is kept the same."""
    source = "network N:\n    input 3x16x16\n    conv 8 k3 | bn | relu{} | flatten | linear 10\n"
    plain, in_place = (memory(cnndsl.check(source.format(x))) for x in ("", " inplace"))
    assert plain.layers["relu1"].output_bytes == in_place.layers["relu1"].output_bytes == 8 * 14 * 14 * 4
    assert in_place.saved_bytes == plain.saved_bytes
    # the peak: while relu runs out of place, its input and output (then, in place, at the end: the logits)
    assert plain.peak_bytes - in_place.peak_bytes == 8 * 14 * 14 * 4 - 10 * 4
    skip = memory(cnndsl.check("network N:\n    input 3x16x16\n    a = conv 8 k3 p1\n    a | relu | conv 8 k3 p1 | relu | add(a)\n"))
    # at the add: everything kept, the skip's tensor (which nothing keeps) and the sum
    assert skip.peak_bytes == skip.saved_bytes + 2 * 8 * 16 * 16 * 4


def test_unknown_sizes_give_unknown_memory():
    s = summarize(cnndsl.check("conv 3->16 k3 s2 p1 | relu | maxpool 2 | flatten | linear 10"))
    assert s.saved_bytes is None and s.peak_bytes is None and s.layers[0].output_bytes is None
    assert "saved for backward:   ?" in render(s)


def test_cli_options(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "cnndsl", "summary", str(EXAMPLES / "lenet5.cnn"), *args],
                              capture_output=True, text=True)

    done = run("--format", "json", "--batch", "8", "--dtype", "float16", "--device", "cpu", "--depth", "1")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    expected = summarize(cnndsl.check(EXAMPLES / "lenet5.cnn"), batch=8, dtype="float16", device="cpu", depth=1)
    assert data == json.loads(render(expected, "json"))
    assert (data["batch"], data["dtype"], data["device"], data["depth"]) == (8, "float16", "cpu", 1)
    assert "peak in training:" in run("--batch", "64").stdout
    for bad in (("--batch", "0"), ("--depth", "-1"), ("--dtype", "float64"), ("--device", "tpu")):
        failed = run(*bad)
        assert failed.returncode == 2 and bad[0] in failed.stderr, bad


def test_python_api_needs_no_torch():
    s = cnndsl.summary(EXAMPLES / "resnet18.cnn", input="3x64x64", batch=2, depth=1)
    assert s.model_dump() == summarize(cnndsl.check(RESNET, input="3x64x64"), batch=2, depth=1).model_dump()
    code = ("import sys, cnndsl; s = cnndsl.summary(sys.argv[1], batch=64, depth=1); "
            "print(s.peak_bytes > 0, any(m.split('.')[0] == 'torch' for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(RESNET)], capture_output=True, text=True)
    assert done.stdout.split() == ["True", "False"], done.stderr
