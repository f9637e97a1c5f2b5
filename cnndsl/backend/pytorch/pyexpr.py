"""Typed expressions (cnndsl.ir.values) as Python source: the PyTorch backend's printer.

The checker's values hold expressions as trees (`Poly`, `Sym`, `Cmp`, ...); this module alone turns them into
Python: parentheses wherever Python's precedence needs them (and around an operand that starts with a minus
sign, which a reader needs), numbers that are not finite as `float("inf")`, hidden sizes as their numbers.
Checked layers' paths (`("layer1", 0, "conv1")`) print as the attribute access that reaches them."""

from __future__ import annotations

import math
from functools import lru_cache

from ...ir.values import (
    BoolOp,
    Cmp,
    Expr,
    FConst,
    FloorDiv,
    Fn,
    Item,
    Items,
    Neg,
    Not,
    Op,
    Poly,
    Sym,
    Val,
)

IFELSE, OR, AND, NOT, CMP, ADD, MUL, UNARY, ATOM = -4, -3, -2, -1, 0, 1, 2, 3, 4  # precedence of printed Python, loosest first
MAKE_DIVISIBLE = "_make_divisible"  # the function a generated file defines where an expression uses it (cnndsl.backend.pytorch.codegen)


def number_code(v) -> str:
    """A number as Python source; `inf` and `nan` (1e400, -D a=inf) are no Python literals."""
    if isinstance(v, float) and not math.isfinite(v):
        return f'float("{v}")'
    return repr(v)


def val_code(x: Val, names: dict[str, str] | None = None) -> str:
    """What the generated code prints for a value: its expression where a parameter decides it, else the number
    (with `names`, as expr_code prints it)."""
    e = x.printed()  # concrete already
    return number_code(x.v) if e is None else _named(names)(e) if names else _code(e)


def expr_code(e: Expr, names: dict[str, str] | None = None) -> str:
    """An expression as Python, hidden sizes (which a block's class cannot name) as their numbers; with
    `names` (printed expression -> a variable that holds it), each subexpression, or term of a sum, that prints
    as one of them prints as its variable (`in_channels != hidden_dim`)."""
    e = e.concrete()
    return _named(names)(e) if names else _code(e)


def _named(names: dict[str, str]):
    def code(e: Expr) -> str:
        name = names.get(_code(e))
        return name if name is not None else _RENDER[type(e)](e, code)

    code.names = names
    return code


def whole_tuple(x: tuple) -> str | None:
    """The name of a tuple-valued parameter where a tuple of values is all its items in order (`k` for
    `(k[0], k[1])`), so that the code passes the parameter on as it is; else None."""
    base = None
    for i, item in enumerate(x):
        e = item.printed() if isinstance(item, Val) else None
        atom = e.terms[0][0][0][0] if isinstance(e, Poly) and len(e.terms) == 1 and not e.const and e.terms[0][1] == 1 \
            and len(e.terms[0][0]) == 1 and e.terms[0][0][0][1] == 1 else e
        if not (isinstance(atom, Item) and isinstance(atom.base, Sym) and isinstance(atom.index, Poly)
                and atom.index.is_const and atom.index.const == i and (base is None or atom.base == base)):
            return None
        base = atom.base
    return base.name if base is not None and len(base.value) == len(x) else None


def path_code(path: tuple[str | int, ...], root: str = "self") -> str:
    """The Python that reaches a module from `root`: ("layer1", 0, "conv1") is `self.layer1[0].conv1`; a key that is
    no identifier, `getattr(self.layer1, "block1-0")`."""
    code = root
    for p in path:
        code = f"{code}[{p}]" if isinstance(p, int) else f"{code}.{p}" if p.isidentifier() else f'getattr({code}, "{p}")'
    return code


@lru_cache(maxsize=8192)
def _code(e: Expr) -> str:  # keyed by the expression's structure: equal expressions print alike
    return _RENDER[type(e)](e, _code)


def prec(e: Expr) -> int:
    """The precedence of the expression as printed."""
    if isinstance(e, Poly):
        if not e.terms:
            return ATOM if e.const >= 0 else UNARY
        if e.const or len(e.terms) > 1:
            return ADD
        (mono, c), = e.terms
        if len(mono) == 1 and mono[0][1] == 1 and c == 1:
            return prec(mono[0][0])
        if c == -1 and len(mono) == 1 and mono[0][1] == 1:
            return UNARY
        return MUL
    if isinstance(e, FConst):
        return UNARY if math.isfinite(e.value) and math.copysign(1, e.value) < 0 else ATOM
    if isinstance(e, Op):
        return ADD if e.op in "+-" else MUL
    if isinstance(e, BoolOp):
        return AND if e.op == "and" else OR
    if isinstance(e, Fn):
        return _FN_PREC.get(e.name, ATOM)
    return _PREC[type(e)]


