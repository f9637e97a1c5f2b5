"""Ops that give a tensor another shape without computing with it: unflatten and pad."""

from __future__ import annotations

from ..ir.values import value
from ..semantics.pins import LAYOUT, SPATIAL, divides, equal, pin
from ..semantics.shapes import prod
from .base import Ctx, LayerError, OpSpec, Opt, Result, register
from .common import FAMILY, fmt_shape, like_sizes, need_spatial
from .facts import NOTHING, POINTWISE, UNKNOWN, Label, Window, kwargs as layer_kwargs

MAX_RANK = 5  # (N, C, D, H, W): the most dimensions any cnndsl tensor has


def unflatten(ctx: Ctx) -> Result:
    """nn.Unflatten(dim, sizes): one dimension becomes several whose product is its size (one size may be -1,
    inferred, as torch infers it)."""
    full = len(ctx.shape) + 1
    sizes = ctx["unflattened_size"]
    if sizes is None:
        raise LayerError("`unflatten` needs the sizes to unflatten into", hint="e.g. `unflatten 64x7x7` for (N, 64, 7, 7)")
    pin(ctx["dim"], reason=LAYOUT)
    dim = value(ctx["dim"])
    if not -full <= dim < full:
        raise LayerError(f"dim={dim} is out of range for a {full}-D input {fmt_shape(ctx.shape)}", at="dim")
    d = dim % full
    if d == 0:
        raise LayerError("unflattening the batch dimension is not supported", at="dim", hint="use dim=1 (the default)")
    items = sizes if isinstance(sizes, tuple) else (sizes,)
    written = "x".join(str(value(s)) for s in items) if all(value(s) >= 0 for s in items) else str(tuple(value(items)))
    inferred = [i for i, s in enumerate(items) if value(s) == -1]
    if len(inferred) > 1:
        raise LayerError(f"only one size of `unflatten` can be -1 (inferred), found {written}", at="unflattened_size")
    if any(value(s) < 1 for i, s in enumerate(items) if i not in inferred):
        raise LayerError(f"the sizes of `unflatten` must be positive (one may be -1, inferred), found {written}", at="unflattened_size")
    if full - 1 + len(items) > MAX_RANK:
        raise LayerError(f"`unflatten {written}` would make a {full - 1 + len(items)}-D tensor from {fmt_shape(ctx.shape)}, and "
                         f"cnndsl's tensors have at most {MAX_RANK} dimensions (N, C, D, H, W)", at="unflattened_size")
    have = ctx.shape[d - 1]
    known = prod([s for i, s in enumerate(items) if i not in inferred])
    out = list(items)
    if have is not None and inferred:
        if not divides(known, have):
            raise LayerError(f"`unflatten {written}` needs dimension {d} divisible by {value(known)} (the product of the other "
                             f"sizes), but the input {fmt_shape(ctx.shape)} has {value(have)} there", at="unflattened_size")
        out[inferred[0]] = have // known
    elif inferred:
        out[inferred[0]] = None
    elif have is not None and not equal(known, have):
        raise LayerError(f"`unflatten {written}` needs {value(known)} values in dimension {d} (the product of its sizes), but the input "
                         f"{fmt_shape(ctx.shape)} has {value(have)} there", at="unflattened_size",
                         hint=f"the sizes must multiply to {value(have)}")
    shape = (*ctx.shape[: d - 1], *out, *ctx.shape[d:])
    return Result(module="nn.Unflatten", shape=shape, args=(ctx["dim"], tuple(items)))


