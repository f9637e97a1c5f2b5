"""Activations and dropout: shape-preserving ops with a handful of options each."""

from __future__ import annotations

from ..ir.values import value
from ..semantics.pins import equal
from .base import Ctx, LayerError, OpSpec, Opt, Result, register
from .common import INPLACE, _symbolic, fmt_shape, kw
from .facts import INPUT, NOTHING, OUTPUT, POINTWISE, Label, Saved, Window, in_place, kwargs, like, rank, saves_all, statistics_over


def _simple(module: str, *keys: str):
    def rule(ctx: Ctx) -> Result:
        return Result(module=module, shape=ctx.shape, kwargs=kw(ctx, *keys))

    return rule


def _in_unit(ctx: Ctx, key: str) -> None:
    p = value(ctx[key])
    if not 0 <= p <= 1:
        raise LayerError(f"`{key}` must be between 0 and 1, found {p}", at=key)


def _slope_inplace(ctx: Ctx, keys: tuple[str, ...], *names: str) -> tuple[tuple, tuple]:
    """(kwargs, warnings) of an op whose in-place backward needs a slope that is not negative: torch's
    leaky_relu_ and elu_ refuse to backpropagate through a negative slope (and rrelu_ in eval, whose slope is
    the mean of its bounds). A slope that is negative, or a parameter that build(...) could make negative,
    runs out of place, with a warning."""
    out = kw(ctx, *keys)
    inplace = dict(out).get("inplace")
    if inplace is None or not (value(inplace) or _symbolic(inplace)):
        return out, ()
    slopes = [ctx[n] for n in names]
    what = " + ".join(f"`{n}`" for n in names)
    if any(_symbolic(x) for x in slopes):
        why = f"{what} is a parameter, which build(...) may make negative"
    elif sum(value(x) for x in slopes) < 0:
        why = f"{what} is negative"
    else:
        return out, ()
    message = (f"`{ctx.spec.name} inplace` runs out of place: {why}, and torch cannot backpropagate through an"
               f" in-place {ctx.spec.name} with a negative slope")
    return tuple((k, v) for k, v in out if k != "inplace"), ((message, "drop `inplace` here"),)


def leakyrelu(ctx: Ctx) -> Result:
    kwargs, warnings = _slope_inplace(ctx, ("inplace",), "negative_slope")
    return Result(module="nn.LeakyReLU", shape=ctx.shape, args=(ctx["negative_slope"],) if ctx["negative_slope"] is not None else (),
                  kwargs=kwargs, warnings=warnings)


def elu(ctx: Ctx) -> Result:
    kwargs, warnings = _slope_inplace(ctx, ("alpha", "inplace"), "alpha")
    return Result(module="nn.ELU", shape=ctx.shape, kwargs=kwargs, warnings=warnings)


def prelu(ctx: Ctx) -> Result:
    n = ctx["num_parameters"]
    c = ctx.channels
    if n is None:
        n = 1
    elif value(n) != 1 and (c is None or not equal(n, c)):
        raise LayerError(
            f"prelu's num_parameters must be 1 or the number of channels ({value(c) if c is not None else '?'}), found {value(n)}",
            at="num_parameters",
        )
    return Result(module="nn.PReLU", shape=ctx.shape, kwargs=kw(ctx, "num_parameters", "init"), params=value(n), weights=True)


def rrelu(ctx: Ctx) -> Result:
    lo, hi = value(ctx["lower"]), value(ctx["upper"])
    if lo > hi:
        raise LayerError(f"rrelu's lower bound ({lo}) must not be greater than its upper bound ({hi})",
                         at="lower" if "lower" in ctx.given else "upper")
    kwargs, warnings = _slope_inplace(ctx, ("lower", "upper", "inplace"), "lower", "upper")
    return Result(module="nn.RReLU", shape=ctx.shape, kwargs=kwargs, warnings=warnings)


def _softmax(module: str):
    def rule(ctx: Ctx) -> Result:
        dim = value(ctx["dim"])
        full = len(ctx.shape) + 1
        if not -full <= dim < full:
            raise LayerError(f"dim {dim} is out of range for a {full}-D input {fmt_shape(ctx.shape)}", at="dim")
        return Result(module=module, shape=ctx.shape, kwargs=(("dim", ctx["dim"]),))

    return rule


