"""What every op shares: its option schema, how layer arguments resolve to option values, and the
result an op's shape rule returns. Each family module (conv, pool, ...) registers its ops here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable

from ..ir.values import Val, expression_problem, largest, with_expressions
from ..semantics.pins import pin_lost
from .facts import Label, MissingFact, Window, check_doc

if TYPE_CHECKING:
    from ..ir.network import CheckedLayer


class LayerError(Exception):
    """Raised by an op's rule; the checker turns it into a located diagnostic."""

    def __init__(self, message: str, at: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.at, self.hint = message, at, hint


@dataclass(frozen=True)
class Opt:
    """One option: its PyTorch name (the long form), how its value is read, and its short forms."""

    name: str
    kind: str  # int | ints | float | bool | enum | padding | dims | value (a named tensor: `like=e1`)
    default: Any = None
    choices: tuple = ()
    short: str | None = None  # `k` in k3, `s` in s2 ...
    flags: tuple[tuple[str, Any], ...] = ()  # ("nobias", False), ("ceil", True)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Result:
    """What a layer becomes: a module (or tensor expression) and the shape it produces."""

    module: str | None  # e.g. "nn.Conv2d"; None for a tensor method such as permute
    shape: tuple | None
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    params: int | None = 0
    forward: str = "call"  # call: x = self.m(x); mul: x = x * self.m; permute: x = x.permute(...)
    lazy: bool = False
    helper: str | None = None  # a class the generated file must define (deform)
    imports: tuple[str, ...] = ()  # names the generated file imports from torchvision.ops
    weights: bool = False  # has a weight (and maybe a bias) that init rules apply to
    warnings: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class OpSpec:
    name: str
    rule: Callable[["Ctx"], Result]
    options: tuple[Opt, ...] = ()
    positional: tuple[str, ...] = ()  # option names filled by positional arguments, in order
    varargs: str | None = None  # an option that takes all remaining positional arguments
    channels: bool = False  # accepts `a->b`, in=, out=
    aliases: tuple[str, ...] = ()
    kind: str | None = None  # the stem of default layer names (conv1, bn1, ...)
    doc: str = field(kw_only=True)  # required: one line for the op table in docs/LANGUAGE.md (cnndsl/ops/catalog.py)
    # what autograd and aliasing need to know, for the in-place rule (cnndsl/semantics/inplace.py; checked against torch
    # for every op by tests/test_op_facts.py):
    keeps_output: bool = False  # its backward reads its own output, so nothing may overwrite that output
    keeps_output_in_place: bool = False  # the same, but only when it runs in place (leaky_relu_, elu_ ...)
    returns_input: bool = False  # may return its input itself or a view of it (flatten, identity, dropout in eval)
    same_shape: bool = False  # its output has its input's shape, whatever its options (activations, dropout, norms)
    # what `cnndsl summary` and `cnndsl graph` need (cnndsl/ops/facts.py; measured against torch for every op by
    # tests/test_op_catalog.py). No defaults: a tool that asks for a fact an op lacks gets a MissingFact.
    window: Window | Callable[[CheckedLayer], Window] | None = None  # receptive-field geometry
    macs: int | Callable[[CheckedLayer], int | None] | None = None  # mult-adds per sample; 0: multiplies no weights
    buffers: int | Callable[[CheckedLayer], int | None] | None = None  # state_dict numbers besides parameters
    saves: tuple | Callable[[CheckedLayer], tuple | None] | None = None  # what backward keeps (facts.Saved)
    view: bool | Callable[[CheckedLayer], bool] | None = None  # in training, the output is its input's storage
    label: Label | None = None  # how the graph names a layer

    def fact(self, name: str, layer: CheckedLayer | None = None) -> Any:
        """A fact about this op (of `layer`, where the fact depends on it); a MissingFact where it is not declared."""
        declared = getattr(self, name, None)
        if name == "doc":
            return check_doc(self.name, declared)
        if declared is None:
            raise MissingFact(f"op `{self.name}` does not declare its `{name}` (cnndsl/ops/facts.py says what each fact"
                              f" is); add `{name}=...` to its OpSpec in cnndsl/ops/")
        if name == "label":
            return declared.text(self, layer)
        return declared(layer) if callable(declared) else declared

    def option(self, key: str) -> Opt | None:
        return self._by_key.get(key)

    @cached_property
    def reads_values(self) -> bool:
        """Whether an option names a tensor value (`like=e1`), whose shape the rule reads."""
        return any(o.kind == "value" for o in self.options)

    @cached_property
    def all_options(self) -> tuple[Opt, ...]:
        if not self.channels:
            return self.options
        return (Opt("in", "int", aliases=("in_channels", "in_features")), Opt("out", "int", aliases=("out_channels", "out_features"))) + self.options

    @cached_property
    def defaults(self) -> tuple[tuple[str, Any], ...]:
        """Each option's name and default value (numbers as constant Vals: a Val is immutable, so shared)."""
        return tuple((o.name, Val(o.default) if isinstance(o.default, (int, float)) else o.default) for o in self.all_options)

    @cached_property
    def _by_key(self) -> dict[str, Opt]:
        """Each option by its name and by its aliases (the first option that has the key)."""
        found: dict[str, Opt] = {}
        for o in self.all_options:
            for key in (o.name, *o.aliases):
                found.setdefault(key, o)
        return found


REGISTRY: dict[str, OpSpec] = {}


def written_rank(op: str) -> int | None:
    """The spatial rank an op's name asks for (`conv2d`: 2, `bn1d`: 1), None when it follows its input's."""
    return int(op[-2]) if op[-2:] in ("1d", "2d", "3d") else None


def register(*specs: OpSpec) -> None:
    for spec in specs:
        spec = replace(spec, rule=_bounded(spec.rule))
        for name in (spec.name, *spec.aliases):
            REGISTRY[name] = spec


def _bounded(rule: Callable[["Ctx"], Result]) -> Callable[["Ctx"], Result]:
    """An op's rule, with what every op owes the generated code: no expression too large to print in what it
    writes or passes on, and its parameters pinned where the code prints a number for a block's hidden size."""

    def checked(ctx: "Ctx") -> Result:
        result = rule(ctx)
        written = with_expressions(result.args, [v for _, v in result.kwargs])  # what the code prints
        exprs = with_expressions(ctx.shape, result.shape) + written
        if exprs:
            found = expression_problem(largest(exprs), "an expression for this layer's sizes")
            if found:
                raise LayerError(found[0], hint=found[1])
            pin_lost(written)
        return result

    checked.__doc__, checked.__name__ = rule.__doc__, getattr(rule, "__name__", "rule")
    checked.__module__ = getattr(rule, "__module__", checked.__module__)  # the family that defines the op
    return checked


@dataclass
class Ctx:
    """A layer being checked: its resolved options and the shape flowing into it."""

    spec: OpSpec
    op: str  # the op as written (conv2d, deconv, ...)
    shape: tuple | None  # (C, *spatial) without the batch dimension; None when unknown after an error
    opts: dict[str, Any] = field(default_factory=dict)
    given: set[str] = field(default_factory=set)
    values: dict[str, tuple | None] = field(default_factory=dict)  # the shapes of the named values in scope (`like=`)

    def value_shape(self, key: str) -> tuple | None:
        """The shape of the named value an option (`like=e1`) names; a LayerError where there is none."""
        name = self.opts.get(key)
        if name not in self.values:
            raise LayerError(f"`{name}` is not a value here", at=key,
                             hint="a value is named with `name = pipeline` on an earlier line of this network or block")
        return self.values[name]

    def __getitem__(self, key: str) -> Any:
        return self.opts.get(key)

    @property
    def rank(self) -> int:
        """The number of spatial dimensions."""
        return len(self.shape) - 1

    @property
    def channels(self) -> Any:
        return self.shape[0]

    def per_dim(self, key: str, n: int | None = None) -> tuple:
        """An int-or-tuple option expanded to one value per spatial dimension."""
        n = self.rank if n is None else n
        x = self.opts.get(key)
        if isinstance(x, tuple):
            if len(x) != n:
                raise LayerError(f"`{key}` has {len(x)} values, but the input has {n} spatial dimension{'s' * (n != 1)}", at=key)
            return x
        return (x,) * n


SHORT = re.compile(r"^(op|k|s|p|d|g)(\d+(?:x\d+)*)$")
REPEAT = re.compile(r"^x\d+$")