_PREC = {Sym: ATOM, FloorDiv: MUL, Neg: UNARY, Cmp: CMP, Not: NOT, Item: ATOM, Items: ATOM}
_FN_PREC = {"if": IFELSE, "ceil": UNARY, "sqrt": UNARY}  # the others print as calls


def _poly(e: Poly, code=_code) -> str:
    if not e.terms:
        return number_code(e.const)
    ordered = [t for t in e.terms if t[1] > 0] + [t for t in e.terms if t[1] < 0]
    names = getattr(code, "names", None)
    parts = []
    for i, (mono, c) in enumerate(ordered):
        body = _mono(mono, abs(c), lead_minus=(i == 0 and c < 0), code=code)
        if names and not (i == 0 and c < 0):  # a term that is a named expression (its sign printed apart)
            body = names.get(_mono(mono, abs(c), False), body)
        parts.append(body if i == 0 else f" {'-' if c < 0 else '+'} {body}")
    if e.const:
        parts.append(f" {'-' if e.const < 0 else '+'} {abs(e.const)}")
    return "".join(parts)


def _mono(mono, c: int, lead_minus: bool, code=_code) -> str:
    """`a * b * 3`: the factors (each repeated by its exponent), then the coefficient; with `lead_minus`, the
    negated product as the first term of a sum (`-c * 2`, which Python reads as `(-c) * 2`: the same integer)."""
    factors = [atom for atom, exp in mono for _ in range(exp)]
    alone = len(factors) == 1 and c == 1
    texts = [code(a) if alone and not lead_minus else f"({code(a)})" if prec(a) < ATOM else code(a) for a in factors]
    if c != 1:
        texts.append(str(c))
    return ("-" if lead_minus else "") + " * ".join(texts)


def _neg(e: Neg, code=_code) -> str:
    inner = code(e.operand)
    return f"-{inner}" if prec(e.operand) >= UNARY and not inner.startswith("-") else f"-({inner})"


def _bool_op(e: BoolOp, code=_code) -> str:
    p = prec(e)
    left = code(e.left) if prec(e.left) >= p else f"({code(e.left)})"
    right = code(e.right) if prec(e.right) > p else f"({code(e.right)})"
    return f"{left} {e.op} {right}"


def _paren(e: Expr, level: int, code=_code) -> str:
    return code(e) if prec(e) > level else f"({code(e)})"


def _operand(e: Expr, parent: int, right: bool, code=_code) -> str:
    """An operand of a binary operator at precedence `parent`, parenthesised where Python needs it; an operand
    that starts with a minus sign is parenthesised too (`x * (-3)`, `(-c) // 2`), which Python does not need
    but a reader does. A right operand of equal precedence keeps its parentheses: `a - (b - c)`, and
    `a + (b + c)` in floats, where the grouping changes the rounding."""
    text = code(e)
    if prec(e) < parent or (right and prec(e) <= parent) or text.startswith("-"):
        return f"({text})"
    return text


def _fn(e: Fn, code=_code) -> str:
    """A function as the Python that computes what cnndsl.ir.values defines it to (FUNCTIONS)."""
    a = e.args
    if e.name == "if":  # `x if c else y`: a conditional in either of the first two places needs parentheses
        return f"{_paren(a[1], IFELSE, code)} if {_paren(a[0], IFELSE, code)} else {code(a[2]) if prec(a[2]) >= IFELSE else f'({code(a[2])})'}"
    if e.name == "floor":
        return f"int({_operand(a[0], MUL, False, code)} // 1)"
    if e.name == "ceil":
        return f"-int(-{_paren(a[0], UNARY, code)} // 1)"
    if e.name == "sqrt":
        return f"{_paren(a[0], UNARY, code)} ** 0.5"
    name = MAKE_DIVISIBLE if e.name == "make_divisible" else e.name
    return f"{name}({', '.join(code(x) for x in a)})"


def _items(e: Items, code=_code) -> str:
    return "(" + ", ".join(code(x) for x in e.items) + ("," if len(e.items) == 1 else "") + ")"


_RENDER = {  # each renders its operands with `code` (_code, or a printer that names some: _named)
    Poly: _poly,
    Sym: lambda e, code: f"<{e.name}>" if e.kind == "hidden" else e.name,
    FConst: lambda e, code: number_code(e.value),
    FloorDiv: lambda e, code: f"{_operand(e.num, MUL, False, code)} // {_operand(e.den, MUL, True, code)}",
    Op: lambda e, code: f"{_operand(e.left, prec(e), False, code)} {e.op} {_operand(e.right, prec(e), True, code)}",
    Neg: _neg,
    # a comparison inside a comparison is parenthesised: Python would chain them
    Cmp: lambda e, code: f"{_paren(e.left, CMP, code)} {e.op} {_paren(e.right, CMP, code)}",
    Not: lambda e, code: f"not {code(e.operand)}" if prec(e.operand) == ATOM else f"not ({code(e.operand)})",
    BoolOp: _bool_op,
    Fn: _fn,
    Item: lambda e, code: f"{code(e.base)}[{code(e.index)}]",
    Items: _items,
}
