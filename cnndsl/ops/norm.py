"""Normalisation: bn, frozenbn, gn, ln, ln2d, instnorm."""

from __future__ import annotations

import math

from ..ir.values import value
from ..semantics.pins import divides, equal
from ..semantics.shapes import prod
from .base import Ctx, LayerError, OpSpec, Opt, Result, register, written_rank
from .common import FAMILY, at_least, fmt_shape, kw, need_spatial
from .facts import INPUT, POINTWISE, Label, Saved, Window, kwargs, numel, per_axis, rank, saves_all, statistics_over

EPS = Opt("eps", "float", 1e-5)
MOMENTUM = Opt("momentum", "float", 0.1)


def _family(ctx: Ctx, ranks: tuple[int, ...]) -> str:
    """1d/2d/3d from the tensor's rank; (F,) counts as 1d for batch norm."""
    n = max(ctx.rank, 1)
    explicit = written_rank(ctx.op)
    if explicit is not None and explicit != n or ctx.rank not in ranks:
        want = f"a {explicit + 2}-D" if explicit is not None else " or ".join(f"{r + 2}-D" for r in ranks)
        raise LayerError(f"`{ctx.op}` expects {want} input, found {len(ctx.shape) + 1}-D input {fmt_shape(ctx.shape)}",
                         hint=f"write `{ctx.op[:-2]}` to follow the input's rank" if explicit is not None else None)
    return FAMILY[n]


def _eps(ctx: Ctx) -> None:
    if not value(ctx["eps"]) > 0:
        raise LayerError(f"eps must be positive, found {value(ctx['eps'])}", at="eps",
                         hint="PyTorch divides by sqrt(variance + eps); batch norm rejects eps <= 0 in training")


def _channels(ctx: Ctx):
    c = ctx.channels
    if c is None:
        raise LayerError(f"cannot infer the number of channels for `{ctx.op}`", hint="declare the network's `input`, e.g. `input 3x32x32`")
    return c


def _per_channel(ctx: Ctx, module: str, c) -> Result:
    """Batch and instance norm: a weight and a bias per channel when affine."""
    return Result(
        module=module,
        shape=ctx.shape,
        args=(c,),
        kwargs=kw(ctx, "eps", "momentum", "affine", "track_running_stats"),
        params=2 * value(c) if value(ctx["affine"]) else 0,
        weights=True,
    )


def bn(ctx: Ctx) -> Result:
    _eps(ctx)
    fam = _family(ctx, (0, 1, 2, 3))
    c = _channels(ctx)
    return _per_channel(ctx, f"nn.BatchNorm{fam}", c)


def frozenbn(ctx: Ctx) -> Result:
    """torchvision.ops.FrozenBatchNorm2d: batch norm with its statistics and affine transform as buffers (no
    parameters, nothing tracked), 4-D inputs only (its forward reshapes to (1, C, 1, 1))."""
    need_spatial(ctx, ctx.op, ranks=(2,))  # (no check of eps: torchvision takes any, as rsqrt(running_var + eps))
    c = _channels(ctx)
    return Result(module="FrozenBatchNorm2d", shape=ctx.shape, args=(c,), kwargs=kw(ctx, "eps"), params=0,
                  helper="FrozenBatchNorm2d")


def ln2d(ctx: Ctx) -> Result:
    """torchvision's LayerNorm2d (models/convnext.py): nn.LayerNorm over the channels of (N, C, H, W), as one module
    whose forward permutes to channels-last and back."""
    _eps(ctx)
    if ctx.rank != 2:
        raise LayerError(f"`ln2d` normalises the channels of a 4-D input (N, C, H, W), found {ctx.rank + 2}-D input {fmt_shape(ctx.shape)}",
                         hint="`ln` normalises the last dimension of any input")
    c = _channels(ctx)
    per = int(bool(value(ctx["elementwise_affine"]))) * (1 + int(bool(value(ctx["bias"]))))
    return Result(module="LayerNorm2d", shape=ctx.shape, args=(c,), kwargs=kw(ctx, "eps", "elementwise_affine", "bias"),
                  params=per * value(c), weights=True, helper="LayerNorm2d")


