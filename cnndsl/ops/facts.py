"""What the tools need to know about an op besides its shape rule, declared on its OpSpec (cnndsl/ops/base.py)
and read by `cnndsl summary` (cnndsl/tools/summary.py) and `cnndsl graph` (cnndsl/tools/graph.py):

- `window`: how its outputs see its input, per spatial axis, for the receptive field (a `Window`, or a function
  of the checked layer that returns one);
- `macs`: its mult-adds for one sample (a number, 0 for the ops that multiply no weights, or a function of the
  checked layer; None where a size is unknown);
- `buffers`: the numbers it keeps in the state_dict besides its parameters (a norm's running statistics);
- `saves`: the tensors its backward keeps in a training step (a tuple of `Saved`: its input, its output, or
  tensors it makes, such as a max pool's indices or a dropout's mask; or a function of the checked layer), read
  by the memory figures (cnndsl/tools/memory.py); None where they are unknown (an external module);
- `view`: whether, in training, its output is its input's storage (a view: flatten, permute, crop, identity);
- `label`: how the graph names it (a `Label`);
- `doc`: one line for the op table in docs/LANGUAGE.md.

Nothing has a default: a tool that asks an op for a fact it does not declare gets a `MissingFact` naming the
op and the fact, and tests/test_op_catalog.py measures every fact of every op against torch (tests/test_memory.py
the saved tensors and views). Never imports torch."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..ir.values import value

if TYPE_CHECKING:
    from ..ir.network import CheckedLayer


class MissingFact(LookupError):
    """A tool asked the catalog for a fact that an op does not declare (or for an op it does not have)."""


FACTS = ("window", "macs", "buffers", "saves", "view", "label", "doc")  # what every op declares


# -- receptive-field geometry ----------------------------------------------------------------------------

SPREADS = ("pointwise", "window", "uneven", "global", "unknown")


@dataclass(frozen=True)
class Window:
    """How one layer's outputs see its input, per spatial axis (cnndsl/tools/summary.py does the arithmetic):

    - pointwise: each output sees the input at its own position (activations, dropout, norms);
    - window: each output sees `kernel` taps, `dilation` apart, and neighbouring outputs' windows are `stride`
      apart (a fraction where outputs are denser than inputs): the field grows by dilation·(kernel-1)·jump and
      the jump is multiplied by the stride, exactly, for every output position;
    - uneven: the same arithmetic, but outputs spread unevenly over the input (a transposed conv, an unpool,
      an upsample, a pixel shuffle, an adaptive pool whose sizes do not divide, a deformable conv whose
      sampling positions are learned), so from here on the figures are an estimate (the widest field);
    - global: each output sees the whole input;
    - unknown: the output's axes are no longer the input's spatial axes (flatten, permute, a linear layer
      over a spatial axis), or the sizes the geometry needs are unknown.

    `statistics`: the spatial axes (0 = the first after the channels) over which a pointwise op also reads a
    statistic of its input (a norm's mean and variance, a softmax's sum). By the summary's convention they are
    not part of the field; the catalog test checks that they are the only axes the op mixes."""

    spread: str
    kernel: tuple = ()
    stride: tuple = ()
    dilation: tuple = ()
    statistics: tuple[int, ...] = ()

    def __post_init__(self):
        if self.spread not in SPREADS:
            raise ValueError(f"unknown spread {self.spread!r}: one of {', '.join(SPREADS)}")
        if self.spread in ("window", "uneven") and not (len(self.kernel) == len(self.stride) == len(self.dilation) > 0):
            raise ValueError(f"a {self.spread} needs a kernel, a stride and a dilation per spatial axis")


POINTWISE = Window("pointwise")
GLOBAL = Window("global")
UNKNOWN = Window("unknown")


def window(kernel, stride, dilation=None, *, exact: bool = True) -> Window:
    """A sliding window (exact) or the uneven estimate, from per-axis tuples (plain numbers)."""
    dilation = dilation if dilation is not None else (1,) * len(kernel)
    return Window("window" if exact else "uneven", tuple(kernel), tuple(Fraction(s) for s in stride), tuple(dilation))


def statistics_over(*axes: int) -> Window:
    """Pointwise, reading statistics over these spatial axes."""
    return Window("pointwise", statistics=tuple(sorted(set(axes))))


# -- reading a checked layer -----------------------------------------------------------------------------


def rank(layer: "CheckedLayer") -> Optional[int]:
    """The spatial rank of the layer's input (None where even that is unknown)."""
    return None if layer.input_shape is None else len(layer.input_shape) - 1


def kwargs(layer: "CheckedLayer") -> dict[str, Any]:
    """The module's keyword arguments as plain values."""
    return {k: value(v) for k, v in layer.kwargs}


