"""examples/resnet50_fpn.cnn against torchvision's detection backbone, resnet_fpn_backbone("resnet50"): every
state_dict key (281) loaded strictly, all five outputs equal in eval mode, at 224x224 and at a size that is not a
multiple of 32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

import cnndsl

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet50_fpn.cnn"


def test_the_resnet50_fpn_backbone_is_torchvisions_weight_for_weight():
    torch.manual_seed(0)
    theirs = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5).eval()
    with torch.no_grad():  # frozen statistics that are not the defaults, so that a mix-up would show
        for name, buffer in theirs.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("running_mean") or name.endswith("bn3.weight"):
                buffer.uniform_(-0.5, 0.5)
    state = theirs.state_dict()
    assert len(state) == 281
    ours = cnndsl.load(EXAMPLE, device="cpu").eval()
    ours.load_state_dict(state, strict=True)
    for size in ((224, 224), (200, 152)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            got, want = ours(x), theirs(x)
        assert list(got) == list(want) == ["0", "1", "2", "3", "pool"]
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-4)
    net = cnndsl.check(EXAMPLE, input=(3, 200, 152))
    assert net.output_keys == ("0", "1", "2", "3", "pool")
    assert [s[1:] for s in net.outputs] == [(50, 38), (25, 19), (13, 10), (7, 5), (4, 3)]
