"""Writing Python text: literals for checked values, and a line writer that wraps long calls the way black
does (so the generated file is black-stable without running black)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Union

from ...ir.values import Val
from .pyexpr import number_code, val_code, whole_tuple

LINE_LENGTH = 88
INDENT = "    "


def lit(x) -> str:
    """A Python literal (or parameter expression) for a value the checker produced."""
    if isinstance(x, Val):
        return val_code(x) if x.symbolic else lit(x.v)
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, (int, float)):
        return number_code(x)
    if isinstance(x, str):
        assert re.fullmatch(r"[A-Za-z0-9_\-]*", x), x  # enumeration values only: never arbitrary text
        return f'"{x}"'
    if isinstance(x, tuple):
        return whole_tuple(x) or "(" + ", ".join(lit(i) for i in x) + ("," if len(x) == 1 else "") + ")"
    if x is None:
        return "None"
    raise TypeError(f"no literal for {x!r}")  # pragma: no cover


@dataclass
class Call:
    """A call (or any bracketed list) whose arguments may be calls in turn: `nn.Sequential(nn.ReLU(), ...)`."""

    head: str
    args: list[Union[str, "Call"]] = field(default_factory=list)
    open: str = "("
    close: str = ")"
    collection: bool = False  # a tuple or list literal: black puts one item per line when it splits it

    def __str__(self) -> str:
        return f"{self.head}{self.open}{', '.join(str(a) for a in self.args)}{self.close}"


class Writer:
    """Lines of Python at an indentation level; long calls are wrapped the way black wraps them."""

    def __init__(self, level: int = 0) -> None:
        self.lines: list[str] = []
        self.level = level

    def line(self, text: str = "") -> None:
        self.lines.append(INDENT * self.level + text if text else "")

    @contextmanager
    def indent(self):
        self.level += 1
        yield
        self.level -= 1

    def fits(self, text: str) -> bool:
        return len(INDENT * self.level) + len(text) <= LINE_LENGTH

    def call(self, prefix: str, expr: Union[str, Call], suffix: str = "") -> None:
        """`prefix + expr + suffix`, split as black's right-hand split does when it is too long: the
        arguments on one indented line if they fit there, else one per line with a trailing comma."""
        one = f"{prefix}{expr}{suffix}"
        if self.fits(one) or not isinstance(expr, Call) or not expr.args:
            self.line(one)
            return
        self.line(prefix + expr.head + expr.open)
        with self.indent():
            inner = ", ".join(str(a) for a in expr.args)
            if self.fits(inner) and not expr.collection:
                self.line(inner)
            else:
                for arg in expr.args:
                    self.call("", arg, ",")
        self.line(expr.close + suffix)

    def text(self) -> str:
        return "\n".join(self.lines).rstrip("\n") + "\n"