def dropout(ctx: Ctx) -> Result:
    _in_unit(ctx, "p")
    name = ctx.spec.name
    if name != "dropout":
        n = int(name[-2])
        if ctx.rank != n:
            raise LayerError(f"`{name}` expects a {n + 2}-D input (N, C, ...), found {len(ctx.shape) + 1}-D input {fmt_shape(ctx.shape)}")
    module = {"dropout": "nn.Dropout", "dropout1d": "nn.Dropout1d", "dropout2d": "nn.Dropout2d", "dropout3d": "nn.Dropout3d"}[name]
    return Result(module=module, shape=ctx.shape, args=(ctx["p"],) if "p" in ctx.given else (), kwargs=kw(ctx, "inplace"))


def softmax_window(layer) -> Window:
    """Pointwise, with a statistic (the sum of exponentials) along `dim` where that is a spatial axis."""
    n = rank(layer)
    if n is None:
        return POINTWISE
    dim = kwargs(layer)["dim"] % (n + 2)
    return statistics_over(dim - 2) if dim >= 2 else POINTWISE


def _input_or_clone(layer):
    """Keeps its input; in place, a copy of it that torch makes first (relu6_, silu_, hardswish_, ...)."""
    return like(layer, "input") if in_place(layer) else INPUT


def _input_or_output(layer):
    """Keeps its input; in place, its output (leaky_relu_, elu_: the same storage)."""
    return OUTPUT if in_place(layer) else INPUT


def _p(layer) -> float:
    return value(layer.args[0]) if layer.args else 0.5


def _dropout_saves(layer):
    """A mask as large as the input (p = 0 returns the input and keeps nothing)."""
    return NOTHING if _p(layer) == 0 else like(layer, "input", "mask")


def _feature_dropout_saves(layer):
    """One number per sample and channel, in the activations' dtype (dropout1d/2d/3d)."""
    c = layer.input_shape[0] if layer.input_shape is not None else None
    return NOTHING if _p(layer) == 0 else None if c is None else (Saved("new", value(c)),)


_P = Opt("p", "float", 0.5)
_EACH = dict(window=POINTWISE, macs=0, buffers=0, view=False, same_shape=True)  # element by element: no window, no products with weights
_DROP = dict(_EACH, label=Label(args=("p",)), view=lambda layer: _p(layer) == 0)

