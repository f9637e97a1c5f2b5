"""The syntax tree: frozen pydantic nodes, each with the span of source it came from."""

from __future__ import annotations

from typing import Optional, Union

from pydantic import BaseModel, ConfigDict

from .errors import Span


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    span: Span = Span()


# -- expressions ---------------------------------------------------------------------------------


class Num(Node):
    value: Union[int, float]


class Name(Node):
    id: str


class Str(Node):
    value: str


class Tuple(Node):
    items: tuple["Expr", ...]


class BinOp(Node):
    op: str  # + - * // /
    left: "Expr"
    right: "Expr"


class Neg(Node):
    operand: "Expr"


class Compare(Node):
    op: str  # == != < <= > >=
    left: "Expr"
    right: "Expr"


class BoolOp(Node):
    op: str  # and, or
    left: "Expr"
    right: "Expr"


class Not(Node):
    operand: "Expr"


class InitCall(Node):
    """An initialiser with its arguments, as in `weight=normal(0, 0.01)`."""

    name: str
    args: tuple["Arg", ...] = ()


Expr = Union[Num, Name, Str, Tuple, BinOp, Neg, Compare, BoolOp, Not, InitCall]


# -- layer arguments -----------------------------------------------------------------------------


class Keyword(Node):
    key: str
    key_span: Span = Span()
    value: Expr


class Channels(Node):
    """`3->16`: the expected input channels and the output channels."""

    in_: Expr
    out: Expr


class Positional(Node):
    value: Expr


Arg = Union[Keyword, Channels, Positional]


# -- pipelines -----------------------------------------------------------------------------------


class Layer(Node):
    """`op [args] [as name]`; op is an op of the catalog, a named value or a block (section 5)."""

    op: str
    op_span: Span = Span()
    args: tuple[Arg, ...] = ()
    name: Optional[str] = None


class Call(Node):
    """`Name(args) [args] [as name]`: a block instantiation or an inline merge such as cat(e1)."""

    callee: str
    call_args: tuple[Arg, ...] = ()
    args: tuple[Arg, ...] = ()
    name: Optional[str] = None


class Group(Node):
    """`(pipeline) [args] [as name]`."""

    pipeline: "Pipeline"
    args: tuple[Arg, ...] = ()
    name: Optional[str] = None


Stage = Union[Layer, Call, Group]


class Pipeline(Node):
    stages: tuple[Stage, ...]


# -- statements ----------------------------------------------------------------------------------


class Input(Node):
    value: Expr


class Init(Node):
    """`init conv weight=kaiming_normal(mode=fan_out) bias=0`."""

    op: str
    op_span: Span = Span()
    rules: tuple[Keyword, ...]


class Output(Node):
    names: tuple[str, ...]


class Assign(Node):
    name: str
    pipeline: Pipeline


class Labeled(Node):
    """`label [args]: pipeline` or `label [args]:` and an indented body (groups and merges)."""

    label: str
    label_span: Span = Span()
    args: tuple[Arg, ...] = ()
    condition: Optional[Expr] = None  # `add if cond:` — when false, only the first branch runs
    pipeline: Optional[Pipeline] = None
    body: tuple["Statement", ...] = ()


class Line(Node):
    """A pipeline on a line of its own, with an optional condition (a branch of a merge)."""

    pipeline: Pipeline
    condition: Optional[Expr] = None


Statement = Union[Input, Init, Output, Assign, Labeled, Line]


# -- files ---------------------------------------------------------------------------------------


class Param(Node):
    name: str
    default: Optional[Expr] = None


class Network(Node):
    name: str
    params: tuple[Param, ...] = ()
    body: tuple[Statement, ...]
    implicit: bool = False  # a bare pipeline file: the network is named after the file


class Block(Node):
    name: str
    params: tuple[Param, ...] = ()
    body: tuple[Statement, ...]


class Import(Node):
    path: str


class File(Node):
    name: str
    networks: tuple[Network, ...] = ()
    blocks: tuple[Block, ...] = ()
    imports: tuple[Import, ...] = ()
