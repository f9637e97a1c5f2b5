"""Integers that remember how they were computed from network parameters.

A channel count written `c*4` must reach the generated code as `c * 4`, so that the network class stays
generic in its parameters; a size computed from constants is just a number. `Val` carries both: the value
the checker uses, and the Python expression the code generator writes.
"""

from __future__ import annotations

import math
import operator
import re
from typing import Union

_ATOM, _MUL, _ADD = 3, 2, 1
_PREC = {"+": _ADD, "-": _ADD, "*": _MUL, "//": _MUL, "/": _MUL}
_FN = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "/": operator.truediv}


def number_code(v) -> str:
    """A number as Python source; `inf` and `nan` (1e400, -D a=inf) are no Python literals."""
    if isinstance(v, float) and not math.isfinite(v):
        return f'float("{v}")'
    return repr(v)


class Val:
    """A number (int, float or bool), with the source expression it came from when it depends on parameters."""

    __slots__ = ("v", "src", "prec", "op")

    def __init__(self, v: int, src: str | None = None, prec: int = _ATOM, op: str | None = None):
        self.v, self.src, self.prec, self.op = v, src, prec, op

    @property
    def symbolic(self) -> bool:
        return self.src is not None

    def code(self) -> str:
        return self.src if self.src is not None else number_code(self.v)

    def __repr__(self) -> str:
        return f"Val({self.v}, {self.src!r})" if self.src else f"Val({self.v})"

    def __int__(self) -> int:
        return int(self.v)

    def __float__(self) -> float:
        return float(self.v)

    def __index__(self) -> int:
        return self.v

    def _wrap(self, outer: str, right: bool) -> str:
        if self.src is None:
            return number_code(self.v) if not self.v < 0 else f"({number_code(self.v)})"
        p = _PREC[outer]
        if self.prec < p or (right and self.prec == p and not (self.op == outer and outer in "+*")):
            return f"({self.src})"
        return self.src

    def _bin(self, other: "Num", op: str, swap: bool = False) -> "Val":
        a, b = (as_val(other), self) if swap else (self, as_val(other))
        value = _FN[op](a.v, b.v)
        if a.src is None and b.src is None:
            return Val(value)
        if b.src is None and ((op in "+-" and b.v == 0) or (op in ("*", "//", "/") and b.v == 1)):
            return a
        if a.src is None and op in "+*" and a.v == (0 if op == "+" else 1):
            return b
        return Val(value, f"{a._wrap(op, False)} {op} {b._wrap(op, True)}", _PREC[op], op)

    def __add__(self, o):
        return self._bin(o, "+")

    def __radd__(self, o):
        return self._bin(o, "+", swap=True)

    def __sub__(self, o):
        return self._bin(o, "-")

    def __rsub__(self, o):
        return self._bin(o, "-", swap=True)

    def __mul__(self, o):
        return self._bin(o, "*")

    def __rmul__(self, o):
        return self._bin(o, "*", swap=True)

    def __floordiv__(self, o):
        return self._bin(o, "//")

    def __rfloordiv__(self, o):
        return self._bin(o, "//", swap=True)

    def __truediv__(self, o):
        return self._bin(o, "/")

    def __rtruediv__(self, o):
        return self._bin(o, "/", swap=True)

    def __neg__(self):
        return self._bin(-1, "*") if self.src is not None else Val(-self.v)


Num = Union[int, Val]


def as_val(x) -> Val:
    return x if isinstance(x, Val) else Val(x)


def plain(shape):
    """A shape of plain numbers (None for unknown dimensions), as the checked network reports it."""
    return None if shape is None else tuple(value(d) for d in shape)


def value(x):
    """The plain number behind a Val (None stays None: an unknown size); other values pass through."""
    if isinstance(x, Val):
        return x.v
    if isinstance(x, tuple):
        return tuple(value(i) for i in x)
    return x


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def substitute(x, mapping: dict[str, "Val"]):
    """A Val (or tuple of them) with the parameter names in its expression replaced by Vals (a block's
    `planes` -> the caller's `c * 2`), so that a block's output reads in the caller's terms."""
    if isinstance(x, tuple):
        return tuple(substitute(i, mapping) for i in x)
    if not isinstance(x, Val) or x.src is None:
        return x
    if x.src in mapping:  # the whole expression is one name: take the caller's value as it is
        return Val(x.v, mapping[x.src].src, mapping[x.src].prec, mapping[x.src].op) if mapping[x.src].symbolic else Val(x.v)

    def repl(m: re.Match) -> str:
        val = mapping.get(m.group(0))
        if val is None:
            return m.group(0)
        return val.code() if val.prec == _ATOM and not (val.src is None and val.v < 0) else f"({val.code()})"

    src = _IDENT.sub(repl, x.src)
    if _IDENT.search(src) is None:  # nothing symbolic left: a plain number
        return Val(x.v)
    return Val(x.v, src, x.prec, x.op)
