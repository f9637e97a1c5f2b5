"""Convolutions: conv, convt (deconv), dwconv and deform."""

from __future__ import annotations

import math
from fractions import Fraction

from ..ir.values import value
from ..semantics import shapes
from ..semantics.pins import SPATIAL, divides, pin
from .base import Ctx, LayerError, OpSpec, Opt, Result, register
from .common import (
    BIAS,
    DILATION,
    FAMILY,
    GROUPS,
    KERNEL,
    PADDING,
    PADDING_MODES,
    STRIDE,
    at_least,
    check_groups,
    check_in_channels,
    conv_params,
    fmt_shape,
    kw,
    need_out,
    need_spatial,
)
from .facts import (
    INPUT,
    UNKNOWN,
    Saved,
    Label,
    Window,
    conv_macs,
    convt_macs,
    kwargs,
    numel,
    per_axis,
    rank,
    window,
)

PADDING_MODE = Opt("padding_mode", "enum", "zeros", choices=PADDING_MODES)
OUTPUT_PADDING = Opt("output_padding", "ints", 0, short="op", aliases=("op",))


def _kernel(ctx: Ctx) -> tuple:
    if ctx["kernel_size"] is None:
        raise LayerError(f"`{ctx.op}` needs a kernel size", hint="write it as `k3` or `kernel_size=3`")
    k = ctx.per_dim("kernel_size")
    at_least(ctx, "kernel_size", k, 1)
    return k


def _spatial_conv(ctx: Ctx, n: int, k: tuple) -> tuple[tuple, tuple]:
    """Checks stride, dilation and padding; returns the output spatial sizes and the (left, right) pads."""
    s, d = ctx.per_dim("stride"), ctx.per_dim("dilation")
    at_least(ctx, "stride", s, 1)
    at_least(ctx, "dilation", d, 1)
    pad = ctx["padding"]
    if isinstance(pad, str):
        if pad == "same":
            if any(value(x) != 1 for x in s):
                raise LayerError("padding='same' is not supported for strided convolutions", at="padding", hint="use an explicit padding such as `p1` with a stride")
            pads = tuple(shapes.same_padding(kk, dd) for kk, dd in zip(k, d))
            return tuple(ctx.shape[1:]), pads
        p = (0,) * n
    else:
        p = ctx.per_dim("padding")
        at_least(ctx, "padding", p, 0)
    out = []
    for j in range(n):
        i = ctx.shape[1 + j]
        if not shapes.conv_fits(i, k[j], p[j], d[j]):
            eff = value(d[j]) * (value(k[j]) - 1) + 1
            raise LayerError(
                f"the kernel ({eff}) is larger than the padded input ({value(i) + 2 * value(p[j])}) in spatial dimension {j + 1} of {fmt_shape(ctx.shape)}",
                at="kernel_size",
                hint="use a smaller kernel, more padding, or a larger input",
            )
        out.append(shapes.conv_out(i, k[j], s[j], p[j], d[j]))
    pin(ctx.shape[1:], k, s, p, d, reason=SPATIAL)  # the sizes computed here are numbers from now on
    return tuple(out), tuple((value(x), value(x)) for x in p)


def _padding_mode(ctx: Ctx, pads: tuple) -> None:
    mode = ctx["padding_mode"]
    if mode in (None, "zeros", "replicate"):
        return
    for j, (left, right) in enumerate(pads):
        i = value(ctx.shape[1 + j])
        if i is None:
            continue
        worst = max(left, right)
        if mode == "reflect" and worst >= i:
            raise LayerError(
                f"padding_mode=reflect needs each padding smaller than the input, but padding {worst} >= size {i} in spatial dimension {j + 1}",
                at="padding_mode",
            )
        if mode == "circular" and worst > i:
            raise LayerError(
                f"padding_mode=circular needs each padding at most the input size, but padding {worst} > size {i} in spatial dimension {j + 1}",
                at="padding_mode",
            )


def conv(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "conv")
    c_in = check_in_channels(ctx)
    c_out = need_out(ctx, f"{ctx.op} 16 k3")
    k = _kernel(ctx)
    check_groups(ctx, c_in, c_out, ctx["groups"])
    spatial, pads = _spatial_conv(ctx, n, k)
    _padding_mode(ctx, pads)
    bias = value(ctx["bias"])
    return Result(
        module=f"nn.Conv{FAMILY[n]}",
        shape=(c_out, *spatial),
        args=(c_in, c_out),
        kwargs=(("kernel_size", ctx["kernel_size"]),) + kw(ctx, "stride", "padding", "dilation", "groups", "bias", "padding_mode"),
        params=conv_params(c_in, c_out, ctx["groups"], k, bias),
        weights=True,
    )


