"""Pooling: maxpool, avgpool, lppool, the adaptive pools and gap; and the facts of unpool."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

from ..ir.values import value
from ..semantics import shapes
from ..semantics.pins import SPATIAL, pin
from .base import Ctx, LayerError, OpSpec, Opt, Result, register
from .common import (
    CEIL,
    DILATION,
    FAMILY,
    KERNEL,
    PADDING,
    STRIDE,
    at_least,
    fmt_shape,
    kw,
    need_spatial,
)
from .facts import GLOBAL, INPUT, NOTHING, UNKNOWN, Label, Saved, Window, kwargs, like, per_axis, rank, saves_all, sizes, window


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


def lppool(ctx: Ctx) -> Result:
    """nn.LPPool1d/2d/3d: avg_pool of x^p (no padding) times the window's size, to the power 1/p; its output sizes
    are the average pool's. Its 3-d form runs avg_pool3d, which refuses an input smaller than the kernel."""
    n = need_spatial(ctx, "lppool")
    p = ctx["norm_type"]
    if p is None:
        raise LayerError(f"`{ctx.op}` needs its norm type p", hint=f"e.g. `{ctx.op} 2 3` (p=2, kernel 3)")
    if value(p) == 0:
        raise LayerError("norm_type must be a non-zero value, found 0", at="norm_type")
    if ctx["kernel_size"] is None:
        raise LayerError(f"`{ctx.op}` needs a kernel size", hint=f"write it after p, e.g. `{ctx.op} 2 3`")
    k = ctx.per_dim("kernel_size", n)
    s = ctx.per_dim("stride", n) if ctx["stride"] is not None else k
    at_least(ctx, "kernel_size", k, 1)
    at_least(ctx, "stride", s, 1)
    if n == 3:
        for j in range(3):
            i = value(ctx.shape[1 + j])
            if i is not None and i < value(k[j]):
                raise LayerError(f"LPPool3d needs every input size at least the kernel size, but size {i} < kernel {value(k[j])} in spatial dimension {j + 1}",
                                 at="kernel_size")
    out = _out(ctx, n, k, s, (0,) * n, (1,) * n)
    kernel = ctx["kernel_size"]
    if n == 1 and isinstance(kernel, tuple):  # LPPool1d multiplies by its kernel_size, which must be an int
        kernel = kernel[0]
    return Result(module=f"nn.LPPool{FAMILY[n]}", shape=(ctx.channels, *out), args=(p, kernel), kwargs=kw(ctx, "stride", "ceil_mode"))


def unpool_rule(ctx: Ctx) -> Result:
    raise LayerError("`unpool` is checked where it is written (cnndsl/semantics/scope.py), not by a rule")


# -- facts (cnndsl/ops/facts.py) --------------------------------------------------------------------------


def _pool_window(layer, kernel, dilated: bool) -> Window:
    n = rank(layer)
    if n is None:
        return UNKNOWN
    kw = kwargs(layer)
    k = per_axis(kernel, n)
    s = per_axis(kw["stride"], n) if kw.get("stride") is not None else k
    return window(k, s, per_axis(kw.get("dilation", 1), n) if dilated else None)


def maxpool_window(layer) -> Window:
    return _pool_window(layer, layer.args[0], dilated=True)


def avgpool_window(layer) -> Window:
    return _pool_window(layer, layer.args[0], dilated=False)


def lppool_window(layer) -> Window:
    return _pool_window(layer, layer.args[1], dilated=False)


def adaptive_window(layer) -> Window:
    """To size 1 on every axis: global. Otherwise PyTorch's windows [floor(i·in/out), ceil((i+1)·in/out)): the
    widest, with a stride of in/out; exact where out divides in (every window the same)."""
    out = sizes(layer.output_shape)
    if (out is not None and all(o == 1 for o in out)) or (out is None and all(v == 1 for v in per_axis(layer.args[0], 1))):
        return GLOBAL
    inp = sizes(layer.input_shape)
    if inp is None or out is None:
        return UNKNOWN
    widest = tuple(adaptive_widest(i, o) for i, o in zip(inp, out))
    return window(widest, tuple(Fraction(i, o) for i, o in zip(inp, out)), exact=all(i % o == 0 for i, o in zip(inp, out)))


