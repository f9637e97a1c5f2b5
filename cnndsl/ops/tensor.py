"""Ops that reshape or resample: linear, flatten, identity, upsample, pixelshuffle, shuffle, permute,
layerscale and droppath."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from ..ir.values import value
from ..semantics.pins import LAYOUT, SPATIAL, divides, equal, pin
from ..semantics.shapes import prod, upsample_out
from .base import Ctx, LayerError, OpSpec, Opt, Result, register
from .common import BIAS, at_least, fmt_shape, kw, like_sizes, need_out, need_spatial
from .facts import (
    GLOBAL,
    INPUT,
    NOTHING,
    POINTWISE,
    UNKNOWN,
    Label,
    Saved,
    Window,
    kwargs,
    linear_macs,
    per_axis,
    rank,
    sizes,
    window,
)

UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")
_LINEAR_FAMILY = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def linear(ctx: Ctx) -> Result:
    out = need_out(ctx, "linear 10")
    have, said = ctx.shape[-1], ctx["in"]
    if have is not None and said is not None and not equal(have, said):
        raise LayerError(
            f"`linear` expects {value(said)} input features, but the input {fmt_shape(ctx.shape)} has {value(have)} in its last dimension",
            at="in",
            hint="a linear layer acts on the last dimension; put `flatten` before it to use all features",
        )
    features = have if have is not None else said
    bias = value(ctx["bias"])
    shape = (*ctx.shape[:-1], out)
    if features is None:
        return Result(
            module="nn.LazyLinear",
            shape=shape,
            args=(out,),
            kwargs=kw(ctx, "bias"),
            params=None,
            lazy=True,
            weights=True,
            warnings=(("the input features of `linear` are unknown, so it becomes nn.LazyLinear and its shapes are not checked",
                       "declare the network's `input`, e.g. `input 3x32x32`, to check every shape"),),
        )
    return Result(
        module="nn.Linear",
        shape=shape,
        args=(features, out),
        kwargs=kw(ctx, "bias"),
        params=value(features) * value(out) + (value(out) if bias else 0),
        weights=True,
    )


def flatten(ctx: Ctx) -> Result:
    full = len(ctx.shape) + 1
    pin(ctx["start_dim"], ctx["end_dim"], reason=LAYOUT)
    start, end = value(ctx["start_dim"]), value(ctx["end_dim"])
    for key, d in (("start_dim", start), ("end_dim", end)):
        if not -full <= d < full:
            raise LayerError(f"{key}={d} is out of range for a {full}-D input {fmt_shape(ctx.shape)}", at=key)
    s, e = start % full, end % full
    if s == 0:
        raise LayerError("flattening the batch dimension is not supported", at="start_dim", hint="use start_dim=1 (the default)")
    if s > e:
        raise LayerError(f"flatten's start_dim ({start}) must not come after its end_dim ({end})", at="start_dim")
    dims = ctx.shape[s - 1 : e]
    shape = (*ctx.shape[: s - 1], prod(dims), *ctx.shape[e:])
    return Result(module="nn.Flatten", shape=shape, kwargs=kw(ctx, "start_dim", "end_dim"))


def identity(ctx: Ctx) -> Result:
    return Result(module="nn.Identity", shape=ctx.shape)


def upsample(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "upsample")
    scale, size = ctx["scale_factor"], ctx["size"]
    like = like_sizes(ctx, n, "upsample", "scale_factor", "size", "recompute_scale_factor")
    if like is None and (scale is None) == (size is None):
        raise LayerError("`upsample` needs exactly one of a scale factor, a size and a value to match (`like=e1`)",
                         at="size" if size is not None else None, hint="e.g. `upsample 2`, `upsample size=64x64` or `upsample like=e1`")
    mode = ctx["mode"] or "nearest"
    if mode in _LINEAR_FAMILY and _LINEAR_FAMILY[mode] != n:
        raise LayerError(f"mode={mode} needs a {_LINEAR_FAMILY[mode] + 2}-D input, found {n + 2}-D input {fmt_shape(ctx.shape)}", at="mode")
    if ctx["align_corners"] is not None and mode not in _LINEAR_FAMILY:
        raise LayerError(f"align_corners applies only to the linear modes (linear, bilinear, bicubic, trilinear), not mode={mode}", at="align_corners")
    if like is not None:  # F.interpolate to the value's size, read in forward (the mode always written, as FPN's)
        return Result(module=None, shape=(ctx.channels, *like), args=(ctx["like"],),
                      kwargs=(("mode", mode),) + kw(ctx, "align_corners"), forward="interpolate")
    if size is not None:
        if value(ctx["recompute_scale_factor"]):
            raise LayerError("recompute_scale_factor is not meaningful with an explicit size", at="recompute_scale_factor")
        sizes = ctx.per_dim("size", n)
        at_least(ctx, "size", sizes, 1)
        out = tuple(sizes)
    else:
        scales = ctx.per_dim("scale_factor", n)
        if any(value(x) <= 0 for x in scales):
            raise LayerError(f"the scale factor must be positive, found {value(scale)}", at="scale_factor")
        out = tuple(upsample_out(ctx.shape[1 + j], value(scales[j])) for j in range(n))
        pin(ctx.shape[1:], scales, reason=SPATIAL)
        if any(o is not None and o < 1 for o in out):
            raise LayerError(f"output size is too small: input {fmt_shape(ctx.shape)} gives spatial size {out}", at="scale_factor")
    return Result(module="nn.Upsample", shape=(ctx.channels, *out), kwargs=kw(ctx, "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor"))


def crop(ctx: Ctx) -> Result:
    n = need_spatial(ctx, "crop")
    like = like_sizes(ctx, n, "crop", "size")
    if like is None and ctx["size"] is None:
        raise LayerError("`crop` needs a size or a value to match (`like=e1`)", hint="e.g. `crop 64x64` or `crop like=e1`")
    target = like if like is not None else tuple(ctx.per_dim("size", n))
    if like is None:
        at_least(ctx, "size", target, 1)
    for j, (have, want) in enumerate(zip(ctx.shape[1:], target)):
        if have is not None and want is not None and value(want) > value(have):
            raise LayerError(f"`crop` cannot enlarge: the input {fmt_shape(ctx.shape)} is smaller than the target "
                             f"({', '.join(str(value(t)) for t in target)}) in spatial axis {j + 1}",
                             at="like" if like is not None else "size", hint="a crop only cuts: to grow, use `upsample like=...` or `pad`")
    args = (ctx["like"],) if like is not None else (target,)
    return Result(module=None, shape=(ctx.channels, *target), args=args, forward="crop", helper="center_crop")


def pixelshuffle(ctx: Ctx) -> Result:
    need_spatial(ctx, ctx.op, ranks=(2,))
    r = ctx["upscale_factor"]
    if r is None:
        raise LayerError(f"`{ctx.op}` needs its factor", hint=f"e.g. `{ctx.op} 2`")
    at_least(ctx, "upscale_factor", r, 1)
    c, h, w = ctx.shape
    rr = value(r)
    if ctx.spec.name == "pixelshuffle":
        if c is not None and not divides(r * r, c):
            raise LayerError(f"pixelshuffle {rr} needs channels divisible by {rr * rr}, found {value(c)} in {fmt_shape(ctx.shape)}", at="upscale_factor")
        shape = (None if c is None else c // (r * r), None if h is None else h * r, None if w is None else w * r)
        return Result(module="nn.PixelShuffle", shape=shape, args=(r,))
    for d in (h, w):
        if d is not None and not divides(r, d):
            raise LayerError(f"pixelunshuffle {rr} needs height and width divisible by {rr}, found {fmt_shape(ctx.shape)}", at="upscale_factor")
    shape = (None if c is None else c * (r * r), None if h is None else h // r, None if w is None else w // r)
    return Result(module="nn.PixelUnshuffle", shape=shape, args=(r,))


def shuffle(ctx: Ctx) -> Result:
    need_spatial(ctx, "shuffle")
    g = ctx["groups"]
    if g is None:
        raise LayerError("`shuffle` needs its number of groups", hint="e.g. `shuffle 2`")
    at_least(ctx, "groups", g, 1)
    c = ctx.channels
    if c is not None and not divides(g, c):
        raise LayerError(f"channels ({value(c)}) must be divisible by the shuffle groups ({value(g)})", at="groups")
    return Result(module="nn.ChannelShuffle", shape=ctx.shape, args=(g,))


def permute(ctx: Ctx) -> Result:
    dims = ctx["dims"]
    full = len(ctx.shape) + 1
    if dims is None or sorted(value(dims)) != list(range(full)):
        got = "nothing" if dims is None else " ".join(str(value(d)) for d in dims)
        raise LayerError(f"`permute` needs a permutation of 0..{full - 1} for a {full}-D input, found {got}", at="dims")
    pin(dims, reason=LAYOUT)
    if value(dims[0]) != 0:
        raise LayerError("`permute` must keep the batch dimension first (dims start with 0)", at="dims")
    shape = tuple(ctx.shape[value(d) - 1] for d in dims[1:])
    return Result(module=None, shape=shape, args=tuple(dims), forward="permute")


def layerscale(ctx: Ctx) -> Result:
    pin(ctx["dim"], reason=LAYOUT)
    dim = value(ctx["dim"])
    full = len(ctx.shape) + 1
    if not -full < dim < full or dim % full == 0:
        raise LayerError(f"layerscale's dim must name a non-batch dimension of the {full}-D input, found {dim}", at="dim")
    size = ctx.shape[dim % full - 1]
    if size is None:
        raise LayerError("cannot infer the size of layerscale's parameter", hint="declare the network's `input`")
    shape = (size,) + (1,) * (len(ctx.shape) - dim % full)  # broadcasts over the dimensions after `dim`
    return Result(module="layerscale", shape=ctx.shape, args=(shape, ctx["init"]), params=value(size), forward="mul")


# a tensor expression as a module, for a stage of a named group (an nn.Sequential calls modules only): the class
# the generated file defines (cnndsl.backend.pytorch.helpers), by the expression's kind
_STAGE_MODULES = {"permute": "Permute", "mul": "LayerScale", "crop": "CenterCrop"}


def as_stage(result: Result) -> Result | None:
    """`result` as a module that an nn.Sequential can hold: torchvision's `Permute` in ConvNeXt's blocks, a
    `LayerScale` holding the scale, a `CenterCrop` to a fixed size; None where the op reads another value
    (`like=e1`), which a stage, given one tensor, cannot."""
    module = _STAGE_MODULES.get(result.forward)
    if module is None or (result.forward == "crop" and not isinstance(result.args[0], tuple)):
        return None
    return replace(result, module=module, helper=module, forward="call")


def droppath(ctx: Ctx) -> Result:
    p = value(ctx["p"])
    if not 0 <= p <= 1:
        raise LayerError(f"`p` must be between 0 and 1, found {p}", at="p")
    return Result(module="StochasticDepth", shape=ctx.shape, args=(ctx["p"], "row"), imports=("StochasticDepth",))


# -- facts (cnndsl/ops/facts.py) --------------------------------------------------------------------------


def linear_window(layer) -> Window:
    """A linear layer mixes its input's last dimension: where that is the only axis besides the channels, or the
    tensor is flat, every output sees the whole input; over one spatial axis of several, that axis becomes
    features, and the field is no longer the input's."""
    n = rank(layer)
    return GLOBAL if n is not None and n <= 1 else UNKNOWN


