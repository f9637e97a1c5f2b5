"""Differential tests for every op in the catalog: torch is the oracle.

Each case is a small network and the same pipeline built by hand from torch.nn / torchvision.ops with the
same arguments (never from cnndsl's output). For every case:

- the generated module runs on a random batch (CPU, eval, no_grad) and every layer's observed input and
  output shape (forward hooks on the generated module's children) equals the checker's;
- the hand-built pipeline, run on the same batch, produces the checker's shape at every layer, and, with
  the generated module's (randomised) parameters copied into it, the same values (so options that do not
  change shapes, such as padding_mode, count_include_pad or approximate, are proven to reach torch);
- the checker's parameter count, per layer and in total, equals the hand-built module's, and the
  generated module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import torch
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import DeformConv2d, FrozenBatchNorm2d, StochasticDepth

import cnndsl

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths"),
    pytest.mark.usefixtures("one_thread"),
]


# -- hand-built equivalents of the ops that are not a single torch module ---------------------------


class Permute(nn.Module):
    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class CenterCrop(nn.Module):
    """The centre of the last dimensions, the lower offset where a margin is odd (written here without cnndsl)."""

    def __init__(self, size: tuple[int, ...]):
        super().__init__()
        self.size = size

    def forward(self, x):
        starts = [(have - want) // 2 for have, want in zip(x.shape[-len(self.size):], self.size)]
        index = tuple(slice(s, s + n) for s, n in zip(starts, self.size))
        return x[(..., *index)]


class Scale(nn.Module):
    """Layer scale: x * gamma, gamma a learnable tensor that broadcasts against x."""

    def __init__(self, shape: tuple[int, ...], init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, init))

    def forward(self, x):
        return x * self.gamma


class Deform(nn.Module):
    """mmcv's DeformConv2dPack / ModulatedDeformConv2dPack: an ordinary conv predicts the offsets
    (2*G*kh*kw channels) and, modulated, a sigmoid mask (G*kh*kw more), feeding DeformConv2d."""

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, dilation=1, groups=1, offset_groups=1, bias=True, modulated=False):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.modulated = modulated
        self.offset = nn.Conv2d(c_in, (3 if modulated else 2) * offset_groups * kh * kw, (kh, kw), stride, padding, dilation)
        self.conv = DeformConv2d(c_in, c_out, (kh, kw), stride, padding, dilation, groups, bias)

    def forward(self, x):
        out = self.offset(x)
        if not self.modulated:
            return self.conv(x, out)
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        return self.conv(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask))


# -- cases ------------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    input: str  # CxHxW, written into the network's `input` line
    body: str  # the layers, `|`-separated or one per line
    refs: Callable[[], list[Any]]  # one hand-built module per layer (None for a layer without a module)
    params: dict[str, Any] = field(default_factory=dict)
    header: str = "network T:"

    def source(self) -> str:
        lines = [self.header, f"    input {self.input}"] + [f"    {line}" for line in self.body.split("\n")]
        return "\n".join(lines) + "\n"


CASES: list[Case] = []


def case(id: str, input: str, body: str, refs: Callable[[], list[Any]], **kw) -> None:
    CASES.append(Case(id, input, body, refs, **kw))


# conv: 1d/2d/3d, kernel tuples, stride, padding forms, dilation, groups, bias, padding modes, channel forms
case("conv2d", "3x12x12", "conv 8 k3", lambda: [nn.Conv2d(3, 8, 3)])
case("conv2d_k3x5", "3x12x12", "conv 8 k3x5", lambda: [nn.Conv2d(3, 8, (3, 5))])
case("conv2d_kernel_tuple", "3x12x12", "conv 8 kernel=(3, 5)", lambda: [nn.Conv2d(3, 8, (3, 5))])
case("conv2d_kernel_size_key", "3x12x12", "conv 8 kernel_size=3x1", lambda: [nn.Conv2d(3, 8, (3, 1))])
case("conv2d_s2_p1", "3x13x13", "conv 8 k3 s2 p1", lambda: [nn.Conv2d(3, 8, 3, stride=2, padding=1)])
case("conv2d_stride_tuple", "3x13x13", "conv 8 k3 s1x2", lambda: [nn.Conv2d(3, 8, 3, stride=(1, 2))])
case("conv2d_stride_key", "3x13x13", "conv 8 k3 stride=(2, 3)", lambda: [nn.Conv2d(3, 8, 3, stride=(2, 3))])
case("conv2d_p1x2", "3x12x12", "conv 8 k3 p1x2", lambda: [nn.Conv2d(3, 8, 3, padding=(1, 2))])
case("conv2d_padding_tuple", "3x12x12", "conv 8 k3 padding=(2, 0)", lambda: [nn.Conv2d(3, 8, 3, padding=(2, 0))])
case("conv2d_padding_same", "3x12x12", "conv 8 k3 padding=same", lambda: [nn.Conv2d(3, 8, 3, padding="same")])
case("conv2d_padding_same_even", "3x12x11", "conv 8 k4x2 d2 padding=same", lambda: [nn.Conv2d(3, 8, (4, 2), dilation=2, padding="same")])
case("conv2d_padding_valid", "3x12x12", "conv 8 k3 padding=valid", lambda: [nn.Conv2d(3, 8, 3, padding="valid")])
case("conv2d_d2", "3x12x12", "conv 8 k3 d2", lambda: [nn.Conv2d(3, 8, 3, dilation=2)])
case("conv2d_dilation_tuple", "3x12x12", "conv 8 k3 p2 dilation=(2, 1)", lambda: [nn.Conv2d(3, 8, 3, padding=2, dilation=(2, 1))])
case("conv2d_g4", "8x10x10", "conv 16 k3 g4", lambda: [nn.Conv2d(8, 16, 3, groups=4)])
case("conv2d_groups_key", "8x10x10", "conv 4 k1 groups=2", lambda: [nn.Conv2d(8, 4, 1, groups=2)])
case("conv2d_nobias", "3x10x10", "conv 8 k3 nobias", lambda: [nn.Conv2d(3, 8, 3, bias=False)])
case("conv2d_bias_false", "3x10x10", "conv 8 k3 bias=false", lambda: [nn.Conv2d(3, 8, 3, bias=False)])
case("conv2d_reflect", "3x10x10", "conv 8 k3 p1 padding_mode=reflect", lambda: [nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")])
case("conv2d_replicate", "3x10x10", "conv 8 k5 p2 padding_mode=replicate", lambda: [nn.Conv2d(3, 8, 5, padding=2, padding_mode="replicate")])
case("conv2d_circular", "3x10x10", "conv 8 k3 p1x2 padding_mode=circular", lambda: [nn.Conv2d(3, 8, 3, padding=(1, 2), padding_mode="circular")])
case("conv2d_reflect_same", "3x10x10", "conv 8 k4 padding=same padding_mode=reflect", lambda: [nn.Conv2d(3, 8, 4, padding="same", padding_mode="reflect")])
case("conv2d_circular_at_bound", "3x4x4", "conv 8 k9 p4 padding_mode=circular", lambda: [nn.Conv2d(3, 8, 9, padding=4, padding_mode="circular")])
case("conv2d_arrow", "3x10x10", "conv 3->16 k3", lambda: [nn.Conv2d(3, 16, 3)])
case("conv2d_in_out", "3x10x10", "conv in=3 out=16 k3", lambda: [nn.Conv2d(3, 16, 3)])
case("conv2d_long_names", "3x10x10", "conv in_channels=3 out_channels=16 kernel_size=3", lambda: [nn.Conv2d(3, 16, 3)])
case("conv2d_explicit", "3x10x10", "conv2d 8 k3 s2", lambda: [nn.Conv2d(3, 8, 3, stride=2)])
case("conv1d", "4x20", "conv 8 k5 s2 p2", lambda: [nn.Conv1d(4, 8, 5, stride=2, padding=2)])
case("conv1d_explicit", "4x20", "conv1d 4->8 k3 d3 nobias", lambda: [nn.Conv1d(4, 8, 3, dilation=3, bias=False)])
case("conv1d_g2_reflect", "4x20", "conv 6 k3 p1 g2 padding_mode=reflect", lambda: [nn.Conv1d(4, 6, 3, padding=1, groups=2, padding_mode="reflect")])
case("conv1d_same", "4x20", "conv 8 k4 padding=same", lambda: [nn.Conv1d(4, 8, 4, padding="same")])
case("conv3d", "2x6x8x8", "conv 4 k3 p1", lambda: [nn.Conv3d(2, 4, 3, padding=1)])
case("conv3d_explicit", "2x6x8x8", "conv3d 4 k1x3x3 s1x2x2 p0x1x1", lambda: [nn.Conv3d(2, 4, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))])
case("conv3d_replicate_same", "2x5x6x6", "conv 4 k3 padding=same padding_mode=replicate", lambda: [nn.Conv3d(2, 4, 3, padding="same", padding_mode="replicate")])
case("conv_chain", "3x16x16", "conv 8 k3 s2 p1 | conv 8->12 k3 g4 nobias\nconv 6 k1", lambda: [
    nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 12, 3, groups=4, bias=False), nn.Conv2d(12, 6, 1)])

# convt / deconv
case("convt2d", "4x6x6", "convt 8 k2 s2", lambda: [nn.ConvTranspose2d(4, 8, 2, stride=2)])
case("deconv_op1", "4x6x6", "deconv 8 k3 s2 p1 op1", lambda: [nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1)])
case("convt_output_padding_tuple", "4x6x6", "convt 8 k3 s2 output_padding=(1, 0)", lambda: [nn.ConvTranspose2d(4, 8, 3, stride=2, output_padding=(1, 0))])
case("convt_dilation", "4x6x6", "convt 8 k3 d2", lambda: [nn.ConvTranspose2d(4, 8, 3, dilation=2)])
case("convt_op_below_dilation", "4x6x6", "convt 8 k3 d2 op1", lambda: [nn.ConvTranspose2d(4, 8, 3, dilation=2, output_padding=1)])
case("convt_groups", "4x6x6", "convt 8 k3 g2", lambda: [nn.ConvTranspose2d(4, 8, 3, groups=2)])
case("convt_groups_key", "6x5x5", "convt 9 k2 s2 groups=3 nobias", lambda: [nn.ConvTranspose2d(6, 9, 2, stride=2, groups=3, bias=False)])
case("convt_arrow_p1", "4x6x6", "convt 4->8 k4 s2 p1", lambda: [nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1)])
case("convt_kernel_tuple", "4x6x6", "convt 8 k3x2 s2x1 p1x0", lambda: [nn.ConvTranspose2d(4, 8, (3, 2), stride=(2, 1), padding=(1, 0))])
case("convt1d", "4x10", "convt 6 k4 s2 p1", lambda: [nn.ConvTranspose1d(4, 6, 4, stride=2, padding=1)])
case("convt1d_explicit", "4x10", "convt1d 6 k3 s3 op2 nobias", lambda: [nn.ConvTranspose1d(4, 6, 3, stride=3, output_padding=2, bias=False)])
case("convt2d_explicit", "4x6x6", "convt2d 4->2 k3 s2 p1 op1 d1", lambda: [nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)])
case("convt3d", "2x3x4x4", "convt 4 k2 s2", lambda: [nn.ConvTranspose3d(2, 4, 2, stride=2)])
case("convt3d_explicit", "2x3x4x4", "convt3d 4 k3 s2 p1 op1 g2", lambda: [nn.ConvTranspose3d(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2)])

# dwconv
case("dwconv_default_out", "8x10x10", "dwconv k3 p1", lambda: [nn.Conv2d(8, 8, 3, padding=1, groups=8)])
case("dwconv_multiple_out", "8x10x10", "dwconv 16 k3", lambda: [nn.Conv2d(8, 16, 3, groups=8)])
case("dwconv_arrow_s2_nobias", "8x10x10", "dwconv 8->24 k3 s2 nobias", lambda: [nn.Conv2d(8, 24, 3, stride=2, groups=8, bias=False)])
case("dwconv_d2_reflect", "8x10x10", "dwconv k3 p2 d2 padding_mode=reflect", lambda: [nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, padding_mode="reflect")])
case("dwconv_same", "8x10x10", "dwconv k5 padding=same", lambda: [nn.Conv2d(8, 8, 5, padding="same", groups=8)])
case("dwconv1d", "4x16", "dwconv 8 k3 p1", lambda: [nn.Conv1d(4, 8, 3, padding=1, groups=4)])
case("dwconv3d", "4x4x6x6", "dwconv k3 p1", lambda: [nn.Conv3d(4, 4, 3, padding=1, groups=4)])

# deform
case("deform", "4x10x10", "deform 8 k3 p1", lambda: [Deform(4, 8, 3, padding=1)])
case("deform_modulated", "4x10x10", "deform 8 k3 p1 modulated", lambda: [Deform(4, 8, 3, padding=1, modulated=True)])
case("deform_modulated_key", "4x10x10", "deform 8 k3 modulated=true", lambda: [Deform(4, 8, 3, modulated=True)])
case("deform_offset_groups", "4x10x10", "deform 8 k3 p1 offset_groups=2", lambda: [Deform(4, 8, 3, padding=1, offset_groups=2)])
case("deform_all", "4x11x11", "deform 4->8 k3 s2 p2 d2 g2 nobias offset_groups=4 modulated",
     lambda: [Deform(4, 8, 3, stride=2, padding=2, dilation=2, groups=2, offset_groups=4, bias=False, modulated=True)])
case("deform_kernel_tuple", "4x10x10", "deform 8 k3x5 p1x2", lambda: [Deform(4, 8, (3, 5), padding=(1, 2))])

# max / avg pooling
case("maxpool2d", "3x12x12", "maxpool 2", lambda: [nn.MaxPool2d(2)])
case("maxpool2d_explicit", "3x12x12", "maxpool2d 3 s2 p1 d1", lambda: [nn.MaxPool2d(3, stride=2, padding=1)])
case("maxpool_odd", "3x13x13", "maxpool 2", lambda: [nn.MaxPool2d(2)])
case("maxpool_s2_p1", "3x12x12", "maxpool 3 s2 p1", lambda: [nn.MaxPool2d(3, stride=2, padding=1)])
case("maxpool_stride_key", "3x12x12", "maxpool kernel_size=3 stride=1 padding=1", lambda: [nn.MaxPool2d(3, stride=1, padding=1)])
case("maxpool_ceil", "3x12x12", "maxpool 3 s2 ceil", lambda: [nn.MaxPool2d(3, stride=2, ceil_mode=True)])
case("maxpool_ceil_key", "3x13x13", "maxpool 2 ceil_mode=true", lambda: [nn.MaxPool2d(2, ceil_mode=True)])
case("maxpool_ceil_pad_edge", "3x6x6", "maxpool 3 s2 p1 ceil", lambda: [nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)])
case("maxpool_ceil_pad_drop", "3x5x5", "maxpool 2 s2 p1 ceil", lambda: [nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)])
case("maxpool_dilation", "3x12x12", "maxpool 3 s1 p1 d2", lambda: [nn.MaxPool2d(3, stride=1, padding=1, dilation=2)])
case("maxpool_kernel_tuple", "3x12x12", "maxpool 2x3", lambda: [nn.MaxPool2d((2, 3))])
case("maxpool_tuples", "3x12x12", "maxpool 3x2 s2x1 p1x0 d1x2", lambda: [nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))])
case("maxpool1d", "4x17", "maxpool 3 s2 p1", lambda: [nn.MaxPool1d(3, stride=2, padding=1)])
case("maxpool1d_explicit", "4x17", "maxpool1d 2 ceil", lambda: [nn.MaxPool1d(2, ceil_mode=True)])
case("maxpool3d", "2x5x8x8", "maxpool 2", lambda: [nn.MaxPool3d(2)])
case("maxpool3d_explicit", "2x5x8x8", "maxpool3d 3 s2 p1 ceil", lambda: [nn.MaxPool3d(3, stride=2, padding=1, ceil_mode=True)])
case("avgpool2d", "3x12x12", "avgpool 2", lambda: [nn.AvgPool2d(2)])
case("avgpool_s2_p1", "3x12x12", "avgpool 3 s2 p1", lambda: [nn.AvgPool2d(3, stride=2, padding=1)])
case("avgpool_no_count_pad", "3x12x12", "avgpool 3 s2 p1 count_include_pad=false", lambda: [nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)])
case("avgpool_divisor", "3x12x12", "avgpool 2 divisor_override=3", lambda: [nn.AvgPool2d(2, divisor_override=3)])
case("avgpool_ceil", "3x12x12", "avgpool 3 s2 ceil", lambda: [nn.AvgPool2d(3, stride=2, ceil_mode=True)])
case("avgpool_ceil_pad_edge", "3x6x6", "avgpool 3 s2 p1 ceil", lambda: [nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True)])
case("avgpool_kernel_tuple", "3x12x12", "avgpool 2x3 s1x2", lambda: [nn.AvgPool2d((2, 3), stride=(1, 2))])
case("avgpool2d_explicit", "3x12x12", "avgpool2d kernel_size=4 stride=4", lambda: [nn.AvgPool2d(4, stride=4)])
case("avgpool1d", "4x17", "avgpool 3 s2 p1 count_include_pad=false", lambda: [nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False)])
case("avgpool1d_explicit", "4x17", "avgpool1d 2 ceil", lambda: [nn.AvgPool1d(2, ceil_mode=True)])
case("avgpool3d", "2x4x8x8", "avgpool 2", lambda: [nn.AvgPool3d(2)])
case("avgpool3d_options", "2x5x8x8", "avgpool3d 3 s2 p1 ceil divisor_override=5",
     lambda: [nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, divisor_override=5)])

# lppool: nn.LPPool1d/2d/3d (avg pool of x^p with no padding, stride defaulting to the kernel)
case("lppool2d", "3x12x12", "lppool 2 3", lambda: [nn.LPPool2d(2, 3)])
case("lppool2d_stride_ceil", "3x12x12", "lppool 2 3 s2 ceil", lambda: [nn.LPPool2d(2, 3, stride=2, ceil_mode=True)])
case("lppool2d_tuples", "3x12x11", "lppool 4.0 3x2 s2x1", lambda: [nn.LPPool2d(4.0, (3, 2), stride=(2, 1))])
case("lppool2d_keys", "3x12x12", "lppool2d norm_type=4 kernel_size=4 stride=4", lambda: [nn.LPPool2d(4, 4, stride=4)])
case("lppool1d", "4x17", "lppool 2 3 s2", lambda: [nn.LPPool1d(2, 3, stride=2)])
case("lppool1d_explicit_ceil", "4x17", "lppool1d 1 2 ceil", lambda: [nn.LPPool1d(1, 2, ceil_mode=True)])
case("lppool1d_kernel_tuple", "4x17", "lppool 2 kernel_size=(3,)", lambda: [nn.LPPool1d(2, 3)])
case("lppool3d", "2x4x8x8", "lppool 2 2", lambda: [nn.LPPool3d(2, 2)])
case("lppool3d_explicit", "2x5x8x8", "lppool3d 2 3 s2 ceil", lambda: [nn.LPPool3d(2, 3, stride=2, ceil_mode=True)])

# adaptive pools and gap
case("adaptiveavgpool_int", "3x12x12", "adaptiveavgpool 3", lambda: [nn.AdaptiveAvgPool2d(3)])
case("adaptiveavgpool_tuple", "3x12x12", "adaptiveavgpool 3x2", lambda: [nn.AdaptiveAvgPool2d((3, 2))])
case("adaptiveavgpool_key", "3x12x12", "adaptiveavgpool output_size=(5, 7)", lambda: [nn.AdaptiveAvgPool2d((5, 7))])
case("adaptiveavgpool_upsizing", "3x4x4", "adaptiveavgpool 6", lambda: [nn.AdaptiveAvgPool2d(6)])
case("adaptivemaxpool_int", "3x12x12", "adaptivemaxpool 2", lambda: [nn.AdaptiveMaxPool2d(2)])
case("adaptivemaxpool_tuple", "3x12x12", "adaptivemaxpool 4x1", lambda: [nn.AdaptiveMaxPool2d((4, 1))])
case("adaptiveavgpool1d", "4x17", "adaptiveavgpool 5", lambda: [nn.AdaptiveAvgPool1d(5)])
case("adaptiveavgpool1d_explicit", "4x17", "adaptiveavgpool1d 4", lambda: [nn.AdaptiveAvgPool1d(4)])
case("adaptiveavgpool2d_explicit", "3x12x12", "adaptiveavgpool2d 5x3", lambda: [nn.AdaptiveAvgPool2d((5, 3))])
case("adaptiveavgpool3d_explicit", "2x5x8x8", "adaptiveavgpool3d 2x3x4", lambda: [nn.AdaptiveAvgPool3d((2, 3, 4))])
case("adaptivemaxpool2d_explicit", "3x12x12", "adaptivemaxpool2d output_size=5", lambda: [nn.AdaptiveMaxPool2d(5)])
case("adaptivemaxpool3d_explicit", "2x5x8x8", "adaptivemaxpool3d 1x2x3", lambda: [nn.AdaptiveMaxPool3d((1, 2, 3))])
case("adaptivemaxpool1d", "4x17", "adaptivemaxpool1d 3", lambda: [nn.AdaptiveMaxPool1d(3)])
case("adaptiveavgpool3d", "2x5x8x8", "adaptiveavgpool 1x2x2", lambda: [nn.AdaptiveAvgPool3d((1, 2, 2))])
case("adaptivemaxpool3d", "2x5x8x8", "adaptivemaxpool 2", lambda: [nn.AdaptiveMaxPool3d(2)])
case("gap2d", "3x12x12", "gap", lambda: [nn.AdaptiveAvgPool2d(1)])
case("gap1d", "4x17", "gap", lambda: [nn.AdaptiveAvgPool1d(1)])
case("gap3d", "2x5x8x8", "gap", lambda: [nn.AdaptiveAvgPool3d(1)])

# linear and flatten
case("linear_after_flatten", "3x4x4", "flatten | linear 10", lambda: [nn.Flatten(), nn.Linear(48, 10)])
case("linear_arrow", "3x4x4", "flatten | linear 48->10", lambda: [nn.Flatten(), nn.Linear(48, 10)])
case("linear_in_out", "3x4x4", "flatten | linear in=48 out=10", lambda: [nn.Flatten(), nn.Linear(48, 10)])
case("linear_nobias", "3x4x4", "flatten | linear 10 nobias", lambda: [nn.Flatten(), nn.Linear(48, 10, bias=False)])
case("linear_bias_false", "3x4x4", "flatten | fc 10 bias=false", lambda: [nn.Flatten(), nn.Linear(48, 10, bias=False)])
case("linear_chain", "3x4x4", "flatten\nlinear 20 | relu\nlinear 5", lambda: [nn.Flatten(), nn.Linear(48, 20), nn.ReLU(), nn.Linear(20, 5)])
case("linear_last_dim_3d", "4x7", "linear 3", lambda: [nn.Linear(7, 3)])
case("linear_last_dim_4d", "3x4x5", "linear 6", lambda: [nn.Linear(5, 6)])
case("linear_last_dim_arrow", "3x4x5", "linear 5->2 nobias", lambda: [nn.Linear(5, 2, bias=False)])
case("flatten_default", "3x4x5", "flatten", lambda: [nn.Flatten()])
case("flatten_start2", "3x4x5", "flatten start_dim=2", lambda: [nn.Flatten(start_dim=2)])
case("flatten_end2", "3x4x5", "flatten start_dim=1 end_dim=2", lambda: [nn.Flatten(1, 2)])
case("flatten_negative", "3x4x5x6", "flatten start_dim=-3 end_dim=-2", lambda: [nn.Flatten(-3, -2)])
case("flatten_single_dim", "3x4x5", "flatten start_dim=2 end_dim=2", lambda: [nn.Flatten(2, 2)])
case("flatten_1d", "4x9", "flatten | linear 3", lambda: [nn.Flatten(), nn.Linear(36, 3)])

# normalisation
case("bn2d", "4x6x6", "bn", lambda: [nn.BatchNorm2d(4)])
case("bn_after_flatten", "3x4x4", "flatten | bn", lambda: [nn.Flatten(), nn.BatchNorm1d(48)])
case("bn1d", "4x9", "bn", lambda: [nn.BatchNorm1d(4)])
case("bn3d", "2x3x4x4", "bn", lambda: [nn.BatchNorm3d(2)])
case("bn1d_explicit", "4x9", "bn1d eps=1e-4", lambda: [nn.BatchNorm1d(4, eps=1e-4)])
case("bn1d_explicit_flat", "3x2x2", "flatten | bn1d affine=false", lambda: [nn.Flatten(), nn.BatchNorm1d(12, affine=False)])
case("bn3d_explicit", "2x3x4x4", "bn3d momentum=0.2", lambda: [nn.BatchNorm3d(2, momentum=0.2)])
case("bn_explicit", "4x6x6", "bn2d eps=1e-3 momentum=0.01", lambda: [nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)])
case("bn_no_affine", "4x6x6", "bn affine=false", lambda: [nn.BatchNorm2d(4, affine=False)])
case("bn_no_running_stats", "4x6x6", "batchnorm track_running_stats=false", lambda: [nn.BatchNorm2d(4, track_running_stats=False)])
case("gn", "8x6x6", "gn 4", lambda: [nn.GroupNorm(4, 8)])
case("gn_no_affine", "8x6x6", "gn 2 affine=false", lambda: [nn.GroupNorm(2, 8, affine=False)])
case("gn_key_eps", "8x6x6", "gn num_groups=8 eps=1e-6", lambda: [nn.GroupNorm(8, 8, eps=1e-6)])
case("gn1d", "6x9", "gn 3", lambda: [nn.GroupNorm(3, 6)])
case("gn3d", "4x3x4x4", "gn 2", lambda: [nn.GroupNorm(2, 4)])
case("ln_last_dim", "4x6x7", "ln", lambda: [nn.LayerNorm(7)])
case("ln_tuple", "4x6x7", "ln normalized_shape=(6, 7)", lambda: [nn.LayerNorm((6, 7))])
case("ln_positional_tuple", "4x6x7", "ln 4x6x7", lambda: [nn.LayerNorm((4, 6, 7))])
case("ln_after_flatten", "3x4x4", "flatten | ln", lambda: [nn.Flatten(), nn.LayerNorm(48)])
case("ln_no_affine", "4x6x7", "ln elementwise_affine=false", lambda: [nn.LayerNorm(7, elementwise_affine=False)])
case("ln2d", "4x6x7", "ln2d", lambda: [LayerNorm2d(4)])
case("ln2d_options", "4x6x7", "ln2d eps=1e-6 bias=false", lambda: [LayerNorm2d(4, eps=1e-6, bias=False)])
case("ln2d_no_affine", "4x6x7", "ln2d elementwise_affine=false", lambda: [LayerNorm2d(4, elementwise_affine=False)])
case("frozenbn", "4x6x7", "frozenbn", lambda: [FrozenBatchNorm2d(4)])
case("frozenbn_eps", "4x6x7", "conv 8 k3 nobias | frozenbn eps=0.001", lambda: [nn.Conv2d(4, 8, 3, bias=False), FrozenBatchNorm2d(8, eps=0.001)])
# a flat input (N, F): the ops that need no spatial dimensions
case("flat_input", "100", "linear 32 | bn | relu | dropout 0.1 | ln | linear 10 | softmax",
     lambda: [nn.Linear(100, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.LayerNorm(32), nn.Linear(32, 10), nn.Softmax(dim=1)])
case("flat_input_unflatten", "100", "linear 48 | unflatten 3x4x4 | conv 4 k3",
     lambda: [nn.Linear(100, 48), nn.Unflatten(1, (3, 4, 4)), nn.Conv2d(3, 4, 3)])
case("unflatten_dim2", "4x12", "unflatten 3x4 dim=2", lambda: [nn.Unflatten(2, (3, 4))])
case("unflatten_negative_dim", "4x12", "unflatten 2x6 dim=-1", lambda: [nn.Unflatten(-1, (2, 6))])
case("unflatten_inferred", "48", "unflatten sizes=(3, -1, 4)", lambda: [nn.Unflatten(1, (3, -1, 4))])
case("unflatten_one", "48", "unflatten 48", lambda: [nn.Unflatten(1, (48,))])
# pad: every mode, one number or per side, 1-d/2-d/3-d, cropping
case("pad", "3x5x6", "pad 1", lambda: [nn.ZeroPad2d(1)])
case("pad_sides", "3x5x6", "pad (1, 2, 0, 3)", lambda: [nn.ZeroPad2d((1, 2, 0, 3))])
case("pad_last_dim", "3x5x6", "pad (1, 2)", lambda: [nn.ZeroPad2d((1, 2))])
case("pad_value", "3x5x6", "pad 2 value=0.5", lambda: [nn.ConstantPad2d(2, 0.5)])
case("pad_crop", "3x5x6", "pad (-1, -1, 0, -2)", lambda: [nn.ZeroPad2d((-1, -1, 0, -2))])
case("pad1d_value", "3x7", "pad1d (2, -1) mode=constant value=-1", lambda: [nn.ConstantPad1d((2, -1), -1.0)])
case("pad1d_reflect", "3x7", "pad 2 mode=reflect", lambda: [nn.ReflectionPad1d(2)])
case("pad2d_replicate", "3x5x6", "pad2d (1, 0, 2, 3) mode=replicate", lambda: [nn.ReplicationPad2d((1, 0, 2, 3))])
case("pad3d_circular", "2x3x4x5", "pad3d 1 mode=circular", lambda: [nn.CircularPad3d(1)])
case("pad3d_reflect", "2x3x4x5", "pad (1, 2, 0, 1, 2, 0) mode=reflect", lambda: [nn.ReflectionPad3d((1, 2, 0, 1, 2, 0))])
case("pad3d_zero", "2x3x4x5", "pad 1x0x2x1x0x1", lambda: [nn.ZeroPad3d((1, 0, 2, 1, 0, 1))])
case("ln_no_bias", "4x6x7", "ln eps=1e-6 bias=false", lambda: [nn.LayerNorm(7, eps=1e-6, bias=False)])
case("ln1d", "4x9", "ln", lambda: [nn.LayerNorm(9)])
case("instnorm2d", "4x6x6", "instnorm", lambda: [nn.InstanceNorm2d(4)])
case("instnorm_affine", "4x6x6", "instnorm affine=true", lambda: [nn.InstanceNorm2d(4, affine=True)])
case("instnorm_running", "4x6x6", "instnorm affine=true track_running_stats=true eps=1e-3",
     lambda: [nn.InstanceNorm2d(4, affine=True, track_running_stats=True, eps=1e-3)])
case("instnorm1d", "4x9", "instnorm affine=true", lambda: [nn.InstanceNorm1d(4, affine=True)])
case("instnorm3d", "2x3x4x4", "instnorm3d", lambda: [nn.InstanceNorm3d(2)])
case("instnorm1d_explicit", "4x9", "instnorm1d", lambda: [nn.InstanceNorm1d(4)])
case("instnorm2d_explicit", "4x6x6", "instnorm2d affine=true", lambda: [nn.InstanceNorm2d(4, affine=True)])

# activations
ACT = "4x5x6"
case("relu", ACT, "relu", lambda: [nn.ReLU()])
case("relu_inplace", ACT, "conv 4 k1 | relu inplace", lambda: [nn.Conv2d(4, 4, 1), nn.ReLU(inplace=True)])
case("relu_inplace_key", ACT, "conv 4 k1 | relu inplace=true", lambda: [nn.Conv2d(4, 4, 1), nn.ReLU(inplace=True)])
case("relu6", ACT, "relu6", lambda: [nn.ReLU6()])
case("leakyrelu", ACT, "leakyrelu", lambda: [nn.LeakyReLU()])
case("leakyrelu_slope", ACT, "leakyrelu 0.1", lambda: [nn.LeakyReLU(0.1)])
case("leakyrelu_key", ACT, "leakyrelu negative_slope=0.2 inplace", lambda: [nn.LeakyReLU(0.2, inplace=True)])
case("prelu", ACT, "prelu", lambda: [nn.PReLU()])
case("prelu_channels", ACT, "prelu num_parameters=4", lambda: [nn.PReLU(4)])
case("prelu_channels_init", ACT, "prelu num_parameters=4 init=0.1", lambda: [nn.PReLU(4, init=0.1)])
case("prelu_one_init", ACT, "prelu num_parameters=1 init=0.5", lambda: [nn.PReLU(1, init=0.5)])
case("prelu_after_flatten", "3x2x2", "flatten | prelu num_parameters=12", lambda: [nn.Flatten(), nn.PReLU(12)])
case("rrelu", ACT, "rrelu", lambda: [nn.RReLU()])
case("rrelu_bounds", ACT, "rrelu 0.1 0.3", lambda: [nn.RReLU(0.1, 0.3)])
case("rrelu_keys", ACT, "rrelu lower=0.2 upper=0.4 inplace", lambda: [nn.RReLU(0.2, 0.4, inplace=True)])
case("elu", ACT, "elu", lambda: [nn.ELU()])
case("elu_alpha", ACT, "elu 0.5", lambda: [nn.ELU(0.5)])
case("elu_alpha_key", ACT, "elu alpha=2.0 inplace", lambda: [nn.ELU(alpha=2.0, inplace=True)])
case("selu", ACT, "selu", lambda: [nn.SELU()])
case("gelu", ACT, "gelu", lambda: [nn.GELU()])
case("gelu_tanh", ACT, "gelu approximate=tanh", lambda: [nn.GELU(approximate="tanh")])
case("silu", ACT, "silu", lambda: [nn.SiLU()])
case("swish", ACT, "swish", lambda: [nn.SiLU()])
case("mish", ACT, "mish", lambda: [nn.Mish()])
case("hardswish", ACT, "hardswish", lambda: [nn.Hardswish()])
case("hardsigmoid", ACT, "hardsigmoid", lambda: [nn.Hardsigmoid()])
case("sigmoid", ACT, "sigmoid", lambda: [nn.Sigmoid()])
case("tanh", ACT, "tanh", lambda: [nn.Tanh()])
case("softmax_default", ACT, "softmax", lambda: [nn.Softmax(dim=1)])
case("softmax_dim", ACT, "softmax dim=2", lambda: [nn.Softmax(dim=2)])
case("softmax_dim_negative", ACT, "softmax dim=-1", lambda: [nn.Softmax(dim=-1)])
case("softmax_positional", ACT, "softmax 3", lambda: [nn.Softmax(dim=3)])
case("softmax_after_linear", "3x2x2", "flatten | linear 5 | softmax dim=1", lambda: [nn.Flatten(), nn.Linear(12, 5), nn.Softmax(dim=1)])
case("softsign", ACT, "softsign", lambda: [nn.Softsign()])
case("tanhshrink", ACT, "tanhshrink", lambda: [nn.Tanhshrink()])
case("softsign_tanhshrink_1d", "4x9", "softsign | tanhshrink", lambda: [nn.Softsign(), nn.Tanhshrink()])
case("logsoftmax_default", ACT, "logsoftmax", lambda: [nn.LogSoftmax(dim=1)])
case("logsoftmax_dim", ACT, "logsoftmax dim=-2", lambda: [nn.LogSoftmax(dim=-2)])
case("activation_chain_1d", "4x9", "relu | elu | gelu | silu | mish | hardswish | hardsigmoid | sigmoid | tanh | selu | relu6",
     lambda: [nn.ReLU(), nn.ELU(), nn.GELU(), nn.SiLU(), nn.Mish(), nn.Hardswish(), nn.Hardsigmoid(), nn.Sigmoid(), nn.Tanh(), nn.SELU(), nn.ReLU6()])
case("activation_chain_3d", "2x3x4x4", "leakyrelu 0.1 | prelu num_parameters=2 | rrelu 0.1 0.3 | softmax",
     lambda: [nn.LeakyReLU(0.1), nn.PReLU(2), nn.RReLU(0.1, 0.3), nn.Softmax(dim=1)])

# dropout
case("dropout", ACT, "dropout", lambda: [nn.Dropout()])
case("dropout_p", ACT, "dropout 0.2", lambda: [nn.Dropout(0.2)])
case("dropout_key_inplace", ACT, "dropout p=0.3 inplace", lambda: [nn.Dropout(p=0.3, inplace=True)])
case("dropout_after_flatten", "3x2x2", "flatten | dropout 0.5 | linear 4", lambda: [nn.Flatten(), nn.Dropout(0.5), nn.Linear(12, 4)])
case("dropout1d", "4x9", "dropout1d 0.1", lambda: [nn.Dropout1d(0.1)])
case("dropout2d", ACT, "dropout2d 0.1", lambda: [nn.Dropout2d(0.1)])
case("dropout3d", "2x3x4x4", "dropout3d", lambda: [nn.Dropout3d()])
case("dropout_p_bounds", ACT, "dropout 0 | dropout 1", lambda: [nn.Dropout(0.0), nn.Dropout(1.0)])

# upsample
case("upsample_2", "3x5x6", "upsample 2", lambda: [nn.Upsample(scale_factor=2)])
case("upsample_bilinear", "3x5x6", "upsample scale_factor=2 mode=bilinear", lambda: [nn.Upsample(scale_factor=2, mode="bilinear")])
case("upsample_bilinear_align", "3x5x6", "upsample 2 mode=bilinear align_corners=true",
     lambda: [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)])
case("upsample_bicubic_float", "3x7x6", "upsample 1.5 mode=bicubic", lambda: [nn.Upsample(scale_factor=1.5, mode="bicubic")])
case("upsample_float", "3x7x9", "upsample 1.5", lambda: [nn.Upsample(scale_factor=1.5)])
case("upsample_float_odd", "3x10x7", "upsample 1.3", lambda: [nn.Upsample(scale_factor=1.3)])
case("upsample_float_down", "3x10x7", "upsample 0.5", lambda: [nn.Upsample(scale_factor=0.5)])
case("upsample_scale_tuple", "3x5x6", "upsample scale_factor=(2, 3)", lambda: [nn.Upsample(scale_factor=(2, 3))])
case("upsample_size", "3x5x6", "upsample size=20x24", lambda: [nn.Upsample(size=(20, 24))])
case("upsample_size_int", "3x5x6", "upsample size=9 mode=bilinear", lambda: [nn.Upsample(size=9, mode="bilinear")])
case("upsample_size_bicubic_align", "3x5x6", "upsample size=(8, 7) mode=bicubic align_corners=false",
     lambda: [nn.Upsample(size=(8, 7), mode="bicubic", align_corners=False)])
case("upsample_nearest", "3x5x6", "upsample 3 mode=nearest", lambda: [nn.Upsample(scale_factor=3, mode="nearest")])
case("upsample_linear", "4x9", "upsample 2 mode=linear", lambda: [nn.Upsample(scale_factor=2, mode="linear")])
case("upsample_linear_align", "4x9", "upsample 2.5 mode=linear align_corners=true",
     lambda: [nn.Upsample(scale_factor=2.5, mode="linear", align_corners=True)])
case("upsample_1d_nearest", "4x9", "upsample size=13", lambda: [nn.Upsample(size=13)])
case("upsample_trilinear", "2x3x4x4", "upsample 2 mode=trilinear", lambda: [nn.Upsample(scale_factor=2, mode="trilinear")])
case("upsample_trilinear_align", "2x3x4x4", "upsample scale_factor=(1, 2, 2) mode=trilinear align_corners=true",
     lambda: [nn.Upsample(scale_factor=(1, 2, 2), mode="trilinear", align_corners=True)])
case("upsample_3d_nearest", "2x3x4x4", "upsample 1.5", lambda: [nn.Upsample(scale_factor=1.5)])
case("upsample_area", "3x8x8", "upsample 0.5 mode=area", lambda: [nn.Upsample(scale_factor=0.5, mode="area")])
case("upsample_nearest_exact", "3x5x6", 'upsample 1.5 mode="nearest-exact"', lambda: [nn.Upsample(scale_factor=1.5, mode="nearest-exact")])
case("upsample_recompute", "3x7x9", "upsample 1.3 mode=bilinear recompute_scale_factor=true",
     lambda: [nn.Upsample(scale_factor=1.3, mode="bilinear", recompute_scale_factor=True)])
case("upsample_recompute_false", "3x7x9", "upsample 1.3 mode=bicubic align_corners=true recompute_scale_factor=false",
     lambda: [nn.Upsample(scale_factor=1.3, mode="bicubic", align_corners=True, recompute_scale_factor=False)])

# pixel shuffle, channel shuffle
case("pixelshuffle", "8x4x5", "pixelshuffle 2", lambda: [nn.PixelShuffle(2)])
case("pixelshuffle_key", "18x3x3", "pixelshuffle upscale_factor=3", lambda: [nn.PixelShuffle(3)])
case("pixelunshuffle", "2x8x6", "pixelunshuffle 2", lambda: [nn.PixelUnshuffle(2)])
case("pixelunshuffle_key", "2x6x9", "pixelunshuffle downscale_factor=3", lambda: [nn.PixelUnshuffle(3)])
case("pixel_roundtrip", "3x8x8", "pixelunshuffle 2 | conv 12 k1 | pixelshuffle 2",
     lambda: [nn.PixelUnshuffle(2), nn.Conv2d(12, 12, 1), nn.PixelShuffle(2)])
case("shuffle", "8x4x4", "shuffle 2", lambda: [nn.ChannelShuffle(2)])
case("shuffle_key", "8x4x4", "shuffle groups=4", lambda: [nn.ChannelShuffle(4)])
case("shuffle1d", "6x5", "shuffle 3", lambda: [nn.ChannelShuffle(3)])
case("shuffle3d", "4x2x3x3", "shuffle 2", lambda: [nn.ChannelShuffle(2)])

# crop: the centre, every rank, odd and even margins
case("crop2d", "3x12x11", "crop 5x8", lambda: [CenterCrop((5, 8))])
case("crop2d_square", "3x9x9", "crop 4 | conv 2 k1", lambda: [CenterCrop((4, 4)), nn.Conv2d(3, 2, 1)])
case("crop1d", "3x12", "crop 7", lambda: [CenterCrop((7,))])
case("crop3d", "2x6x7x8", "crop size=(3, 3, 8)", lambda: [CenterCrop((3, 3, 8))])

# permute (then ln and linear act on the last dim)
case("permute_ln_linear", "4x5x6", "permute 0 2 3 1 | ln | linear 8",
     lambda: [Permute(0, 2, 3, 1), nn.LayerNorm(4), nn.Linear(4, 8)])
case("permute_roundtrip", "4x5x6", "permute 0 2 3 1 | linear 8 nobias | permute 0 3 1 2 | conv 2 k1",
     lambda: [Permute(0, 2, 3, 1), nn.Linear(4, 8, bias=False), Permute(0, 3, 1, 2), nn.Conv2d(8, 2, 1)])
case("permute_1d", "4x9", "permute 0 2 1 | ln | linear 3", lambda: [Permute(0, 2, 1), nn.LayerNorm(4), nn.Linear(4, 3)])
case("permute_3d", "2x3x4x5", "permute 0 4 2 3 1 | ln normalized_shape=(3, 4, 2)",
     lambda: [Permute(0, 4, 2, 3, 1), nn.LayerNorm((3, 4, 2))])

# layerscale, droppath, identity
case("layerscale_dim1", "8x4x4", "layerscale 1e-6", lambda: [Scale((8, 1, 1), 1e-6)])
case("layerscale_dim1_key", "8x4x4", "conv 8 k1 | layerscale init=0.5 dim=1", lambda: [nn.Conv2d(8, 8, 1), Scale((8, 1, 1), 0.5)])
case("layerscale_last_dim", "4x5x6", "layerscale 0.1 dim=-1 | identity", lambda: [Scale((6,), 0.1), nn.Identity()])
case("layerscale_channels_last", "4x5x6", "permute 0 2 3 1 | layerscale 0.1 dim=-1 | linear 3",
     lambda: [Permute(0, 2, 3, 1), Scale((4,), 0.1), nn.Linear(4, 3)])
case("layerscale_1d", "4x9", "layerscale | conv 2 k1", lambda: [Scale((4, 1), 1e-5), nn.Conv1d(4, 2, 1)])
case("layerscale_after_flatten", "3x2x2", "flatten | layerscale 0.2", lambda: [nn.Flatten(), Scale((12,), 0.2)])
case("layerscale_dim2", "4x5x6", "layerscale 0.3 dim=2", lambda: [Scale((5, 1), 0.3)])
case("layerscale_dim_minus2", "2x3x4x5", "layerscale 0.3 dim=-2", lambda: [Scale((4, 1), 0.3)])
case("layerscale_init_param", "4x5x6", "layerscale init=gamma", lambda: [Scale((4, 1, 1), 0.25)], header="network T(gamma=0.25):")
case("droppath", "4x5x6", "droppath", lambda: [StochasticDepth(0.1, "row")])
case("droppath_p", "4x5x6", "droppath 0.3", lambda: [StochasticDepth(0.3, "row")])
case("droppath_key_flat", "3x2x2", "flatten | droppath p=0.2", lambda: [nn.Flatten(), StochasticDepth(0.2, "row")])
case("identity", "4x5x6", "identity", lambda: [nn.Identity()])
case("identity_1d", "4x9", "identity | conv 4 k3 | identity", lambda: [nn.Identity(), nn.Conv1d(4, 4, 3), nn.Identity()])

# network parameters: defaults and overrides change shapes and parameter counts
PARAM_NET = "network N(c=8, classes=10):"
PARAM_BODY = "conv c*2 k3 p1 | bn | relu\nconv c k3 s2 g=c//4 nobias | gn c//2\ngap | flatten | linear c->classes"
case("params_default", "3x16x16", PARAM_BODY, lambda: [
    nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 8, 3, stride=2, groups=2, bias=False), nn.GroupNorm(4, 8),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)], header=PARAM_NET)
case("params_override", "3x16x16", PARAM_BODY, lambda: [
    nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
    nn.Conv2d(32, 16, 3, stride=2, groups=4, bias=False), nn.GroupNorm(8, 16),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 7)], header=PARAM_NET, params={"c": 16, "classes": 7})
case("params_brief", "3x10x10", "conv c*2 k3", lambda: [nn.Conv2d(3, 32, 3)], header="network N(c=8):", params={"c": 16})

# a whole small network
case("lenet5", "1x28x28", "conv 6 k5 p2 | tanh | avgpool 2\nconv 16 k5 | tanh | avgpool 2\nflatten\nlinear 120 | tanh\nlinear 84 | tanh\nlinear 10",
     lambda: [nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
              nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10)])


# -- the differential check -------------------------------------------------------------------------


def _count(ref) -> int:
    return 0 if ref is None else sum(p.numel() for p in ref.parameters())


def _generated_layer(model: nn.Module, name: str):
    """The generated module's object for a layer: a child module, a Parameter (layerscale) or None (permute)."""
    return getattr(model, name, None)


