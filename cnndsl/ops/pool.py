"""Pooling: maxpool, avgpool, the adaptive pools and gap."""

from __future__ import annotations

from dataclasses import replace

from .. import shapes
from ..values import SPATIAL, pin, value
from .base import Ctx, LayerError, Opt, OpSpec, Result, register
from .common import CEIL, DILATION, FAMILY, KERNEL, PADDING, STRIDE, at_least, fmt_shape, kw, need_spatial


def _window(ctx: Ctx, n: int, dilated: bool) -> tuple:
    if ctx["kernel_size"] is None:
        raise LayerError(f"`{ctx.op}` needs a kernel size", hint=f"write it after the op, e.g. `{ctx.op} 2`")
    if isinstance(ctx["padding"], str):
        raise LayerError(f"`{ctx.op}` takes its padding as a number, found {ctx['padding']}", at="padding")
    k = ctx.per_dim("kernel_size", n)
    s = ctx.per_dim("stride", n) if ctx["stride"] is not None else k
    p = ctx.per_dim("padding", n)
    d = ctx.per_dim("dilation", n) if dilated else (1,) * n
    at_least(ctx, "kernel_size", k, 1)
    at_least(ctx, "stride", s, 1)
    at_least(ctx, "padding", p, 0)
    at_least(ctx, "dilation", d, 1)
    for j in range(n):
        kk, pp, dd = value(k[j]), value(p[j]), value(d[j])
        eff = dd * (kk - 1) + 1
        if pp > kk // 2 or pp > eff // 2:
            raise LayerError(
                f"pad should be at most half of the kernel size, but got padding={pp}, kernel_size={kk}"
                + (f" and dilation={dd}" if dilated else ""),
                at="padding",
                hint=f"use a padding of at most {kk // 2}",
            )
    return k, s, p, d


def _out(ctx: Ctx, n: int, k, s, p, d) -> tuple:
    ceil = bool(value(ctx["ceil_mode"]))
    out = tuple(shapes.pool_out(ctx.shape[1 + j], k[j], s[j], p[j], d[j], ceil) for j in range(n))
    pin(ctx.shape[1:], k, s, p, d, ctx["ceil_mode"], reason=SPATIAL)  # the sizes computed here are numbers from now on
    if any(o is not None and value(o) < 1 for o in out):
        raise LayerError(
            f"output size is too small: input {fmt_shape(ctx.shape)} gives spatial size {tuple(value(o) for o in out)}",
            at="kernel_size",
            hint="use a smaller kernel or stride, or a larger input",
        )
    return out


def maxpool(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "maxpool")
    k, s, p, d = _window(ctx, n, dilated=True)
    out = _out(ctx, n, k, s, p, d)
    return Result(
        module=f"nn.MaxPool{FAMILY[n]}",
        shape=(ctx.channels, *out),
        args=(ctx["kernel_size"],),
        kwargs=kw(ctx, "stride", "padding", "dilation", "ceil_mode"),
    )


def avgpool(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "avgpool")
    k, s, p, d = _window(ctx, n, dilated=False)
    div = ctx["divisor_override"]
    if div is not None and value(div) == 0:
        raise LayerError("divisor_override must not be zero", at="divisor_override")
    if div is not None and n == 1:
        raise LayerError("nn.AvgPool1d has no divisor_override", at="divisor_override", hint="drop divisor_override, or pool a 2-d or 3-d input")
    if n == 3:
        for j in range(3):
            i = value(ctx.shape[1 + j])
            if i is not None and i < value(k[j]):
                raise LayerError(
                    f"AvgPool3d needs every input size at least the kernel size (padding does not count), but size {i} < kernel {value(k[j])} in spatial dimension {j + 1}",
                    at="kernel_size",
                )
    out = _out(ctx, n, k, s, p, d)
    return Result(
        module=f"nn.AvgPool{FAMILY[n]}",
        shape=(ctx.channels, *out),
        args=(ctx["kernel_size"],),
        kwargs=kw(ctx, "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    )


def _adaptive(kind: str):
    def rule(ctx: Ctx) -> Result:
        n = need_spatial(ctx, ctx.op)
        size = ctx["output_size"] if ctx.spec.name != "gap" else 1
        if size is None:
            raise LayerError(f"`{ctx.op}` needs an output size", hint=f"e.g. `{ctx.op} 7` or `{ctx.op} 7x7`")
        sizes = ctx.per_dim("output_size", n) if ctx.spec.name != "gap" else (1,) * n
        at_least(ctx, "output_size", sizes, 1)
        return Result(module=f"nn.Adaptive{kind}Pool{FAMILY[n]}", shape=(ctx.channels, *sizes), args=(size,))

    return rule


_POOL = (KERNEL, replace(STRIDE, default=None), PADDING, CEIL)

register(
    OpSpec("maxpool", maxpool, _POOL + (DILATION,), positional=("kernel_size",), aliases=("maxpool1d", "maxpool2d", "maxpool3d"),
           kind="maxpool", doc="max pooling; stride defaults to the kernel"),
    OpSpec("avgpool", avgpool,
           _POOL + (Opt("count_include_pad", "bool", True), Opt("divisor_override", "int")),
           positional=("kernel_size",), aliases=("avgpool1d", "avgpool2d", "avgpool3d"), kind="avgpool",
           doc="average pooling; stride defaults to the kernel"),
    OpSpec("adaptiveavgpool", _adaptive("Avg"), (Opt("output_size", "ints"),), positional=("output_size",),
           aliases=("adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d"), kind="avgpool",
           doc="adaptive average pooling to a fixed output size"),
    OpSpec("adaptivemaxpool", _adaptive("Max"), (Opt("output_size", "ints"),), positional=("output_size",),
           aliases=("adaptivemaxpool1d", "adaptivemaxpool2d", "adaptivemaxpool3d"), kind="maxpool",
           doc="adaptive max pooling to a fixed output size"),
    OpSpec("gap", _adaptive("Avg"), (), kind="avgpool", doc="global average pooling (adaptive average pooling to 1)"),
)
