"""Option groups and checks that several op families share."""

from __future__ import annotations

from ..ir.values import value
from ..semantics.pins import divides, equal
from ..semantics.shapes import prod
from .base import Ctx, LayerError, Opt, written_rank

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

KERNEL = Opt("kernel_size", "ints", short="k", aliases=("kernel", "k"))
STRIDE = Opt("stride", "ints", 1, short="s", aliases=("s",))
PADDING = Opt("padding", "padding", 0, short="p", aliases=("p",))
DILATION = Opt("dilation", "ints", 1, short="d", aliases=("d",))
GROUPS = Opt("groups", "int", 1, short="g", aliases=("g",))
BIAS = Opt("bias", "bool", True, flags=(("nobias", False),))
INPLACE = Opt("inplace", "bool", False, flags=(("inplace", True),))
CEIL = Opt("ceil_mode", "bool", False, flags=(("ceil", True),), aliases=("ceil",))

FAMILY = {1: "1d", 2: "2d", 3: "3d"}


def fmt_shape(shape, unknown: str = "?") -> str:
    """(N, 16, 32, 32): a shape as PyTorch users write it, batch first; `unknown` when there is none."""
    if shape is None:
        return unknown
    dims = ", ".join("?" if d is None else str(value(d)) for d in shape)
    return f"(N, {dims})"


def need_spatial(ctx: Ctx, what: str, ranks=(1, 2, 3)) -> int:
    """The op's spatial rank; an error when the input is not (C, *spatial) with an allowed rank."""
    n = ctx.rank
    explicit = written_rank(ctx.op)
    if explicit is not None and explicit != n:
        raise LayerError(
            f"`{ctx.op}` expects a {explicit + 2}-D input, found {n + 2}-D input {fmt_shape(ctx.shape)}",
            hint=f"write `{ctx.op[:-2]}` to follow the input's rank",
        )
    if n not in ranks:
        allowed = " or ".join(f"{r + 2}-D" for r in ranks)
        raise LayerError(
            f"`{ctx.op}` needs a {allowed} input (N, C, ...), found {n + 2}-D input {fmt_shape(ctx.shape)}",
            hint="a flat tensor (N, F) has no spatial dimensions: `unflatten` gives it channels and sizes (`unflatten 16x8x8`)" if n == 0 else None,
        )
    return n


def check_in_channels(ctx: Ctx, what: str = "channels"):
    """The channels flowing in, checked against an explicit `in`; an error when neither is known."""
    have, said = ctx.channels, ctx["in"]
    if said is not None and value(said) < 1:
        raise LayerError(f"`in` must be at least 1, found {value(said)}", at="in")
    if have is not None and said is not None and not equal(have, said):
        raise LayerError(
            f"`{ctx.op}` expects {value(said)} input {what}, but the input {fmt_shape(ctx.shape)} has {value(have)}",
            at="in",
            hint=f"the previous layer produces {value(have)} {what}; write `{value(have)}->...` or change that layer",
        )
    c = have if have is not None else said
    if c is None:
        raise LayerError(
            f"cannot infer the input {what} of `{ctx.op}`",
            hint="declare the network's `input`, e.g. `input 3x32x32`, or write the channels as `3->16`",
        )
    return c


def need_out(ctx: Ctx, example: str):
    out = ctx["out"]
    if out is None:
        raise LayerError(f"`{ctx.op}` needs its output size", hint=f"write it after the op, e.g. `{example}`")
    if value(out) < 1:
        what = "output features" if ctx.spec.name == "linear" else "output channels"
        raise LayerError(f"the number of {what} of `{ctx.op}` must be at least 1, found {value(out)}", at="out")
    return out


def at_least(ctx: Ctx, key: str, values, low: int, what: str | None = None) -> None:
    for v in values if isinstance(values, tuple) else (values,):
        if value(v) < low:
            raise LayerError(f"`{what or key}` must be at least {low}, found {value(v)}", at=key)


def check_groups(ctx: Ctx, c_in, c_out, groups) -> None:
    at_least(ctx, "groups", groups, 1)
    g = value(groups)
    if not divides(groups, c_in):
        raise LayerError(f"input channels ({value(c_in)}) must be divisible by groups ({g})", at="groups")
    if not divides(groups, c_out):
        raise LayerError(f"output channels ({value(c_out)}) must be divisible by groups ({g})", at="groups")


def conv_params(c_in, c_out, groups, kernel, bias: bool) -> int:
    return value(c_out) * (value(c_in) // value(groups)) * prod(value(kernel)) + (value(c_out) if bias else 0)


def kw(ctx: Ctx, *keys: str) -> tuple[tuple[str, object], ...]:
    """Keyword arguments for the options the user set to something other than PyTorch's default."""
    out = []
    for key in keys:
        opt = ctx.spec.option(key)
        x = ctx[key]
        if x is None or (opt is not None and value(x) == opt.default and not _symbolic(x)):
            continue
        out.append((key, x))
    return tuple(out)


def _symbolic(x) -> bool:
    if isinstance(x, tuple):
        return any(_symbolic(i) for i in x)
    return getattr(x, "symbolic", False)


def like_sizes(ctx: Ctx, n: int, what: str, *others: str) -> tuple | None:
    """The spatial sizes of the value `like=` names (None where the layer has no `like`), refusing `others`
    beside it and a value of another rank."""
    if ctx["like"] is None:
        return None
    given = [o for o in others if ctx[o] is not None]
    if given:
        raise LayerError(f"`{what} like={ctx['like']}` takes its size from the value; give no `{given[0]}` beside it", at=given[0])
    other = ctx.value_shape("like")
    if len(other) != n + 1:
        raise LayerError(f"`{ctx['like']}` is {fmt_shape(other)}, which has {len(other) - 1} spatial dimension"
                         f"{'s' * (len(other) != 2)}; the input {fmt_shape(ctx.shape)} has {n}", at="like")
    return tuple(other[1:])
