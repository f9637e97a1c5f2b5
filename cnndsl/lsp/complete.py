"""Completion: at the start of a stage, the ops, blocks (with their signatures), merges and named values; after
an op, its options with their types and defaults, and the values and parameters in scope; inside
`import "`, the .cnn files beside the document."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..syntax import ast
from .analysis import Analysis
from .hover import signature
from .index import MERGES, Index

MOST_PATHS = 200
STATEMENTS = ("input", "output", "init", "defaults")
TOP = ("network", "block", "import", "module")


@dataclass
class Item:
    label: str
    kind: str  # op | option | flag | block | value | param | merge | keyword | file
    detail: str = ""
    doc: str = ""
    insert: str | None = None


def complete(a: Analysis, index: Index, line: int, col: int) -> list[Item]:
    text = a.source.line_text(line)[:col - 1]
    if re.search(r'^\s*import\s+"[^"]*$', text):
        return _paths(a.name, text[text.index('"') + 1:])
    if "#" in text:
        return []
    scope = index.scope_at(line)
    stage = text.split("|")[-1]
    if "|" not in text:  # the line's first stage: after `a, b =` or a label such as `layer1:` or `add:`
        stage = re.sub(r"^\s*\w+(\s*,\s*\w+)*\s*=(?!=)|^\s*\w+[^:|=]*:", "", stage)
    callee = _open_call(stage)
    if callee is not None:  # inside `Block(...`: its parameters, and the values and parameters in scope
        return _call_params(a, callee) + _names(a, index, scope)
    words = stage.split()
    started = len(words) > 1 or (len(words) == 1 and stage[-1:].isspace())
    if not started:
        items = _ops() + _blocks(a) + _names(a, index, scope) + [Item(m, "merge", "merge") for m in MERGES]
        if stage.strip() == text.strip():  # the line's first word
            items += [Item(k, "keyword") for k in (STATEMENTS if text[:1].isspace() else TOP)]
        return items
    op = words[0]
    typing = re.search(r"([A-Za-z_]\w*)=[\w.]*$", stage)
    if typing:  # `mode=ne`, `like=e`: the option's choices, the values and parameters
        return _choices(op, typing.group(1)) + _names(a, index, scope)
    return _options(op) + _names(a, index, scope)


def _open_call(stage: str) -> str | None:
    """The name before the last parenthesis still open in `stage` (`Stem(c, s` -> `Stem`), or None."""
    opened = []
    for i, ch in enumerate(stage):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            opened.pop()
    if not opened:
        return None
    m = re.search(r"([A-Za-z_]\w*)$", stage[:opened[-1]])
    return m.group(1) if m else None


def _call_params(a: Analysis, name: str) -> list[Item]:
    from .hover import block_node, expression_text

    node = block_node(a, name)
    return [Item(f"{p.name}=", "param", f"parameter of {name}" + (f", default {expression_text(p.default)}" if p.default is not None else ""),
                 insert=f"{p.name}=") for p in getattr(node, "params", ())]


def _ops() -> list[Item]:
    from ..ops.base import REGISTRY

    return [Item(name, "op", "op" if name == spec.name else f"op: {spec.name}", spec.fact("doc")) for name, spec in REGISTRY.items()]


def _options(op: str) -> list[Item]:
    from ..ops.base import REGISTRY
    from ..ops.catalog import _option

    spec = REGISTRY.get(op)
    if spec is None:
        return []
    items = []
    for o in spec.all_options:
        items.append(Item(f"{o.name}=", "option", f"{o.kind}" + (f", default {o.default!r}" if o.default is not None else ""),
                          f"`{_option(o)}` of `{spec.name}`", insert=f"{o.name}="))
        for flag, value in o.flags:
            items.append(Item(flag, "flag", f"{o.name}={value!r}".lower(), f"`{flag}`: {o.name}={value!r} of `{spec.name}`"))
        if o.short:
            items.append(Item(o.short, "option", f"short for {o.name}=", f"`{o.short}3` is {o.name}=3"))
    return items


def _choices(op: str, key: str) -> list[Item]:
    from ..ops.base import REGISTRY

    spec = REGISTRY.get(op)
    opt = spec.option(key) if spec is not None else None
    if opt is None:
        return []
    return [Item(str(c), "option", f"{opt.name} of {spec.name}") for c in opt.choices]


def _blocks(a: Analysis) -> list[Item]:
    items = []
    nodes = dict(a.blocks)
    for block in (*a.file.blocks, *a.file.modules) if a.file is not None else ():
        nodes.setdefault(block.name, (block, a.source))
    for name, (node, src) in nodes.items():
        where = "" if os.path.normpath(src.name) == os.path.normpath(a.name) else f" (from {os.path.basename(src.name)})"
        items.append(Item(name, "block", signature(node) + where, insert=f"{name}("))
    return items


def _names(a: Analysis, index: Index, scope) -> list[Item]:
    items, seen = [], set()
    for ref in index.refs:
        if ref.definition and ref.kind in ("value", "param") and ref.scope is scope and ref.name not in seen:
            seen.add(ref.name)
            what = "named value" if ref.kind == "value" else f"parameter of {getattr(scope, 'name', '')}"
            items.append(Item(ref.name, ref.kind, what))
    if isinstance(scope, ast.Block):
        items.append(Item("in", "param", "the block's input channels"))
    return items


def _paths(doc: str, typed: str) -> list[Item]:
    """The .cnn files under the document's folder (two levels down at most), relative to it."""
    base = os.path.dirname(os.path.abspath(doc))
    found = []
    for root, dirs, files in os.walk(base):
        depth = os.path.relpath(root, base).count(os.sep) + (root != base)
        dirs[:] = [d for d in sorted(dirs) if not d.startswith(".")] if depth < 2 else []
        for f in sorted(files):
            path = os.path.relpath(os.path.join(root, f), base).replace(os.sep, "/")
            if f.endswith(".cnn") and os.path.join(root, f) != os.path.abspath(doc):
                found.append(Item(path, "file", "import"))
            if len(found) >= MOST_PATHS:
                return found
    return found
