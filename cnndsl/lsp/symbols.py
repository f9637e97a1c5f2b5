"""Document symbols: the networks and blocks (and external modules), each with its parameters and named values."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Span
from ..syntax import ast
from .index import Index
from .hover import signature


@dataclass
class Symbol:
    name: str
    kind: str  # network | block | module | param | value | import
    detail: str
    span: Span  # the whole definition
    name_span: Span
    children: list["Symbol"] = field(default_factory=list)


def symbols(index: Index) -> list[Symbol]:
    out: list[Symbol] = []
    by_node: dict[int, Symbol] = {}
    for ref in index.refs:
        if not ref.definition:
            continue
        if ref.kind in ("network", "block"):
            kind = "module" if isinstance(ref.node, ast.ModuleDecl) else ref.kind
            sym = Symbol(ref.name, kind, signature(ref.node), _whole(ref.node.span, ref.span), ref.span)
            by_node[id(ref.node)] = sym
            out.append(sym)
        elif ref.kind == "import":
            out.append(Symbol(ref.name, "import", "import", ref.span, ref.span))
    for node in index.scopes:
        if getattr(node, "implicit", False):  # a bare pipeline: the network named after the file
            start = Span(node.span.line, node.span.col, node.span.line, node.span.col + 1)
            by_node[id(node)] = sym = Symbol(node.name, "network", "the file's pipeline", _whole(node.span, start), start)
            out.append(sym)
    for ref in index.refs:
        if ref.definition and ref.kind in ("param", "value") and id(ref.scope) in by_node:
            parent = by_node[id(ref.scope)]
            statement = ref.node.span if isinstance(ref.node, ast.Assign) else ref.span
            parent.children.append(Symbol(ref.name, ref.kind, "parameter" if ref.kind == "param" else "named value",
                                          _whole(statement, ref.span), ref.span))
    out.sort(key=lambda s: (s.span.line, s.span.col))
    return out


def _whole(span: Span, name: Span) -> Span:
    """A definition's span on its own lines (a statement's span ends where the next line starts)."""
    if span.end_line > span.line and span.end_col == 1:
        span = Span(span.line, span.col, span.end_line - 1, 10**4)
    if (span.line, span.col) > (name.line, name.col):
        span = Span(name.line, name.col, span.end_line, span.end_col)
    return span
