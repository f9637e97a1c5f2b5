"""Decompiled torchvision CNNs: decompile -> cnndsl.load -> the original's state_dict loaded with strict=True ->
equal eval outputs; the structure bounds of issue 14 (one bottleneck block, resnet50 in at most 26 lines,
mobilenet_v2 in at most 44)."""

from __future__ import annotations

import contextlib

import pytest

import cnndsl

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

FAST = ["resnet18", "resnet34", "resnet50", "vgg11", "vgg11_bn", "vgg16", "alexnet", "squeezenet1_0", "squeezenet1_1",
        "mobilenet_v2"]
SLOW = ["resnet101", "resnet152", "vgg13", "vgg13_bn", "vgg16_bn", "vgg19", "vgg19_bn"]
_CACHE: dict[str, tuple] = {}
_INITS = ("normal_", "uniform_", "constant_", "zeros_", "ones_", "kaiming_normal_", "kaiming_uniform_", "xavier_uniform_",
          "xavier_normal_", "trunc_normal_")


@contextlib.contextmanager
def no_init():
    """Layers made without their initialisation (most of the time of building VGG): the test fills the original's
    weights once, and the decompiled network receives them by load_state_dict."""
    from torch import nn

    saved = {name: getattr(nn.init, name) for name in _INITS}
    resets = {cls: cls.reset_parameters for cls in (nn.Linear, nn.modules.conv._ConvNd)}
    try:
        for name in _INITS:
            setattr(nn.init, name, lambda tensor, *a, **k: tensor)
        for cls in resets:
            cls.reset_parameters = lambda self: None
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)
        for cls, fn in resets.items():
            cls.reset_parameters = fn


def _decompiled(name: str):
    if name not in _CACHE:
        generator = torch.Generator().manual_seed(0)
        with no_init():
            model = getattr(torchvision.models, name)(weights=None).eval()
        with torch.no_grad():
            for p in model.parameters():
                bound = 1 / max(1, p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1
                p.uniform_(-bound, bound, generator=generator)
        shape = (3, 64, 64) if not name.startswith("alexnet") else (3, 96, 96)
        _CACHE[name] = (model, cnndsl.decompile(model, input=shape), shape)
    return _CACHE[name]


def code_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _round_trip(name: str) -> None:
    model, text, shape = _decompiled(name)
    with no_init():
        net = cnndsl.load(text).eval()
    net.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (net(x) - model(x)).abs().max().item()
    assert diff <= 1e-4, (name, diff)


@pytest.mark.parametrize("name", FAST)
def test_round_trip(name, one_thread):
    _round_trip(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_round_trip_large(name, one_thread):
    _round_trip(name)


def test_resnet50_is_one_bottleneck_block(one_thread):
    _, text, _ = _decompiled("resnet50")
    assert text.count("\nblock ") == 1 and "block Bottleneck(" in text
    assert code_lines(text) <= 26
    assert "layer3: Bottleneck(256, stride=(2 if i == 0 else 1)) x(6, i)" in text


def test_mobilenet_v2_is_short(one_thread):
    _, text, _ = _decompiled("mobilenet_v2")
    assert code_lines(text) <= 44
    assert "add if " in text and "InvertedResidual(" in text


def test_header_and_format(one_thread):
    from cnndsl.tools.fmt import format_source

    _, text, _ = _decompiled("resnet18")
    assert text.startswith("# ResNet: decompiled from torchvision.models.resnet.ResNet")
    assert "initialisation is not" in text
    assert format_source(text) == text


def test_readme_after_is_what_decompile_writes(one_thread):
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("block Bottleneck(planes, stride=1):\n    add:")
    shown = readme[start:readme.index("```", start)].strip()
    _, text, _ = _decompiled("resnet50")
    assert shown in text
