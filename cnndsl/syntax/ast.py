"""The syntax tree: small classes with __slots__, each node with the span of source it came from.

Nodes are plain classes, not pydantic models: the parser makes about eight per layer, and a class of its own
costs a tenth of pydantic's `model_construct` (and nothing at import). A node is never changed after the
parser makes it (the checker remembers facts about nodes by identity): `model_copy(update=...)` makes a
changed copy. They keep the part of pydantic's interface that callers use: keyword construction with the
same fields and defaults, `model_construct`, `model_copy(update=...)`, `model_dump()`, `model_fields`
(the field names), equality of type and fields, hashing and a readable repr.
"""

from __future__ import annotations

from typing import Optional, Union

from ..errors import Span

_SPAN = Span()  # the default span (a Span is never changed, so one serves every node without a place)


class Node:
    """A syntax node. `model_fields` names its fields in order, `span` last."""

    __slots__ = ("span", "_h")  # _h: the node's height in the parse tree (the parser's nesting limit)
    _FIELDS: tuple[str, ...] = ("span",)
    model_fields: dict[str, None] = {"span": None}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._FIELDS = tuple(f for f in cls.__slots__ if f != "_h") + ("span",)
        cls.model_fields = dict.fromkeys(cls._FIELDS)
        cls.__match_args__ = cls._FIELDS

    @classmethod
    def model_construct(cls, **fields):
        return cls(**fields)

    def model_copy(self, *, update: dict | None = None, deep: bool = False):
        """A copy with the fields in `update` replaced (pydantic's name for it, which callers use)."""
        fields = {name: getattr(self, name) for name in self._FIELDS}
        if update:
            unknown = set(update) - set(fields)
            if unknown:
                raise TypeError(f"{type(self).__name__} has no field {sorted(unknown)[0]!r}")
            fields.update(update)
        return type(self)(**fields)

    def model_dump(self, **_options) -> dict:
        """The fields as a dict, nodes and spans inside it as dicts too (as pydantic dumps a model)."""
        return {name: _dump(getattr(self, name)) for name in self._FIELDS}

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{name}={getattr(self, name)!r}' for name in self._FIELDS)})"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_rebuild, (type(self), self._values()))


def _rebuild(cls, values):
    return cls(*values)


def _dump(value):
    if isinstance(value, (Node, Span)):
        return value.model_dump()
    if isinstance(value, tuple):
        return tuple(_dump(v) for v in value)
    return value


# -- expressions ---------------------------------------------------------------------------------


class Num(Node):
    __slots__ = ("value",)
    value: Union[int, float]

    def __init__(self, value, span=_SPAN):
        self.value = value
        self.span = span


class Name(Node):
    __slots__ = ("id",)
    id: str

    def __init__(self, id, span=_SPAN):  # noqa: A002 - the field's name
        self.id = id
        self.span = span


class Str(Node):
    __slots__ = ("value",)
    value: str

    def __init__(self, value, span=_SPAN):
        self.value = value
        self.span = span


class Tuple(Node):
    __slots__ = ("items",)
    items: tuple["Expr", ...]

    def __init__(self, items, span=_SPAN):
        self.items = items
        self.span = span


class BinOp(Node):
    __slots__ = ("op", "left", "right")
    op: str  # + - * // /
    left: "Expr"
    right: "Expr"

    def __init__(self, op, left, right, span=_SPAN):
        self.op = op
        self.left = left
        self.right = right
        self.span = span


class Neg(Node):
    __slots__ = ("operand",)
    operand: "Expr"

    def __init__(self, operand, span=_SPAN):
        self.operand = operand
        self.span = span


class Compare(Node):
    __slots__ = ("op", "left", "right")
    op: str  # == != < <= > >=
    left: "Expr"
    right: "Expr"

    def __init__(self, op, left, right, span=_SPAN):
        self.op = op
        self.left = left
        self.right = right
        self.span = span


class BoolOp(Node):
    __slots__ = ("op", "left", "right")
    op: str  # and, or
    left: "Expr"
    right: "Expr"

    def __init__(self, op, left, right, span=_SPAN):
        self.op = op
        self.left = left
        self.right = right
        self.span = span


class Not(Node):
    __slots__ = ("operand",)
    operand: "Expr"

    def __init__(self, operand, span=_SPAN):
        self.operand = operand
        self.span = span


class InitCall(Node):
    """A call in an expression: an initialiser with its arguments, as in `weight=normal(0, 0.01)`, or a function
    of numbers, as in `max(8, c // 4)` (cnndsl.ir.values.FUNCTIONS); the checker tells them apart by name."""

    __slots__ = ("name", "args")
    name: str
    args: tuple["Arg", ...]

    def __init__(self, name, args=(), span=_SPAN):
        self.name = name
        self.args = args
        self.span = span


