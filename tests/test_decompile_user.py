"""Decompiling models as users write them (tests/decompile_models.py), the precise report for what the language
lacks, and the `cnndsl decompile` command (TARGET, --arg, --verify, its usage errors)."""

from __future__ import annotations

import sys

import pytest
from conftest import ROOT

import cnndsl

torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT / "tests"))
import decompile_models as models


def _round_trip(model, shape):
    text = cnndsl.decompile(model.eval(), input=shape)
    net = cnndsl.load(text).eval()
    net.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max().item() <= 1e-4
    return text


def test_lenet_functions(one_thread):
    """F.relu, F.max_pool2d and x.view(x.size(0), -1) become relu, maxpool and flatten."""
    text = _round_trip(models.LeNet(), (1, 28, 28))
    assert "conv 6 k5 p2 | relu | maxpool 2 | conv 16 k5 | relu | maxpool 2 | flatten" in text


def test_unet_skips_and_cat(one_thread):
    """Skips kept in variables and torch.cat: a named value and `cat(...)`, one DoubleConv block."""
    text = _round_trip(models.UNet(), (3, 32, 32))
    assert text.count("\nblock ") == 1 and "block DoubleConv(cout):" in text
    assert "x1 = DoubleConv(8) as enc1" in text and "cat(x1)" in text


def test_unet_blocks_of_two_inputs(one_thread):
    """`Up.forward(self, x1, x2)`: a block with `input x1, x2`, called as `Up(x2=x2)` with the skip by name."""
    text = _round_trip(models.UNet2(), (3, 32, 32))
    assert "block Up:\n    input x1, x2\n" in text and "Up(x2=x2) | Up(x2=x1)" in text


def test_residual_iadd(one_thread):
    """`out += identity` is an `add:` merge with an identity branch; three equal blocks fold into `x3`."""
    text = _round_trip(models.ResNetLike(), (3, 16, 16))
    assert "add:" in text and "identity" in text and "blocks: Residual() x3" in text


def test_unsupported_op_is_reported_precisely():
    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(models.Outer().eval(), input=(3, 16, 16))
    message = str(e.value)
    assert "module `head` (decompile_models.Scaled)" in message
    assert "decompile_models.py:" in message and "`return self.conv(x) * 0.5`" in message
    assert "arithmetic with a number" in message
    assert "nor can it be declared as an external module: its constructor's argument `channels` cannot be read" in message


class _Run:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


def test_modules_outside_the_catalog_become_external_modules(one_thread):
    """nn.Hardtanh and a user's module whose forward scales by a number: `module ... = ... -> same`, with the reason in
    a comment; the file loads the weights strictly (the modules imported from tests/)."""
    from cnndsl.decompile.verify import verify

    model = models.Clipped().eval()
    text = cnndsl.decompile(model, input=(3, 8, 8))
    assert "module Hardtanh = torch.nn.Hardtanh(min_val=-2.0, max_val=2.0) -> same" in text
    assert "module Gate = decompile_models.Gate(channels=8, scale=0.5) -> same" in text
    assert "# cannot describe it: decompile_models.py:" in text and "arithmetic with a number" in text
    assert "conv 8 k3 p1 as conv | Hardtanh() as clip | Gate() as gate" in text
    ok, report = verify(model, text, (3, 8, 8), import_root=ROOT / "tests")
    assert ok, report


def _cli(*args):
    """`cnndsl decompile ARGS` in this process (a fresh one would spend seconds importing torch)."""
    import contextlib
    import io
    import os

    from cnndsl.cli import main

    err = io.StringIO()
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["decompile", *args])
    finally:
        os.chdir(here)
    return _Run(code, err.getvalue())


def test_cli_verify_and_file_target(tmp_path):
    out = tmp_path / "lenet.cnn"
    run = _cli(f"{ROOT / 'tests' / 'decompile_models.py'}:LeNet", "--input", "1x28x28", "--arg", "num_classes=7",
               "-o", str(out), "--verify")
    assert run.returncode == 0, run.stderr
    assert "verified:" in run.stderr
    text = out.read_text()
    assert "#   cnndsl decompile " in text and "--arg num_classes=7" in text and "linear 7 as fc3" in text


def test_cli_reports_without_traceback():
    run = _cli(f"{ROOT / 'tests' / 'decompile_models.py'}:Outer", "--input", "3x16x16")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot decompile module `head`" in run.stderr
    for bad, message in ((["nowhere_at_all:Net"], "cannot import nowhere_at_all"),
                         (["torchvision.models:resnet18", "--arg", "num_classes"], "--arg takes KEY=VALUE"),
                         (["tests/decompile_models.py:Missing"], "has no `Missing`")):
        run = _cli(*bad)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


def _agrees(model, shape):
    from cnndsl.decompile.verify import verify

    text = cnndsl.decompile(model.eval(), input=shape)
    ok, report = verify(model, text, shape)
    assert ok, report
    return text