def instnorm(ctx: Ctx) -> Result:
    _eps(ctx)
    fam = _family(ctx, (1, 2, 3))
    c = _channels(ctx)
    if not value(ctx["track_running_stats"]) and prod([value(i) for i in ctx.shape[1:]]) == 1:
        raise LayerError(f"`{ctx.op}` needs more than one spatial element per channel, but the input is {fmt_shape(ctx.shape)}",
                         hint="instance norm normalises over the spatial positions; with one there is nothing to normalise")
    return _per_channel(ctx, f"nn.InstanceNorm{fam}", c)


def gn(ctx: Ctx) -> Result:
    _eps(ctx)
    c = _channels(ctx)
    g = ctx["num_groups"]
    if g is None:
        raise LayerError("`gn` needs its number of groups", hint="write it after the op, e.g. `gn 32`")
    at_least(ctx, "num_groups", g, 1)
    if not divides(g, c):
        raise LayerError(f"num_channels ({value(c)}) must be divisible by num_groups ({value(g)})", at="num_groups")
    affine = value(ctx["affine"])
    return Result(
        module="nn.GroupNorm",
        shape=ctx.shape,
        args=(g, c),
        kwargs=kw(ctx, "eps", "affine"),
        params=2 * value(c) if affine else 0,
        weights=True,
    )


def ln(ctx: Ctx) -> Result:
    _eps(ctx)
    shape = ctx["normalized_shape"]
    if shape is None:
        shape = ctx.shape[-1]
        if shape is None:
            raise LayerError("cannot infer the size `ln` normalises over", hint="declare the network's `input`, e.g. `input 3x32x32`")
    dims = shape if isinstance(shape, tuple) else (shape,)
    at_least(ctx, "normalized_shape", dims, 1)
    trailing = ctx.shape[len(ctx.shape) - len(dims):] if len(dims) <= len(ctx.shape) else None
    if trailing is None or any(t is not None and not equal(t, d) for t, d in zip(trailing, dims)):
        raise LayerError(
            f"normalized_shape {tuple(value(d) for d in dims)} does not match the trailing dimensions of the input {fmt_shape(ctx.shape)}",
            at="normalized_shape",
        )
    n = prod(value(dims))
    per = int(bool(value(ctx["elementwise_affine"]))) * (1 + int(bool(value(ctx["bias"]))))
    return Result(
        module="nn.LayerNorm",
        shape=ctx.shape,
        args=(shape,),
        kwargs=kw(ctx, "eps", "elementwise_affine", "bias"),
        params=per * n,
        weights=True,
    )


# -- facts (cnndsl/ops/facts.py) --------------------------------------------------------------------------


def _all_spatial(layer) -> Window:
    """Pointwise, with statistics over every spatial axis (batch norm in training, instance and group norm)."""
    n = rank(layer)
    return statistics_over(*range(n or 0))


def ln_window(layer) -> Window:
    """Pointwise, with statistics over the trailing axes that normalized_shape covers."""
    n = rank(layer)
    if n is None:
        return POINTWISE
    covered = len(per_axis(layer.args[0], 1))
    return statistics_over(*range(max(n - covered, 0), n))


def running_statistics(default: bool):
    """Batch and instance norm keep a running mean and variance per channel and a batch counter, when they
    track running statistics."""

    def count(layer) -> int | None:
        if not kwargs(layer).get("track_running_stats", default):
            return 0
        c = value(layer.args[0])
        return None if c is None else 2 * c + 1

    return count


def _last_dimension(layer, opts) -> dict:
    return {"normalized_shape": None if layer.input_shape is None else (value(layer.input_shape[-1]),)}



def _stats(count, batched: bool = True, copies: int = 2, dtype: str = "stats") -> tuple | None:
    return None if count is None else (Saved("new", count, dtype, batched),) * copies


def _channels_of(layer):
    return None if layer.input_shape is None else value(layer.input_shape[0])


def bn_saves(layer):
    """Its input and the batch's mean and inverse deviation, one per channel."""
    return saves_all(INPUT, _stats(_channels_of(layer), batched=False))


