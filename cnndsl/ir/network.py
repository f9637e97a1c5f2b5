"""The checked network: what the checker proves and the code generator emits.

Its classes are frozen dataclasses, not pydantic models: `cnndsl build` must not pay for pydantic's import and
validator building (about a third of its start), and the checker builds 20,000 objects for 10,000 layers. They
are validated by pydantic all the same, where a user receives the network: `cnndsl.check` returns
`CheckedNetwork.validated()`, which validates every field of every object (pydantic validates dataclasses; each
class says `revalidate_instances`) and then the network's invariants (`_problems`: each layer takes what the step
before it produced, layer names are unique, every call names an instance, pinned names are parameters). They
keep the part of pydantic's interface that callers use: `model_copy(update=...)`, `model_dump()`,
`model_fields`, `model_validate`. The tests check every network they build through `cnndsl.check`.

A module's forward is a tuple of steps, one small frozen class per kind (LayerStep, CallStep, ..., each with
only its own fields and a `kind` literal), joined in `Step`, a union told apart by `kind`. Tools walk steps
with a StepVisitor (a method per kind; a kind without one raises)."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from ..errors import Span
from ..ops.common import fmt_shape
from .values import Expr
from .visitor import StepVisitor  # noqa: F401 - the tools' base class, beside the steps it visits

if TYPE_CHECKING:
    from ..errors import (
        Diagnostic,  # a pydantic model, made on first use: the build needs none
    )

Shape = Optional[tuple[Optional[int], ...]]


class _IR:
    """What every class of the checked network shares: a frozen dataclass of keyword fields (each subclass is
    made one), pydantic's configuration for validating it, and pydantic's interface."""

    __pydantic_config__ = {"arbitrary_types_allowed": True, "revalidate_instances": "always"}
    model_fields: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        cls.model_fields = {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def make(cls, **fields):
        """An instance as the checker builds it (lists passed as the tuples validation would make of them)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    model_construct = make

    def model_copy(self, *, update: dict | None = None, deep: bool = False):
        """A copy with the fields in `update` replaced."""
        return dataclasses.replace(self, **(update or {}))

    def model_dump(self, **_options) -> dict:
        """The fields as a dict, the checked network's objects (and spans) inside it as dicts too."""
        return {name: _dump(getattr(self, name)) for name in self.model_fields}

    @classmethod
    def model_validate(cls, value):
        """`value` (an instance, or a mapping of fields) validated by pydantic: ValidationError where it is wrong."""
        return _adapter(cls).validate_python(value)


def _dump(x):
    if isinstance(x, tuple):
        return tuple(_dump(i) for i in x)
    return x.model_dump() if hasattr(x, "model_dump") else x


@functools.lru_cache(maxsize=None)
def _adapter(cls):
    from typing import Annotated

    from pydantic import TypeAdapter
    from pydantic.functional_validators import AfterValidator

    from .. import errors

    globals().setdefault("Diagnostic", errors.Diagnostic)  # the warnings' annotation, for pydantic to resolve
    return TypeAdapter(Annotated[cls, AfterValidator(_invariants)] if cls is CheckedNetwork else cls)


class InitCallSpec(_IR):
    """One call into torch.nn.init: `kaiming_normal_(t, mode="fan_out")` is name, args, kwargs."""


    name: str  # without the trailing underscore
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


class InitRule(_IR):
    """Apply `call` to the `target` tensor (weight or bias) of each named layer."""


    target: str
    call: InitCallSpec
    layers: tuple[str, ...]


class ExternalModule(_IR):
    """What a layer that is an external module (`module Name(...) = package.module.Class(...) -> rule`) needs at
    load: the class to import, and where it was declared, for the diagnostics `cnndsl.load` gives when the import
    fails or the module's output is not the declared shape."""

    name: str  # the declaration's name
    path: str  # package.module.Class
    rule: str  # same | channels | shape: how the declaration says the output's shape
    file: str  # the file that declares it
    path_span: Span = Span()
    path_line: str = ""  # the source line of path_span
    rule_span: Span = Span()
    rule_line: str = ""