class Index(Node):
    """`layers[2]`: an item of a tuple."""

    __slots__ = ("base", "index")
    base: "Expr"
    index: "Expr"

    def __init__(self, base, index, span=_SPAN):
        self.base = base
        self.index = index
        self.span = span


class IfExp(Node):
    """`a if condition else b`, inside parentheses (a call's arguments, a parameter's default, `( ... )`)."""

    __slots__ = ("condition", "then", "otherwise")
    condition: "Expr"
    then: "Expr"
    otherwise: "Expr"

    def __init__(self, condition, then, otherwise, span=_SPAN):
        self.condition = condition
        self.then = then
        self.otherwise = otherwise
        self.span = span


Expr = Union[Num, Name, Str, Tuple, BinOp, Neg, Compare, BoolOp, Not, InitCall, Index, IfExp]


# -- layer arguments -----------------------------------------------------------------------------


class Keyword(Node):
    __slots__ = ("key", "key_span", "value")
    key: str
    key_span: Span
    value: Expr

    def __init__(self, key, key_span=_SPAN, value=None, span=_SPAN):
        self.key = key
        self.key_span = key_span
        self.value = value
        self.span = span


class Channels(Node):
    """`3->16`: the expected input channels and the output channels."""

    __slots__ = ("in_", "out")
    in_: Expr
    out: Expr

    def __init__(self, in_, out, span=_SPAN):
        self.in_ = in_
        self.out = out
        self.span = span


class Positional(Node):
    __slots__ = ("value",)
    value: Expr

    def __init__(self, value, span=_SPAN):
        self.value = value
        self.span = span


class Repeat(Node):
    """`x(count)` or `x(count, i)`: a repetition whose count is an expression; `index` names the copy's index."""

    __slots__ = ("count", "index")
    count: Expr
    index: Optional[str]

    def __init__(self, count, index=None, span=_SPAN):
        self.count = count
        self.index = index
        self.span = span


Arg = Union[Keyword, Channels, Positional, Repeat]


# -- pipelines -----------------------------------------------------------------------------------


class Layer(Node):
    """`op [args] [as name]`; op is an op of the catalog, a named value or a block (section 5)."""

    __slots__ = ("op", "op_span", "args", "name")
    op: str
    op_span: Span
    args: tuple[Arg, ...]
    name: Optional[str]

    def __init__(self, op, op_span=_SPAN, args=(), name=None, span=_SPAN):
        self.op = op
        self.op_span = op_span
        self.args = args
        self.name = name
        self.span = span


class Call(Node):
    """`Name(args) [args] [as name]`: a block instantiation or an inline merge such as cat(e1)."""

    __slots__ = ("callee", "call_args", "args", "name")
    callee: str
    call_args: tuple[Arg, ...]
    args: tuple[Arg, ...]
    name: Optional[str]

    def __init__(self, callee, call_args=(), args=(), name=None, span=_SPAN):
        self.callee = callee
        self.call_args = call_args
        self.args = args
        self.name = name
        self.span = span


class Group(Node):
    """`(pipeline) [args] [as name]`; `splice`: `*(pipeline) [args]`, whose stages land flat in a named group."""

    __slots__ = ("pipeline", "args", "name", "splice")
    pipeline: "Pipeline"
    args: tuple[Arg, ...]
    name: Optional[str]
    splice: bool

    def __init__(self, pipeline, args=(), name=None, splice=False, span=_SPAN):
        self.pipeline = pipeline
        self.args = args
        self.name = name
        self.splice = splice
        self.span = span


Stage = Union[Layer, Call, Group]


class Pipeline(Node):
    __slots__ = ("stages",)
    stages: tuple[Stage, ...]

    def __init__(self, stages, span=_SPAN):
        self.stages = stages
        self.span = span


# -- statements ----------------------------------------------------------------------------------


class Input(Node):
    """`input 3x224x224` (a network's), or `input high, low` (the names of a block's inputs, in order)."""

    __slots__ = ("value", "more")
    value: Expr
    more: tuple[Expr, ...]

    def __init__(self, value, span=_SPAN, more=()):
        self.value = value
        self.span = span
        self.more = more

    @property
    def values(self) -> tuple[Expr, ...]:
        return (self.value, *self.more)


class Init(Node):
    """`init conv weight=kaiming_normal(mode=fan_out) bias=0`."""

    __slots__ = ("op", "op_span", "rules")
    op: str
    op_span: Span
    rules: tuple[Keyword, ...]

    def __init__(self, op, op_span=_SPAN, rules=(), span=_SPAN):
        self.op = op
        self.op_span = op_span
        self.rules = rules
        self.span = span