def gn_saves(layer):
    """Its input and a mean and inverse deviation per sample and group."""
    return saves_all(INPUT, _stats(value(layer.args[0])))


def ln_saves(layer):
    """Its input and a mean and inverse deviation per sample and position of the dimensions it does not normalise."""
    n, shape = numel(layer.input_shape), value(layer.args[0])
    return saves_all(INPUT, None if n is None else _stats(n // math.prod(shape if isinstance(shape, tuple) else (shape,))))


def ln2d_saves(layer):
    """Its input (permuted to channels-last, the same storage) and a mean and inverse deviation per position."""
    n, c = numel(layer.input_shape), _channels_of(layer)
    return saves_all(INPUT, None if n is None else _stats(n // c))


def instnorm_saves(layer):
    """Its input, a mean and inverse deviation per sample and channel, and with `affine` its weight repeated for
    each sample (it runs as a batch norm over N·C channels)."""
    c = _channels_of(layer)
    affine = bool(kwargs(layer).get("affine", False))
    return saves_all(INPUT, _stats(c), _stats(c, copies=1, dtype="same") if affine else ())


def frozenbn_saves(layer):
    """Its scale, weight·rsqrt(running_var + eps), one per channel, made by each forward (no parameters: kept only
    where the input needs a gradient)."""
    return _stats(_channels_of(layer), batched=False, copies=1, dtype="same")


_BN = (EPS, MOMENTUM, Opt("affine", "bool", True), Opt("track_running_stats", "bool", True))
_NORM = dict(window=_all_spatial, macs=0, same_shape=True)

register(
    OpSpec("bn", bn, _BN, aliases=("bn1d", "bn2d", "bn3d", "batchnorm"), kind="bn",
           saves=bn_saves, view=False, doc="batch normalisation: `nn.BatchNorm1d/2d/3d` by the input's rank; a (N, F) input counts as 1-d",
           buffers=running_statistics(True), label=Label(args=(None,)), **_NORM),
    OpSpec("gn", gn, (Opt("num_groups", "int"), EPS, Opt("affine", "bool", True)), positional=("num_groups",), kind="gn",
           saves=gn_saves, view=False, doc="group normalisation over groups of channels: `nn.GroupNorm`",
           buffers=0, label=Label(args=("num_groups", None)), **_NORM),
    OpSpec("ln", ln, (Opt("normalized_shape", "ints"), EPS, Opt("elementwise_affine", "bool", True), Opt("bias", "bool", True)),
           positional=("normalized_shape",), kind="ln",
           saves=ln_saves, view=False, doc="layer normalisation over the last dimension, or over the trailing normalized_shape: `nn.LayerNorm`",
           window=ln_window, macs=0, buffers=0, label=Label(args=("normalized_shape",), implied=_last_dimension), same_shape=True),
    OpSpec("frozenbn", frozenbn, (EPS,), kind="bn",
           saves=frozenbn_saves, view=False, doc="batch norm with frozen statistics and affine transform, all four buffers, 4-D inputs: `FrozenBatchNorm2d` (section 6), torchvision.ops' own",
           window=POINTWISE, macs=0, buffers=lambda layer: 4 * value(layer.args[0]), label=Label(args=(None,)), same_shape=True),
    OpSpec("ln2d", ln2d, (EPS, Opt("elementwise_affine", "bool", True), Opt("bias", "bool", True)), kind="ln",
           saves=ln2d_saves, view=False, doc="layer normalisation over the channels of (N, C, H, W), one module with `weight` and `bias`: `LayerNorm2d` (section 6), torchvision's (ConvNeXt)",
           window=POINTWISE, macs=0, buffers=0, label=Label(args=(None,)), same_shape=True),
    OpSpec("instnorm", instnorm, (EPS, MOMENTUM, Opt("affine", "bool", False), Opt("track_running_stats", "bool", False)),
           aliases=("instnorm1d", "instnorm2d", "instnorm3d"), kind="instnorm",
           saves=instnorm_saves, view=False, doc="instance normalisation: `nn.InstanceNorm1d/2d/3d`",
           buffers=running_statistics(False), label=Label(args=(None,)), **_NORM),
)
