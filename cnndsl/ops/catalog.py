"""The catalog as the tools see it: every op with its facts (cnndsl/ops/facts.py), looked up by the name a
checked layer carries, and the op table of docs/LANGUAGE.md generated from the ops' options and doc lines.

`python -m cnndsl.ops.catalog` prints that table; tests/test_op_catalog.py requires docs/LANGUAGE.md to hold it
as printed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import pool
from .base import REGISTRY, OpSpec, Opt
from ..ir.values import value
from .facts import FACTS, UNKNOWN, MissingFact, literal

if TYPE_CHECKING:
    from ..ir.network import CheckedLayer

# ops the checker builds itself rather than through REGISTRY (`unpool`, which names a pool): facts only
FORMS: dict[str, OpSpec] = {pool.UNPOOL.name: pool.UNPOOL}


class _ExternalLabel:
    """An external module's label in the graph: its declared name and its constructor's arguments."""

    def text(self, spec: OpSpec, layer: "CheckedLayer") -> str:
        args = [literal(value(a)) for a in layer.args] + [f"{k}={literal(value(v))}" for k, v in layer.kwargs]
        return f"{layer.op}({', '.join(args)})"


def _external_rule(ctx):  # pragma: no cover - the checker builds external layers itself (cnndsl/semantics/externs.py)
    raise AssertionError("an external module has no rule of the catalog")


# A module from outside the catalog (`module Name(...) = package.module.Class(...) -> rule`): what the tools may
# assume of it without importing it. Nothing: its parameters, mult-adds and buffers are unknown (None), its
# receptive field unknown, and for the in-place rule it may return its input and keep its output for backward.
EXTERNAL = OpSpec("module", _external_rule, kind="module", keeps_output=True, returns_input=True,
                  window=UNKNOWN, macs=lambda layer: None, buffers=lambda layer: None, saves=lambda layer: None, view=False,
                  label=_ExternalLabel(),
                  doc="a module from outside the catalog, declared with `module Name(...) = package.module.Class(...) -> rule`")


def layer_spec(layer: "CheckedLayer") -> OpSpec | None:
    """The registered spec of a checked layer's op (EXTERNAL for an external module; None for a form such as unpool)."""
    return EXTERNAL if layer.external is not None else REGISTRY.get(layer.op)


def spec_of(op: str) -> OpSpec:
    """The spec of an op, by its name or an alias; a MissingFact for an op the catalog does not have."""
    spec = REGISTRY.get(op) or FORMS.get(op)
    if spec is None:
        raise MissingFact(f"op `{op}` is not in the catalog (cnndsl/ops/), so no tool knows its facts")
    return spec


def fact(layer: "CheckedLayer", name: str) -> Any:
    """A fact about a checked layer (`window`, `macs`, `buffers`, `label`), from its op's spec."""
    return (EXTERNAL if layer.external is not None else spec_of(layer.op)).fact(name, layer)


FAMILIES = ("conv", "pool", "tensor", "reshape", "norm", "activation")  # the order of the op table: cnndsl/ops/<family>.py


def specs() -> list[OpSpec]:
    """Every op once (aliases folded), family by family, in the order each family registers them; the forms
    after their family."""
    seen: dict[str, OpSpec] = {}
    for spec in (*REGISTRY.values(), *FORMS.values()):
        seen.setdefault(spec.name, spec)

    def family(spec: OpSpec) -> int:
        module = spec.rule.__module__.rsplit(".", 1)[-1]
        return FAMILIES.index(module) if module in FAMILIES else len(FAMILIES)

    return sorted(seen.values(), key=family)


def missing_facts(spec: OpSpec) -> list[str]:
    """The facts a spec does not declare (a doc line that is not one line counts as missing)."""
    missing = []
    for name in FACTS:
        try:
            if name == "doc":
                spec.fact("doc")
            elif getattr(spec, name) is None:
                missing.append(name)
        except MissingFact:
            missing.append(name)
    return missing


# -- the op table of docs/LANGUAGE.md --------------------------------------------------------------------


def _option(opt: Opt) -> str:
    """An option as the table lists it: `stride=1`, `bias=true` (`nobias`), `mode=nearest` (`nearest`, `linear`, ...)."""
    default = f"{opt.default:.6g}" if isinstance(opt.default, float) else literal(opt.default)
    text = opt.name if opt.default is None else f"{opt.name}={default}"
    extra = []
    if opt.choices:
        extra.append(", ".join(f"`{literal(c)}`" for c in opt.choices))
    extra += [f"`{flag}`" for flag, _ in opt.flags]
    return text + (f" ({'; '.join(extra)})" if extra else "")


def doc_row(spec: OpSpec) -> str:
    names = f"`{spec.name}`" + (f" ({', '.join(f'`{a}`' for a in spec.aliases)})" if spec.aliases else "")
    if spec.name == "unpool":
        positional = "the name of a max pool"
    elif spec.varargs is not None:
        positional = f"{spec.varargs} (every dimension)"
    else:
        positional = ", ".join(_option(spec.option(p)) for p in spec.positional)
    if spec.channels:
        positional = positional.replace("out", "out (`16`, or `3->16` with in)", 1) if positional else positional
    listed = set(spec.positional) | {spec.varargs}
    options = ", ".join(_option(o) for o in spec.all_options if o.name not in listed)
    return f"| {names} | {positional} | {options} | {spec.fact('doc').replace('|', chr(92) + '|')} |"


def doc_table() -> str:
    """The op table for docs/LANGUAGE.md ("The catalog"), one row per op."""
    rows = ["| op | positional | options | what it is |", "| --- | --- | --- | --- |"]
    rows += [doc_row(spec) for spec in specs()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(doc_table(), end="")