def _copy_parameters(src, ref: nn.Module) -> None:
    """Copy the generated layer's parameters into the hand-built one, in order; their shapes must agree."""
    mine = [src] if isinstance(src, nn.Parameter) else list(src.parameters())
    theirs = list(ref.parameters())
    assert [tuple(p.shape) for p in mine] == [tuple(p.shape) for p in theirs]
    with torch.no_grad():
        for a, b in zip(mine, theirs):
            b.copy_(a)


def _observe(model: nn.Module, x: torch.Tensor):
    """Run the generated module, recording every child's input and output (cloned: inplace ops)."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        child.register_forward_hook(lambda m, args, out, name=name: seen.__setitem__(name, (args[0].clone(), out.clone())))
        for name, child in model.named_children()
    ]
    try:
        y = model(x.clone())  # an inplace first layer must not change the caller's x
    finally:
        for h in hooks:
            h.remove()
    return y, seen


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op_matches_torch(c: Case):
    src = c.source()
    net = cnndsl.check(src, **c.params)
    refs = c.refs()
    assert len(net.layers) == len(refs), [layer.name for layer in net.layers]

    torch.manual_seed(0)
    model = cnndsl.load(src, device="cpu", **c.params).eval()
    with torch.no_grad():  # random weights everywhere (deform's offsets too, which start at zero)
        for p in model.parameters():
            p.normal_(0.0, 0.5)
    x = torch.randn(2, *net.input_shape)
    assert tuple(net.input_shape) == tuple(int(d) for d in c.input.split("x"))

    # parameter counts: checker == hand-built torch module == generated module, per layer and in total
    for layer, ref in zip(net.layers, refs):
        gen = _generated_layer(model, layer.name)
        gen_count = gen.numel() if isinstance(gen, nn.Parameter) else _count(gen)
        assert layer.params == _count(ref), f"{layer.name}: checker {layer.params}, torch {_count(ref)}"
        assert gen_count == layer.params, f"{layer.name}: generated {gen_count}, checker {layer.params}"
    assert net.total_params == sum(_count(r) for r in refs)
    assert net.total_params == sum(p.numel() for p in model.parameters())

    with torch.no_grad():
        y, seen = _observe(model, x)
        # the generated module: each child's observed shapes are the checker's
        assert tuple(y.shape[1:]) == tuple(net.output_shape)
        for layer in net.layers:
            if layer.name in seen:
                got_in, got_out = seen[layer.name]
                assert tuple(got_in.shape[1:]) == tuple(layer.input_shape), layer.name
                assert tuple(got_out.shape[1:]) == tuple(layer.output_shape), layer.name
        # the hand-built pipeline: same shapes at every layer and, with the same weights, the same values
        h = x
        for layer, ref in zip(net.layers, refs):
            assert tuple(h.shape[1:]) == tuple(layer.input_shape), layer.name
            gen = _generated_layer(model, layer.name)
            if ref is not None:
                if gen is not None:
                    _copy_parameters(gen, ref)
                ref.eval()
                h = ref(h).clone()
            assert tuple(h.shape[1:]) == tuple(layer.output_shape), f"{layer.name}: torch {tuple(h.shape[1:])}, checker {layer.output_shape}"
            if layer.name in seen:
                torch.testing.assert_close(seen[layer.name][1], h, msg=f"{layer.name}: generated and hand-built values differ")
        torch.testing.assert_close(y, h)


def test_every_op_is_covered():
    """Every op name and alias in the catalog appears in some case."""
    from cnndsl.ops import REGISTRY

    used = {word for c in CASES for line in c.body.split("\n") for stage in line.split("|") for word in stage.split()[:1]}
    missing = sorted(set(REGISTRY) - used)
    # composition ops are not part of this version's catalog
    assert missing == [], missing


def test_parameters_through_check_and_load():
    """`check(..., c=16)` and `load(..., c=16)` agree with each other and with torch."""
    src = "network N(c=8):\n    input 3x16x16\n    conv c*2 k3\n"
    net = cnndsl.check(src, c=16)
    model = cnndsl.load(src, device="cpu", c=16).eval()
    ref = nn.Conv2d(3, 32, 3)
    with torch.no_grad():
        y = model(torch.randn(2, 3, 16, 16))
    assert tuple(y.shape) == (2, *net.output_shape) == tuple(ref(torch.randn(2, 3, 16, 16)).shape)
    assert net.layers[0].params == net.total_params == sum(p.numel() for p in ref.parameters())
    default = cnndsl.check(src)
    assert default.total_params == sum(p.numel() for p in nn.Conv2d(3, 16, 3).parameters())


def test_one_liner_with_input_argument():
    """The design card's one-liner, given its input through the API."""
    src = "conv 3->16 k3 s2 p1 | relu | maxpool 2 | flatten | linear 10\n"
    net = cnndsl.check(src, input="3x32x32")
    refs = [nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 8 * 8, 10)]
    assert [layer.params for layer in net.layers] == [_count(r) for r in refs]
    model = cnndsl.load(src, device="cpu", input="3x32x32").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
        h = x
        for layer, ref in zip(net.layers, refs):
            h = ref(h)
            assert tuple(h.shape[1:]) == tuple(layer.output_shape)
    assert y.shape == h.shape