def flatten_window(layer) -> Window:
    """Merged axes are no longer the input's axes; a flatten that merges nothing changes nothing."""
    if layer.input_shape is not None and layer.output_shape is not None and len(layer.input_shape) == len(layer.output_shape):
        return POINTWISE
    return UNKNOWN


def permute_window(layer) -> Window:
    """Only the identity permutation leaves the spatial axes where the field's arithmetic expects them."""
    return POINTWISE if list(value(layer.args)) == list(range(len(layer.args))) else UNKNOWN


_TAPS = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}  # inputs an interpolated output reads, per axis


def upsample_window(layer) -> Window:
    """PyTorch's source positions: an output o reads input o·step (nearest), (o + 0.5)·step (nearest-exact),
    around (o + 0.5)·step - 0.5 (linear modes) or o·(in - 1)/(out - 1) (align_corners), where step is
    1/scale_factor, or in/out for a size or recompute_scale_factor; `area` is an adaptive average pool. An
    integer step is an even window, exact: a linear mode then reads one input where its source position falls
    on a pixel (an odd step) and 2 (4 for bicubic) otherwise. Any other step spreads outputs unevenly."""
    inp, out = sizes(layer.input_shape), sizes(layer.output_shape)
    if inp is None or out is None:
        return UNKNOWN
    kw = kwargs(layer)
    mode = kw.get("mode", "nearest")
    if mode == "area":
        from .pool import adaptive_window

        return adaptive_window(layer)
    n = len(inp)
    if kw.get("scale_factor") is not None and not kw.get("recompute_scale_factor"):
        steps = tuple(1 / Fraction(f) for f in per_axis(kw["scale_factor"], n))
    else:
        steps = tuple(Fraction(i, o) for i, o in zip(inp, out))
    taps, exact = [], True
    for j, (i, o) in enumerate(zip(inp, out)):
        step = steps[j]
        if mode in _TAPS and kw.get("align_corners"):
            step = Fraction(i - 1, o - 1) if o > 1 else Fraction(1)
            on_pixel = step.denominator == 1  # o·step
        elif mode in _TAPS:
            on_pixel = step.denominator == 1 and step.numerator % 2 == 1  # o·step + (step - 1)/2
        else:
            on_pixel = True  # nearest modes read one pixel
        taps.append(1 if on_pixel else _TAPS[mode])
        exact = exact and step.denominator == 1
        steps = steps[:j] + (step,) + steps[j + 1:]
    return window(tuple(taps), steps, exact=exact)


