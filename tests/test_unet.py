"""The two U-Nets of examples/: Ronneberger et al.'s unpadded one (skips cropped to the centre) against a U-Net
written here with torch alone, and the padded one, which runs at any input size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import cnndsl

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class _Double(nn.Module):
    def __init__(self, c_in, c):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c_in, c, 3), nn.Conv2d(c, c, 3)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))))


class _Up(nn.Module):
    def __init__(self, c_in, c):
        super().__init__()
        self.convt1, self.conv = nn.ConvTranspose2d(c_in, c, 2, stride=2), _Double(2 * c, c)

    def forward(self, x, skip):
        u = self.convt1(x)
        top, left = (skip.shape[2] - u.shape[2]) // 2, (skip.shape[3] - u.shape[3]) // 2
        s = skip[:, :, top:top + u.shape[2], left:left + u.shape[3]]
        return self.conv(torch.cat([s, u], dim=1))


class PaperUNet(nn.Module):
    """Ronneberger et al. (2015), Figure 1, written with torch alone."""

    def __init__(self, classes=2):
        super().__init__()
        widths = (64, 128, 256, 512, 1024)
        self.downs = nn.ModuleList([_Double(c_in, c) for c_in, c in zip((1, *widths[:-1]), widths)])
        self.ups = nn.ModuleList([_Up(c_in, c) for c_in, c in zip(widths[:0:-1], widths[-2::-1])])
        self.head = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, skip in zip(self.ups, skips[-2::-1]):
            x = up(x, skip)
        return self.head(x)


def test_the_papers_unet_maps_a_572_tile_to_388():
    net = cnndsl.check(EXAMPLES / "unet_original.cnn")
    assert net.input_shape == (1, 572, 572) and net.output_shape == (2, 388, 388)
    assert net.total_params == sum(p.numel() for p in PaperUNet().parameters()) == 31_030_658


def test_the_papers_unet_computes_what_torch_computes():
    """Weights copied in order (the same tensors in the same order); compiled at 572, run at 188, the smallest
    size the unpadded network takes (the crops read the sizes when they run)."""
    torch.manual_seed(0)
    ours, theirs = cnndsl.load(EXAMPLES / "unet_original.cnn", device="cpu").eval(), PaperUNet().eval()
    mine, other = list(ours.state_dict().values()), list(theirs.state_dict().values())
    assert [t.shape for t in mine] == [t.shape for t in other]
    with torch.no_grad():
        for a, b in zip(mine, other):
            b.copy_(a)
        x = torch.randn(1, 1, 188, 188)
        torch.testing.assert_close(ours(x), theirs(x))
    assert ours(x).shape == (1, 2, 4, 4)


@pytest.mark.parametrize("size", [(100, 100), (99, 77), (37, 45), (64, 64)])
def test_the_padded_unet_runs_at_any_input_size(size):
    model = cnndsl.load(EXAMPLES / "unet.cnn", device="cpu").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 2, *size)
    assert cnndsl.check(EXAMPLES / "unet.cnn", input=(3, *size)).output_shape == (2, *size)
