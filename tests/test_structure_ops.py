"""The ops of the structure issue that torchvision has and torch.nn lacks, against torchvision itself: `frozenbn`
(torchvision.ops.FrozenBatchNorm2d) and `ln2d` (torchvision.models.convnext.LayerNorm2d), each a helper class
that the generated file defines; and flat inputs (`input 100`), given in the file, from Python and on the CLI.
The shape rules of `pad` and `unflatten` are proven against torch by tests/test_differential.py."""

from __future__ import annotations

import ast

import pytest
import torch
from conftest import ROOT
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import FrozenBatchNorm2d

import cnndsl

pytestmark = pytest.mark.usefixtures("one_thread")

FROZEN = """network Frozen:
    input 3x12x12
    conv 16 k3 p1 nobias | frozenbn | relu
    conv 8 k3 s2 nobias | frozenbn eps=0.001
"""

LN2D = """network Norms:
    input 3x12x12
    conv 16 k3 p1 | ln2d eps=1e-6
    conv 8 k3 s2 | ln2d bias=false | ln
"""


def _randomised(module: nn.Module) -> nn.Module:
    """Every parameter and buffer random (variances positive), so that equal outputs mean equal arithmetic."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5 if name.endswith("running_var") else torch.randn(t.shape, generator=gen))
    return module


def test_frozenbn_is_torchvisions_frozen_batch_norm():
    theirs = _randomised(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), FrozenBatchNorm2d(16), nn.ReLU(),
                                       nn.Conv2d(16, 8, 3, stride=2, bias=False), FrozenBatchNorm2d(8, eps=0.001)))
    ours = cnndsl.load(FROZEN, device="cpu")
    names = ["conv1", "bn1", "relu1", "conv2", "bn2"]  # named as batch norms, as torchvision's backbones name them
    keys = {f"{names[int(k.split('.')[0])]}.{k.split('.', 1)[1]}": v for k, v in theirs.state_dict().items()}
    assert set(ours.state_dict()) == set(keys)
    assert not any("num_batches_tracked" in k for k in keys)
    ours.load_state_dict(keys, strict=True)
    assert sum(p.numel() for p in ours.parameters()) == cnndsl.check(FROZEN).total_params == sum(
        p.numel() for p in theirs.parameters())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ours.named_buffers() if n.startswith("bn")]
    x = torch.randn(2, 3, 12, 12)
    for mode in (True, False):  # frozen: the same in training and in eval
        ours.train(mode), theirs.train(mode)
        torch.testing.assert_close(ours(x), theirs(x))
    assert repr(ours.bn2) == repr(theirs[4]) == "FrozenBatchNorm2d(8, eps=0.001)"


def test_frozenbn_loads_a_batch_norms_state_dict_as_torchvision_does():
    """A BatchNorm2d's keys (num_batches_tracked included) load strictly, as into torchvision's class."""
    bn = _randomised(nn.BatchNorm2d(4)).eval()
    state = bn.state_dict()
    assert "num_batches_tracked" in state
    ours = cnndsl.load("network F:\n    input 4x5x5\n    frozenbn\n", device="cpu")
    theirs = FrozenBatchNorm2d(4)
    ours.load_state_dict({f"bn1.{k}": v for k, v in state.items()}, strict=True)
    theirs.load_state_dict(dict(state), strict=True)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours(x), bn(x))


def test_ln2d_is_torchvisions_layer_norm_2d():
    theirs = _randomised(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), LayerNorm2d(16, eps=1e-6), nn.Conv2d(16, 8, 3, stride=2),
                                       LayerNorm2d(8, bias=False), nn.LayerNorm(5)))
    ours = cnndsl.load(LN2D, device="cpu")
    names = ["conv1", "ln1", "conv2", "ln2", "ln3"]
    keys = {f"{names[int(k.split('.')[0])]}.{k.split('.', 1)[1]}": v for k, v in theirs.state_dict().items()}
    assert set(ours.state_dict()) == set(keys)
    assert [k for k in keys if k.startswith("ln1.")] == ["ln1.weight", "ln1.bias"]  # one module, its own keys
    ours.load_state_dict(keys, strict=True)
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs)
    (g_ours,) = torch.autograd.grad(y_ours.square().sum(), x)
    (g_theirs,) = torch.autograd.grad(y_theirs.square().sum(), x)
    torch.testing.assert_close(g_ours, g_theirs)
    assert type(ours.ln3) is nn.LayerNorm and ours.ln3.normalized_shape == (5,)  # `ln` on (N, C, H, W): the last axis, as torch's
    assert cnndsl.check(LN2D).total_params == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("source", [FROZEN, LN2D])
def test_the_helpers_keep_the_file_importing_only_torch(source):
    code = cnndsl.compile(source)
    imported = {getattr(n, "module", None) or n.names[0].name for n in ast.walk(ast.parse(code)) if isinstance(n, (ast.Import, ast.ImportFrom))}
    assert imported == {"torch"}


def test_flat_inputs_from_the_file_python_and_the_cli(tmp_path):
    src = "network G:\n    input 100\n    linear 64 | relu | linear 3136 | unflatten 64x7x7 | convt 1 k2 s2 | sigmoid\n"
    assert cnndsl.check(src).output_shape == (1, 14, 14)
    bare = "linear 64 | relu | linear 16 | unflatten 1x4x4\n"
    for given in ("100", (100,), [100]):
        net = cnndsl.check(bare, input=given)
        assert net.input_shape == (100,) and net.output_shape == (1, 4, 4)
    model = cnndsl.load(src, device="cpu")
    assert tuple(model(torch.randn(3, 100)).shape) == (3, 1, 14, 14)
    path = tmp_path / "g.cnn"
    path.write_text(bare)
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(path), "--input", "100"], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(N, 100)" in proc.stdout and "(N, 1, 4, 4)" in proc.stdout


@pytest.mark.parametrize("name", ["Generator", "ConvNeXtStem"])
def test_the_language_references_examples_of_these_forms_compile(name):
    text = (ROOT / "docs" / "LANGUAGE.md").read_text(encoding="utf-8")
    block = text[text.index(f"  network {name}"):]
    block = block[: block.index("  ```")]
    source = "\n".join(line[2:] for line in block.splitlines()) + "\n"
    model = cnndsl.load(source, device="cpu")
    net = cnndsl.check(source)
    assert tuple(model(torch.randn(2, *net.input_shape)).shape[1:]) == net.output_shape
