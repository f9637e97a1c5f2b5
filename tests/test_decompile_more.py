"""Other torchvision CNNs (the slow profile: a few seconds each) decompile to files that load their weights strictly
and agree with them, or get a located report that says why; and the splices and learned scales they need."""

from __future__ import annotations

import pytest

import cnndsl

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from cnndsl.decompile.verify import verify

AGREE = {"mobilenet_v3_small": (3, 64, 64), "efficientnet_b0": (3, 64, 64), "regnet_y_400mf": (3, 64, 64),
         "resnext50_32x4d": (3, 64, 64), "mnasnet0_5": (3, 64, 64), "convnext_tiny": (3, 64, 64),
         "wide_resnet50_2": (3, 64, 64), "shufflenet_v2_x0_5": (3, 64, 64)}
REPORTED = {
    "googlenet": ("aux1.conv.conv", "never calls it"),  # auxiliary heads run in training only
    "densenet121": ("features.denseblock1.denselayer1", "called with arguments besides tensors"),  # a list of tensors
}


def _model(name):
    return getattr(torchvision.models, name)(weights=None).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(AGREE))
def test_other_torchvision_cnns_agree(name, one_thread):
    model = _model(name)
    text = cnndsl.decompile(model, input=AGREE[name])
    ok, report = verify(model, text, AGREE[name])
    assert ok, report


def test_video_cnn_agrees(one_thread):
    model = torchvision.models.video.r3d_18(weights=None).eval()
    text = cnndsl.decompile(model, input=(3, 4, 32, 32))
    assert "block BasicBlock(" in text and "x(2, i)" in text
    ok, report = verify(model, text, (3, 4, 32, 32))
    assert ok, report


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REPORTED))
def test_other_torchvision_cnns_reported(name, one_thread):
    path, why = REPORTED[name]
    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(_model(name), input=(3, 64, 64))
    assert f"module `{path}`" in str(e.value) and why in str(e.value)


def test_layerscale_and_ln2d():
    """ConvNeXt's block: `self.layer_scale * x` is `layerscale`, torchvision's LayerNorm2d is `ln2d`."""
    from torch import nn
    from torchvision.models.convnext import LayerNorm2d

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.norm = LayerNorm2d(8)
            self.gamma = nn.Parameter(torch.full((8, 1, 1), 1e-6))

        def forward(self, x):
            return self.gamma * self.norm(self.conv(x))

    model = Scale().eval()
    text = cnndsl.decompile(model, input=(3, 8, 8))
    assert "ln2d" in text and "layerscale 1.0e-06 as gamma" in text
    ok, report = verify(model, text, (3, 8, 8))
    assert ok, report


def test_vgg_stages_are_splices(one_thread):
    from test_decompile_torchvision import _decompiled

    _, text, _ = _decompiled("vgg16")
    assert "*(conv 256 k3 p1 | relu inplace) x3" in text and "classifier: *(linear 4096 | relu inplace | dropout) x2" in text


def test_channel_shuffle_and_chunk_are_shuffle_and_split(one_thread):
    """ShuffleNetV2's view/transpose/view is `shuffle 2`, its chunk-and-concatenate a `split 2:` merge."""
    model = torchvision.models.shufflenet_v2_x0_5(weights=None).eval()
    text = cnndsl.decompile(model, input=(3, 32, 32))
    assert "    split 2:\n        identity\n" in text and "shuffle 2" in text
    assert "stage3: InvertedResidual_2() | InvertedResidual() x7" in text
    ok, report = verify(model, text, (3, 32, 32))
    assert ok, report


@pytest.mark.slow
def test_segmentation_fcn_agrees(one_thread):
    """FCN: a backbone returning a dict of one tensor, indexed by its caller; the logits upsampled to the input's
    size (`upsample like=x`) and returned as a dict (`output x1 as out`)."""
    model = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None).eval()
    text = cnndsl.decompile(model, input=(3, 64, 64))
    assert "IntermediateLayerGetter() as backbone" in text and "like=x" in text and "output x1 as out" in text
    ok, report = verify(model, text, (3, 64, 64))
    assert ok, report