class CheckedLayer(_IR):
    """One layer, checked: its module, its constructor arguments and the shape it produces.

    `name` is its path in the state_dict (`layer1.0.conv1`), `attr` its attribute in the module that
    declares it (`conv1`, or `0` inside a named group) and `access` the attributes and indices that reach it
    from the network (`("layer1", 0, "conv1")`; the backend prints `self.layer1[0].conv1`)."""


    name: str
    attr: str = ""
    access: tuple[Union[str, int], ...] = ()
    op: str
    module: Optional[str]
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    forward: str = "call"
    input_shape: Shape = None
    output_shape: Shape = None
    params: Optional[int] = 0
    lazy: bool = False
    helper: Optional[str] = None
    imports: tuple[str, ...] = ()
    weight_path: str = ""  # where the weight lives below the layer ("" or "conv." for deform)
    has_bias: bool = False
    span: Span = Span()
    file: str = ""  # the source the span is in (an imported block's file for its layers)
    external: Optional[ExternalModule] = None  # a module from outside the catalog (its parameters are unknown: None)


class Branch(_IR):
    """One branch of a merge: its steps, or none for the identity; `condition` is an expression over the
    block's names (None: unconditional), and `active` says whether it held in this instance."""


    steps: tuple["Step", ...] = ()
    identity: bool = False
    condition: Optional[Expr] = None
    active: bool = True
    flag: Optional[str] = None  # a conditional branch without modules remembers its condition in this attribute


class _Step(_IR):
    """What every step has: its kind (the discriminator) and the shape it leaves (None: unknown, or none)."""


    output_shape: Shape = None

    @property
    def declares(self) -> bool:
        """Whether the step declares a module (or parameter) of its own."""
        return False

    def nested(self) -> tuple[tuple["Step", ...], ...]:
        """The sequences of steps inside this one (a group's children, each branch's steps), in order."""
        return ()


class LayerStep(_Step):
    """Run a layer: `x = self.conv1(x)`; a max pool may also keep its indices, an unpool read them."""

    kind: Literal["layer"] = "layer"
    name: str  # the attribute
    layer: CheckedLayer
    indices: Optional[str] = None  # a max pool that also returns indices: its own name (the backend names them)
    unpool: Optional[str] = None  # an unpool: the name of the max pool whose indices it reads
    output_size: Optional[tuple[int, ...]] = None  # an unpool's explicit output size

    @property
    def declares(self) -> bool:
        return self.layer.forward in ("call", "mul")


class CallStep(_Step):
    """Call a block: one instance (`net.instances[instance]`), made with these arguments."""

    kind: Literal["call"] = "call"
    name: str
    instance: int
    call_args: tuple[Any, ...] = ()  # (keyword or None, value) after the input channels
    inputs: tuple[str, ...] = ()  # a block with named inputs: the caller's value for each ("": the flowing tensor)
    outputs: tuple[str, ...] = ()  # a block with several outputs: the caller's names for them, in order
    in_channels: Any = None
    span: Optional[Span] = None  # where the call was written (its file is the scope's)

    @property
    def declares(self) -> bool:
        return True


class GroupStep(_Step):
    """A named group: an nn.Sequential of its children."""

    kind: Literal["group"] = "group"
    name: str
    children: tuple["Step", ...] = ()

    @property
    def declares(self) -> bool:
        return True

    def nested(self):
        return (self.children,)


class MergeStep(_Step):
    """`add:`, `cat:`, `mul:` or `split N:` over branches; `condition` is the merge's own (`add if ...:`),
    remembered in the attribute `name`; `active` says whether it held."""

    kind: Literal["merge"] = "merge"
    name: Optional[str] = None
    merge: str
    parts: int = 0  # split N
    branches: tuple[Branch, ...] = ()
    condition: Optional[Expr] = None
    active: bool = True
    span: Optional[Span] = None

    def nested(self):
        return tuple(branch.steps for branch in self.branches)


class ValueStep(_Step):
    """Store the current tensor as the named value `name` (`e1 = ...`)."""

    kind: Literal["value"] = "value"
    name: str


class UseStep(_Step):
    """Continue from the named value `name`."""

    kind: Literal["use"] = "use"
    name: str


class JoinStep(_Step):
    """Merge the current tensor with named values: `cat(e1)`, `add(e1)`, `mul(e1)`."""

    kind: Literal["join"] = "join"
    merge: str
    values: tuple[str, ...] = ()
    span: Optional[Span] = None


class OutputStep(_Step):
    """Return named values: `output a, b`."""

    kind: Literal["output"] = "output"
    values: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # a dict's keys, one per value (`output p2 as "0"`); empty: a tuple
    span: Optional[Span] = None