def _crop_target(layer) -> dict:
    """`crop 5x7` or `crop like=e1`, from what the layer was given."""
    (target,) = layer.args
    return {"size": value(target)} if isinstance(target, tuple) else {"like": str(target)}


def pixelshuffle_window(layer) -> Window:
    """pixelshuffle r: each output reads one input, the outputs r times denser, unevenly; pixelunshuffle r: each
    output reads an r x r block (across its channels), an exact window of r, stride r."""
    n = rank(layer)
    if n is None:
        return UNKNOWN
    r = value(layer.args[0])
    if layer.module == "nn.PixelShuffle":
        return window((1,) * n, (Fraction(1, r),) * n, exact=False)
    return window((r,) * n, (r,) * n)


def _layerscale_dim(layer) -> dict:
    """Its parameter's shape says the dim: (C, 1, 1) for dim=1, (W,) for dim=-1 on (C, H, W)."""
    if layer.input_shape is None:
        return {}
    full = len(layer.input_shape) + 1
    dim = full - len(value(layer.args[0]))
    return {"dim": dim if dim == 1 or dim < full - 1 else -1}


_EACH = dict(window=POINTWISE, macs=0, buffers=0, same_shape=True)


def _droppath_saves(layer):
    """One number per sample, in the activations' dtype (p = 0 returns the input and keeps nothing)."""
    return NOTHING if value(layer.args[0]) == 0 else (Saved("new", 1),)