class Alias(Node):
    """What follows `as`: `conv1`, `inner_blocks[3]` (as that text), or a quoted key `"block1-0"` (its text)."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text, span=_SPAN):
        self.text = text
        self.span = span


class OutputItem(Node):
    """One value of `output`, with its key where it has one (`p2 as "0"`)."""

    __slots__ = ("name", "key")
    name: str
    key: Optional[str]

    def __init__(self, name, key=None, span=_SPAN):
        self.name = name
        self.key = key
        self.span = span


class Output(Node):
    """`output a, b` (a tuple), or with keys, `output p2 as "0", pool` (a dict; a value without `as` is its own key)."""

    __slots__ = ("names", "keys")
    names: tuple[str, ...]
    keys: tuple[Optional[str], ...]

    def __init__(self, names, span=_SPAN, keys=None):
        self.names = names
        self.span = span
        self.keys = keys if keys is not None else (None,) * len(names)


class Assign(Node):
    """`name = pipeline`, or `a, b = Block(...)` for a block with several outputs (`more` are the names after the first)."""

    __slots__ = ("name", "pipeline", "more")
    name: str
    pipeline: Pipeline
    more: tuple[str, ...]

    def __init__(self, name, pipeline, span=_SPAN, more=()):
        self.name = name
        self.pipeline = pipeline
        self.span = span
        self.more = more

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.more)


class Labeled(Node):
    """`label [args]: pipeline` or `label [args]:` and an indented body (groups and merges)."""

    __slots__ = ("label", "label_span", "args", "condition", "pipeline", "body")
    label: str
    label_span: Span
    args: tuple[Arg, ...]
    condition: Optional[Expr]  # `add if cond:` — when false, only the first branch runs
    pipeline: Optional[Pipeline]
    body: tuple["Statement", ...]

    def __init__(self, label, label_span=_SPAN, args=(), condition=None, pipeline=None, body=(), span=_SPAN):
        self.label = label
        self.label_span = label_span
        self.args = args
        self.condition = condition
        self.pipeline = pipeline
        self.body = body
        self.span = span


class Line(Node):
    """A pipeline on a line of its own, with an optional condition (a branch of a merge)."""

    __slots__ = ("pipeline", "condition")
    pipeline: Pipeline
    condition: Optional[Expr]

    def __init__(self, pipeline, condition=None, span=_SPAN):
        self.pipeline = pipeline
        self.condition = condition
        self.span = span


class Defaults(Node):
    """`defaults bn eps=0.001 momentum=0.01`: options every `bn` below takes unless it gives its own."""

    __slots__ = ("op", "op_span", "args")
    op: str
    op_span: Span
    args: tuple[Arg, ...]

    def __init__(self, op, op_span=_SPAN, args=(), span=_SPAN):
        self.op = op
        self.op_span = op_span
        self.args = args
        self.span = span


Statement = Union[Input, Init, Defaults, Output, Assign, Labeled, Line]


# -- files ---------------------------------------------------------------------------------------


class Param(Node):
    __slots__ = ("name", "default")
    name: str
    default: Optional[Expr]

    def __init__(self, name, default=None, span=_SPAN):
        self.name = name
        self.default = default
        self.span = span


class Network(Node):
    __slots__ = ("name", "params", "body", "implicit")
    name: str
    params: tuple[Param, ...]
    body: tuple[Statement, ...]
    implicit: bool  # a bare pipeline file: the network is named after the file

    def __init__(self, name, params=(), body=(), implicit=False, span=_SPAN):
        self.name = name
        self.params = params
        self.body = body
        self.implicit = implicit
        self.span = span


class Block(Node):
    __slots__ = ("name", "params", "body")
    name: str
    params: tuple[Param, ...]
    body: tuple[Statement, ...]

    def __init__(self, name, params=(), body=(), span=_SPAN):
        self.name = name
        self.params = params
        self.body = body
        self.span = span


class Import(Node):
    __slots__ = ("path",)
    path: str

    def __init__(self, path, span=_SPAN):
        self.path = path
        self.span = span


class ModuleDecl(Node):
    """`module Name(params) = package.module.Class(args) -> rule`: an nn.Module from outside the catalog, called
    as a block is. `rule` is the output's shape: the word `same`, a channel count, or a tuple (the whole shape
    without the batch)."""

    __slots__ = ("name", "params", "path", "path_span", "args", "rule")
    name: str
    params: tuple[Param, ...]
    path: str  # package.module.Class
    path_span: Span
    args: tuple[Arg, ...]  # the constructor's arguments: Positional or Keyword
    rule: Expr

    def __init__(self, name, params=(), path="", path_span=_SPAN, args=(), rule=None, span=_SPAN):
        self.name = name
        self.params = params
        self.path = path
        self.path_span = path_span
        self.args = args
        self.rule = rule
        self.span = span


class File(Node):
    __slots__ = ("name", "networks", "blocks", "imports", "modules")
    name: str
    networks: tuple[Network, ...]
    blocks: tuple[Block, ...]
    imports: tuple[Import, ...]
    modules: tuple[ModuleDecl, ...]

    def __init__(self, name, networks=(), blocks=(), imports=(), modules=(), span=_SPAN):
        self.name = name
        self.networks = networks
        self.blocks = blocks
        self.imports = imports
        self.modules = modules
        self.span = span