Step = Union[LayerStep, CallStep, GroupStep, MergeStep, ValueStep, UseStep, JoinStep, OutputStep]
class BlockInstance(_IR):
    """One instantiation of a block: the steps it checked to, for one generated class."""


    block: str
    file: str
    params: tuple[tuple[str, Any], ...]  # (name, default as a constant, or None when it is an expression)
    inputs: tuple[str, ...] = ()  # the block's named inputs (`input high, low`); empty: one unnamed input
    defaults: tuple[tuple[str, Expr], ...] = ()  # (name, expression) for defaults that are expressions
    steps: tuple[Step, ...] = ()


class NetworkParam(_IR):

    name: str
    value: Any


class CheckedNetwork(_IR):
    """A network PyTorch will accept, with every shape inferred."""


    name: str
    file: str
    params: tuple[NetworkParam, ...] = ()
    input_shape: Shape = None  # declared or given; None when unknown (lazy modules)
    example_shape: tuple[int, ...]  # the input the smoke run uses
    layers: tuple[CheckedLayer, ...] = ()  # every layer with parameters or a module, blocks' included
    steps: tuple[Step, ...] = ()
    instances: tuple[BlockInstance, ...] = ()
    outputs: tuple[Shape, ...] = ()
    output_keys: tuple[str, ...] = ()  # `output p2 as "0", pool`: the forward returns a dict with these keys
    init_rules: tuple[InitRule, ...] = ()
    warnings: tuple[Diagnostic, ...] = ()
    # (name, why) for each parameter whose compiled value the generated code does not recompute: the network
    # refuses any other value (cnndsl.semantics.pins.pinned_params: the checker passes what its own check recorded)
    pinned: tuple[tuple[str, str], ...] = ()

    def validated(self) -> "CheckedNetwork":
        """The network validated whole (every field, then the invariants); pydantic's ValidationError where it is
        not sound."""
        return type(self).model_validate(self)

    @property
    def output_shape(self):
        """The output's shape without the batch dimension; a tuple of shapes for `output a, b`."""
        return self.outputs[0] if len(self.outputs) == 1 else self.outputs

    @property
    def total_params(self) -> Optional[int]:
        counts = [layer.params for layer in self.layers]
        return None if any(c is None for c in counts) else sum(counts)

    def layer(self, name: str) -> CheckedLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def table(self) -> str:
        """A plain-text table of the layers: name, op, output shape, parameters."""
        rows = [("layer", "op", "output shape", "params")]
        if self.input_shape is not None or self.layers:
            rows.append(("input", "", fmt_shape(self.input_shape), ""))
        for layer in self.layers:
            rows.append((layer.name, layer.op, fmt_shape(layer.output_shape), "?" if layer.params is None else f"{layer.params:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join((r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]), r[3].rjust(widths[3]))).rstrip() for r in rows]
        total = self.total_params
        text = "unknown (lazy layers)" if total is None else f"{total:,}"
        if total is None and all(layer.params is not None for layer in self.layers if layer.external is None):
            known = sum(layer.params for layer in self.layers if layer.external is None)
            text = f"{known:,} besides the external modules' (known only once loaded)"
        lines.append(f"total parameters: {text}")
        return "\n".join(lines)


def _invariants(net: CheckedNetwork) -> CheckedNetwork:
    problems = _problems(net)
    if problems:
        raise ValueError("; ".join(problems[:5]))
    return net


def _problems(net: CheckedNetwork) -> list[str]:
    """What is wrong with a checked network's structure (nothing, for anything the checker builds)."""
    problems: list[str] = []
    names = [layer.name for layer in net.layers]
    if len(set(names)) != len(names):
        problems.append(f"layer names repeat: {sorted({n for n in names if names.count(n) > 1})[:3]}")
    params = {p.name for p in net.params}
    problems += [f"pinned `{name}` is no parameter" for name, _ in net.pinned if name not in params]
    if not net.outputs:
        problems.append("no output")

    def walk(steps, shape, where: str) -> None:
        """Each layer's input is the shape before it (`shape`, where known)."""
        for step in steps:
            if isinstance(step, LayerStep) and shape is not None and step.layer.input_shape != shape:
                problems.append(f"{where}: `{step.layer.name}` takes {step.layer.input_shape}, but {shape} reaches it")
            if isinstance(step, CallStep) and not 0 <= step.instance < len(net.instances):
                problems.append(f"{where}: a call to instance {step.instance}, of {len(net.instances)}")
            for inner in step.nested():
                walk(inner, None, where)  # a branch's or group's first input is its own
            shape = step.output_shape if not isinstance(step, OutputStep) else shape

    walk(net.steps, net.input_shape, net.name)
    for i, inst in enumerate(net.instances):
        walk(inst.steps, None, f"{inst.block} (instance {i})")
    return problems