register(
    OpSpec("linear", linear, (BIAS,), positional=("out",), channels=True, aliases=("fc",), kind="linear",
           saves=INPUT, view=False, doc="fully connected layer over the last dimension, its input features inferred: `nn.Linear` (`nn.LazyLinear` where they are unknown)",
           window=linear_window, macs=linear_macs, buffers=0, label=Label(args=("in", "out"))),
    OpSpec("flatten", flatten, (Opt("start_dim", "int", 1), Opt("end_dim", "int", -1)), kind="flatten", returns_input=True,
           saves=NOTHING, view=True, doc="merges dimensions start_dim to end_dim into one: `nn.Flatten`; start_dim=0 (the batch) is refused",
           window=flatten_window, macs=0, buffers=0, label=Label()),
    OpSpec("identity", identity, (), kind="identity", returns_input=True, saves=NOTHING, view=True, doc="returns its input: `nn.Identity`",
           label=Label(), **_EACH),
    OpSpec("upsample", upsample,
           (Opt("scale_factor", "floats"), Opt("size", "ints"), Opt("mode", "enum", "nearest", choices=UPSAMPLE_MODES),
            Opt("align_corners", "bool"), Opt("recompute_scale_factor", "bool"), Opt("like", "value")),
           positional=("scale_factor",), kind="upsample",
           saves=NOTHING, view=False, doc="resampling by a scale factor or to a size, exactly one of them: `nn.Upsample`; or to the size of a "
               "value, `like=e1`: `nn.functional.interpolate(x, size=e1.shape[2:])` in `forward`",
           window=upsample_window, macs=0, buffers=0, label=Label(args=("like",))),
    OpSpec("crop", crop, (Opt("size", "ints"), Opt("like", "value")), positional=("size",), kind="crop", returns_input=True,
           saves=NOTHING, view=True, doc="the centre of the input, cut to a size (`crop 64x64`) or to a value's size (`crop like=e1`), in `forward`",
           window=POINTWISE, macs=0, buffers=0, label=Label(args=(None,), derive=_crop_target)),
    OpSpec("pixelshuffle", pixelshuffle, (Opt("upscale_factor", "int"),), positional=("upscale_factor",), kind="pixelshuffle",
           saves=NOTHING, view=False, doc="(C·r², H, W) to (C, H·r, W·r), 4-D inputs only: `nn.PixelShuffle`",
           window=pixelshuffle_window, macs=0, buffers=0, label=Label(args=("upscale_factor",))),
    OpSpec("pixelunshuffle", pixelshuffle, (Opt("upscale_factor", "int", aliases=("downscale_factor",)),), positional=("upscale_factor",),
           kind="pixelunshuffle", saves=NOTHING, view=False, doc="(C, H·r, W·r) to (C·r², H, W), 4-D inputs only: `nn.PixelUnshuffle`",
           window=pixelshuffle_window, macs=0, buffers=0, label=Label(args=("upscale_factor",))),
    OpSpec("shuffle", shuffle, (Opt("groups", "int", aliases=("g",)),), positional=("groups",), kind="shuffle",
           saves=NOTHING, view=False, doc="channel shuffle among groups: `nn.ChannelShuffle`", label=Label(args=("groups",)), **_EACH),
    OpSpec("permute", permute, (Opt("dims", "dims"),), varargs="dims", kind="permute", returns_input=True,
           saves=NOTHING, view=True, doc="`x.permute(...)` in `forward`, over all dimensions, batch included and kept first (`permute 0 2 3 1`)",
           window=permute_window, macs=0, buffers=0, label=Label(args=("dims",))),
    OpSpec("layerscale", layerscale, (Opt("init", "float", 1e-5), Opt("dim", "int", 1)), positional=("init",), kind="layerscale",
           saves=INPUT, view=False, doc="a learned multiplier per channel (dim=1) or per entry of the last dimension (dim=-1): an `nn.Parameter` named as the layer, multiplied in `forward`",
           label=Label(args=(None, "init"), derive=_layerscale_dim), **_EACH),
    OpSpec("droppath", droppath, (Opt("p", "float", 0.1),), positional=("p",), kind="droppath", returns_input=True,
           saves=_droppath_saves, view=lambda layer: value(layer.args[0]) == 0, doc="stochastic depth, whole samples dropped with probability p in training, the identity in eval: `torchvision.ops.StochasticDepth(p, \"row\")`",
           label=Label(args=("p", None)), **_EACH),
)