register(
    OpSpec("relu", _simple("nn.ReLU", "inplace"), (INPLACE,), kind="relu", keeps_output=True,
           saves=OUTPUT, doc="max(0, x): `nn.ReLU`", label=Label(), **_EACH),
    OpSpec("relu6", _simple("nn.ReLU6", "inplace"), (INPLACE,), kind="relu6",
           saves=_input_or_clone, doc="min(max(0, x), 6): `nn.ReLU6`", label=Label(), **_EACH),
    OpSpec("leakyrelu", leakyrelu, (Opt("negative_slope", "float", 0.01), INPLACE), positional=("negative_slope",), kind="leakyrelu",
           keeps_output_in_place=True, saves=_input_or_output, doc="x, or negative_slope·x below 0: `nn.LeakyReLU`",
           label=Label(args=("negative_slope",)), **_EACH),
    OpSpec("prelu", prelu, (Opt("num_parameters", "int"), Opt("init", "float", 0.25)), kind="prelu",
           saves=INPUT, doc="leaky ReLU with learned slopes, one or one per channel (num_parameters): `nn.PReLU`", label=Label(), **_EACH),
    OpSpec("rrelu", rrelu, (Opt("lower", "float", 1 / 8), Opt("upper", "float", 1 / 3), INPLACE), positional=("lower", "upper"), kind="rrelu",
           keeps_output_in_place=True, saves=lambda layer: saves_all(INPUT, like(layer, "input")), doc="leaky ReLU with a random slope between lower and upper in training, their mean in eval: `nn.RReLU`",
           label=Label(), **_EACH),
    OpSpec("elu", elu, (Opt("alpha", "float", 1.0), INPLACE), positional=("alpha",), kind="elu", keeps_output_in_place=True,
           saves=_input_or_output, doc="x, or alpha·(exp(x) - 1) below 0: `nn.ELU`", label=Label(), **_EACH),
    OpSpec("selu", _simple("nn.SELU", "inplace"), (INPLACE,), kind="selu", keeps_output_in_place=True,
           saves=_input_or_output, doc="scaled ELU with fixed constants: `nn.SELU`", label=Label(), **_EACH),
    OpSpec("gelu", _simple("nn.GELU", "approximate"), (Opt("approximate", "enum", "none", choices=("none", "tanh")),), kind="gelu",
           saves=INPUT, doc="x·Φ(x), or its tanh approximation: `nn.GELU`", label=Label(), **_EACH),
    OpSpec("silu", _simple("nn.SiLU", "inplace"), (INPLACE,), aliases=("swish",), kind="silu",
           saves=_input_or_clone, doc="x·sigmoid(x): `nn.SiLU`", label=Label(), **_EACH),
    OpSpec("mish", _simple("nn.Mish", "inplace"), (INPLACE,), kind="mish",
           saves=_input_or_clone, doc="x·tanh(softplus(x)): `nn.Mish`", label=Label(), **_EACH),
    OpSpec("hardswish", _simple("nn.Hardswish", "inplace"), (INPLACE,), kind="hardswish",
           saves=_input_or_clone, doc="x·relu6(x + 3)/6: `nn.Hardswish`", label=Label(), **_EACH),
    OpSpec("hardsigmoid", _simple("nn.Hardsigmoid", "inplace"), (INPLACE,), kind="hardsigmoid",
           saves=_input_or_clone, doc="relu6(x + 3)/6: `nn.Hardsigmoid`", label=Label(), **_EACH),
    OpSpec("sigmoid", _simple("nn.Sigmoid"), (), kind="sigmoid", keeps_output=True,
           saves=OUTPUT, doc="1/(1 + exp(-x)): `nn.Sigmoid`", label=Label(), **_EACH),
    OpSpec("tanh", _simple("nn.Tanh"), (), kind="tanh", keeps_output=True,
           saves=OUTPUT, doc="tanh(x): `nn.Tanh`", label=Label(), **_EACH),
    OpSpec("softsign", _simple("nn.Softsign"), (), kind="softsign",
           saves=lambda layer: saves_all(INPUT, like(layer, "input")), doc="x/(1 + |x|): `nn.Softsign`", label=Label(), **_EACH),
    OpSpec("tanhshrink", _simple("nn.Tanhshrink"), (), kind="tanhshrink",
           saves=lambda layer: like(layer, "input"), doc="x - tanh(x): `nn.Tanhshrink`", label=Label(), **_EACH),
    OpSpec("softmax", _softmax("nn.Softmax"), (Opt("dim", "int", 1),), positional=("dim",), kind="softmax", keeps_output=True,
           saves=OUTPUT, view=False, doc="softmax along dim (default 1, the channels; always emitted explicitly): `nn.Softmax`",
           window=softmax_window, macs=0, buffers=0, label=Label()),
    OpSpec("logsoftmax", _softmax("nn.LogSoftmax"), (Opt("dim", "int", 1),), positional=("dim",), kind="logsoftmax", keeps_output=True,
           saves=OUTPUT, view=False, doc="log of the softmax along dim (default 1): `nn.LogSoftmax`",
           window=softmax_window, macs=0, buffers=0, label=Label()),
    OpSpec("dropout", dropout, (_P, INPLACE), positional=("p",), kind="dropout", returns_input=True,
           saves=_dropout_saves, doc="zeroes elements with probability p in training, the identity in eval: `nn.Dropout`", **_DROP),
    OpSpec("dropout1d", dropout, (_P, INPLACE), positional=("p",), kind="dropout", returns_input=True,
           saves=_feature_dropout_saves, doc="zeroes whole channels of a (N, C, L) input: `nn.Dropout1d`", **_DROP),
    OpSpec("dropout2d", dropout, (_P, INPLACE), positional=("p",), kind="dropout", returns_input=True,
           saves=_feature_dropout_saves, doc="zeroes whole channels of a (N, C, H, W) input: `nn.Dropout2d`", **_DROP),
    OpSpec("dropout3d", dropout, (_P, INPLACE), positional=("p",), kind="dropout", returns_input=True,
           saves=_feature_dropout_saves, doc="zeroes whole channels of a (N, C, D, H, W) input: `nn.Dropout3d`", **_DROP),
)
