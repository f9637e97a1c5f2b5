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
    "googlenet": ("aux1", "googlenet.py:", "runs only in training"),  # auxiliary heads run in training only
    "inception_v3": ("AuxLogits", "inception.py:", "runs only in training"),
}
# the models' own arguments, where the defaults differ from what is decompiled
_KWARGS = {"googlenet_noaux": ("googlenet", {"aux_logits": False, "init_weights": False}),
           "inception_v3_noaux": ("inception_v3", {"aux_logits": False, "init_weights": False}),
           "googlenet": ("googlenet", {"init_weights": False}), "inception_v3": ("inception_v3", {"init_weights": False})}
MORE = {"densenet121": (3, 64, 64), "googlenet_noaux": (3, 64, 64), "inception_v3_noaux": (3, 80, 80),
        "efficientnet_v2_s": (3, 64, 64), "mobilenet_v3_large": (3, 64, 64)}


def _model(name):
    base, kwargs = _KWARGS.get(name, (name, {}))
    return getattr(torchvision.models, base)(weights=None, **kwargs).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(AGREE) + sorted(MORE))
def test_other_torchvision_cnns_agree(name, one_thread):
    model = _model(name)
    shape = AGREE.get(name) or MORE[name]
    text = cnndsl.decompile(model, input=shape)
    ok, report = verify(model, text, shape)
    assert ok, report


@pytest.mark.slow
def test_densenet_is_short(one_thread):
    """DenseNet-121: each dense layer a block returning `cat: identity | ...`, a dense block `DenseLayer() x(n)`."""
    text = cnndsl.decompile(_model("densenet121"), input=(3, 64, 64))
    assert "block DenseBlock(num_layers):\n    DenseLayer() x(num_layers)\n" in text
    assert "DenseBlock(24) as denseblock3" in text
    assert sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#")) <= 32


@pytest.mark.slow
def test_googlenet_inception_blocks_take_the_constructors_channels(one_thread):
    text = cnndsl.decompile(_model("googlenet_noaux"), input=(3, 64, 64))
    assert "block Inception(ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):" in text
    assert "Inception(64, 96, 128, 16, 32, 32) as inception3a" in text


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_large", "deeplabv3_resnet50"])
def test_segmentation_with_several_outputs_agrees(name, one_thread):
    """LRASPP: a backbone returning two maps to a head that reads them by key; DeepLabV3: ASPP's pooling branch, an
    nn.Sequential with a forward of its own (its modules keyed "1", "2")."""
    model = getattr(torchvision.models.segmentation, name)(weights=None, weights_backbone=None).eval()
    text = cnndsl.decompile(model, input=(3, 64, 64))
    ok, report = verify(model, text, (3, 64, 64))
    assert ok, report


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_detection_backbones_with_fpn_agree(backbone, one_thread):
    """torchvision's detection backbones: IntermediateLayerGetter's maps into the FeaturePyramidNetwork (a dict in,
    five maps out, LastLevelMaxPool inlined)."""
    from torchvision.models.detection import backbone_utils

    if backbone.startswith("resnet"):
        model = backbone_utils.resnet_fpn_backbone(backbone_name=backbone, weights=None, trainable_layers=3)
    else:
        model = backbone_utils.mobilenet_backbone(backbone_name=backbone, weights=None, fpn=True, trainable_layers=3)
    model = model.eval()
    text = cnndsl.decompile(model, input=(3, 64, 64))
    assert "= IntermediateLayerGetter() as body" in text and "output x" in text
    ok, report = verify(model, text, (3, 64, 64))
    assert ok, report


def test_video_r2plus1d_paddings_with_zeros(one_thread):
    """R(2+1)D's (0, 3, 3) paddings are `p=(0, 3, 3)`, its mixed convolutions one block."""
    model = torchvision.models.video.r2plus1d_18(weights=None).eval()
    text = cnndsl.decompile(model, input=(3, 2, 16, 16))
    assert "p=(0, 3, 3)" in text
    ok, report = verify(model, text, (3, 2, 16, 16))
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
    path, where, why = REPORTED[name]
    with pytest.raises(cnndsl.decompile.DecompileError) as e:
        cnndsl.decompile(_model(name), input=(3, 80, 80))
    assert f"module `{path}`" in str(e.value) and where in str(e.value) and why in str(e.value)


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


@pytest.mark.slow
def test_ssdlite_feature_extractor_taps_its_groups(one_thread):
    """SSDLite's extractor calls `features`' two stages one by one and returns both: a named group with taps."""
    from torchvision.models import detection

    model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).backbone.eval()
    text = cnndsl.decompile(model, input=(3, 320, 320))
    assert "    features:\n        x1 = (" in text
    ok, report = verify(model, text, (3, 320, 320))
    assert ok, report
