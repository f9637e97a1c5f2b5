"""PyTorch's rules (docs: /work/shared/PYTORCH_RULES.md), tested differentially against the installed torch.

Every rejection case first proves that torch itself rejects the equivalent module (when it is built or
when it runs), then that cnndsl rejects the .cnn source statically, with the first diagnostic pointing at
the exact argument that is wrong. The culprit is marked «like this» in the source; the marker is stripped
before checking and gives the expected line, column and caret width. Every acceptance case compares
cnndsl's inferred output shape with the shape of torch's real output.
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn as nn
from torchvision.ops import DeformConv2d

import cnndsl
from cnndsl import CnnDslError, ParseError, read_source
from cnndsl.semantics.checker import check_network

TORCH_ERRORS = (RuntimeError, ValueError, TypeError, NotImplementedError, ZeroDivisionError)
MARK = re.compile(r"«([^»]*)»")


pytestmark = pytest.mark.usefixtures("one_thread")


def x(*shape: int) -> torch.Tensor:
    """A batch of one: x(3, 8, 8) has shape (1, 3, 8, 8)."""
    return torch.randn(1, *shape)


def run_torch(fn: Callable[[], object]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors is a no-op"
        with torch.no_grad():
            return fn()


def locate(marked: str) -> tuple[str, int, int, int]:
    """Strip the one «culprit» marker: (source, line, column, width) of the culprit."""
    found = [(n, m) for n, text in enumerate(marked.split("\n"), 1) for m in MARK.finditer(text)]
    assert len(found) == 1, f"mark exactly one culprit: {marked!r}"
    n, m = found[0]
    return MARK.sub(r"\1", marked), n, m.start() + 1, len(m.group(1))


def check_located(err: CnnDslError, path: str, source: str, line: int, col: int, width: int | None = None) -> None:
    """The first diagnostic is at line:col, and its rendering shows the place and a caret under the culprit."""
    d = err.diagnostics[0]
    assert (d.span.line, d.span.col) == (line, col), d.render()
    assert d.line == line and d.col == col
    rendered = err.render()
    assert f"{path}:{line}:{col}: error: " in rendered
    text = source.split("\n")[line - 1]
    lines = rendered.split("\n")
    i = lines.index(f" {line} | {text}")
    caret = re.fullmatch(r" +\| ( *)(\^+)", lines[i + 1])
    assert caret, rendered
    assert len(caret.group(1)) == col - 1, rendered
    if width is not None:
        assert len(caret.group(2)) == width, rendered


# -- rejections: torch rejects, and cnndsl rejects at the culprit -------------------------------------


@dataclass
class Bad:
    id: str
    src: str  # with the culprit marked «...»
    words: tuple[str, ...]  # key words of cnndsl's message (case-insensitive)
    torch: Callable[[], object]  # builds (and runs) the equivalent torch module; must raise
    torch_match: str  # what torch says (a regex)


BAD = [
    # -- convolution --------------------------------------------------------------------------------
    Bad("conv-kernel-larger-than-input", "input 3x4x4\nconv 8 «k5»", ("kernel", "larger", "padded input"),
        lambda: nn.Conv2d(3, 8, 5)(x(3, 4, 4)), "Kernel size can't be greater than actual input size"),
    Bad("conv-kernel-larger-than-padded-input", "input 3x4x6\nconv 8 «k7» p1", ("kernel", "larger", "(7)", "(6)"),
        lambda: nn.Conv2d(3, 8, 7, padding=1)(x(3, 4, 6)), "Kernel size can't be greater"),
    Bad("conv-dilated-kernel-larger-1d", "input 3x6\nconv 8 «k3» d3", ("kernel", "larger", "(7)"),
        lambda: nn.Conv1d(3, 8, 3, dilation=3)(x(3, 6)), "Kernel size can't be greater"),
    Bad("conv-kernel-larger-3d", "input 2x4x8x8\nconv 4 «k5»", ("kernel", "larger", "dimension 1"),
        lambda: nn.Conv3d(2, 4, 5)(x(2, 4, 8, 8)), "Kernel size can't be greater"),
    Bad("conv-kernel-larger-tuple", "input 3x8x4\nconv 8 «k3x5»", ("kernel", "larger", "dimension 2"),
        lambda: nn.Conv2d(3, 8, (3, 5))(x(3, 8, 4)), "Kernel size can't be greater"),
    Bad("dwconv-kernel-larger", "input 4x4x4\ndwconv «k5»", ("kernel", "larger"),
        lambda: nn.Conv2d(4, 4, 5, groups=4)(x(4, 4, 4)), "Kernel size can't be greater"),
    Bad("conv-groups-zero", "input 4x8x8\nconv 8 k3 «g0»", ("groups", "at least 1"),
        lambda: nn.Conv2d(4, 8, 3, groups=0), "groups must be a positive integer"),
    Bad("conv-groups-negative", "input 4x8x8\nconv 8 k3 «groups=-2»", ("groups", "at least 1"),
        lambda: nn.Conv2d(4, 8, 3, groups=-2), "groups must be a positive integer"),
    Bad("conv-in-not-divisible-by-groups", "input 4x8x8\nconv 6 k3 «g3»", ("input channels", "(4)", "divisible", "groups (3)"),
        lambda: nn.Conv2d(4, 6, 3, groups=3), "in_channels must be divisible by groups"),
    Bad("conv-out-not-divisible-by-groups", "input 4x8x8\nconv 6 k3 «g4»", ("output channels", "(6)", "divisible", "groups (4)"),
        lambda: nn.Conv2d(4, 6, 3, groups=4), "out_channels must be divisible by groups"),
    Bad("conv-same-with-stride", "input 3x8x8\nconv 8 k3 s2 «padding=same»", ("same", "strided"),
        lambda: nn.Conv2d(3, 8, 3, stride=2, padding="same"), "padding='same' is not supported for strided convolutions"),
    Bad("conv-same-with-stride-tuple", "input 3x8x8\nconv 8 k3 s1x2 «padding=same»", ("same", "strided"),
        lambda: nn.Conv2d(3, 8, 3, stride=(1, 2), padding="same"), "padding='same' is not supported"),
    Bad("conv-reflect-pad-equals-dim", "input 3x4x4\nconv 8 k3 p4 «padding_mode=reflect»", ("reflect", "padding 4", "size 4"),
        lambda: nn.Conv2d(3, 8, 3, padding=4, padding_mode="reflect")(x(3, 4, 4)), "Padding size should be less than"),
    Bad("conv-reflect-pad-per-dim", "input 3x8x3\nconv 8 k3 p1x3 «padding_mode=reflect»", ("reflect", "dimension 2"),
        lambda: nn.Conv2d(3, 8, 3, padding=(1, 3), padding_mode="reflect")(x(3, 8, 3)), "Padding size should be less than"),
    Bad("conv-reflect-same-odd-pad-right", "input 3x2x2\nconv 8 k4 padding=same «padding_mode=reflect»", ("reflect", "padding 2", "size 2"),
        lambda: nn.Conv2d(3, 8, 4, padding="same", padding_mode="reflect")(x(3, 2, 2)), "Padding size should be less than"),
    Bad("conv-circular-pad-above-dim", "network N:\n    input 3x4x4\n    conv 8 k3 p5 «padding_mode=circular»", ("circular", "padding 5", "size 4"),
        lambda: nn.Conv2d(3, 8, 3, padding=5, padding_mode="circular")(x(3, 4, 4)), "wrapping around more than once"),
    Bad("conv-circular-same", "input 3x2x2\nconv 8 k6 padding=same «padding_mode=circular»", ("circular", "padding 3", "size 2"),
        lambda: nn.Conv2d(3, 8, 6, padding="same", padding_mode="circular")(x(3, 2, 2)), "wrapping around more than once"),
    Bad("conv-stride-zero", "input 3x8x8\nconv 8 k3 «s0»", ("stride", "at least 1"),
        lambda: nn.Conv2d(3, 8, 3, stride=0)(x(3, 8, 8)), "non-positive stride"),
    Bad("conv-dilation-zero", "input 3x8x8\nconv 8 k3 «d0»", ("dilation", "at least 1"),
        lambda: nn.Conv2d(3, 8, 3, dilation=0)(x(3, 8, 8)), "dilation should be greater than zero"),
    Bad("conv-kernel-zero", "input 3x8x8\nconv 8 «k0»", ("kernel_size", "at least 1"),
        lambda: nn.Conv2d(3, 8, 0)(x(3, 8, 8)), "kernel size should be greater than zero"),
    Bad("conv-padding-negative", "input 3x8x8\nconv 8 k3 «padding=-1»", ("padding", "at least 0"),
        lambda: nn.Conv2d(3, 8, 3, padding=-1)(x(3, 8, 8)), "negative padding is not supported"),
    Bad("conv-in-mismatch", "input 4x32x32\nconv «3»->16 k3", ("expects 3 input channels", "has 4"),
        lambda: nn.Conv2d(3, 16, 3)(x(4, 32, 32)), r"expected input\[1, 4, 32, 32\] to have 3 channels, but got 4"),
    Bad("conv-in-mismatch-keyword", "input 4x32x32\nconv 16 k3 «in=3»", ("expects 3 input channels", "has 4"),
        lambda: nn.Conv2d(3, 16, 3)(x(4, 32, 32)), "to have 3 channels, but got 4"),
    Bad("conv-in-mismatch-after-layers", "network N:\n    input 3x32x32\n    conv 16 k3 | relu\n    conv «8»->32 k3", ("expects 8", "has 16"),
        lambda: nn.Conv2d(8, 32, 3)(nn.Conv2d(3, 16, 3)(x(3, 32, 32))), "to have 8 channels, but got 16"),
    Bad("conv-after-flatten", "input 3x8x8\nflatten | «conv» 8 k3", ("2-D input", "(N, 192)"),
        lambda: nn.Conv2d(192, 8, 3)(nn.Flatten()(x(3, 8, 8))), "Expected 3D .* or 4D .* input to conv2d"),
    Bad("conv2d-on-1d-input", "input 3x8\n«conv2d» 8 k3", ("expects a 4-D input", "3-D"),
        lambda: nn.Conv2d(3, 8, 3)(x(3, 8)), "to have 3 channels, but got 1"),
    # -- transposed convolution ---------------------------------------------------------------------
    Bad("convt-output-too-small", "input 3x2x2\nconvt 8 k3 «p3»", ("output size is too small", "(-2, -2)"),
        lambda: nn.ConvTranspose2d(3, 8, 3, padding=3)(x(3, 2, 2)), "Output size is too small"),
    Bad("convt-output-zero-1d", "input 3x1\ndeconv 8 k1 «p1»", ("output size is too small",),
        lambda: nn.ConvTranspose1d(3, 8, 1, padding=1)(x(3, 1)), "Output size is too small"),
    Bad("convt-output-padding-stride", "input 3x4x4\nconvt 8 k3 s2 «op2»", ("output padding must be smaller than either stride or dilation",),
        lambda: nn.ConvTranspose2d(3, 8, 3, stride=2, output_padding=2)(x(3, 4, 4)), "output padding must be smaller than either stride or dilation"),
    Bad("convt-output-padding-dilation", "input 3x4x4\nconvt 8 k3 d2 «op2»", ("output padding", "dilation=2"),
        lambda: nn.ConvTranspose2d(3, 8, 3, dilation=2, output_padding=2)(x(3, 4, 4)), "output padding must be smaller"),
    Bad("convt-output-padding-per-dim", "input 3x4x4\nconvt 8 k3 s2x1 «op1x1»", ("output padding", "stride=1"),
        lambda: nn.ConvTranspose2d(3, 8, 3, stride=(2, 1), output_padding=1)(x(3, 4, 4)), "output padding must be smaller"),
    Bad("convt-output-padding-keyword", "input 3x4x4\nconvt 8 k3 «output_padding=1»", ("output padding",),
        lambda: nn.ConvTranspose2d(3, 8, 3, output_padding=1)(x(3, 4, 4)), "output padding must be smaller"),
    Bad("convt-padding-mode-reflect", "input 3x4x4\nconvt 8 k3 «padding_mode=reflect»", ("only padding_mode=zeros", "reflect"),
        lambda: nn.ConvTranspose2d(3, 8, 3, padding_mode="reflect"), 'Only "zeros" padding mode is supported'),
    Bad("convt-padding-mode-circular", "input 3x4x4\nconvt 8 k3 «padding_mode=circular»", ("only padding_mode=zeros",),
        lambda: nn.ConvTranspose2d(3, 8, 3, padding_mode="circular"), 'Only "zeros" padding mode'),
    Bad("convt-padding-same", "input 3x4x4\nconvt 8 k3 «padding=same»", ("padding=same", "transposed"),
        lambda: nn.ConvTranspose2d(3, 8, 3, padding="same")(x(3, 4, 4)), "padding"),
    Bad("convt-padding-valid", "input 3x4x4\nconvt 8 k3 «padding=valid»", ("padding=valid", "transposed"),
        lambda: nn.ConvTranspose2d(3, 8, 3, padding="valid")(x(3, 4, 4)), "padding"),
    Bad("convt-stride-zero", "input 3x4x4\nconvt 8 k3 «s0»", ("stride", "at least 1"),
        lambda: nn.ConvTranspose2d(3, 8, 3, stride=0)(x(3, 4, 4)), "non-positive stride"),
    Bad("convt-in-not-divisible-by-groups", "input 4x4x4\nconvt 6 k3 «g3»", ("divisible", "groups (3)"),
        lambda: nn.ConvTranspose2d(4, 6, 3, groups=3), "in_channels must be divisible by groups"),
    # -- pooling ------------------------------------------------------------------------------------
    Bad("maxpool-pad-above-half", "input 3x8x8\nmaxpool 3 «p2»", ("pad should be at most half", "padding=2", "kernel_size=3"),
        lambda: nn.MaxPool2d(3, padding=2)(x(3, 8, 8)), "pad should be at most half of effective kernel size"),
    Bad("maxpool-pad-half-kernel-ignoring-dilation", "input 3x8x8\nmaxpool 3 d2 «p2»", ("pad should be at most half", "dilation=2"),
        lambda: nn.MaxPool2d(3, padding=2, dilation=2)(x(3, 8, 8)), "pad should be smaller than or equal to half of kernel size"),
    Bad("maxpool1d-pad-half-kernel-ignoring-dilation", "input 3x8\nmaxpool 3 d2 «p2»", ("pad should be at most half",),
        lambda: nn.MaxPool1d(3, padding=2, dilation=2)(x(3, 8)), "padding should be at most half of kernel size"),
    Bad("maxpool3d-pad-half-kernel-ignoring-dilation", "input 3x8x8x8\nmaxpool 3 d2 «p2»", ("pad should be at most half",),
        lambda: nn.MaxPool3d(3, padding=2, dilation=2)(x(3, 8, 8, 8)), "pad should be smaller than or equal to half"),
    Bad("avgpool-pad-above-half", "input 3x8x8\navgpool 3 «p2»", ("pad should be at most half", "padding=2"),
        lambda: nn.AvgPool2d(3, padding=2)(x(3, 8, 8)), "pad should be at most half"),
    Bad("avgpool-pad-above-half-per-dim", "input 3x8x8\navgpool 4x2 «p2x2»", ("pad should be at most half", "kernel_size=2"),
        lambda: nn.AvgPool2d((4, 2), padding=(2, 2))(x(3, 8, 8)), "pad should be at most half"),
    Bad("maxpool-padding-negative", "input 3x8x8\nmaxpool 2 «padding=-1»", ("padding", "at least 0"),
        lambda: nn.MaxPool2d(2, padding=-1)(x(3, 8, 8)), "pad must be non-negative"),
    Bad("maxpool-stride-zero", "input 3x8x8\nmaxpool 2 «s0»", ("stride", "at least 1"),
        lambda: nn.MaxPool2d(2, stride=0)(x(3, 8, 8)), "stride should not be zero"),
    Bad("maxpool-dilation-zero", "input 3x8x8\nmaxpool 2 «d0»", ("dilation", "at least 1"),
        lambda: nn.MaxPool2d(2, dilation=0)(x(3, 8, 8)), "dilation should be greater than zero"),
    Bad("maxpool-output-too-small", "input 3x2x2\nmaxpool «3»", ("output size is too small", "(0, 0)"),
        lambda: nn.MaxPool2d(3)(x(3, 2, 2)), "Output size is too small"),
    Bad("avgpool-output-too-small", "network N:\n    input 3x2x2\n    avgpool «kernel_size=3»", ("output size is too small",),
        lambda: nn.AvgPool2d(3)(x(3, 2, 2)), "Output size is too small"),
    Bad("maxpool1d-output-too-small-dilated", "input 3x4\nmaxpool «3» d2", ("output size is too small",),
        lambda: nn.MaxPool1d(3, dilation=2)(x(3, 4)), "Invalid computed output size: 0"),
    Bad("avgpool-divisor-override-zero", "input 3x8x8\navgpool 2 «divisor_override=0»", ("divisor_override", "zero"),
        lambda: nn.AvgPool2d(2, divisor_override=0)(x(3, 8, 8)), "divisor must be not zero"),
    Bad("avgpool3d-input-smaller-than-kernel", "input 3x2x8x8\navgpool «3» p1", ("AvgPool3d", "size 2 < kernel 3"),
        lambda: nn.AvgPool3d(3, padding=1)(x(3, 2, 8, 8)), "smaller than kernel size"),
    Bad("adaptiveavgpool-negative", "input 3x8x8\nadaptiveavgpool «output_size=(3, -1)»", ("output_size", "at least"),
        lambda: nn.AdaptiveAvgPool2d((3, -1))(x(3, 8, 8)), "greater than or equal to 0"),
    Bad("adaptivemaxpool-negative", "input 3x8x8\nadaptivemaxpool «output_size=-1»", ("output_size", "at least"),
        lambda: nn.AdaptiveMaxPool2d(-1)(x(3, 8, 8)), "negative dimension"),
    # -- deformable convolution ---------------------------------------------------------------------
    Bad("deform-offset-groups-divide-in", "input 6x8x8\ndeform 8 k3 «offset_groups=4»", ("(6)", "divisible", "offset_groups (4)"),
        lambda: DeformConv2d(6, 8, 3)(x(6, 8, 8), torch.zeros(1, 2 * 4 * 3 * 3, 6, 6)), "deform_conv2d"),
    # -- normalisation ------------------------------------------------------------------------------
    Bad("groupnorm-channels-divisible", "input 6x8x8\ngn «4»", ("num_channels (6)", "divisible", "num_groups (4)"),
        lambda: nn.GroupNorm(4, 6), r"num_channels \(6\) must be divisible by num_groups \(4\)"),
    Bad("groupnorm-zero-groups", "input 6x8x8\ngn «num_groups=0»", ("num_groups", "at least 1"),
        lambda: nn.GroupNorm(0, 6), "modulo by zero"),
    Bad("layernorm-trailing-dims", "input 3x8x8\nln «8x4»", ("normalized_shape (8, 4)", "trailing"),
        lambda: nn.LayerNorm((8, 4))(x(3, 8, 8)), r"expected input with shape \[\*, 8, 4\]"),
    Bad("layernorm-last-dim", "input 3x8x8\nln «normalized_shape=3»", ("normalized_shape (3,)", "trailing"),
        lambda: nn.LayerNorm(3)(x(3, 8, 8)), r"expected input with shape \[\*, 3\]"),
    Bad("batchnorm2d-on-3d-input", "input 3x8\n«bn2d»", ("4-D", "3-D"),
        lambda: nn.BatchNorm2d(3)(x(3, 8)), r"expected 4D input \(got 3D input\)"),
    Bad("batchnorm1d-on-4d-input", "input 3x8x8\nrelu | «bn1d»", ("3-D", "4-D"),
        lambda: nn.BatchNorm1d(3)(x(3, 8, 8)), r"expected 2D or 3D input \(got 4D input\)"),
    Bad("batchnorm3d-on-4d-input", "input 3x8x8\n«bn3d» eps=0.001", ("5-D", "4-D"),
        lambda: nn.BatchNorm3d(3, eps=0.001)(x(3, 8, 8)), r"expected 5D input \(got 4D input\)"),
    # -- dropout ------------------------------------------------------------------------------------
    Bad("dropout-p-above-one", "input 3x8x8\ndropout «1.5»", ("p", "between 0 and 1", "1.5"),
        lambda: nn.Dropout(1.5), "dropout probability has to be between 0 and 1"),
    Bad("dropout-p-negative", "input 3x8x8\ndropout «p=-0.1»", ("between 0 and 1",),
        lambda: nn.Dropout(-0.1), "dropout probability has to be between 0 and 1"),
    Bad("dropout2d-p-above-one", "input 3x8x8\ndropout2d «2»", ("between 0 and 1",),
        lambda: nn.Dropout2d(2), "dropout probability has to be between 0 and 1"),
    # -- reshaping and resampling -------------------------------------------------------------------
    Bad("flatten-start-after-end", "input 3x8x8\nflatten «start_dim=3» end_dim=2", ("start_dim", "end_dim", "must not come after"),
        lambda: nn.Flatten(3, 2)(x(3, 8, 8)), "start_dim cannot come after end_dim"),
    Bad("flatten-start-after-end-negative", "input 3x8x8\nflatten «start_dim=-1» end_dim=2", ("start_dim (-1)", "end_dim (2)"),
        lambda: nn.Flatten(-1, 2)(x(3, 8, 8)), "start_dim cannot come after end_dim"),
    Bad("conv1d-kernel-tuple-rank", "input 3x8\nconv 8 «k3x3»", ("kernel_size", "2 values", "1 spatial dimension"),
        lambda: nn.Conv1d(3, 8, (3, 3))(x(3, 8)), "4-dimensional weight"),
    Bad("conv1d-padding-tuple-rank", "input 3x8\nconv 8 k3 «p1x1»", ("padding", "2 values", "1 spatial dimension"),
        lambda: nn.Conv1d(3, 8, 3, padding=(1, 1))(x(3, 8)), "expected padding to be a single integer value or a list of 1 values"),
    Bad("maxpool1d-kernel-tuple-rank", "input 3x8\nmaxpool «2x2»", ("kernel_size", "2 values"),
        lambda: nn.MaxPool1d((2, 2))(x(3, 8)), "kernel_size must be an int, list of ints or tuple of ints of size 1"),
    Bad("pixelshuffle-zero", "input 4x3x3\npixelshuffle «0»", ("upscale_factor", "at least 1"),
        lambda: nn.PixelShuffle(0)(x(4, 3, 3)), "expects a positive upscale_factor"),
    Bad("upsample-scale-output-zero", "input 3x8x8\nupsample «0.1»", ("output size is too small", "(0, 0)"),
        lambda: nn.Upsample(scale_factor=0.1)(x(3, 8, 8)), "Input and output sizes should be greater than 0"),
    Bad("upsample-size-zero", "input 3x7x7\nupsample «size=(0, 4)»", ("size", "at least 1"),
        lambda: nn.Upsample(size=(0, 4))(x(3, 7, 7)), "Input and output sizes should be greater than 0"),
    Bad("pixelshuffle-channels", "input 6x8x8\npixelshuffle «2»", ("divisible by 4", "found 6"),
        lambda: nn.PixelShuffle(2)(x(6, 8, 8)), "divisible by the square of upscale_factor"),
    Bad("upsample-size-and-scale", "input 3x8x8\nupsample 2 «size=16x16»", ("exactly one", "scale factor", "size"),
        lambda: nn.Upsample(size=(16, 16), scale_factor=2)(x(3, 8, 8)), "only one of size or scale_factor should be defined"),
    Bad("upsample-neither-size-nor-scale", "input 3x8x8\n«upsample» mode=nearest", ("exactly one", "scale factor", "size"),
        lambda: nn.Upsample(mode="nearest")(x(3, 8, 8)), "either size or scale_factor should be defined"),
    Bad("upsample-bilinear-on-1d", "input 3x8\nupsample 2 «mode=bilinear»", ("bilinear", "4-D", "3-D"),
        lambda: nn.Upsample(scale_factor=2, mode="bilinear")(x(3, 8)), "bilinear mode needs 4D input"),
    Bad("upsample-linear-on-2d", "input 3x8x8\nupsample 2 «mode=linear»", ("linear", "3-D", "4-D"),
        lambda: nn.Upsample(scale_factor=2, mode="linear")(x(3, 8, 8)), "linear mode needs 3D input"),
    Bad("upsample-trilinear-on-2d", "input 3x8x8\nupsample 2 «mode=trilinear»", ("trilinear", "5-D"),
        lambda: nn.Upsample(scale_factor=2, mode="trilinear")(x(3, 8, 8)), "trilinear mode needs 5D input"),
    Bad("upsample-bicubic-on-1d", "input 3x8\nupsample 2 «mode=bicubic»", ("bicubic", "4-D"),
        lambda: nn.Upsample(scale_factor=2, mode="bicubic")(x(3, 8)), "Only 3D, 4D and 5D input"),
    Bad("upsample-align-corners-nearest", "input 3x8x8\nupsample 2 «align_corners=true»", ("align_corners", "linear", "nearest"),
        lambda: nn.Upsample(scale_factor=2, align_corners=True)(x(3, 8, 8)), "align_corners option can only be set with the interpolating modes"),
    Bad("upsample-align-corners-false-nearest", "input 3x8x8\nupsample 2 «align_corners=false»", ("align_corners",),
        lambda: nn.Upsample(scale_factor=2, align_corners=False)(x(3, 8, 8)), "align_corners option can only be set"),
    Bad("upsample-align-corners-area", "input 3x8x8\nupsample 2 mode=area «align_corners=true»", ("align_corners", "area"),
        lambda: nn.Upsample(scale_factor=2, mode="area", align_corners=True)(x(3, 8, 8)), "align_corners option can only be set"),
    # -- activations and linear ---------------------------------------------------------------------
    Bad("prelu-num-parameters", "input 8x4x4\nprelu «num_parameters=3»", ("num_parameters", "1 or the number of channels (8)", "found 3"),
        lambda: nn.PReLU(3)(x(8, 4, 4)), "Mismatch of parameter numbers and input channel size"),
    Bad("rrelu-lower-above-upper", "input 3x8x8\nrrelu «0.5» 0.1", ("lower bound (0.5)", "upper bound (0.1)"),
        lambda: nn.RReLU(0.5, 0.1)(x(3, 8, 8)), "Lower bound should be less than or equal to the upper bound"),
    Bad("rrelu-upper-below-default-lower", "input 3x8x8\nrrelu «upper=0.05»", ("lower bound", "upper bound (0.05)"),
        lambda: nn.RReLU(upper=0.05)(x(3, 8, 8)), "Lower bound should be less than or equal to the upper bound"),
    Bad("linear-in-features-after-flatten", "input 3x8x8\nflatten\nlinear «100»->10", ("expects 100 input features", "has 192"),
        lambda: nn.Linear(100, 10)(nn.Flatten()(x(3, 8, 8))), "mat1 and mat2 shapes cannot be multiplied"),
    Bad("linear-in-features-last-dim", "input 3x8x8\nlinear «4»->10", ("expects 4 input features", "has 8"),
        lambda: nn.Linear(4, 10)(x(3, 8, 8)), "mat1 and mat2 shapes cannot be multiplied"),
    Bad("linear-in-features-keyword", "input 3x8x8\nflatten | linear 10 «in_features=100»", ("expects 100 input features",),
        lambda: nn.Linear(100, 10)(nn.Flatten()(x(3, 8, 8))), "mat1 and mat2 shapes cannot be multiplied"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_torch_and_cnndsl_reject(case: Bad, tmp_cnn):
    with pytest.raises(TORCH_ERRORS, match=case.torch_match):
        run_torch(case.torch)
    source, line, col, width = locate(case.src)
    path = tmp_cnn(source + "\n")
    with pytest.raises(CnnDslError) as info:
        cnndsl.check(path)
    assert type(info.value) is not ParseError, info.value.render()
    d = info.value.diagnostics[0]
    for word in case.words:
        assert word.lower() in d.message.lower(), d.render()
    check_located(info.value, str(path), source, line, col, width)


def test_deform_offset_groups_that_divide_are_accepted():
    """The counterpart of deform-offset-groups-divide-in: the same layer with 3 offset groups runs."""
    out = run_torch(lambda: DeformConv2d(6, 8, 3)(x(6, 8, 8), torch.zeros(1, 2 * 3 * 3 * 3, 6, 6)))
    assert cnndsl.check("input 6x8x8\ndeform 8 k3 offset_groups=3").output_shape == tuple(out.shape[1:])


# -- acceptances at the boundary: torch accepts, cnndsl agrees on the shape ---------------------------


@dataclass
class Good:
    id: str
    src: str
    torch: Callable[[], torch.Tensor]  # the output of the equivalent torch module


GOOD = [
    # the largest padding a pool allows
    Good("maxpool-pad-half", "input 3x8x8\nmaxpool 3 p1", lambda: nn.MaxPool2d(3, padding=1)(x(3, 8, 8))),
    Good("maxpool-pad-half-even-kernel", "input 3x7x7\nmaxpool 4 s1 p2", lambda: nn.MaxPool2d(4, 1, padding=2)(x(3, 7, 7))),
    Good("maxpool-pad-half-kernel-dilated", "input 3x8x8\nmaxpool 4 d2 p2", lambda: nn.MaxPool2d(4, padding=2, dilation=2)(x(3, 8, 8))),
    Good("maxpool-pad-half-per-dim", "input 3x8x8\nmaxpool 3x5 p1x2", lambda: nn.MaxPool2d((3, 5), padding=(1, 2))(x(3, 8, 8))),
    Good("avgpool-pad-half", "input 3x8x8\navgpool 4 p2", lambda: nn.AvgPool2d(4, padding=2)(x(3, 8, 8))),
    Good("avgpool-pad-half-k2", "input 3x5\navgpool 2 p1", lambda: nn.AvgPool1d(2, padding=1)(x(3, 5))),
    Good("avgpool2d-input-smaller-than-kernel-padded", "input 3x2x8\navgpool 3 p1", lambda: nn.AvgPool2d(3, padding=1)(x(3, 2, 8))),
    Good("maxpool3d-input-smaller-than-kernel-padded", "input 3x2x8x8\nmaxpool 3 p1", lambda: nn.MaxPool3d(3, padding=1)(x(3, 2, 8, 8))),
    Good("avgpool3d-input-equals-kernel", "input 3x3x8x8\navgpool 3 p1", lambda: nn.AvgPool3d(3, padding=1)(x(3, 3, 8, 8))),
    # ceil_mode (PyTorch #45357, #46929, #57178): the last window may not start in the right padding
    Good("ceil-last-window-in-padding-max", "input 3x5x5\nmaxpool 2 s2 p1 ceil", lambda: nn.MaxPool2d(2, 2, 1, ceil_mode=True)(x(3, 5, 5))),
    Good("ceil-last-window-in-padding-avg", "input 3x5x5\navgpool 2 s2 p1 ceil", lambda: nn.AvgPool2d(2, 2, 1, ceil_mode=True)(x(3, 5, 5))),
    Good("ceil-last-window-in-padding-1d", "input 3x6\nmaxpool 3 s3 p1 ceil", lambda: nn.MaxPool1d(3, 3, 1, ceil_mode=True)(x(3, 6))),
    Good("ceil-partial-window-kept", "input 3x6x6\nmaxpool 3 s2 p1 ceil", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x(3, 6, 6))),
    Good("ceil-partial-window-no-padding", "input 3x4x4\navgpool 3 s2 ceil", lambda: nn.AvgPool2d(3, 2, ceil_mode=True)(x(3, 4, 4))),
    Good("ceil-avg-no-count-pad", "input 3x7\navgpool 2 s2 p1 ceil count_include_pad=false",
         lambda: nn.AvgPool1d(2, 2, 1, ceil_mode=True, count_include_pad=False)(x(3, 7))),
    Good("ceil-resnet-style", "input 3x112x112\nmaxpool 3 s2 p1 ceil", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True)(x(3, 112, 112))),
    Good("ceil-googlenet-style", "input 3x112x112\nmaxpool 3 s2 ceil", lambda: nn.MaxPool2d(3, 2, ceil_mode=True)(x(3, 112, 112))),
    Good("ceil-dilated", "input 3x9\nmaxpool 2 s3 p1 d3 ceil", lambda: nn.MaxPool1d(2, 3, 1, dilation=3, ceil_mode=True)(x(3, 9))),
    Good("ceil-kernel-equals-input", "input 3x3x3\nmaxpool 3 s2 ceil", lambda: nn.MaxPool2d(3, 2, ceil_mode=True)(x(3, 3, 3))),
    Good("ceil-3d", "input 2x5x6x7\navgpool 2 s2 p1 ceil", lambda: nn.AvgPool3d(2, 2, 1, ceil_mode=True)(x(2, 5, 6, 7))),
    # kernel == padded input size
    Good("conv-kernel-equals-padded-input", "input 3x4x4\nconv 8 k6 p1", lambda: nn.Conv2d(3, 8, 6, padding=1)(x(3, 4, 4))),
    Good("conv-dilated-kernel-equals-input", "input 3x5\nconv 8 k3 d2", lambda: nn.Conv1d(3, 8, 3, dilation=2)(x(3, 5))),
    Good("conv3d-kernel-equals-input", "input 2x3x4x5\nconv 4 k3x4x5", lambda: nn.Conv3d(2, 4, (3, 4, 5))(x(2, 3, 4, 5))),
    Good("maxpool-kernel-equals-padded-input", "input 3x2x2\nmaxpool 4 p2", lambda: nn.MaxPool2d(4, padding=2)(x(3, 2, 2))),
    Good("avgpool-kernel-equals-input", "input 3x3x3\navgpool 3", lambda: nn.AvgPool2d(3)(x(3, 3, 3))),
    # padding modes at their limit
    Good("reflect-pad-dim-minus-one", "input 3x4x4\nconv 8 k3 p3 padding_mode=reflect",
         lambda: nn.Conv2d(3, 8, 3, padding=3, padding_mode="reflect")(x(3, 4, 4))),
    Good("reflect-pad-per-dim", "input 3x8x3\nconv 8 k3 p1x2 padding_mode=reflect",
         lambda: nn.Conv2d(3, 8, 3, padding=(1, 2), padding_mode="reflect")(x(3, 8, 3))),
    Good("reflect-same-odd-kernel", "input 3x3x3\nconv 8 k4 padding=same padding_mode=reflect",
         lambda: nn.Conv2d(3, 8, 4, padding="same", padding_mode="reflect")(x(3, 3, 3))),
    Good("circular-pad-equals-dim", "input 3x4x4\nconv 8 k3 p4 padding_mode=circular",
         lambda: nn.Conv2d(3, 8, 3, padding=4, padding_mode="circular")(x(3, 4, 4))),
    Good("circular-same", "input 3x2x2\nconv 8 k5 padding=same padding_mode=circular",
         lambda: nn.Conv2d(3, 8, 5, padding="same", padding_mode="circular")(x(3, 2, 2))),
    Good("replicate-any-pad", "input 3x4x4\nconv 8 k3 p10 padding_mode=replicate",
         lambda: nn.Conv2d(3, 8, 3, padding=10, padding_mode="replicate")(x(3, 4, 4))),
    Good("same-kernel-larger-than-input", "input 3x2x2\nconv 8 k9 padding=same", lambda: nn.Conv2d(3, 8, 9, padding="same")(x(3, 2, 2))),
    Good("same-even-dilated", "input 3x7\nconv 8 k4 d3 padding=same", lambda: nn.Conv1d(3, 8, 4, dilation=3, padding="same")(x(3, 7))),
    Good("valid", "input 3x7x7\nconv 8 k3 s2 padding=valid", lambda: nn.Conv2d(3, 8, 3, stride=2, padding="valid")(x(3, 7, 7))),
    Good("groups-equal-channels", "input 4x8x8\nconv 8 k3 g4", lambda: nn.Conv2d(4, 8, 3, groups=4)(x(4, 8, 8))),
    Good("dwconv-multiplier", "input 4x8x8\ndwconv 12 k3 p1", lambda: nn.Conv2d(4, 12, 3, padding=1, groups=4)(x(4, 8, 8))),
    # transposed convolution at its limits
    Good("convt-output-size-one", "input 3x1x1\nconvt 8 k3 p1", lambda: nn.ConvTranspose2d(3, 8, 3, padding=1)(x(3, 1, 1))),
    Good("convt-output-padding-below-stride", "input 3x4x4\nconvt 8 k3 s2 op1 p1",
         lambda: nn.ConvTranspose2d(3, 8, 3, stride=2, padding=1, output_padding=1)(x(3, 4, 4))),
    Good("convt-output-padding-below-dilation", "input 3x4x4\nconvt 8 k3 d2 op1",
         lambda: nn.ConvTranspose2d(3, 8, 3, dilation=2, output_padding=1)(x(3, 4, 4))),
    Good("convt-output-padding-per-dim", "input 3x4x5\nconvt 8 k3 s2x3 op1x2",
         lambda: nn.ConvTranspose2d(3, 8, 3, stride=(2, 3), output_padding=(1, 2))(x(3, 4, 5))),
    Good("convt-groups", "input 4x4x4\ndeconv 6 k2 s2 g2", lambda: nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2)(x(4, 4, 4))),
    # the rest of the catalog at its limits
    Good("adaptive-larger-than-input", "input 3x8x8\nadaptiveavgpool 16x3", lambda: nn.AdaptiveAvgPool2d((16, 3))(x(3, 8, 8))),
    Good("adaptivemax-1d", "input 3x8\nadaptivemaxpool 1", lambda: nn.AdaptiveMaxPool1d(1)(x(3, 8))),
    Good("gap-3d", "input 3x4x5x6\ngap", lambda: nn.AdaptiveAvgPool3d(1)(x(3, 4, 5, 6))),
    Good("groupnorm-groups-equal-channels", "input 6x8x8\ngn 6", lambda: nn.GroupNorm(6, 6)(x(6, 8, 8))),
    Good("groupnorm-one-group", "input 6x8x8\ngn 1", lambda: nn.GroupNorm(1, 6)(x(6, 8, 8))),
    Good("layernorm-all-dims", "input 3x8x8\nln 3x8x8", lambda: nn.LayerNorm((3, 8, 8))(x(3, 8, 8))),
    Good("layernorm-last-dim", "input 3x8x5\nln", lambda: nn.LayerNorm(5)(x(3, 8, 5))),
    Good("batchnorm1d-after-flatten", "input 3x4x4\nflatten | bn", lambda: nn.BatchNorm1d(48)(nn.Flatten()(torch.randn(2, 3, 4, 4)))[:1]),
    Good("batchnorm1d-3d-input", "input 3x8\nbn1d", lambda: nn.BatchNorm1d(3)(x(3, 8))),
    Good("batchnorm3d", "input 3x4x4x4\nbn", lambda: nn.BatchNorm3d(3)(x(3, 4, 4, 4))),
    Good("dropout-zero", "input 3x8x8\ndropout 0", lambda: nn.Dropout(0)(x(3, 8, 8))),
    Good("dropout-one", "input 3x8x8\ndropout 1", lambda: nn.Dropout(1)(x(3, 8, 8))),
    Good("dropout-one-float", "input 3x8x8\ndropout2d 1.0", lambda: nn.Dropout2d(1.0)(x(3, 8, 8))),
    Good("flatten-start-equals-end", "input 3x8x8\nflatten start_dim=2 end_dim=2", lambda: nn.Flatten(2, 2)(x(3, 8, 8))),
    Good("flatten-middle", "input 3x4x5x6\nflatten start_dim=1 end_dim=-2", lambda: nn.Flatten(1, -2)(x(3, 4, 5, 6))),
    Good("flatten-negative-start", "input 3x4x5\nflatten start_dim=-2", lambda: nn.Flatten(-2)(x(3, 4, 5))),
    Good("pixelshuffle-channels-equal-square", "input 4x3x3\npixelshuffle 2", lambda: nn.PixelShuffle(2)(x(4, 3, 3))),
    Good("pixelshuffle-3", "input 18x3x5\npixelshuffle 3", lambda: nn.PixelShuffle(3)(x(18, 3, 5))),
    Good("upsample-size", "input 3x8x8\nupsample size=16x12", lambda: nn.Upsample(size=(16, 12))(x(3, 8, 8))),
    Good("upsample-fractional-scale", "input 3x7x7\nupsample 1.5", lambda: nn.Upsample(scale_factor=1.5)(x(3, 7, 7))),
    Good("upsample-scale-per-dim", "input 3x7x7\nupsample scale_factor=(2.0, 1.5)", lambda: nn.Upsample(scale_factor=(2.0, 1.5))(x(3, 7, 7))),
    Good("upsample-downscale", "input 3x7x7\nupsample 0.5", lambda: nn.Upsample(scale_factor=0.5)(x(3, 7, 7))),
    Good("upsample-bilinear-align", "input 3x5x5\nupsample 2 mode=bilinear align_corners=true",
         lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)(x(3, 5, 5))),
    Good("upsample-linear-1d", "input 3x5\nupsample 3 mode=linear align_corners=false",
         lambda: nn.Upsample(scale_factor=3, mode="linear", align_corners=False)(x(3, 5))),
    Good("upsample-trilinear-3d", "input 3x2x3x4\nupsample 2 mode=trilinear", lambda: nn.Upsample(scale_factor=2, mode="trilinear")(x(3, 2, 3, 4))),
    Good("upsample-bicubic-2d", "input 3x4x4\nupsample 2 mode=bicubic align_corners=true",
         lambda: nn.Upsample(scale_factor=2, mode="bicubic", align_corners=True)(x(3, 4, 4))),
    Good("prelu-per-channel", "input 8x4x4\nprelu num_parameters=8", lambda: nn.PReLU(8)(x(8, 4, 4))),
    Good("prelu-one", "input 8x4x4\nprelu num_parameters=1", lambda: nn.PReLU(1)(x(8, 4, 4))),
    Good("rrelu-lower-equals-upper", "input 3x8x8\nrrelu 0.2 0.2", lambda: nn.RReLU(0.2, 0.2)(x(3, 8, 8))),
    Good("linear-last-dim", "input 3x8x5\nlinear 5->7", lambda: nn.Linear(5, 7)(x(3, 8, 5))),
    Good("linear-after-flatten", "input 3x8x8\nflatten | linear 192->10", lambda: nn.Linear(192, 10)(nn.Flatten()(x(3, 8, 8)))),
    Good("conv-in-matches", "input 4x8x8\nconv 4->16 k3 | relu | conv 16->8 k1", lambda: nn.Conv2d(16, 8, 1)(nn.Conv2d(4, 16, 3)(x(4, 8, 8)))),
]


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.id)
def test_torch_and_cnndsl_accept_with_same_shape(case: Good):
    out = run_torch(case.torch)
    net = cnndsl.check(case.src)
    assert (1, *net.output_shape) == tuple(out.shape)


# -- differential sweeps: every small configuration, accepted and shaped exactly as torch does --------
# Each layer is parsed once and checked against every input size (parsing dominates cnndsl's cost).


def torch_shape(fn) -> tuple[int, ...] | None:
    """torch's output shape without the batch, or None when torch rejects."""
    try:
        return tuple(run_torch(fn).shape[1:])
    except TORCH_ERRORS:
        return None