def per_axis(x, n: int) -> tuple:
    """An int-or-tuple argument, one value per spatial axis."""
    x = value(x)
    return tuple(x) if isinstance(x, tuple) else (x,) * n


def sizes(shape) -> Optional[tuple[int, ...]]:
    """The spatial sizes of a shape, or None where any is unknown."""
    if shape is None or None in shape[1:]:
        return None
    return tuple(value(d) for d in shape[1:])


def known(*shapes) -> bool:
    return all(s is not None and None not in s for s in shapes)


# -- mult-adds -------------------------------------------------------------------------------------------
# One sample's multiply-adds of the products of weights with inputs in a convolution or a matrix product, bias
# excluded: what torch.utils.flop_counter.FlopCounterMode counts (convolutions, mm/addmm/bmm), halved, which is
# fvcore's convention and that of torchvision's published GFLOPS. Element-wise products (prelu, layerscale, a
# norm's affine) and everything else count 0.


def conv_macs(layer: "CheckedLayer") -> Optional[int]:
    """Output elements x (input channels / groups) x kernel volume."""
    if not known(layer.input_shape, layer.output_shape):
        return None
    kw = kwargs(layer)
    c_in = value(layer.args[0])
    kernel = math.prod(per_axis(kw["kernel_size"], len(layer.output_shape) - 1))
    return math.prod(value(layer.output_shape)) * (c_in // kw.get("groups", 1)) * kernel


def convt_macs(layer: "CheckedLayer") -> Optional[int]:
    """Input elements x (output channels / groups) x kernel volume: every input element meets the whole kernel."""
    if not known(layer.input_shape, layer.output_shape):
        return None
    kw = kwargs(layer)
    c_out = value(layer.args[1])
    kernel = math.prod(per_axis(kw["kernel_size"], len(layer.output_shape) - 1))
    return math.prod(value(layer.input_shape)) * (c_out // kw.get("groups", 1)) * kernel


def linear_macs(layer: "CheckedLayer") -> Optional[int]:
    """Output elements x input features."""
    if not known(layer.input_shape, layer.output_shape):
        return None
    return math.prod(value(layer.output_shape)) * value(layer.input_shape[-1])


# -- what a training step keeps for backward ------------------------------------------------------------
# Measured against torch.autograd.graph.saved_tensors_hooks for every op by tests/test_memory.py.

SAVED_DTYPES = ("same", "int64", "mask", "stats")


@dataclass(frozen=True)
class Saved:
    """One tensor an op's backward keeps (cnndsl/tools/memory.py counts its bytes):

    - `input` or `output`: the op's own input or output tensor (shared with whatever else keeps it);
    - `indices`: the indices of the max pool an unpool reads (the pool's own saved tensor);
    - `new`: a tensor the op makes besides its output, of `elements` numbers per sample (`batched`), or in all
      (not batched: a batch norm's statistics, one per channel).

    `dtype`: `same` as the activations; `int64` (a max pool's indices); `mask` (a dropout's: the activations'
    dtype on the CPU, bool on CUDA, whose fused dropout kernel keeps a bool mask); `stats` (a norm's mean and
    inverse deviation: the activations' dtype on the CPU, float32 on CUDA for float16 and bfloat16)."""

    tensor: str
    elements: Optional[int] = None
    dtype: str = "same"
    batched: bool = True

    def __post_init__(self):
        if self.tensor not in ("input", "output", "indices", "new") or self.dtype not in SAVED_DTYPES:
            raise ValueError(f"a saved tensor is input, output, indices or new, of dtype {', '.join(SAVED_DTYPES)}")
        if (self.tensor == "new") != (self.elements is not None):
            raise ValueError("a new saved tensor, and only it, has its number of elements")


INPUT, OUTPUT = (Saved("input"),), (Saved("output"),)
NOTHING: tuple = ()


def numel(shape) -> Optional[int]:
    """The elements of one sample of a shape, None where a size is unknown."""
    return math.prod(value(shape)) if known(shape) else None


def like(layer: "CheckedLayer", which: str, dtype: str = "same", count: int = 1) -> tuple:
    """`count` new tensors with as many elements as the layer's input or output (None where unknown)."""
    n = numel(layer.input_shape if which == "input" else layer.output_shape)
    return None if n is None else (Saved("new", n, dtype),) * count


def in_place(layer: "CheckedLayer") -> bool:
    """Whether the layer runs in place (the checker has already dropped every unsafe `inplace`)."""
    return bool(kwargs(layer).get("inplace", False))


def saves_all(*parts) -> Optional[tuple]:
    """Parts of a `saves` fact joined; None where any is unknown."""
    return None if any(p is None for p in parts) else tuple(x for p in parts for x in p)


# -- graph labels ----------------------------------------------------------------------------------------

HIDDEN = ("in", "bias", "inplace")  # inferred (`in`), or flags the picture leaves out


@dataclass(frozen=True)
class Label:
    """How the graph names a layer: the op and its arguments as a source line writes them (`conv 64 k7 s2 p3`,
    `maxpool 3 s1 p1`, `upsample 2 mode=bilinear`), without the options equal to their defaults and without
    `in`, `bias` and `inplace`. Positional options come first, in the op's order, as long as each can be
    written that way (a negative number cannot); every other option in the op's order, in its short form
    where it has one (`k3`, `s2`, `p1x2`), else as `key=value`.

    The options are read back from the module's arguments: `args` names the module's positional arguments as
    options (None: not an option, such as a norm's channels), matched from the right, since a lazy module
    leaves out the leading ones (nn.LazyLinear has no `in`); its keyword arguments are named as the options.
    `derive`, where the module's arguments do not say it, gives options from the layer itself (layerscale's
    dim, from its parameter's shape). `implied` gives the defaults that depend on the layer (a pool's stride
    is its kernel; ln's normalized_shape is the input's last dimension)."""

    args: tuple[Optional[str], ...] = ()
    derive: Optional[Callable[["CheckedLayer"], dict[str, Any]]] = None
    implied: Optional[Callable[["CheckedLayer", dict[str, Any]], dict[str, Any]]] = None

    def options(self, spec, layer: "CheckedLayer") -> dict[str, Any]:
        """The layer's option values (plain), as far as its module says them."""
        args = tuple(layer.args)
        if spec.varargs is not None and self.args == (spec.varargs,):
            found = {spec.varargs: value(args)}
        else:
            if len(args) > len(self.args):
                raise MissingFact(f"op `{spec.name}`: its label names {len(self.args)} module arguments, but the module has {len(args)}")
            names = self.args[len(self.args) - len(args):]
            found = {name: value(v) for name, v in zip(names, args) if name is not None}
        found.update(kwargs(layer))
        if self.derive is not None:
            found.update(self.derive(layer))
        return {k: v for k, v in found.items() if spec.option(k) is not None}

    def text(self, spec, layer: "CheckedLayer") -> str:
        opts = self.options(spec, layer)
        implied = self.implied(layer, opts) if self.implied is not None else {}
        shown = {}
        for key, v in opts.items():
            opt = spec.option(key)
            default = implied.get(opt.name, opt.default)
            if opt.name in HIDDEN or v is None or _same(v, default):
                continue
            shown[opt.name] = v
        words = [spec.name]
        positional = (spec.varargs,) if spec.varargs is not None else spec.positional
        for name in positional:
            if name not in shown or not _positional(shown[name]):
                break
            v = shown.pop(name)
            words += [literal(x) for x in v] if name == spec.varargs else [literal(v)]
        for opt in spec.all_options:
            if opt.name in shown:
                v = shown.pop(opt.name)
                short = opt.short is not None and _whole(v) and all(x >= 0 for x in _items(v))
                words.append(f"{opt.short}{literal(v)}" if short else f"{opt.name}={literal(v)}")
        return " ".join(words)


def _items(v) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def _whole(v) -> bool:
    return all(isinstance(x, int) and not isinstance(x, bool) for x in _items(v))


def _positional(v) -> bool:
    """Whether a value can be written as a positional argument (a negative number needs `key=`)."""
    return all(not (isinstance(x, (int, float)) and not isinstance(x, bool) and x < 0) for x in _items(v)) and not isinstance(v, str)


def _same(v, default) -> bool:
    """A value equal to the default, a tuple counting as equal to a default that each of its entries equals."""
    if default is None:
        return False
    if isinstance(v, tuple) or isinstance(default, tuple):
        a, b = _items(v), _items(default)  # a number stands for itself on every axis
        a, b = (a * len(b) if not isinstance(v, tuple) else a), (b * len(a) if not isinstance(default, tuple) else b)
        return a == b
    if isinstance(v, bool) or isinstance(default, bool):
        return v is default
    return v == default


_WORD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")


def literal(v) -> str:
    """A value as a source line writes it: `3x5` for a tuple of integers, `true`, `0.1`, `same`, `"nearest-exact"`."""
    if isinstance(v, tuple):
        return "x".join(literal(x) for x in v) if _whole(v) and all(x >= 0 for x in v) else "(" + ", ".join(literal(x) for x in v) + ")"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v if _WORD.match(v) else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(v)


# -- one line per op for docs/LANGUAGE.md ----------------------------------------------------------------


def check_doc(name: str, doc: str) -> str:
    """An op's doc line, or a MissingFact saying what is wrong with it."""
    if not isinstance(doc, str) or not doc.strip() or "\n" in doc or "\r" in doc:
        raise MissingFact(f"op `{name}` needs its doc: one line of text for the op table in docs/LANGUAGE.md")
    return doc
