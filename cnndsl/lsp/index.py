"""Every name in a file, where it is and what it names: the definitions and uses of blocks, networks, named
values, parameters and imports, and the ops and options written, read from the syntax tree alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import Source, Span
from ..syntax import ast
from .analysis import span_contains

MERGES = ("add", "cat", "mul", "split")


@dataclass
class Ref:
    kind: str  # block | network | value | param | import | op | option | merge | group | name (unresolved yet)
    name: str
    span: Span  # the name alone
    definition: bool = False
    scope: object = None  # the network, block or module whose names it belongs to (values and parameters)
    op: str | None = None  # an option's op
    node: object = None  # the node it came from (a Layer, a Call, an Import, a Block ...)


@dataclass
class Index:
    refs: list[Ref] = field(default_factory=list)
    scopes: list = field(default_factory=list)  # the networks, blocks and modules, in the file's order

    def at(self, line: int, col: int) -> Ref | None:
        """The name at 1-based (line, col), or just before it (the cursor after the last letter)."""
        for c in (col, col - 1):
            for ref in self.refs:
                if span_contains(ref.span, line, c):
                    return ref
        return None

    def definitions(self, kind: str, name: str, scope: object = None) -> list[Ref]:
        return [r for r in self.refs if r.definition and r.kind == kind and r.name == name and (scope is None or r.scope is scope)]

    def uses(self, kind: str, name: str, scope: object = None) -> list[Ref]:
        return [r for r in self.refs if r.kind == kind and r.name == name and (scope is None or r.scope is scope)]

    def scope_at(self, line: int) -> object:
        """The network or block whose lines hold `line` (a bare pipeline's network holds the file's)."""
        found = None
        for node in self.scopes:
            span = node.span
            if span.line <= line and (line < span.end_line or span.end_line == span.line or getattr(node, "implicit", False)):
                found = node
        return found


def build(file: ast.File, source: Source) -> Index:
    walker = _Walker(source)
    for imp in file.imports:
        walker.add(Ref("import", imp.path, walker.string_span(imp.span, imp.path), True, node=imp))
    for item in (*file.blocks, *file.modules, *file.networks):
        walker.item(item)
    walker.resolve(file)
    scopes = sorted((*file.blocks, *file.modules, *file.networks), key=lambda n: (n.span.line, n.span.col))
    return Index(walker.refs, scopes)


class _Walker:
    def __init__(self, source: Source):
        self.source = source
        self.refs: list[Ref] = []
        self.scope: object = None

    def add(self, ref: Ref) -> None:
        if ref.span is not None:
            self.refs.append(ref)

    def word_span(self, line: int, col: int, word: str) -> Span | None:
        """Where `word` stands on `line` as a whole word, at or after `col`."""
        text = self.source.line_text(line)
        m = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])").search(text, max(col - 1, 0))
        return Span(line, m.start() + 1, line, m.end() + 1) if m else None

    def string_span(self, span: Span, text: str) -> Span | None:
        at = self.source.line_text(span.line).find(f'"{text}"', span.col - 1)
        return Span(span.line, at + 2, span.line, at + 2 + len(text)) if at >= 0 else None

    def item(self, item) -> None:
        kind = "network" if isinstance(item, ast.Network) else "block"
        self.scope = item
        if not getattr(item, "implicit", False):
            keyword = "network" if kind == "network" else "block" if isinstance(item, ast.Block) else "module"
            at = self.word_span(item.span.line, item.span.col + len(keyword), item.name)
            self.add(Ref(kind, item.name, at, True, node=item))
        for p in item.params:
            self.add(Ref("param", p.name, Span(p.span.line, p.span.col, p.span.line, p.span.col + len(p.name)), True, item, node=p))
            self.expr(p.default)
        if isinstance(item, ast.ModuleDecl):
            for arg in item.args:
                self.arg(arg, None)
            self.expr(item.rule)
            return
        for stmt in item.body:
            self.statement(stmt)

    def statement(self, stmt) -> None:
        if isinstance(stmt, ast.Assign):
            col = stmt.span.col
            for name in stmt.names:
                at = self.word_span(stmt.span.line, col, name)
                self.add(Ref("value", name, at, True, self.scope, node=stmt))
                col = at.end_col if at else col
            self.pipeline(stmt.pipeline)
        elif isinstance(stmt, ast.Input):
            for v in stmt.values:
                if isinstance(v, ast.Name) and isinstance(self.scope, ast.Block):  # a block's named inputs
                    self.add(Ref("value", v.id, v.span, True, self.scope, node=stmt))
                else:
                    self.expr(v)
        elif isinstance(stmt, ast.Output):
            col = stmt.span.col + len("output")
            for name in stmt.names:
                at = self.word_span(stmt.span.line, col, name)
                self.add(Ref("value", name, at, False, self.scope, node=stmt))
                col = at.end_col if at else col
        elif isinstance(stmt, ast.Labeled):
            if stmt.label in MERGES:
                self.add(Ref("merge", stmt.label, stmt.label_span, node=stmt))
            else:  # a named group, `layer1: ...`
                self.add(Ref("group", stmt.label, stmt.label_span, False, self.scope, node=stmt))
            for arg in stmt.args:
                self.arg(arg, stmt.label)
            self.expr(stmt.condition)
            if stmt.pipeline is not None:
                self.pipeline(stmt.pipeline)
            for s in stmt.body:
                self.statement(s)
        elif isinstance(stmt, ast.Line):
            self.pipeline(stmt.pipeline)
            self.expr(stmt.condition)
        elif isinstance(stmt, (ast.Defaults, ast.Init)):
            self.add(Ref("op", stmt.op, stmt.op_span, node=stmt))
            for arg in getattr(stmt, "args", ()):
                self.arg(arg, stmt.op)
            for rule in getattr(stmt, "rules", ()):
                self.expr(rule.value)

    def pipeline(self, pipeline: ast.Pipeline) -> None:
        for stage in pipeline.stages:
            if isinstance(stage, ast.Layer):
                self.add(Ref("name", stage.op, stage.op_span, False, self.scope, node=stage))
                op = stage.op
            elif isinstance(stage, ast.Call):
                at = Span(stage.span.line, stage.span.col, stage.span.line, stage.span.col + len(stage.callee))
                kind = "merge" if stage.callee in MERGES else "block"
                self.add(Ref(kind, stage.callee, at, False, self.scope, node=stage))
                for arg in stage.call_args:
                    self.arg(arg, stage.callee)
                op = None
            else:
                self.pipeline(stage.pipeline)
                op = None
            for arg in stage.args:
                self.arg(arg, op)

    def arg(self, arg, op: str | None) -> None:
        if isinstance(arg, ast.Keyword):
            if op is not None:
                self.add(Ref("option", arg.key, arg.key_span, op=op, node=arg))
            self.expr(arg.value)
        elif isinstance(arg, ast.Channels):
            self.expr(arg.in_)
            self.expr(arg.out)
        elif isinstance(arg, ast.Positional):
            self.expr(arg.value)
        elif isinstance(arg, ast.Repeat):
            self.expr(arg.count)

    def expr(self, e) -> None:
        if e is None:
            return
        if isinstance(e, ast.Name):
            self.add(Ref("name", e.id, e.span, False, self.scope, node=e))
            return
        if isinstance(e, ast.InitCall):
            for arg in e.args:
                self.arg(arg, None)
            return
        for name in type(e)._FIELDS:
            child = getattr(e, name)
            if isinstance(child, ast.Node) and name != "span":
                self.expr(child)
            elif isinstance(child, tuple):
                for c in child:
                    if isinstance(c, ast.Node):
                        self.expr(c)

    def resolve(self, file: ast.File) -> None:
        """An unresolved name becomes a use of a value, a parameter, a block or an op (in that order of scope)."""
        from ..ops import REGISTRY

        defined = {(r.kind, r.name, id(r.scope)) for r in self.refs if r.definition and r.kind in ("value", "param")}
        kept = []
        for ref in self.refs:
            if ref.kind == "name":
                key = id(ref.scope)
                if ("value", ref.name, key) in defined:
                    ref.kind = "value"
                elif ("param", ref.name, key) in defined:
                    ref.kind = "param"
                elif isinstance(ref.node, ast.Layer):
                    ref.kind = "op" if ref.name in REGISTRY or ref.name == "unpool" else "block"
                else:
                    continue  # a word such as `fan_out`, or an option's short form (`k3`)
            kept.append(ref)
        self.refs = kept