def dwconv(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "dwconv")
    c_in = check_in_channels(ctx)
    c_out = ctx["out"] if ctx["out"] is not None else c_in
    if value(c_out) < 1 or not divides(c_in, c_out):
        raise LayerError(f"a depthwise conv's output channels must be a multiple of its input channels ({value(c_in)}), found {value(c_out)}", at="out")
    k = _kernel(ctx)
    spatial, pads = _spatial_conv(ctx, n, k)
    _padding_mode(ctx, pads)
    bias = value(ctx["bias"])
    return Result(
        module=f"nn.Conv{FAMILY[n]}",
        shape=(c_out, *spatial),
        args=(c_in, c_out),
        kwargs=(("kernel_size", ctx["kernel_size"]),) + kw(ctx, "stride", "padding", "dilation") + (("groups", c_in),) + kw(ctx, "bias", "padding_mode"),
        params=conv_params(c_in, c_out, c_in, k, bias),
        weights=True,
    )


def convt(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "convt")
    c_in = check_in_channels(ctx)
    c_out = need_out(ctx, f"{ctx.op} 16 k2 s2")
    k = _kernel(ctx)
    check_groups(ctx, c_in, c_out, ctx["groups"])
    if isinstance(ctx["padding"], str):
        raise LayerError(f"padding={ctx['padding']} is not supported by transposed convolutions", at="padding", hint="give the padding as a number")
    s, d, p, op = (ctx.per_dim(key) for key in ("stride", "dilation", "padding", "output_padding"))
    at_least(ctx, "stride", s, 1)
    at_least(ctx, "dilation", d, 1)
    at_least(ctx, "padding", p, 0)
    at_least(ctx, "output_padding", op, 0)
    if ctx["padding_mode"] not in (None, "zeros"):
        raise LayerError(f"only padding_mode=zeros is supported by transposed convolutions, found {ctx['padding_mode']}", at="padding_mode")
    for j in range(n):
        if not (value(op[j]) < value(s[j]) or value(op[j]) < value(d[j])):
            raise LayerError(
                f"output padding must be smaller than either stride or dilation, but got output_padding={value(op[j])}, stride={value(s[j])}, dilation={value(d[j])}",
                at="output_padding",
            )
    spatial = tuple(shapes.convt_out(ctx.shape[1 + j], k[j], s[j], p[j], d[j], op[j]) for j in range(n))
    pin(ctx.shape[1:], k, s, p, d, op, reason=SPATIAL)
    if any(x is not None and value(x) < 1 for x in spatial):
        raise LayerError(
            f"output size is too small: input {fmt_shape(ctx.shape)} gives spatial size {tuple(value(x) for x in spatial)}",
            at="padding",
            hint="reduce the padding or increase the kernel or stride",
        )
    bias = value(ctx["bias"])
    return Result(
        module=f"nn.ConvTranspose{FAMILY[n]}",
        shape=(c_out, *spatial),
        args=(c_in, c_out),
        kwargs=(("kernel_size", ctx["kernel_size"]),) + kw(ctx, "stride", "padding", "output_padding", "groups", "bias", "dilation"),
        params=conv_params(c_in, c_out, ctx["groups"], k, bias),
        weights=True,
    )


def deform(ctx: Ctx) -> Result:
    need_spatial(ctx, "deform", ranks=(2,))
    c_in = check_in_channels(ctx)
    c_out = need_out(ctx, "deform 64 k3 p1")
    k = _kernel(ctx)
    check_groups(ctx, c_in, c_out, ctx["groups"])
    if isinstance(ctx["padding"], str):
        raise LayerError("deform takes its padding as a number", at="padding")
    spatial, _ = _spatial_conv(ctx, 2, k)
    og = ctx["offset_groups"]
    at_least(ctx, "offset_groups", og, 1)
    if not divides(og, c_in):
        raise LayerError(f"input channels ({value(c_in)}) must be divisible by offset_groups ({value(og)})", at="offset_groups")
    modulated = bool(value(ctx["modulated"]))
    kk = value(k[0]) * value(k[1])
    pred = (3 if modulated else 2) * value(og) * kk
    bias = value(ctx["bias"])
    params = value(c_in) * pred * kk + pred + conv_params(c_in, c_out, ctx["groups"], k, bias)
    return Result(
        module="DeformConv",
        helper="DeformConv",
        shape=(c_out, *spatial),
        args=(c_in, c_out),
        kwargs=(("kernel_size", ctx["kernel_size"]),) + kw(ctx, "stride", "padding", "dilation", "groups", "offset_groups", "bias", "modulated"),
        params=params,
        weights=True,
    )


# -- facts (cnndsl/ops/facts.py) --------------------------------------------------------------------------


def _geometry(layer) -> tuple[tuple, tuple, tuple] | None:
    """A convolution's kernel, stride and dilation per spatial axis, from its module's arguments."""
    n = rank(layer)
    if n is None:
        return None
    kw = kwargs(layer)
    return per_axis(kw["kernel_size"], n), per_axis(kw.get("stride", 1), n), per_axis(kw.get("dilation", 1), n)


