"""Go to definition, find references and rename: blocks across files (through imports), named values and
parameters within their network or block, imports to the file they name."""

from __future__ import annotations

from ..errors import Span
from ..names import identifier_problem, value_problem
from ..syntax import ast
from .analysis import Analysis, same_file
from .index import MERGES, Ref
from .workspace import Workspace, defined_in

Place = tuple[str, Span]  # a file and a span in it


def definition(ws: Workspace, a: Analysis, line: int, col: int) -> list[Place]:
    ref = ws.index(a).at(line, col)
    if ref is None:
        return []
    if ref.kind == "import":
        path = a.imports.get(id(ref.node))
        return [(path, Span(1, 1, 1, 1))] if path else []
    if ref.kind in ("value", "param"):
        return [(a.name, d.span) for d in ws.index(a).definitions(ref.kind, ref.name, ref.scope)]
    if ref.kind in ("block", "network"):
        return _block_definition(ws, a, ref.name)
    if ref.kind == "option" and ref.op is not None:  # a keyword of a block call: the block's parameter
        for path, _ in _block_definition(ws, a, ref.op):
            other = ws.analysis(path)
            block = next((r.node for r in ws.index(other).definitions("block", ref.op)), None) if other else None
            return [(path, d.span) for d in ws.index(other).definitions("param", ref.name, block)] if block else []
    return []


def _block_definition(ws: Workspace, a: Analysis, name: str) -> list[Place]:
    file = defined_in(a, name)
    if file is None:
        return []
    other = a if same_file(file, a.name) else ws.analysis(file)
    if other is None:
        return []
    return [(other.name, d.span) for d in ws.index(other).definitions("block", name)]


def references(ws: Workspace, a: Analysis, line: int, col: int, declaration: bool = True) -> list[Place]:
    ref = ws.index(a).at(line, col)
    if ref is None:
        return []
    if ref.kind in ("value", "param"):
        return [(a.name, r.span) for r in ws.index(a).uses(ref.kind, ref.name, ref.scope) if declaration or not r.definition]
    if ref.kind == "block":
        return block_uses(ws, a, ref.name, declaration)
    if ref.kind == "import":
        path = a.imports.get(id(ref.node))
        out = []
        for p in ws.related(a.name):
            other = ws.analysis(p)
            if other is not None and other.file is not None:
                out += [(other.name, r.span) for r in ws.index(other).refs
                        if r.kind == "import" and same_file(other.imports.get(id(r.node), ""), path or "")]
        return out
    return []


def block_uses(ws: Workspace, a: Analysis, name: str, declaration: bool = True) -> list[Place]:
    """Every place that names the block `name` defined where `a` finds it: its definition, and its uses in
    every file that reaches the same definition (the open documents and the files beside the defining one)."""
    home = defined_in(a, name)
    if home is None:
        return [(a.name, r.span) for r in ws.index(a).uses("block", name)]
    out = []
    for p in dict.fromkeys([home, *ws.related(home), *ws.related(a.name)]):
        other = a if same_file(p, a.name) else ws.analysis(p)
        if other is None or other.file is None:
            continue
        there = defined_in(other, name)
        if there is None or not same_file(there, home):
            continue
        for r in ws.index(other).uses("block", name):
            if declaration or not r.definition:
                out.append((other.name, r.span))
    return list(dict.fromkeys(out))


def rename_problem(ws: Workspace, a: Analysis, ref: Ref | None, new: str) -> str | None:
    """Why the name at `ref` cannot become `new` (None: it can, with the edits of `rename`)."""
    from ..ops import REGISTRY

    if ref is None or ref.kind not in ("value", "block", "param"):
        return "only a block, a named value or a parameter can be renamed"
    if not new.isidentifier() or not new.isascii():
        return f"`{new}` is not a name"
    if new in REGISTRY or new in MERGES or new in ("in", "identity", "unpool"):
        return f"`{new}` is an op's name"
    if ref.kind == "value":
        problem = value_problem(new)
    else:
        problem = identifier_problem(new, "block" if ref.kind == "block" else "parameter")
    if problem:
        return problem
    index = ws.index(a)
    if ref.kind in ("value", "param"):
        if isinstance(ref.scope, ast.Block) and ref.kind == "param" and not _only_here(ws, a, ref):
            return "a block's parameter is also named by its callers' keywords: rename it where the block is defined and called"
        if index.definitions("value", new, ref.scope) or index.definitions("param", new, ref.scope):
            return f"`{new}` is already defined here"
        if any(r.name == new and r.scope is ref.scope for r in index.refs if r.kind in ("op", "block")):
            return f"`{new}` is already used here as an op or block"
        return None
    for p in {p for p, _ in block_uses(ws, a, ref.name)}:
        other = ws.analysis(p)
        if other is not None and (defined_in(other, new) is not None or new in other.blocks):
            return f"a block or module `{new}` is already in reach of {p}"
        if other is not None and other.file is not None and any(n.name == new for n in other.file.networks):
            return f"a network of {p} is named `{new}`"
    return None


def _only_here(ws: Workspace, a: Analysis, ref: Ref) -> bool:
    """Whether no call of the block names its parameter `ref.name` as a keyword."""
    for p, _ in block_uses(ws, a, ref.scope.name, declaration=False):
        other = ws.analysis(p)
        if other is None:
            continue
        for r in ws.index(other).refs:
            if r.kind == "block" and r.name == ref.scope.name and isinstance(r.node, ast.Call):
                if any(isinstance(arg, ast.Keyword) and arg.key == ref.name for arg in r.node.call_args):
                    return False
    return True


def rename(ws: Workspace, a: Analysis, line: int, col: int, new: str) -> tuple[list[Place] | None, str | None]:
    """The places to write `new` over, or the reason it is not safe."""
    ref = ws.index(a).at(line, col)
    problem = rename_problem(ws, a, ref, new)
    if problem:
        return None, problem
    return references(ws, a, line, col, declaration=True), None