def disagreements(layer: str, inputs, module: Callable[[], nn.Module]) -> list[str]:
    """Where cnndsl and torch differ on `layer` over each input shape (C, *spatial)."""
    source = read_source(layer)
    net = cnndsl.parse(source).networks[0]
    try:
        m = run_torch(module)
    except TORCH_ERRORS:
        m = None  # torch rejects the layer when it is built, whatever the input
    out = []
    for shape in inputs:
        want = None if m is None else torch_shape(lambda: m(x(*shape)))
        try:
            got = check_network(source, net, {}, shape).output_shape
        except CnnDslError as e:
            assert type(e) is not ParseError, e.render()
            got = None
        if want != got:
            out.append(f"{layer!r} on {shape}: torch {want or 'rejects'}, cnndsl {got or 'rejects'}")
    return out


def test_sweep_pools_1d():
    bad = []
    inputs = [(2, i) for i in range(1, 8)]
    for k, s, p, ceil in itertools.product(range(1, 5), range(1, 4), range(3), (False, True)):
        flag = " ceil" if ceil else ""
        for d in (1, 2):
            bad += disagreements(f"maxpool {k} s{s} p{p} d{d}{flag}", inputs, lambda: nn.MaxPool1d(k, s, p, dilation=d, ceil_mode=ceil))
        cip = (k + s) % 2 == 0  # count_include_pad changes values, not shapes: half the cases each way
        bad += disagreements(f"avgpool {k} s{s} p{p}{flag} count_include_pad={str(cip).lower()}", inputs,
                             lambda: nn.AvgPool1d(k, s, p, ceil_mode=ceil, count_include_pad=cip))
    assert not bad, "\n".join(bad)