def test_init_option_of_prelu_and_layerscale():
    """`init=<number>` is PyTorch's own option of PReLU and of layer scale; an initialiser call stays one."""
    src = "network T:\n    input 4x5x6\n    prelu num_parameters=4 init=0.1 | layerscale init=0.5 | prelu init=uniform(2, 3)\n"
    model = cnndsl.load(src, device="cpu")
    torch.testing.assert_close(model.prelu1.weight.detach(), nn.PReLU(4, init=0.1).weight.detach())
    torch.testing.assert_close(model.layerscale1.detach(), torch.full((4, 1, 1), 0.5))
    assert 2 <= model.prelu2.weight.item() <= 3


# -- random configurations: the checker accepts exactly what torch runs, with torch's shapes ---------

def _tup(v) -> str:
    return "x".join(str(i) for i in v)


def _random_config(rng, op: str, rank: int):
    """A random layer of `op` (its .cnn text) and the same torch module, on a random input shape."""
    c_in = rng.choice([2, 4])
    sizes = tuple(rng.randint(1, 7) for _ in range(rank))
    k = tuple(rng.randint(1, 4) for _ in range(rank))
    s = tuple(rng.randint(1, 3) for _ in range(rank))
    p = tuple(rng.randint(0, 2) for _ in range(rank))
    d = tuple(rng.randint(1, 2) for _ in range(rank))
    bias = rng.random() < 0.5
    nb = "" if bias else " nobias"
    n = {1: "1d", 2: "2d", 3: "3d"}[rank]
    g = rng.choice([1, 2])
    c_out = rng.choice([2, 4, 6])
    if op == "conv":
        mode = rng.choice(["zeros", "reflect", "replicate", "circular"])
        pad = rng.choice([f"p{_tup(p)}", "padding=same", "padding=valid"])
        torch_pad = {"padding=same": "same", "padding=valid": "valid"}.get(pad, p)
        text = f"conv {c_out} k{_tup(k)} s{_tup(s)} {pad} d{_tup(d)} g{g} padding_mode={mode}{nb}"
        build = lambda: getattr(nn, f"Conv{n}")(c_in, c_out, k, s, torch_pad, d, g, bias, mode)  # noqa: E731
    elif op == "convt":
        op_ = tuple(rng.randint(0, 2) for _ in range(rank))
        text = f"convt {c_out} k{_tup(k)} s{_tup(s)} p{_tup(p)} op{_tup(op_)} d{_tup(d)} g{g}{nb}"
        build = lambda: getattr(nn, f"ConvTranspose{n}")(c_in, c_out, k, s, p, op_, g, bias, d)  # noqa: E731
    elif op == "dwconv":
        mult = rng.choice([1, 2])
        text = f"dwconv {c_in * mult} k{_tup(k)} s{_tup(s)} p{_tup(p)} d{_tup(d)}{nb}"
        build = lambda: getattr(nn, f"Conv{n}")(c_in, c_in * mult, k, s, p, d, c_in, bias)  # noqa: E731
    elif op == "deform":
        og, modulated = rng.choice([1, 2]), rng.random() < 0.5
        text = f"deform {c_out} k{_tup(k)} s{_tup(s)} p{_tup(p)} d{_tup(d)} g{g} offset_groups={og}{nb}" + (" modulated" if modulated else "")
        build = lambda: Deform(c_in, c_out, k, s, p, d, g, og, bias, modulated)  # noqa: E731
    elif op == "maxpool":
        ceil = rng.random() < 0.5
        text = f"maxpool {_tup(k)} s{_tup(s)} p{_tup(p)} d{_tup(d)}" + (" ceil" if ceil else "")
        build = lambda: getattr(nn, f"MaxPool{n}")(k, s, p, d, ceil_mode=ceil)  # noqa: E731
    elif op == "lppool":
        ceil, norm = rng.random() < 0.5, rng.choice([1, 2, 3])
        text = f"lppool {norm} {_tup(k)} s{_tup(s)}" + (" ceil" if ceil else "")
        build = lambda: getattr(nn, f"LPPool{n}")(norm, k if rank > 1 else k[0], s, ceil_mode=ceil)  # noqa: E731
    else:
        ceil, cip = rng.random() < 0.5, rng.random() < 0.5
        text = f"avgpool {_tup(k)} s{_tup(s)} p{_tup(p)} count_include_pad={str(cip).lower()}" + (" ceil" if ceil else "")
        build = lambda: getattr(nn, f"AvgPool{n}")(k, s, p, ceil_mode=ceil, count_include_pad=cip)  # noqa: E731
    return (c_in, *sizes), text, build