PAD_MODES = ("constant", "reflect", "replicate", "circular")
_PAD_MODULES = {"reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}
_SIDES = ("left", "right", "top", "bottom", "front", "back")
_AXES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def pad(ctx: Ctx) -> Result:
    """nn.ZeroPad/ConstantPad/ReflectionPad/ReplicationPad/CircularPad 1d-3d by the input's rank. The padding is one
    number for every side, or F.pad's pairs from the last dimension (left, right, top, bottom, front, back)."""
    n = need_spatial(ctx, ctx.op)
    padding, mode, fill = ctx["padding"], ctx["mode"], ctx["value"]
    if "value" in ctx.given and mode != "constant":
        raise LayerError(f"`value` is the fill of mode=constant; mode={mode} fills from the input", at="value")
    like = like_sizes(ctx, n, "pad", "padding")
    if like is not None:
        return _pad_to(ctx, like)
    if padding is None:
        raise LayerError("`pad` needs its padding", hint="e.g. `pad 1` on every side, `pad (1, 2, 0, 1)`: left, right, top, bottom, "
                         "or `pad like=e1`: to a value's size")
    pads = padding if isinstance(padding, tuple) else (padding,) * (2 * n)
    sides = ", ".join(_SIDES[: 2 * n])
    if len(pads) % 2 or len(pads) > 2 * n:
        raise LayerError(f"`padding` takes one number, or two per padded dimension from the last ({sides}); found {len(pads)} "
                         f"numbers for the {n + 2}-D input {fmt_shape(ctx.shape)}", at="padding")
    if mode != "constant" and len(pads) != 2 * n:
        raise LayerError(f"mode={mode} pads every spatial dimension: `padding` needs one number, or {2 * n} ({sides}) for the "
                         f"{n + 2}-D input {fmt_shape(ctx.shape)}, found {len(pads)}", at="padding")
    pin(pads, reason=SPATIAL)
    out = list(ctx.shape[1:])
    for j in range(len(pads) // 2):  # F.pad's pairs: the last dimension first
        left, right, axis = value(pads[2 * j]), value(pads[2 * j + 1]), n - 1 - j
        pair = f"({left}, {right}) ({_SIDES[2 * j]}, {_SIDES[2 * j + 1]})"
        if mode != "constant" and min(left, right) < 0:
            raise LayerError(f"mode={mode} takes no negative padding (cropping), found {pair}", at="padding",
                             hint="crop with the constant mode first, e.g. `pad (-1, -1, 0, 0) | pad 1 mode=reflect`")
        size = out[axis]
        if size is None:
            continue
        size = value(size)
        where = f"the {_AXES[n][axis]} of {fmt_shape(ctx.shape)} is {size}"
        if mode == "reflect" and max(left, right) >= size:
            raise LayerError(f"mode=reflect needs each padding smaller than the size it pads, but {where} and its padding is {pair}",
                             at="padding")
        if mode == "circular" and max(left, right) > size:
            raise LayerError(f"mode=circular wraps around at most once, so each padding must be at most the size it pads, but {where} "
                             f"and its padding is {pair}", at="padding")
        if size + min(left, 0) + min(right, 0) < 0:
            raise LayerError(f"padding {pair} crops {-min(left, 0) - min(right, 0)}, but {where}", at="padding")
        if size + left + right < 1:
            raise LayerError(f"padding {pair} leaves nothing: {where}", at="padding")
        out[axis] = size + left + right
    if mode != "constant":
        return Result(module=f"nn.{_PAD_MODULES[mode]}{FAMILY[n]}", shape=(ctx.channels, *out), args=(padding,))
    if value(fill) == 0 and not getattr(fill, "symbolic", False):
        return Result(module=f"nn.ZeroPad{FAMILY[n]}", shape=(ctx.channels, *out), args=(padding,))
    return Result(module=f"nn.ConstantPad{FAMILY[n]}", shape=(ctx.channels, *out), args=(padding,), kwargs=(("value", fill),))


def _pad_to(ctx: Ctx, like: tuple) -> Result:
    """`pad like=e1`: to a value's size, evenly on both sides (the extra row or column at the end), the margins
    read when the module runs: right for every input size (a U-Net's skips after an odd size was halved)."""
    for j, (have, want) in enumerate(zip(ctx.shape[1:], like)):
        if have is not None and want is not None and value(want) < value(have):
            raise LayerError(f"`pad` cannot shrink: the input {fmt_shape(ctx.shape)} is larger than `{ctx['like']}` "
                             f"({', '.join(str(value(t)) for t in like)}) in spatial axis {j + 1}", at="like",
                             hint="cut the centre with `crop like=...`")
    mode = ctx["mode"]
    kwargs = (("mode", mode),) if mode != "constant" else (("value", ctx["value"]),) if "value" in ctx.given else ()
    return Result(module=None, shape=(ctx.channels, *like), args=(ctx["like"],), kwargs=kwargs, forward="pad_to", helper="pad_to")


# -- facts (cnndsl/ops/facts.py) --------------------------------------------------------------------------


def unflatten_window(layer) -> Window:
    """The new axes are not the input's axes; an unflatten into one size changes nothing."""
    if layer.input_shape is not None and layer.output_shape is not None and len(layer.input_shape) == len(layer.output_shape):
        return POINTWISE
    return UNKNOWN


def _pad_mode(layer) -> dict:
    """The mode, from the module's class (nn.ReflectionPad2d: reflect; nn.ZeroPad2d, nn.ConstantPad2d: constant);
    `pad like=e1` has no module: its value and mode are its arguments."""
    if layer.module is None:
        return {"padding": None, "like": str(layer.args[0]), **layer_kwargs(layer)}
    name = layer.module.removeprefix("nn.")[:-2]
    return {"mode": next((m for m, cls in _PAD_MODULES.items() if cls == name), "constant")}


register(
    OpSpec("unflatten", unflatten, (Opt("unflattened_size", "ints", aliases=("sizes",)), Opt("dim", "int", 1)),
           positional=("unflattened_size",), kind="unflatten", returns_input=True,
           saves=NOTHING, view=True, doc="one dimension (dim, default 1: the features) becomes several whose product is its size, `unflatten 64x7x7`: `nn.Unflatten`",
           window=unflatten_window, macs=0, buffers=0, label=Label(args=("dim", "unflattened_size"))),
    OpSpec("pad", pad,
           (Opt("padding", "ints"), Opt("mode", "enum", "constant", choices=PAD_MODES), Opt("value", "float", 0), Opt("like", "value")),
           positional=("padding",), aliases=("pad1d", "pad2d", "pad3d"), kind="pad",
           saves=NOTHING, view=False, doc="padding as a layer, one number for every side or (left, right, top, bottom, front, back) as F.pad: "
               "`nn.ZeroPad1d/2d/3d`, `nn.ConstantPad*` (`value`), `nn.ReflectionPad*`, `nn.ReplicationPad*`, `nn.CircularPad*` by mode",
           window=POINTWISE, macs=0, buffers=0, label=Label(args=("padding",), derive=_pad_mode)),
)
