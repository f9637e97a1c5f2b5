"""Ports of torchvision models with unusual module trees, written by a new user from the documentation only
(tests/ports/: kept out of examples/, whose every-example tests would run them at full size): inception_v3
(branches that split again, AuxLogits), densenet121 (named stages of features, dense blocks that concatenate
every earlier feature), googlenet (branches that are numbered nn.Sequentials, two auxiliary heads) and
shufflenet_v2 (split, shuffle). Each loads torchvision's state_dict with strict=True and agrees with torchvision
in eval mode; the larger ones in the slow profile."""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import ROOT

import cnndsl

TOL = 1e-4
PORTS = ROOT / "tests" / "ports"


def _randomise_norms(model):
    """Fresh batch norms are the identity in eval mode: give them statistics and affine terms that matter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model


def _compare(tv, ours, shape, batch=1):
    result = ours.load_state_dict(tv.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    tv.eval(), ours.eval()
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape
    diff = (got - expected).abs().max().item()
    assert diff <= TOL, diff
    return diff


def _inception(aux_logits):
    torch.manual_seed(0)
    return _randomise_norms(torchvision.models.inception_v3(
        weights=None, aux_logits=aux_logits, init_weights=False, transform_input=False))


@pytest.mark.slow
def test_inception_v3_with_aux_logits_at_299():
    tv = _inception(aux_logits=True)
    ours = cnndsl.load(PORTS / "inception_v3.cnn", aux_logits=True)
    # the children that hold state, in torchvision's order (the generated file also has modules for what
    # torchvision calls as functions: torch.flatten, F.relu, F.avg_pool2d)
    stateful = lambda m: [n for n, c in m.named_children() if next(iter(c.state_dict()), None) is not None]
    assert stateful(ours) == stateful(tv)
    _compare(tv, ours, (3, 299, 299))
    # the aux head runs but its result is dropped (torchvision returns it in training only): its own output
    f = torch.randn(2, 768, 17, 17)
    with torch.no_grad():
        assert (ours.AuxLogits(f) - tv.AuxLogits(f)).abs().max().item() <= TOL


def test_inception_v3_without_aux_logits_at_160():
    tv = _inception(aux_logits=False)
    ours = cnndsl.load(PORTS / "inception_v3.cnn", input=(3, 160, 160))
    _compare(tv, ours, (3, 160, 160))


def test_inception_v3_with_aux_logits_refuses_a_small_input_where_the_aux_head_stands():
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(PORTS / "inception_v3.cnn", input=(3, 160, 160), aux_logits=True)
    assert "kernel (5) is larger than the padded input (2)" in str(e.value)


@pytest.mark.parametrize("name, params", [
    pytest.param("densenet121", {}, marks=pytest.mark.slow),
    pytest.param("densenet161", {"growth_rate": 48, "num_init_features": 96, "block_config": (6, 12, 36, 24)},
                 marks=pytest.mark.slow),
])
def test_densenet(name, params):
    torch.manual_seed(0)
    tv = _randomise_norms(getattr(torchvision.models, name)(weights=None))
    ours = cnndsl.load(PORTS / "densenet121.cnn", input=(3, 32, 32), **params)
    assert [n for n, _ in ours.features.named_children()] == [n for n, _ in tv.features.named_children()]
    assert [n for n, _ in ours.features.denseblock3.named_children()] == [
        n for n, _ in tv.features.denseblock3.named_children()]
    _compare(tv, ours, (3, 32, 32))


@pytest.mark.parametrize("aux_logits", [pytest.param(True, marks=pytest.mark.slow), False])
def test_googlenet_at_64(aux_logits):
    torch.manual_seed(0)
    tv = _randomise_norms(torchvision.models.googlenet(weights=None, aux_logits=aux_logits, init_weights=False,
                                                       transform_input=False))
    ours = cnndsl.load(PORTS / "googlenet.cnn", input=(3, 64, 64), aux_logits=aux_logits)
    assert [n for n, _ in ours.inception3a.branch2.named_children()] == ["0", "1"]  # nn.Sequential, as torchvision's
    _compare(tv, ours, (3, 64, 64), batch=2)
    if aux_logits:
        f = torch.randn(2, 512, 4, 4)
        with torch.no_grad():
            assert (ours.aux1.eval()(f) - tv.aux1(f)).abs().max().item() <= TOL


@pytest.mark.parametrize("name, params", [
    ("shufflenet_v2_x1_0", {}),
    pytest.param("shufflenet_v2_x0_5", {"out_channels": (24, 48, 96, 192, 1024)}, marks=pytest.mark.slow),
])
def test_shufflenet_v2_at_64(name, params):
    torch.manual_seed(0)
    tv = _randomise_norms(getattr(torchvision.models, name)(weights=None))
    ours = cnndsl.load(PORTS / "shufflenet_v2.cnn", input=(3, 64, 64), **params)
    _compare(tv, ours, (3, 64, 64), batch=2)


def test_a_number_for_a_tuple_parameter_stands_in_each_place():
    """Found porting Inception: torchvision passes kernel_size=3 and (1, 7) through the same argument."""
    src = ("block B(out, k=(1, 1), p=(0, 0)):\n    conv out k=k p=p\n\nnetwork N:\n    input 3x16x16\n"
           "    B(8, k=3, p=1) | B(8, k=(1, 7), p=(0, 3)) | B(8, k=(3, 3), p=(1, 1))\n")
    net = cnndsl.check(src)
    kernels = [dict(layer.kwargs)["kernel_size"] for layer in net.layers]
    assert [tuple(int(v.v) for v in k) for k in kernels] == [(3, 3), (1, 7), (3, 3)]
    with pytest.raises(cnndsl.CheckError, match=r"`out` of `B` takes a number \(its default is one\), found a tuple"):
        cnndsl.check(src.replace("block B(out,", "block B(out=8,").replace("B(8, k=3, p=1)", "B((8, 8), k=3, p=1)"))