def adaptive_widest(size_in: int, size_out: int) -> int:
    """The widest window of an adaptive pool from size_in to size_out (PyTorch's start/end index rule)."""
    return max(-(-(i + 1) * size_in // size_out) - (i * size_in // size_out) for i in range(size_out))


def unpool_window(layer) -> Window:
    """MaxUnpool puts each value back where its pool found it: an output reads at most ceil(k/s) pooled values,
    and the outputs are s times denser. Where values land depends on the data: an estimate."""
    n = rank(layer)
    if n is None:
        return UNKNOWN
    kw = kwargs(layer)
    k = per_axis(layer.args[0], n)
    s = per_axis(kw["stride"], n) if kw.get("stride") is not None else k
    return window(tuple(math.ceil(kk / ss) for kk, ss in zip(k, s)), tuple(Fraction(1, ss) for ss in s), exact=False)


def _stride_is_kernel(kernel: str):
    """A pool's stride defaults to its kernel."""
    return lambda layer, opts: {"stride": opts.get(kernel)}



def _with_indices(layer):
    """Its input and the int64 index of each output's maximum."""
    return saves_all(INPUT, like(layer, "output", "int64"))


def _adaptive_avg_saves(layer):
    """Its input; nothing to a single output per channel, which torch computes as a mean (its backward needs
    only the sizes)."""
    out = sizes(layer.output_shape)
    return NOTHING if out is not None and all(d == 1 for d in out) else INPUT


def lppool_saves(layer):
    """F.lp_pool: x^p (keeps x), an average pool of it (keeps x^p), then sign·relu(abs), scaled and raised to 1/p,
    which keep four tensors of the output's size."""
    return saves_all(INPUT, like(layer, "input"), like(layer, "output", count=4))


_POOL = (KERNEL, replace(STRIDE, default=None), PADDING, CEIL)
_SIZE = Label(args=("output_size",))
_POOLED = dict(macs=0, buffers=0, view=False)

register(
    OpSpec("maxpool", maxpool, _POOL + (DILATION,), positional=("kernel_size",), aliases=("maxpool1d", "maxpool2d", "maxpool3d"),
           kind="maxpool", saves=_with_indices, doc="max pooling: `nn.MaxPool1d/2d/3d`; stride defaults to the kernel",
           window=maxpool_window, label=Label(args=("kernel_size",), implied=_stride_is_kernel("kernel_size")), **_POOLED),
    OpSpec("avgpool", avgpool,
           _POOL + (Opt("count_include_pad", "bool", True), Opt("divisor_override", "int")),
           positional=("kernel_size",), aliases=("avgpool1d", "avgpool2d", "avgpool3d"), kind="avgpool",
           saves=INPUT, doc="average pooling: `nn.AvgPool1d/2d/3d`; stride defaults to the kernel",
           window=avgpool_window, label=Label(args=("kernel_size",), implied=_stride_is_kernel("kernel_size")), **_POOLED),
    OpSpec("lppool", lppool, (Opt("norm_type", "float"), KERNEL, replace(STRIDE, default=None), CEIL),
           positional=("norm_type", "kernel_size"), aliases=("lppool1d", "lppool2d", "lppool3d"), kind="lppool",
           saves=lppool_saves, doc="power-average pooling, (sum of x^p over the window)^(1/p): `nn.LPPool1d/2d/3d`; no padding; stride defaults to the kernel",
           window=lppool_window, label=Label(args=("norm_type", "kernel_size"), implied=_stride_is_kernel("kernel_size")), **_POOLED),
    OpSpec("adaptiveavgpool", _adaptive("Avg"), (Opt("output_size", "ints"),), positional=("output_size",),
           aliases=("adaptiveavgpool1d", "adaptiveavgpool2d", "adaptiveavgpool3d"), kind="avgpool",
           saves=_adaptive_avg_saves, doc="adaptive average pooling to a fixed output size (`7`, `7x7`): `nn.AdaptiveAvgPool1d/2d/3d`",
           window=adaptive_window, label=_SIZE, **_POOLED),
    OpSpec("adaptivemaxpool", _adaptive("Max"), (Opt("output_size", "ints"),), positional=("output_size",),
           aliases=("adaptivemaxpool1d", "adaptivemaxpool2d", "adaptivemaxpool3d"), kind="maxpool",
           saves=_with_indices, doc="adaptive max pooling to a fixed output size: `nn.AdaptiveMaxPool1d/2d/3d`",
           window=adaptive_window, label=_SIZE, **_POOLED),
    OpSpec("gap", _adaptive("Avg"), (), kind="avgpool", saves=_adaptive_avg_saves, doc="global average pooling: `nn.AdaptiveAvgPool1d/2d/3d(1)`",
           window=GLOBAL, label=Label(args=(None,)), **_POOLED),
)

# `unpool NAME` is written with the name of a max pool, whose indices it reads, so the checker builds it itself
# (cnndsl/semantics/scope.py) and the catalog's REGISTRY does not hold it; its facts live here all the same.
UNPOOL = OpSpec("unpool", unpool_rule, (), kind="unpool",
                doc="undoes a named max pool (`maxpool 2 as pool1` ... `unpool pool1`): `nn.MaxUnpool1d/2d/3d` with that pool's indices (section 5)",
                window=unpool_window, label=Label(args=(None,)), saves=(Saved("indices"),), **_POOLED)