def test_sweep_pools_2d_3d_ceil():
    bad = []
    for k, s, p in itertools.product((2, 3, 4), (2, 3), (0, 1, 2)):
        bad += disagreements(f"maxpool {k} s{s} p{p} ceil", [(1, i, i + 1) for i in range(1, 8)], lambda: nn.MaxPool2d(k, s, p, ceil_mode=True))
        bad += disagreements(f"avgpool {k} s{s} p{p} ceil", [(1, i, i + 1, 3 + i % 2) for i in range(1, 8)],
                             lambda: nn.AvgPool3d(k, s, p, ceil_mode=True))
    assert not bad, "\n".join(bad)


def test_sweep_conv_1d():
    bad = []
    inputs = [(2, i) for i in range(1, 8)]
    for k, s, p, d in itertools.product(range(1, 5), (1, 2, 3), (0, 1, 2, "same", "valid"), (1, 2)):
        pad = f"p{p}" if isinstance(p, int) else f"padding={p}"
        bad += disagreements(f"conv 3 k{k} s{s} {pad} d{d}", inputs, lambda: nn.Conv1d(2, 3, k, s, p, dilation=d))
    assert not bad, "\n".join(bad)


def test_sweep_conv_padding_modes():
    bad = []
    inputs = [(2, i, i + 1) for i in range(1, 6)]
    for mode, k, p, d in itertools.product(("reflect", "circular", "replicate"), (1, 2, 3), (0, 2, 3, 4, 5, "same"), (1, 2)):
        pad = f"p{p}" if isinstance(p, int) else f"padding={p}"
        bad += disagreements(f"conv 3 k{k} d{d} {pad} padding_mode={mode}", inputs, lambda: nn.Conv2d(2, 3, k, padding=p, dilation=d, padding_mode=mode))
    assert not bad, "\n".join(bad)


