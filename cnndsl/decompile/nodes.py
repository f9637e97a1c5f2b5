"""What decompiling builds before it writes text: the stages of a pipeline, as the language has them.

A stage is a `Layer` (one op of the catalog), a `Call` of a block, a `Group` (a named group, an nn.Sequential, or
a parenthesized stage inside one), a `Merge` (`add:`, `cat:`, `mul:` with its branches) or a `Join` (`cat(e1)`).
Values are plain Python numbers, booleans, tuples and words while one module instance is described; a block's
template holds `Expr` where its instances differ (cnndsl/decompile/generalize.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DecompileError(Exception):
    """What cannot be decompiled: where (module path, class, source line) and why. The CLI prints it as it is."""

    def __init__(self, message: str, *, path: str | None = None, cls: str | None = None, where: str | None = None,
                 hint: str | None = None):
        self.message, self.path, self.cls, self.where, self.hint = message, path, cls, where, hint
        super().__init__(self.render())

    def render(self) -> str:
        at = f"module `{self.path or '(the model itself)'}`" + (f" ({self.cls})" if self.cls else "")
        text = f"{self.where}: " if self.where else ""
        text += f"cannot decompile {at}: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


@dataclass(frozen=True)
class Expr:
    """An expression over a block's parameters and `in`, as the language writes it (`planes*4`)."""

    text: str

    def __repr__(self) -> str:
        return self.text


@dataclass
class Layer:
    op: str  # the catalog's op name
    opts: dict[str, Any]  # option -> value, only those that differ from the op's default
    name: str | None = None  # the attribute it must have (a module with a state), else None
    attr: str | None = None  # the original attribute, kept where the automatic name would take another's
    stateful: bool = False
    like: str | None = None  # `upsample like=e1`: the value's name, filled in by the writer


@dataclass
class Call:
    block: str  # the block's class key (a template name after generalisation)
    args: dict[str, Any] = field(default_factory=dict)  # parameter -> value (after generalisation)
    name: str | None = None
    stateful: bool = True
    instance: Any = None  # the traced instance (a Unit)
    external: bool = False


@dataclass
class Group:
    name: str | None  # None: a parenthesized stage of an enclosing group (a nested nn.Sequential)
    stages: list
    splice: bool = False
    count: Any = None  # a repetition: `x3`, or (count, index) with the index's name
    cond: Any = None


@dataclass
class Merge:
    kind: str  # add | cat | mul
    branches: list[list]  # each branch a list of stages; [] is `identity`
    cond: Any = None  # `add if cond:`
    branch_conds: list = field(default_factory=list)  # per branch: None or a condition


@dataclass
class Join:
    kind: str  # add | cat | mul: the flowing tensor with named values
    values: list[str]


@dataclass
class Line:
    """One statement: `[targets =] [source |] stages [if cond]`."""

    stages: list
    targets: list[str] = field(default_factory=list)
    source: str | None = None


@dataclass
class Body:
    lines: list[Line]
    inputs: list[str] = field(default_factory=list)  # names of the inputs, where one is read by name
    outputs: list[str] = field(default_factory=list)  # `output a, b` where there are several
