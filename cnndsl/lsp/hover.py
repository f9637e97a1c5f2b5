"""Hovers: a layer's shapes, parameters, mult-adds and receptive field; an op's or option's documentation and
PyTorch equivalent; a block call's signature and result; a named value's shape; a parameter's value."""

from __future__ import annotations

import os

from ..ops.common import fmt_shape
from ..syntax import ast
from .analysis import Analysis
from .facts import calls_at, distinct, layers_at, value_shapes
from .index import Index, Ref

MOST_CALLS = 4  # a block's layer lists this many of its calls, then counts the rest


def hover(a: Analysis, index: Index, line: int, col: int) -> str | None:
    """Markdown for the place (line, col), 1-based; None where there is nothing to say."""
    ref = index.at(line, col)
    if ref is not None and ref.kind == "option":
        return option_doc(ref.op, ref.name) or _block_keyword(a, ref)
    if ref is not None and ref.kind in ("block", "value", "param", "import", "network", "merge", "group"):
        return _named(a, index, ref)
    layers = layers_at(a, line, col)
    if layers:
        return _layers(layers)
    if ref is not None and ref.kind == "op":
        return op_doc(ref.name)
    return None


def _layers(layers) -> str:
    first = layers[0][0]
    head = f"**{first.op}** → `{first.module or first.forward}`"
    out = [head, ""]
    for layer, net in layers[:MOST_CALLS]:
        rows = net.summary()
        row = rows.get(layer.name)
        figures = [f"params {'?' if layer.params is None else f'{layer.params:,}'}"]
        if row is not None:
            if row.macs is not None:
                figures.append(f"mult-adds {_si(row.macs)}")
            if row.receptive_field is not None:
                rf = row.receptive_field
                field = rf if isinstance(rf, str) else "x".join(str(v) for v in rf)
                figures.append(f"receptive field {'' if row.exact else '~'}{field}")
        where = f"`{layer.name}`" + (f" in {net.node.name}" if len({id(n) for _, n in layers}) > 1 else "")
        out.append(f"{where}: {fmt_shape(layer.input_shape)} → {fmt_shape(layer.output_shape)}  ")
        out.append(" · ".join(figures) + "\n")
    if len(layers) > MOST_CALLS:
        out.append(f"... and {len(layers) - MOST_CALLS} more calls of this line")
    doc = _doc_line(first.op)
    if doc:
        out += ["", "---", doc]
    return "\n".join(out).rstrip()


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit} ({n:,})"
    return f"{n:,}"


def _doc_line(op: str) -> str | None:
    from ..ops.catalog import FORMS
    from ..ops.base import REGISTRY

    spec = REGISTRY.get(op) or FORMS.get(op)
    return None if spec is None else f"`{spec.name}`: {spec.fact('doc')}"


def op_doc(op: str) -> str | None:
    """An op's documentation line (with its PyTorch equivalent) and its options."""
    from ..ops.catalog import FORMS, _option
    from ..ops.base import REGISTRY

    spec = REGISTRY.get(op) or FORMS.get(op)
    if spec is None:
        return None
    names = ", ".join([spec.name, *spec.aliases])
    out = [f"**{spec.name}**" + (f" ({names})" if spec.aliases else ""), "", spec.fact("doc")]
    if spec.positional or spec.varargs:
        out += ["", "positional: " + ", ".join(f"`{p}`" for p in (*spec.positional, *([spec.varargs] if spec.varargs else ())))]
    options = [o for o in spec.all_options if o.name not in spec.positional]
    if options:
        out += ["", "options: " + ", ".join(f"`{_option(o)}`" for o in options)]
    return "\n".join(out)


def option_doc(op: str | None, key: str) -> str | None:
    from ..ops.catalog import _option
    from ..ops.base import REGISTRY

    spec = REGISTRY.get(op) if op else None
    opt = spec.option(key) if spec is not None else None
    if opt is None:
        return None
    out = [f"**{opt.name}** ({opt.kind}) of `{spec.name}`: `{_option(opt)}`"]
    if opt.short:
        out.append(f"short form: `{opt.short}<value>`")
    if opt.aliases:
        out.append("also written: " + ", ".join(f"`{a}`" for a in opt.aliases))
    out += ["", spec.fact("doc")]
    return "\n".join(out)