def test_sweep_convt_1d():
    bad = []
    inputs = [(2, i) for i in range(1, 5)]
    for k, s, p, d, op in itertools.product(range(1, 4), (1, 2, 3), range(4), (1, 2), (0, 1, 2)):
        bad += disagreements(f"convt 3 k{k} s{s} p{p} d{d} op{op}", inputs, lambda: nn.ConvTranspose1d(2, 3, k, s, p, op, dilation=d))
    assert not bad, "\n".join(bad)


def test_sweep_upsample_scales():
    """out = floor(in * scale), computed in double as torch does (100 * 0.29 is 28.999...: 28)."""
    bad = []
    for scale in (0.29, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 2.5, 3):
        bad += disagreements(f"upsample {scale}", [(1, i) for i in (*range(1, 12), 30, 70, 100)], lambda: nn.Upsample(scale_factor=scale))
    assert not bad, "\n".join(bad)


# -- collecting errors --------------------------------------------------------------------------------


def test_independent_semantic_errors_are_all_reported():
    source = (
        "network N(c=8, width=wide * 2):\n"   # 1: `wide` names no parameter
        "    input 4x8x8\n"                # 2
        "    conv c k3 g3\n"               # 3: 4 input channels are not divisible by 3 groups
        "    relu inplce\n"                # 4: unknown flag
        "    maxpool 2 ceil_mode=3\n"      # 5: ceil_mode must be true or false
        "    convv 8 k3\n"                 # 6: unknown op
        "    conv 8 k3 padding_mode=reflekt\n"  # 7: not a padding mode
    )
    with pytest.raises(CnnDslError) as info:
        cnndsl.check(source)
    diags = info.value.diagnostics
    assert [(d.line, d.col) for d in diags] == [(1, 22), (3, 15), (4, 10), (5, 25), (6, 5), (7, 28)], info.value.render()
    assert "wide" in diags[0].message
    assert "groups (3)" in diags[1].message
    assert "inplce" in diags[2].message and "inplace" in (diags[2].hint or "")
    assert "ceil_mode" in diags[3].message
    assert "convv" in diags[4].message and "conv" in (diags[4].hint or "")
    assert "padding_mode" in diags[5].message and "reflect" in (diags[5].hint or "")
    rendered = info.value.render()
    assert rendered.count(": error: ") == 6
    for d in diags:
        assert f"<string>:{d.line}:{d.col}: error: " in rendered