def test_blocks_with_several_outputs(one_thread):
    """A backbone returning a dict of two maps and a module returning a tuple: calls that name each output
    (`x1, x2 = Features()`); a head taking the dict: a block of two inputs named by the dict's keys."""
    text = _agrees(models.Segmenter(), (3, 16, 16))
    assert "block Features:" in text and "    output x1, x2\n" in text and "x1, x2 = Features() as backbone" in text
    assert "x3, x4 = x1 | Pair() as pair" in text and "block Head:\n    input low, high\n" in text
    assert "Head(high=x2) as classifier" in text and "output x5 as out, x6 as aux" in text


def test_layers_called_on_a_list_are_cat_merges(one_thread):
    """DenseNet's pattern: a layer called on the list of earlier maps, concatenated inside it, is a block that
    returns `cat: identity | ...`, and a dense block a chain of its calls."""
    text = _agrees(models.TinyDenseNet(), (3, 16, 16))
    assert "block DenseLayer:\n    cat:\n        identity\n        bn as norm | relu | conv 4 k3 p1 nobias as conv\n" in text
    assert "DenseLayer() as layer1 | DenseLayer() as layer2 | DenseLayer() as layer3" in text


def test_merges_nest(one_thread):
    """x + cat(a(x), b(x)) and x * gate(x) + x: merges in merges' branches, no named values."""
    text = _agrees(models.Nested(), (8, 16, 16))
    assert "    add:\n        cat:\n            conv 4 k1 as a\n            conv 4 k3 p1 as b\n        identity\n" in text
    assert "add:\n        mul:\n            identity\n            conv 8 k1 as gate | sigmoid\n        identity" in text
    assert " = " not in text.split("network Nested:")[1]


def test_training_only_branch_is_reported_where_it_is_called():
    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(models.WithAux().eval(), input=(3, 8, 8))
    message = str(e.value)
    assert "decompile_models.py:" in message and "`return x, self.aux(x)`" in message
    assert "module `aux` (torch.nn.modules.conv.Conv2d)" in message and "runs only in training" in message


def test_an_input_the_model_refuses_is_reported():
    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(models.Nested().eval(), input=(3, 8, 8))
    assert "its forward fails on a random input of size 3x8x8" in str(e.value) and "decompile_models.py:" in str(e.value)


def test_tuple_parameter_beside_numbers(one_thread):
    """Instances with kernel 3 and (1, 7): a tuple parameter, a number standing in each place (`k=3`)."""
    from torch import nn

    class Conv(nn.Module):
        def __init__(self, cin, cout, k, p):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, k, padding=p)

        def forward(self, x):
            return self.conv(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = Conv(3, 8, 1, 0)
            self.b = Conv(8, 8, (1, 7), (0, 3))
            self.c = Conv(8, 8, 3, 1)

        def forward(self, x):
            return self.c(self.b(self.a(x)))

    text = _agrees(Net(), (3, 16, 16))
    assert "block Conv(k=1x1, padding=(0, 0)):" in text
    assert "Conv() as a | Conv(k=1x7, padding=(0, 3)) as b | Conv(k=3, padding=1) as c" in text


def test_a_sequential_run_stage_by_stage_keeps_its_taps(one_thread):
    """A forward that calls an nn.Sequential's stages one by one and keeps results between them (SSD's feature
    extractors): a named group with taps, never the whole group in their place."""
    from torch import nn

    class Taps(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                          nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()), nn.Conv2d(8, 8, 1))
            self.extra = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            out = []
            for block in self.features:
                x = block(x)
                out.append(x)
            return out[1], out[2], self.extra(x)

    text = _agrees(Taps(), (3, 16, 16))
    assert "    features:\n        x1 = conv 8 k3 p1 | relu\n        x2 = (conv 8 k3 s2 p1 | relu)\n        conv 8 k1\n" in text
    assert "output x1, x2, x3" in text


def test_a_value_inside_a_stage_is_reported_not_changed(one_thread):
    """A value kept from inside a stage of a group (not the result of a stage) has no tap: reported."""
    from torch import nn

    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()), nn.Conv2d(8, 8, 1))

        def forward(self, x):
            y = self.features[0][0](x)
            return self.features[1](self.features[0][1](y)) + y

    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(Inner().eval(), input=(3, 16, 16))
    message = str(e.value)
    assert "test_decompile_user.py:" in message and "`y = self.features[0][0](x)`" in message
    assert "keeps the result of `features.0.0` inside the nn.Sequential `features`" in message


def test_a_module_with_weights_passed_names_is_reported(one_thread):
    """RetinaNet's LastLevelP6P7 pattern: a module with weights called with lists of tensors and of names."""
    from torch import nn

    class Extra(nn.Module):
        def __init__(self):
            super().__init__()
            self.p6 = nn.Conv2d(8, 8, 3, stride=2, padding=1)

        def forward(self, results, names):
            return results + [self.p6(results[-1])], names + ["p6"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.extra = Extra()

        def forward(self, x):
            results, names = self.extra([self.conv(x)], ["0"])
            return dict(zip(names, results))

    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(Net().eval(), input=(3, 16, 16))
    message = str(e.value)
    assert "test_decompile_user.py:" in message and "`results, names = self.extra([self.conv(x)], [\"0\"])`" in message
    assert "module `extra` (test_decompile_user." in message and "called with lists that hold more than tensors" in message