def _block_keyword(a: Analysis, ref: Ref) -> str | None:
    """A keyword of a block call (`stride=2`): the block's parameter."""
    node = block_node(a, ref.op)
    param = next((p for p in getattr(node, "params", ()) if p.name == ref.name), None)
    if param is None:
        return None
    default = f" (default {expression_text(param.default)})" if param.default is not None else " (no default: the call must give it)"
    return f"parameter `{ref.name}` of `{signature(node)}`{default}"


def block_node(a: Analysis, name: str | None):
    """The block or module `name` as `a` sees it (defined here or imported), or None."""
    found = a.blocks.get(name)
    if found is not None:
        return found[0]
    own = (*a.file.blocks, *a.file.modules) if a.file is not None else ()
    return next((b for b in own if b.name == name), None)


def signature(node) -> str:
    """`block Name(a, b=1)` as written."""
    keyword = "network" if isinstance(node, ast.Network) else "module" if isinstance(node, ast.ModuleDecl) else "block"
    params = ", ".join(p.name + (f"={expression_text(p.default)}" if p.default is not None else "") for p in node.params)
    tail = f" = {node.path}(...)" if isinstance(node, ast.ModuleDecl) else ""
    return f"{keyword} {node.name}({params}){tail}"


def expression_text(e) -> str:
    """An expression as the user writes it (near enough: numbers, names and operators)."""
    if isinstance(e, ast.Num):
        return repr(e.value)
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Str):
        return f'"{e.value}"'
    if isinstance(e, ast.BinOp):
        return f"{expression_text(e.left)} {e.op} {expression_text(e.right)}"
    if isinstance(e, ast.Neg):
        return f"-{expression_text(e.operand)}"
    if isinstance(e, ast.Tuple):
        return "(" + ", ".join(expression_text(i) for i in e.items) + ")"
    return "..."


def _named(a: Analysis, index: Index, ref: Ref) -> str | None:
    if ref.kind == "merge":
        return _merge_doc(ref.name)
    if ref.kind == "import":
        path = a.imports.get(id(ref.node), ref.name)
        names = sorted(n for n, (_, src) in a.blocks.items() if os.path.normpath(src.name) == os.path.normpath(path))
        return f"import `{path}`" + (f"\n\nblocks: {', '.join(f'`{n}`' for n in names)}" if names else "")
    if ref.kind in ("block", "network"):
        found = a.blocks.get(ref.name)
        node = ref.node if ref.definition else (found[0] if found else None)
        if node is None:
            return None
        where = "" if found is None or os.path.normpath(found[1].name) == os.path.normpath(a.name) else f"  \nfrom {found[1].name}"
        out = [f"```cnn\n{signature(node)}\n```{where}"]
        if not ref.definition and isinstance(ref.node, ast.Call):
            calls = calls_at(a, ref.node.span)
            if calls:
                out.append("this call: " + distinct([fmt_shape(step.output_shape) for step, _ in calls]))
        return "\n".join(out)
    if ref.kind in ("value", "group"):
        shapes = value_shapes(a, ref.name, ref.scope, ref.kind)
        what = "value" if ref.kind == "value" else "group (`nn.Sequential`)"
        return f"{what} `{ref.name}`" + (f": {distinct(shapes)}" if shapes else "")
    if ref.kind == "param":
        defs = index.definitions("param", ref.name, ref.scope)
        default = defs[0].node.default if defs else None
        out = f"parameter `{ref.name}`" + (f" = {expression_text(default)}" if default is not None else "")
        if isinstance(ref.scope, ast.Network):
            for net in a.networks:
                if net.node is ref.scope and net.checked is not None:
                    value = next((p.value for p in net.checked.params if p.name == ref.name), None)
                    if value is not None:
                        out += f" (value {value!r})"
        return out + f" of {signature(ref.scope).split('(')[0]}" if ref.scope is not None else out
    return None


_MERGE_DOCS = {
    "add": "sum of the branches (a residual connection): `+` in `forward`; needs equal shapes",
    "cat": "concatenation of the branches over the channels: `torch.cat(..., dim=1)` in `forward`; equal shapes but for the channels",
    "mul": "product of the branches, broadcasting (a squeeze-and-excitation gate): `*` in `forward`",
    "split": "`split N:` cuts the channels into N equal parts, feeds part i to branch i and concatenates the results",
}


def _merge_doc(name: str) -> str:
    return f"**{name}** (merge)\n\n{_MERGE_DOCS[name]}"
