"""External modules (`module Name(params) = package.module.Class(args) -> rule`, docs/LANGUAGE.md): compiling
never imports them, the generated file imports them, `cnndsl.load` imports them from the .cnn file's folder and
holds each to its declared shape, with located diagnostics; examples/custom_module.cnn trains."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import black
import pytest
from conftest import EXAMPLES

import cnndsl

LAYERS = '''
import torch
from torch import nn


class Shrink(nn.Module):
    """Halves the spatial sizes (so a declaration that says `same` is wrong)."""

    def __init__(self, channels):
        super().__init__()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(x)


class Mix(nn.Module):
    def __init__(self, channels, out, bias=True, mode="sum"):
        super().__init__()
        self.conv = nn.Conv2d(channels, out, 1, bias=bias)
        self.mode = mode

    def forward(self, x):
        return self.conv(x)
'''


def _write(folder, **files):
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def test_build_never_imports_the_module(tmp_path):
    """A module whose import raises still builds, checks, summarises and draws: only load imports it."""
    _write(tmp_path, **{"boom.py": 'raise RuntimeError("imported at compile time")\n', "net.cnn": """\
        module Boom(k=2) = boom.Boom(in, k, name="x") -> same

        network Net:
            input 3x16x16
            conv 8 k3 p1 | Boom(k=3)
        """})
    for command in (["build", "net.cnn", "-o", "-"], ["check", "net.cnn"], ["summary", "net.cnn"], ["graph", "net.cnn", "-o", "-"]):
        run = subprocess.run([sys.executable, "-m", "cnndsl", *command], cwd=tmp_path, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert "imported at compile time" not in run.stderr
    code = cnndsl.compile(tmp_path / "net.cnn")
    assert "from boom import Boom\n" in code and 'self.boom1 = Boom(8, 3, name="x")' in code
    with pytest.raises(cnndsl.CnnDslError) as e:
        cnndsl.load(tmp_path / "net.cnn", device="cpu")
    text = str(e.value)
    assert "net.cnn:1:20: error: cannot import `boom.Boom`: importing `boom` failed: RuntimeError: imported at compile time" in text
    assert " 1 | module Boom(k=2) = boom.Boom(in, k, name=\"x\") -> same" in text


def test_a_wrong_declared_shape_is_caught_at_load_at_the_declaring_line(tmp_path):
    _write(tmp_path, **{"layers.py": LAYERS, "net.cnn": """\
        module Shrink = layers.Shrink(in) -> same

        network Net:
            input 3x16x16
            conv 8 k3 p1
            Shrink() as shrink
        """})
    cnndsl.check(tmp_path / "net.cnn")  # the checker trusts the rule
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.load(tmp_path / "net.cnn", device="cpu")
    (d,) = e.value.diagnostics
    assert (d.line, d.col) == (1, 38)
    assert d.file.endswith("net.cnn")
    assert d.message == ("`Shrink` (layer `shrink`, layers.Shrink) was declared to keep the shape (N, 8, 16, 16), but "
                         "returns (N, 8, 8, 8)")
    assert str(e.value).splitlines()[1:3] == [" 1 | module Shrink = layers.Shrink(in) -> same",
                                               "   |                                      ^^^^"]
    # the right rule loads, and the module keeps its training mode after the dry run
    (tmp_path / "net.cnn").write_text((tmp_path / "net.cnn").read_text().replace("-> same", "-> (in, shape[1]//2, shape[2]//2)"))
    model = cnndsl.load(tmp_path / "net.cnn", device="cpu")
    assert model.training and cnndsl.check(tmp_path / "net.cnn").output_shape == (8, 8, 8)


def test_import_errors_are_located_with_a_hint(tmp_path):
    _write(tmp_path, **{"layers.py": LAYERS, "net.cnn": """\
        module A = nosuchpackage.Thing(in) -> same
        module B = layers.Shrinc(in) -> same
        module C = layers.torch(in) -> same

        network Net:
            input 3x16x16
            A() | B() | C()
        """})
    cases = [("A() | ", "net.cnn:2:12: error: cannot import `layers.Shrinc`: the module `layers` has no `Shrinc`",
              "hint: did you mean `Shrink`?"),
             ("A() | B() | ", "net.cnn:3:12: error: `layers.torch` is not an nn.Module class", None),
             ("", "net.cnn:1:12: error: cannot import `nosuchpackage.Thing`: there is no module `nosuchpackage`",
              "hint: a module of your own is a file nosuchpackage.py (or a folder nosuchpackage/) beside the .cnn file")]
    source = (tmp_path / "net.cnn").read_text()
    for drop, message, hint in cases:
        (tmp_path / "net.cnn").write_text(source.replace("    A() | B() | C()", "    " + "A() | B() | C()".replace(drop, "", 1)))
        with pytest.raises(cnndsl.CheckError) as e:
            cnndsl.load(tmp_path / "net.cnn", device="cpu")
        assert message in str(e.value)
        if hint:
            assert hint in str(e.value)


def test_constructor_and_forward_failures_are_located(tmp_path):
    _write(tmp_path, **{"layers.py": LAYERS, "net.cnn": """\
        module Mix(out) = layers.Mix(in, out, 1, "sum", 5) -> out

        network Net:
            input 3x16x16
            Mix(8)
        """})
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.load(tmp_path / "net.cnn", device="cpu")
    assert "net.cnn:1:19: error: `Mix` could not be made (layer `mix1`, layers.Mix): TypeError:" in str(e.value)


def test_calls_in_blocks_groups_merges_and_repetitions_load_with_their_values(tmp_path):
    """Arguments are evaluated in the caller's terms: a block's class passes its own parameters on."""
    _write(tmp_path, **{"layers.py": LAYERS, "net.cnn": """\
        module Mix(out, mode="sum") = layers.Mix(in, out, bias=false, mode=mode) -> out

        block Up(width):
            add:
                Mix(width)
                conv width k1
            Mix(width * 2) as widen

        network Net(c=4):
            input 3x8x8
            stem: Mix(c) | relu | Mix(c) x2
            Up(c) | Up(c * 2)
            cat:
                Mix(6, mode="max")
                identity
        """})
    code = cnndsl.compile(tmp_path / "net.cnn")
    assert black.format_str(code, mode=black.Mode()) == code
    assert "self.mix1 = Mix(in_channels, width, bias=False, mode=\"sum\")" in code
    assert "self.widen = Mix(width, width * 2, bias=False, mode=\"sum\")" in code
    assert "Mix(3, c, bias=False, mode=\"sum\")" in code
    net = cnndsl.check(tmp_path / "net.cnn")
    assert net.output_shape == (6 + 16, 8, 8)  # c=4: the stem 4, Up(4) 8, Up(8) 16; then 6 more
    model = cnndsl.load(tmp_path / "net.cnn", device="cpu", c=5)
    import torch

    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 6 + 20, 8, 8)


def test_class_names_give_way(tmp_path):
    """An imported class whose name the generated module uses already is imported under another name."""
    _write(tmp_path, **{"net.cnn": """\
        module A = torchvision.ops.Permute((0, 1, 2, 3)) -> same
        module B = layers.Permute(in) -> same
        module C = other.Net(in) -> same

        network Net:
            input 3x8x8
            A() | B() | C()
        """})
    code = cnndsl.compile(tmp_path / "net.cnn")
    assert black.format_str(code, mode=black.Mode()) == code
    assert "from layers import Permute as Permute_2\n" in code and "from other import Net as Net_2\n" in code
    assert "from torchvision.ops import Permute\n" in code
    assert "self.a1 = Permute((0, 1, 2, 3))" in code and "self.b1 = Permute_2(3)" in code and "self.c1 = Net_2(3)" in code
    # a block and a parameter of the name: the block's class and the import give way to the parameter, in that order
    code = cnndsl.compile("module A(n) = layers.Mix(in, n) -> same\nmodule B = layers.Attn(in) -> same\n"
                          "block Attn:\n    B()\nnetwork Net(Mix=4):\n    input 3x8x8\n    A(Mix) | Attn()\n")
    assert black.format_str(code, mode=black.Mode()) == code
    assert "from layers import Attn, Mix as Mix_2\n" in code and "class Attn_2(nn.Module):" in code
    assert "self.a1 = Mix_2(3, Mix)" in code and "self.attn1 = Attn_2(3)" in code and "self.b1 = Attn(in_channels)" in code


def test_source_text_imports_from_the_import_root(tmp_path, monkeypatch):
    _write(tmp_path, **{"layers.py": LAYERS})
    text = "module Mix(out) = layers.Mix(in, out) -> out\nnetwork Net:\n    input 3x8x8\n    Mix(4)\n"
    model = cnndsl.load(text, device="cpu", import_root=tmp_path)
    assert sum(p.numel() for p in model.parameters()) == 3 * 4 + 4
    monkeypatch.chdir(tmp_path)  # without a root: the working directory
    assert type(cnndsl.load(text, device="cpu")).__name__ == "Net"


def test_summary_and_table_say_what_is_unknown():
    from cnndsl.tools.summary import render, summarize

    net = cnndsl.check(EXAMPLES / "custom_module.cnn")
    assert net.total_params is None
    assert "total parameters: 0 besides the external modules' (known only once loaded)" in net.table()
    summary = summarize(net)
    attn = next(layer for layer in summary.layers if layer.name == "attn")
    assert attn.external and attn.params is None and attn.macs is None and attn.receptive_field is None
    assert "total parameters:     ? (0 besides the external modules', which are known only once loaded)" in render(summary)


def test_custom_module_example_trains():
    """examples/custom_module.cnn: torchvision's modules and two of examples/custom_layers.py, loaded and trained."""
    import torch
    torch.manual_seed(0)  # the initial weights too: the loss's fall is then the same on every run
    model = cnndsl.load(EXAMPLES / "custom_module.cnn", device="cpu")
    assert [type(m).__name__ for m in (model.features[0].convnormact1, model.features[0].se1, model.attn, model.head)] == [
        "Conv2dNormActivation", "SqueezeExcitation", "SelfAttention", "AttentionPool"]
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert model.attn.gamma.grad is not None


def test_the_generated_example_is_black_stable_and_imports_its_modules():
    code = cnndsl.compile(EXAMPLES / "custom_module.cnn")
    assert black.format_str(code, mode=black.Mode()) == code
    assert "from custom_layers import AttentionPool, SelfAttention\n" in code
    assert "from torchvision.ops import Conv2dNormActivation, SqueezeExcitation\n" in code