def test_errors_in_separate_pipelines_on_one_line_are_all_reported():
    source = "input 3x8x8\nconv 8 k3 bias=maybe | relu | dropout 0.5 | linear 10 nobais\n"
    with pytest.raises(CnnDslError) as info:
        cnndsl.check(source)
    assert [(d.line, d.col) for d in info.value.diagnostics] == [(2, 16), (2, 55)], info.value.render()


def test_syntax_errors_stop_at_the_first():
    source = (
        "network N:\n"
        "    input 3x8x8\n"
        "    conv 8 k3 ->\n"   # 3: the first syntax error
        "    relu )\n"         # 4: a second one, never reported
        "    linear = 10\n"
    )
    with pytest.raises(ParseError) as info:
        cnndsl.check(source)
    assert len(info.value.diagnostics) == 1
    d = info.value.diagnostics[0]
    assert d.line == 3 and d.col == 17, d.render()
    rendered = info.value.render()
    assert "<string>:3:17: error: " in rendered
    assert rendered.count(": error: ") == 1
    check_located(info.value, "<string>", source, 3, 17)


def test_syntax_error_in_a_file_is_reported_with_its_path(tmp_cnn):
    source = "conv 3->16 k3 s2 p1 | relu | maxpool 2 ||\nflatten | linear 10\n"
    path = tmp_cnn(source)
    with pytest.raises(ParseError) as info:
        cnndsl.check(path)
    assert len(info.value.diagnostics) == 1
    d = info.value.diagnostics[0]
    assert (d.line, d.col) == (1, 41), d.render()
    check_located(info.value, str(path), source, 1, 41)