def conv_window(layer) -> Window:
    k, s, d = _geometry(layer) or (None, None, None)
    return UNKNOWN if k is None else window(k, s, d)


def convt_window(layer) -> Window:
    """A transposed conv of stride 1 is a conv (its kernel flipped): an exact window. With a stride s, an output
    reads from ceil((d(k-1)+1)/s) or fewer inputs, and the outputs are s times denser: the estimate."""
    geometry = _geometry(layer)
    if geometry is None:
        return UNKNOWN
    k, s, d = geometry
    if all(x == 1 for x in s):
        return window(k, s, d)
    taps = tuple(math.ceil((dd * (kk - 1) + 1) / ss) for kk, ss, dd in zip(k, s, d))
    return window(taps, tuple(Fraction(1, ss) for ss in s), exact=False)


def deform_window(layer) -> Window:
    """Its sampling positions move by learned offsets: the kernel's nominal window (where the zero-initialised
    offsets start) is only an estimate of what a trained layer sees."""
    k, s, d = _geometry(layer) or (None, None, None)
    return UNKNOWN if k is None else window(k, s, d, exact=False)


def deform_macs(layer) -> int | None:
    """Its main conv, plus its offset conv (the same window over the input, 2 or 3 values per tap and offset
    group); not the bilinear sampling."""
    count = conv_macs(layer)
    if count is None:
        return None
    kw = kwargs(layer)
    kernel = math.prod(per_axis(kw["kernel_size"], 2))
    offsets = (3 if kw.get("modulated") else 2) * kw.get("offset_groups", 1) * kernel
    return count + math.prod(value(layer.output_shape[1:])) * offsets * value(layer.args[0]) * kernel



def deform_saves(layer) -> tuple | None:
    """Its input (the offset conv keeps the same), the offsets, the mask (DCNv2: the sigmoid's output; DCNv1:
    the (N, 1) zeros torchvision passes) and, without a bias, the zeros torchvision passes as one."""
    n = numel(layer.output_shape)
    if n is None:
        return None
    kw = kwargs(layer)
    taps = kw.get("offset_groups", 1) * math.prod(per_axis(kw["kernel_size"], 2)) * (n // value(layer.output_shape[0]))
    bias = () if kw.get("bias", True) else (Saved("new", value(layer.args[1]), batched=False),)
    return INPUT + (Saved("new", 2 * taps), Saved("new", taps if kw.get("modulated") else 1)) + bias


_CONV_OPTIONS = (KERNEL, STRIDE, PADDING, DILATION, GROUPS, BIAS, PADDING_MODE)
_CHANNELS = Label(args=("in", "out"))

register(
    OpSpec("conv", conv, _CONV_OPTIONS, positional=("out",), channels=True, aliases=("conv1d", "conv2d", "conv3d"), kind="conv",
           saves=INPUT, view=False, doc="convolution: `nn.Conv1d/2d/3d` by the input's rank; padding also `same` or `valid` (stride 1)",
           window=conv_window, macs=conv_macs, buffers=0, label=_CHANNELS),
    OpSpec("convt", convt, (KERNEL, STRIDE, PADDING, OUTPUT_PADDING, DILATION, GROUPS, BIAS, PADDING_MODE),
           positional=("out",), channels=True, aliases=("deconv", "convt1d", "convt2d", "convt3d"), kind="convt",
           saves=INPUT, view=False, doc="transposed convolution: `nn.ConvTranspose1d/2d/3d`; padding_mode only `zeros`",
           window=convt_window, macs=convt_macs, buffers=0, label=_CHANNELS),
    OpSpec("dwconv", dwconv, (KERNEL, STRIDE, PADDING, DILATION, BIAS, PADDING_MODE), positional=("out",), channels=True,
           kind="dwconv", saves=INPUT, view=False, doc="depthwise convolution: `nn.Conv1d/2d/3d` with `groups=in`; out defaults to in and must be a multiple of it; padding also `same` or `valid`",
           window=conv_window, macs=conv_macs, buffers=0, label=_CHANNELS),
    OpSpec("deform", deform, (KERNEL, STRIDE, PADDING, DILATION, GROUPS, BIAS, Opt("offset_groups", "int", 1),
                              Opt("modulated", "bool", False, flags=(("modulated", True),))),
           positional=("out",), channels=True, kind="deform",
           saves=deform_saves, view=False, doc="deformable convolution, 2-d: `DeformConv` (section 6), torchvision's `DeformConv2d` with a zero-initialised offset conv; DCNv2 with `modulated`",
           window=deform_window, macs=deform_macs, buffers=0, label=_CHANNELS),
)