_RANDOM = [(op, rank) for op in ("conv", "convt", "dwconv", "maxpool", "avgpool", "lppool") for rank in (1, 2, 3)] + [("deform", 2)]


@pytest.mark.parametrize("op,rank", _RANDOM, ids=[f"{op}{rank}d" for op, rank in _RANDOM])
def test_random_configurations_agree_with_torch(op: str, rank: int):
    """Random kernel/stride/padding/dilation/groups/mode combinations on small inputs: where torch builds and
    runs the module to a non-empty output, the checker accepts it with the same shape and parameter count
    (and the generated module agrees); where torch fails, the checker rejects with a CnnDslError.
    A zero-sized output (which torch returns for some transposed convolutions) counts as a rejection:
    cnndsl refuses to build a layer that produces no values."""
    import random
    import warnings

    rng = random.Random(f"{op}{rank}")
    for _ in range(80):
        shape, text, build = _random_config(rng, op, rank)
        src = f"network T:\n    input {_tup(shape)}\n    {text}\n"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = build().eval()
                with torch.no_grad():
                    want = tuple(module(torch.randn(2, *shape)).shape[1:])
                torch_ok = min(want) > 0
            except (RuntimeError, ValueError) as e:
                torch_ok, want = False, str(e)
            try:
                net = cnndsl.check(src)
            except cnndsl.CnnDslError as e:
                assert not torch_ok, f"{src}cnndsl rejects what torch runs to {want}:\n{e}"
                continue
            assert torch_ok, f"{src}cnndsl accepts what torch rejects: {want}"
            assert tuple(net.output_shape) == want, src
            assert net.total_params == sum(q.numel() for q in module.parameters()), src
            model = cnndsl.load(src, device="cpu").eval()
            with torch.no_grad():
                assert tuple(model(torch.randn(2, *shape)).shape[1:]) == want, src
