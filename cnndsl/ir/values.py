"""Numbers that remember how they were computed from parameters, as small typed expressions.

A channel count written `c*4` must reach the generated code as `c * 4`, so that the network class stays
generic in its parameters; a size computed from constants is just a number. `Val` carries both: the value the
checker uses, and an expression (`Expr`) the code generator prints (cnndsl.backend.pytorch.pyexpr, the only printer of Python).

Integer expressions are kept in a canonical form, a polynomial with integer coefficients over atoms (names, and
floor divisions that do not simplify): constants fold, like terms collect (`in+1-1` is `in_channels`,
`in + 32 + 32 + 32` is `in_channels + 96`, `c*2*2` is `c * 4`), and floor division by a positive constant
takes out what divides exactly (`(c*4 + 6) // 4` is `c + 1`, `(x // 2) // 2` is `x // 4`). Integer arithmetic
is exact, so the canonical form computes what the written expression computes. Arithmetic that involves a
float (or `/`) is not exact under reordering, so it is kept as written, as a tree. Conditions are expressions
too (`Cmp`, `Not`, `BoolOp`): a condition that names no parameter is decided at compile time. Each expression
has a structural `key` (nested tuples, names as strings): equal keys, equal expressions.

Each name is a `Sym`: a network parameter (`param`), a block's parameter or its `in` (`local`, which knows
the expression it stands for in the network's parameters: its `outer`), or a size of a block's input other
than the channels that is symbolic in the caller (`hidden`: the block's class cannot name it, so the block's
code prints its value). From the outer expressions a value knows which network parameters it depends on
(`deps`), even where its code is a plain number.

Which parameters the generated code uses concretely (pins) is cnndsl.semantics.pins's, built on `deps` and `lost`.
"""

from __future__ import annotations

import itertools
import operator
from contextvars import ContextVar
from math import gcd
from typing import Callable, Union

# -- expressions ----------------------------------------------------------------------------------


class Expr:
    """An immutable expression. Integer-valued expressions are always a `Poly`."""

    __slots__ = ("_key", "_outer", "_size", "_names", "_hash")
    is_int = False

    @property
    def key(self):
        """The structure as nested tuples (a name as its string): two expressions with the same key compute the
        same value. A sort key too: polynomials order their terms by it."""
        if getattr(self, "_key", None) is None:
            self._key = self._structure()
        return self._key

    def _structure(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.key == self.key

    def __hash__(self) -> int:  # remembered: hashing a large key again at every dictionary lookup was quadratic
        if getattr(self, "_hash", None) is None:
            self._hash = hash(self.key)
        return self._hash

    def size(self) -> int:
        if getattr(self, "_size", None) is None:
            self._size = self._count()
        return self._size

    def _count(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def subst(self, f: Callable[["Sym"], "Expr | None"]) -> "Expr":
        """The expression with each name `f` maps replaced (None keeps it), simplified again."""
        raise NotImplementedError  # pragma: no cover

    def syms(self) -> frozenset["Sym"]:
        """The names in the expression (remembered: an expression shares subexpressions, so walking it again at
        every node of a substitution took exponential time)."""
        if getattr(self, "_names", None) is None:
            self._names = frozenset(self._syms())
        return self._names

    def _syms(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def outer(self) -> "Expr":
        """The expression in the network's parameters: every block-local name replaced by what it stands for.
        Expanded within bounds (`_expanded`): past them, an `Opaque` name that knows only its parameters."""
        if getattr(self, "_outer", None) is None:
            self._outer = _expanded(self)
        return self._outer

    def concrete(self) -> "Expr":
        """The expression as a class can print it: hidden sizes replaced by their values."""
        if not any(s.kind == "hidden" for s in self.syms()):
            return self
        return self.subst(lambda s: const(s.value) if s.kind == "hidden" else None)

    def evaluate(self, bindings: dict[str, object]):
        """The value with the names bound (for tests): what Python computes from the printed expression."""
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.key!r}"


class Sym(Expr):
    """A name: a network parameter, a block's local name (`in_channels`, a parameter), or a hidden size."""

    __slots__ = ("name", "value", "kind", "outer_expr")

    def __init__(self, name: str, value, kind: str = "param", outer: Expr | None = None):
        self.name, self.value, self.kind, self.outer_expr = name, value, kind, outer

    @property
    def is_int(self) -> bool:  # bool is an int in Python's arithmetic
        return type(self.value) in (int, bool)

    @property
    def rank(self) -> int:  # in_channels first, then the other names, then hidden sizes
        return 0 if self.name == "in_channels" else 2 if self.kind == "hidden" else 1

    def _structure(self) -> str:  # a hidden size as `<dim1>`: the name a block's call maps it by
        return f"<{self.name}>" if self.kind == "hidden" else self.name

    def _count(self) -> int:
        return 1

    def subst(self, f):
        return f(self) or self

    def syms(self):
        return frozenset((self,))

    def evaluate(self, bindings):
        return bindings[self.name]

    def __eq__(self, other) -> bool:
        return isinstance(other, Sym) and (self.kind == "hidden") == (other.kind == "hidden") and self.name == other.name

    def __hash__(self) -> int:
        return hash((self.name, self.kind == "hidden"))


class Opaque(Sym):
    """An expression in the network's parameters too large to expand (`_expanded`): it knows the parameters it
    depends on, and equals only itself, so two sizes behind opaque expressions are never taken for the same
    expression (the check then pins what it decided, as for any size it cannot prove equal)."""

    __slots__ = ("names", "_is_int")
    _ids = itertools.count(1)

    def __init__(self, names: frozenset[str], is_int: bool):
        super().__init__(f"<expansion {next(Opaque._ids)}>", None, "opaque")
        self.names, self._is_int = names, is_int

    @property
    def is_int(self) -> bool:
        return self._is_int

    def evaluate(self, bindings):
        raise ValueError("an expression too large to expand has no value to evaluate")


def param_names(syms) -> frozenset[str]:
    """The network parameters behind names of an expression in the network's terms (an Opaque's included)."""
    out: set[str] = set()
    for s in syms:
        if isinstance(s, Opaque):
            out |= s.names
        else:
            out.add(s.name)
    return frozenset(out)


# Expanding block-local names into the network's parameters multiplies polynomials: an argument squared at each
# of six nested block calls is a polynomial of degree 64 in the caller's parameters (20 s for a 437-byte file).
# The expansion serves only the facts a check needs (which parameters a size depends on, whether two sizes are
# the same expression), so past these bounds it stops and the result is Opaque.
EXPANSION_TERMS = 200  # the terms one product of polynomials may have while expanding
EXPANSION_NODES = 200  # the nodes an expanded expression may have
_expanding: ContextVar[bool] = ContextVar("cnndsl_expanding", default=False)


class _TooLarge(Exception):
    pass


def _expanded(e: "Expr") -> "Expr":
    """`e` with every block-local name replaced by its outer expression, or an Opaque past the bounds."""
    token = _expanding.set(True)
    try:
        out = e.subst(lambda s: s.outer_expr if s.kind not in ("param", "opaque") else None)
        if out.size() <= EXPANSION_NODES:
            return out
    except _TooLarge:
        pass
    finally:
        _expanding.reset(token)
    names = param_names(p for s in e.syms() for p in (s.outer_expr.syms() if s.outer_expr is not None else (s,)))
    opaque = Opaque(names, e.is_int)
    return _poly_of_atom(opaque) if opaque.is_int else opaque


class FConst(Expr):
    """A float constant (integers are a constant `Poly`)."""

    __slots__ = ("value",)

    def __init__(self, value: float):
        self.value = value

    def _structure(self) -> tuple:
        return ("float", repr(self.value))

    def _count(self) -> int:
        return 1

    def subst(self, f):
        return self

    def _syms(self):
        return set()

    def evaluate(self, bindings):
        return self.value


class FloorDiv(Expr):
    """`num // den` of two integer polynomials that does not simplify: an atom of a polynomial."""

    __slots__ = ("num", "den")
    is_int = True

    def __init__(self, num: "Poly", den: "Poly"):
        self.num, self.den = num, den

    rank = 3

    def _structure(self) -> tuple:
        return ("//", self.num.key, self.den.key)

    def _count(self) -> int:
        return self.num.size() + self.den.size() + 1

    def subst(self, f):
        return floordiv(self.num.subst(f), self.den.subst(f))

    def _syms(self):
        return self.num.syms() | self.den.syms()

    def evaluate(self, bindings):
        return self.num.evaluate(bindings) // self.den.evaluate(bindings)


class _Binary(Expr):
    """`left op right`: what the binary nodes share; each rebuilds itself through its simplifying constructor."""

    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: Expr, right: Expr):
        self.op, self.left, self.right = op, left, right

    def _structure(self) -> tuple:
        return (self.op, self.left.key, self.right.key)

    def _count(self) -> int:
        return self.left.size() + self.right.size() + 1

    def subst(self, f):
        return self._rebuild(self.left.subst(f), self.right.subst(f))

    def _rebuild(self, left: Expr, right: Expr) -> Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def _syms(self):
        return self.left.syms() | self.right.syms()


class _Unary(Expr):
    """`op operand`: what the unary nodes share (`tag` names the node in its structural key)."""

    __slots__ = ("operand",)
    tag = ""

    def __init__(self, operand: Expr):
        self.operand = operand

    def _structure(self) -> tuple:
        return (self.tag, self.operand.key)

    def _count(self) -> int:
        return self.operand.size() + 1

    def subst(self, f):
        return self._rebuild(self.operand.subst(f))

    def _rebuild(self, operand: Expr) -> Expr:  # pragma: no cover - abstract
        raise NotImplementedError

    def _syms(self):
        return self.operand.syms()


class Op(_Binary):
    """A binary operation kept as written: one that involves a float, or `/`."""

    __slots__ = ()

    def _rebuild(self, left, right):
        return _ARITH[self.op](left, right)

    def evaluate(self, bindings):
        return _FN[self.op](self.left.evaluate(bindings), self.right.evaluate(bindings))


class Neg(_Unary):
    """`-x` of an expression that is not an integer polynomial."""

    __slots__ = ()
    tag = "neg"

    def _rebuild(self, operand):
        return neg(operand)

    def evaluate(self, bindings):
        return -self.operand.evaluate(bindings)


class Cmp(_Binary):
    """A comparison of numbers, `p > 3`: a bool that a parameter decides (a block's argument, an option)."""

    __slots__ = ()

    def _rebuild(self, left, right):
        return cmp(self.op, left, right)

    def evaluate(self, bindings):
        return _CMP[self.op](self.left.evaluate(bindings), self.right.evaluate(bindings))


class Not(_Unary):
    """`not x`."""

    __slots__ = ()
    tag = "not"

    def _rebuild(self, operand):
        return not_(operand)

    def evaluate(self, bindings):
        return not self.operand.evaluate(bindings)


class BoolOp(_Binary):
    """`a and b`, `a or b` of two bools (where an operand is a number, Python's `and` would return it: such a
    value is `fixed` instead)."""

    __slots__ = ()

    def _rebuild(self, left, right):
        return bool_op(self.op, left, right)

    def evaluate(self, bindings):
        a = self.left.evaluate(bindings)
        return (a and self.right.evaluate(bindings)) if self.op == "and" else (a or self.right.evaluate(bindings))


def cmp(op: str, left: Expr, right: Expr) -> Expr:
    """`left op right`, decided where it holds or fails for every value: the same expression on both sides,
    or integer sides that differ by a constant (`c + 1 > c`). A decided comparison is a constant."""
    if is_const(left) and is_const(right):
        return const(_CMP[op](const_value(left), const_value(right)))
    if left.is_int and right.is_int:
        diff = _padd(left, _pscale(right, -1))
        if diff.is_const:
            return const(_CMP[op](diff.const, 0))
    return Cmp(op, left, right)


def not_(x: Expr) -> Expr:
    if is_const(x):
        return const(not const_value(x))
    return Not(x)


def bool_op(op: str, left: Expr, right: Expr) -> Expr:
    """`left and right` (`or`) of bools, with a constant side taken out."""
    for a, b in ((left, right), (right, left)):
        if is_const(a):
            truth = bool(const_value(a))
            if (op == "and") != truth:  # False and x, True or x: decided
                return const(truth)
            return b
    return BoolOp(op, left, right)


# -- functions ---------------------------------------------------------------------------------------
#
# The language's functions of numbers. Each is defined as the Python the backend prints for it computes
# (`sqrt(x)` is `x ** 0.5`, `floor(x)` is `int(x // 1)`: the generated module imports nothing but torch), so
# that the value the checker uses is the value the module computes. `make_divisible` is torchvision's
# `_make_divisible` exactly (the generated file defines it where it is used).


def make_divisible(v, divisor, min_value=None):
    """torchvision's `_make_divisible`: v rounded to the nearest multiple of divisor
    (at least min_value, which defaults to divisor), one multiple more where rounding
    lost more than 10% of v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _if(condition, a, b):
    return a if condition else b


class Function:
    """A function of the language: its name, how many arguments it takes, what it computes, and whether its
    result is an integer (True), a float (False), or an integer exactly when its `int_args` are (None)."""

    def __init__(self, name: str, arity: tuple[int, int], fn: Callable, int_result: bool | None, int_args=None, doc: str = ""):
        self.name, self.arity, self.fn, self.int_result, self.int_args, self.doc = name, arity, fn, int_result, int_args, doc


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("min", (2, 8), min, None, doc="the smallest of its arguments"),
    Function("max", (2, 8), max, None, doc="the largest of its arguments"),
    Function("int", (1, 1), int, True, doc="a number without its fraction (towards zero)"),
    Function("round", (1, 1), round, True, doc="the nearest integer (a half to the even one, as Python rounds)"),
    Function("floor", (1, 1), lambda x: int(x // 1), True, doc="the largest integer at most x"),
    Function("ceil", (1, 1), lambda x: -int(-x // 1), True, doc="the smallest integer at least x"),
    Function("sqrt", (1, 1), lambda x: x ** 0.5, False, doc="the square root"),
    Function("make_divisible", (2, 3), make_divisible, True,
             doc="v rounded to a multiple of d (torchvision's _make_divisible): make_divisible(v, 8)"),
    Function("if", (3, 3), _if, None, int_args=(1, 2), doc="`a if c else b`"),
)}


class Fn(Expr):
    """A function applied to expressions that does not simplify (its arguments name parameters). One whose
    result is an integer is an atom of a polynomial, as FloorDiv is."""

    __slots__ = ("name", "args", "_int")
    rank = 4

    def __init__(self, name: str, args: tuple[Expr, ...], is_int: bool):
        self.name, self.args, self._int = name, args, is_int

    @property
    def is_int(self) -> bool:
        return self._int

    def _structure(self) -> tuple:
        return ("fn", self.name, tuple(a.key for a in self.args))

    def _count(self) -> int:
        return 1 + sum(a.size() for a in self.args)

    def subst(self, f):
        return call(self.name, tuple(a.subst(f) for a in self.args))

    def _syms(self):
        found: set = set()
        for a in self.args:
            found |= a.syms()
        return found

    def evaluate(self, bindings):
        return FUNCTIONS[self.name].fn(*(a.evaluate(bindings) for a in self.args))


def call(name: str, args: tuple[Expr, ...]) -> Expr:
    """`name(*args)`, simplified: computed where every argument is a constant, `if` decided by a constant
    condition, `min`/`max` of one distinct argument that argument, rounding of an integer the integer itself."""
    f = FUNCTIONS[name]
    if all(is_const(a) for a in args):
        try:
            return const(f.fn(*(const_value(a) for a in args)))
        except (ArithmeticError, ValueError, TypeError):  # the check reports these where it computes the value
            pass
    if name == "if":
        condition, a, b = args
        if is_const(condition):
            return a if const_value(condition) else b
        if a == b:
            return a
    if name in ("min", "max"):
        distinct = tuple({a.key: a for a in args}.values())
        if len(distinct) == 1:
            return distinct[0]
        args = distinct
    if name in ("int", "round", "floor", "ceil") and args[0].is_int:
        return args[0]
    picked = [args[i] for i in f.int_args] if f.int_args else list(args)
    is_int = f.int_result if f.int_result is not None else all(a.is_int for a in picked)
    e = Fn(name, tuple(args), is_int)
    return _poly_of_atom(e) if is_int else e


# -- tuples ----------------------------------------------------------------------------------------------
#
# A tuple-valued name (`layers=(3, 4, 6, 3)`, a block's `k=1x7`) is a Sym whose value is the tuple; its items
# are `Item`s (`layers[2]`), integer ones atoms of a polynomial. A block's tuple parameter stands for the
# caller's items: its `outer` is an `Items` of their expressions, and an Item of an Items is that item.


class Items(Expr):
    """A tuple of expressions: what a block's tuple-valued name stands for in the caller's terms."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[Expr, ...]):
        self.items = items

    def _structure(self) -> tuple:
        return ("tuple", tuple(a.key for a in self.items))

    def _count(self) -> int:
        return 1 + sum(a.size() for a in self.items)

    def subst(self, f):
        return Items(tuple(a.subst(f) for a in self.items))

    def _syms(self):
        found: set = set()
        for a in self.items:
            found |= a.syms()
        return found

    def evaluate(self, bindings):
        return tuple(a.evaluate(bindings) for a in self.items)


class Item(Expr):
    """`base[index]` of a tuple-valued name, where the index is a constant or names parameters."""

    __slots__ = ("base", "index", "_int")
    rank = 5

    def __init__(self, base: Expr, index: Expr, is_int: bool):
        self.base, self.index, self._int = base, index, is_int

    @property
    def is_int(self) -> bool:
        return self._int

    def _structure(self) -> tuple:
        return ("item", self.base.key, self.index.key)

    def _count(self) -> int:
        return 1 + self.base.size() + self.index.size()

    def subst(self, f):
        return item(self.base.subst(f), self.index.subst(f))

    def _syms(self):
        return self.base.syms() | self.index.syms()

    def evaluate(self, bindings):
        return self.base.evaluate(bindings)[self.index.evaluate(bindings)]


def _items_of(base: Expr) -> tuple | None:
    """The values of a tuple expression's items, where known (a name's value, or constant items)."""
    if isinstance(base, Sym) and isinstance(base.value, tuple):
        return base.value
    if isinstance(base, Items) and all(is_const(a) for a in base.items):
        return tuple(const_value(a) for a in base.items)
    return None


def item(base: Expr, index: Expr) -> Expr:
    """`base[index]`: the item itself where the tuple is written out and the index a constant."""
    if isinstance(base, Items) and is_const(index):
        return base.items[const_value(index)]
    values = _items_of(base)
    if values is not None and is_const(index):
        is_int = type(values[const_value(index)]) in (int, bool)
    else:
        is_int = values is not None and all(type(v) in (int, bool) for v in values)
    e = Item(base, index, is_int)
    return _poly_of_atom(e) if is_int else e


def tuple_name(name: str, items: tuple, kind: str = "param") -> tuple:
    """A tuple-valued name bound to `items` (Vals, in the caller's terms for a block's `local`): a tuple of
    Vals, each the name's item (`layers[0]`, ...), so that code prints `layers[i]`, or `layers` for them all."""
    items = tuple(as_val(x) for x in items)
    outer = Items(tuple(x.expr().outer() for x in items)) if kind == "local" else None
    base = Sym(name, tuple(x.v for x in items), kind, outer)
    return tuple(Val(x.v, item(base, Poly((), i))) for i, x in enumerate(items))


def apply_function(name: str, args: tuple) -> "Val":
    """`name(*args)` of Vals: the number, with its expression where an argument has one. What the function
    raises for its arguments (sqrt of a negative number ...) is the caller's to report."""
    result = FUNCTIONS[name].fn(*(a.v for a in args))
    if all(a.e is None for a in args):
        return Val(result)
    return Val(result, call(name, tuple(a.expr() for a in args)))


# monomial: a sorted tuple of (atom, exponent); atoms are integer Syms, FloorDivs and Fns. A monomial is its own
# dictionary key (its atoms hash once); _mono_order is the sort key
Mono = tuple


def _atom_order(atom) -> tuple:
    return (atom.rank, atom.key)


def _mono_order(mono: Mono) -> tuple:
    return tuple((atom.rank, atom.key, exp) for atom, exp in mono)


class Poly(Expr):
    """An integer polynomial: `sum(coeff * product of atoms) + const`, canonical (terms sorted, none zero)."""

    __slots__ = ("terms", "const")
    is_int = True

    def __init__(self, terms: tuple = (), const: int = 0):
        self.terms, self.const = terms, const  # terms: ((mono, coeff), ...), highest degree first, then _mono_order

    @staticmethod
    def make(table: dict, const: int) -> "Poly":
        """From {mono key: (mono, coeff)}: zero coefficients dropped, terms sorted."""
        terms = sorted(((m, c) for m, c in table.values() if c), key=lambda t: (-sum(e for _, e in t[0]), _mono_order(t[0])))
        return Poly(tuple(terms), const)

    @property
    def is_const(self) -> bool:
        return not self.terms

    def _table(self) -> dict:
        return {m: (m, c) for m, c in self.terms}

    def _structure(self) -> tuple:
        return ("poly", tuple((_mono_order(m), c) for m, c in self.terms), self.const)

    def _count(self) -> int:
        n = 0
        for mono, c in self.terms:
            factors = sum(exp for _, exp in mono)
            n += sum(atom.size() * exp for atom, exp in mono) + factors - 1 + (2 if abs(c) != 1 else 0)
        n += max(len(self.terms) - 1, 0)
        if self.const or not self.terms:
            n += 2 if self.terms else 1
        return n

    def subst(self, f):
        if not any(f(s) is not None for s in self.syms()):
            return self
        out: Expr = Poly((), self.const)
        for mono, c in self.terms:
            term: Expr = Poly((), c)
            for atom, exp in mono:
                x = atom.subst(f)
                for _ in range(exp):
                    term = mul(term, x)
            out = add(out, term)
        return out

    def _syms(self):
        found: set = set()
        for mono, _ in self.terms:
            for atom, _ in mono:
                found |= atom.syms()
        return found

    def evaluate(self, bindings):
        total = self.const
        for mono, c in self.terms:
            x = c
            for atom, exp in mono:
                for _ in range(exp):
                    x = x * atom.evaluate(bindings)
            total = total + x
        return total


def const(v) -> Expr:
    """A number as an expression: an integer (or bool) is a constant polynomial, a float an FConst."""
    if isinstance(v, (bool, int)):
        return Poly((), int(v))
    return FConst(float(v))


def _poly_of_atom(atom) -> Poly:
    return Poly((((((atom, 1),), 1)),), 0)


def symbol(name: str, value, kind: str = "param", outer: Expr | None = None) -> Expr:
    """A name as an expression (an integer one as a polynomial of one term)."""
    s = Sym(name, value, kind, outer)
    return _poly_of_atom(s) if s.is_int else s


def is_const(e: Expr) -> bool:
    return (isinstance(e, Poly) and not e.terms) or isinstance(e, FConst)


def const_value(e: Expr):
    return e.const if isinstance(e, Poly) else e.value


# Arithmetic on expressions is work that the `work` limit bounds: the check in progress sets `work_budget` to its
# cnndsl.limits.Budget, and each sum or product of polynomials spends the terms it combines (the limit is
# enforced at the check's next block call or repetition: limits.charge).
work_budget: ContextVar = ContextVar("cnndsl_work_budget", default=None)


def _spend(units: int) -> None:
    budget = work_budget.get()
    if budget is not None:
        budget.spent += units


def _padd(a: Poly, b: Poly) -> Poly:
    _spend(len(a.terms) + len(b.terms) + 1)
    table = a._table()
    for m, c in b.terms:
        k = m
        table[k] = (m, table[k][1] + c) if k in table else (m, c)
    return Poly.make(table, a.const + b.const)


def _mono_mul(m1: Mono, m2: Mono) -> Mono:
    exps: dict = {}
    atoms: dict = {}
    for atom, exp in (*m1, *m2):
        k = _atom_order(atom)
        atoms[k] = atom
        exps[k] = exps.get(k, 0) + exp
    return tuple((atoms[k], exps[k]) for k in sorted(atoms))


def _pmul(a: Poly, b: Poly) -> Poly:
    if _expanding.get() and (len(a.terms) + 1) * (len(b.terms) + 1) > EXPANSION_TERMS:
        raise _TooLarge
    _spend(len(a.terms) * len(b.terms) + 1)
    table: dict = {}

    def put(m, c):
        if not c:
            return
        k = m
        table[k] = (m, table[k][1] + c) if k in table else (m, c)

    for m1, c1 in a.terms:
        put(m1, c1 * b.const)
        for m2, c2 in b.terms:
            put(_mono_mul(m1, m2), c1 * c2)
    for m2, c2 in b.terms:
        put(m2, a.const * c2)
    return Poly.make(table, a.const * b.const)


def _pscale(a: Poly, k: int) -> Poly:
    return _pmul(a, Poly((), k))


def _pfloordiv(a: Poly, b: Poly) -> Poly:
    """a // b over the integers, simplified where that is exact for every value of the names."""
    if b.is_const:
        d = b.const
        if d != 0 and a.is_const:
            return Poly((), a.const // d)
        if d == 1:
            return a
        if d == -1:
            return _pscale(a, -1)
        if d > 1:
            # (d*Q + R + c0) // d == Q + c0 // d + (R + c0 % d) // d, for integer Q: take out what divides exactly
            whole = {m: (m, c // d) for m, c in a.terms if c % d == 0}
            rest = [(m, c) for m, c in a.terms if c % d]
            q0, r0 = divmod(a.const, d)
            taken = Poly.make(whole, q0)
            if not rest:
                return taken
            g = d
            for _, c in rest:
                g = gcd(g, c)
            g = gcd(g, r0)
            num = Poly.make({m: (m, c // g) for m, c in rest}, r0 // g)
            den = d // g
            if len(num.terms) == 1 and num.terms[0][1] == 1:
                (mono, _), = num.terms
                if len(mono) == 1 and mono[0][1] == 1 and isinstance(mono[0][0], FloorDiv):
                    inner = mono[0][0]
                    if inner.den.is_const and inner.den.const > 0:
                        # (x // a + c) // b == (x + a*c) // (a*b) for positive integers a and b
                        k = inner.den.const
                        merged = _pfloordiv(_padd(inner.num, Poly((), k * num.const)), Poly((), k * den))
                        return _padd(taken, merged)
            return _padd(taken, _poly_of_atom(FloorDiv(num, Poly((), den))))
    return _poly_of_atom(FloorDiv(a, b))


def add(a: Expr, b: Expr) -> Expr:
    if a.is_int and b.is_int:
        return _padd(a, b)
    if is_const(a) and is_const(b):
        return const(const_value(a) + const_value(b))
    return Op("+", a, b)


def sub(a: Expr, b: Expr) -> Expr:
    if a.is_int and b.is_int:
        return _padd(a, _pscale(b, -1))
    if is_const(a) and is_const(b):
        return const(const_value(a) - const_value(b))
    return Op("-", a, b)


def mul(a: Expr, b: Expr) -> Expr:
    if a.is_int and b.is_int:
        return _pmul(a, b)
    if is_const(a) and is_const(b):
        return const(const_value(a) * const_value(b))
    return Op("*", a, b)


def floordiv(a: Expr, b: Expr) -> Expr:
    if a.is_int and b.is_int:
        return _pfloordiv(a, b)
    if is_const(a) and is_const(b) and const_value(b) != 0:
        return const(const_value(a) // const_value(b))
    return Op("//", a, b)


def truediv(a: Expr, b: Expr) -> Expr:
    if is_const(a) and is_const(b) and const_value(b) != 0:
        return const(const_value(a) / const_value(b))
    return Op("/", a, b)


def neg(a: Expr) -> Expr:
    if a.is_int:
        return _pscale(a, -1)
    if isinstance(a, FConst):
        return FConst(-a.value)
    if isinstance(a, Neg):
        return a.operand
    return Neg(a)


_ARITH = {"+": add, "-": sub, "*": mul, "//": floordiv, "/": truediv}
_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_FN = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "/": operator.truediv}


# -- values ---------------------------------------------------------------------------------------


class Val:
    """A number (int, float or bool), with the expression it came from when it depends on parameters.

    `Val(8)` is a constant; `Val(8, "c")` is the network parameter `c` (compiled as 8); `Val(8, expr)` a
    value computed as `expr`. `.printed()` is the expression the generated code prints (None: it prints the
    number); `.symbolic` says whether there is one; `.deps` are the network parameters the value depends on."""

    __slots__ = ("v", "e", "_printed")

    def __init__(self, v, src: "str | Expr | None" = None):
        self.v = v
        if isinstance(src, str):  # a network parameter
            src = symbol(src, v)
        self.e = None if src is None or is_const(src) else src
        self._printed = False  # not yet known (False, not a sentinel object: a Val pickles)

    def expr(self) -> Expr:
        return self.e if self.e is not None else const(self.v)

    def printed(self) -> Expr | None:
        """The expression the generated code prints for this value, hidden sizes replaced by their numbers
        (`concrete`); None where that names no parameter: the code prints the number."""
        if self._printed is False:
            e = None if self.e is None else self.e.concrete()
            self._printed = None if e is None or not e.syms() else e
        return self._printed

    @property
    def symbolic(self) -> bool:
        """Whether the generated code names a parameter here (else it prints the number)."""
        return self.printed() is not None

    @property
    def deps(self) -> frozenset[str]:
        """The network parameters this value depends on, even where it prints as a number."""
        return frozenset() if self.e is None else expr_deps(self.e)

    @property
    def lost(self) -> frozenset[str]:
        """The network parameters behind the numbers the code prints for hidden sizes (see `concrete`)."""
        if self.e is None:
            return frozenset()
        return param_names(p for s in self.e.syms() if s.kind == "hidden" for p in s.outer_expr.syms())

    def outer_key(self):
        """The value's expression in the network's parameters, as a structural key."""
        return self.expr().outer().key

    def size(self) -> int:
        return 1 if self.e is None else self.e.size()

    def __repr__(self) -> str:
        return f"Val({self.v}, {self.e!r})" if self.e is not None else f"Val({self.v})"

    def __int__(self) -> int:
        return int(self.v)

    def __float__(self) -> float:
        return float(self.v)

    def __index__(self) -> int:
        return self.v

    def _bin(self, other: "Num", op: str, swap: bool = False) -> "Val":
        a, b = (as_val(other), self) if swap else (self, as_val(other))
        result = _FN[op](a.v, b.v)
        if a.e is None and b.e is None:
            return Val(result)
        return Val(result, _ARITH[op](a.expr(), b.expr()))

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
        return Val(-self.v) if self.e is None else Val(-self.v, neg(self.e))


Num = Union[int, Val]


def expr_deps(e: Expr) -> frozenset[str]:
    """The network parameters an expression depends on: the names of its expression in the network's terms
    (`outer`), where a comparison decided for every value (`in_channels != planes` where both are `c`) has none."""
    return param_names(e.outer().syms())


def as_val(x) -> Val:
    return x if isinstance(x, Val) else Val(x)


def plain(shape):
    """A shape of plain numbers (None for unknown dimensions), as the checked network reports it."""
    return None if shape is None else tuple([d.v if isinstance(d, Val) else value(d) for d in shape])


def value(x):
    """The plain number behind a Val (None stays None: an unknown size); other values pass through."""
    if isinstance(x, Val):
        return x.v
    if isinstance(x, tuple):
        return tuple([i.v if isinstance(i, Val) else value(i) for i in x])
    return x


def with_expressions(*xs) -> list["Val"]:
    """The Vals among values (Vals, tuples and lists of them) that carry an expression: what `largest`, `lost`
    and `deps` look at, found in one pass (most layers have none)."""
    found = []
    for x in xs:
        if isinstance(x, Val):
            if x.e is not None:
                found.append(x)
        elif isinstance(x, (tuple, list)):
            found += with_expressions(*x)
    return found


def local(name: str, of) -> Val:
    """A block's name (`in_channels`, a parameter) bound, for this call, to `of` (a Val in the caller's terms,
    or a default in the block's own): the block's code prints the name; `deps` follow what it stands for."""
    of = as_val(of)
    return Val(of.v, symbol(name, of.v, "local", of.expr().outer()))


def hidden(name: str, of):
    """A size of a block's input other than its channels: symbolic in the caller, a number in the block's code
    (which has no name for it), and the caller's expression again at the block's output (`substitute`)."""
    if of is None:
        return None
    of = as_val(of)
    if of.e is None:
        return of
    return Val(of.v, symbol(name, of.v, "hidden", of.expr().outer()))


_fixed_names = itertools.count(1)


def fixed(result, *sources) -> Val:
    """A value the code prints as a number although parameters decide it (`sources`, Vals): a hidden name
    whose `outer` carries their parameters, so that printing it pins them."""
    carriers = [as_val(x).expr().outer() for x in sources if isinstance(x, Val) and x.e is not None]
    if not carriers:
        return Val(result)
    outer = carriers[0]
    for e in carriers[1:]:
        outer = Op("+", outer, e)  # only its names matter
    return Val(result, symbol(f"fixed{next(_fixed_names)}", result, "hidden", outer))


def _is_bool(e: Expr) -> bool:
    if isinstance(e, (Cmp, Not, BoolOp)):
        return True
    if isinstance(e, Poly) and not e.const and len(e.terms) == 1:
        (mono, c), = e.terms
        atom = mono[0][0]
        return c == 1 and len(mono) == 1 and mono[0][1] == 1 and isinstance(atom, Sym) and atom.kind != "hidden" and type(atom.value) is bool
    return False


def compare(op: str, left, right, result: bool) -> Val:
    """The result of `left op right`: a comparison the code prints where a parameter decides it."""
    if isinstance(left, Val) and isinstance(right, Val) and (left.e is not None or right.e is not None):
        return Val(result, cmp(op, left.expr(), right.expr()))
    return fixed(result, *_vals(left), *_vals(right))  # words, or tuples of numbers


def _vals(x) -> list:
    return [x] if isinstance(x, Val) else [i for item in x for i in _vals(item)] if isinstance(x, tuple) else []


def logical_not(x, result: bool) -> Val:
    return Val(result, not_(x.expr())) if isinstance(x, Val) and x.e is not None else Val(result)


def logical(op: str, left: Val, right: "Val | None", result: bool) -> Val:
    """The result of `left and right` (`or`): `right` is None where it could not be evaluated (the left side
    decided). Printed as Python's `and`/`or` where both sides are bools, else as the number it is."""
    if right is None:
        return fixed(result, left)
    a, b = left.e, right.e
    if a is None and b is None:
        return Val(result)
    if a is None or b is None:  # one side is a constant: the result is the other side's truth, or decided
        decided = (op == "and" and not (left.v if a is None else right.v)) or (op == "or" and (left.v if a is None else right.v))
        if decided:
            return Val(result)
        other = right if a is None else left
        return Val(result, other.e) if _is_bool(other.e) else fixed(result, other)
    if _is_bool(a) and _is_bool(b):
        return Val(result, bool_op(op, a, b))
    return fixed(result, left, right)


def substitute(x, mapping: dict[str, "Val"]):
    """A Val (or tuple of them) in a block's terms, with the block's names replaced by Vals in the caller's
    (a block's `planes` -> the caller's `c * 2`), so that a block's output reads in the caller's terms."""
    if isinstance(x, tuple):
        return tuple(substitute(i, mapping) for i in x)
    if not isinstance(x, Val) or x.e is None:
        return x

    def f(s: Sym):  # a block's names by name, its hidden sizes as `<dim1>`
        if s.kind != "param" and s.key in mapping:
            return as_val(mapping[s.key]).expr()
        return None

    return Val(x.v, x.e.subst(f))


def same(a, b) -> bool:
    """Whether two sizes are the same expression of the network's parameters (equal for every value)."""
    if a is None or b is None:
        return a is b
    if getattr(a, "e", None) is None and getattr(b, "e", None) is None:  # two numbers: the same if equal
        return value(a) == value(b)
    return as_val(a).outer_key() == as_val(b).outer_key()


def deps(*xs) -> frozenset[str]:
    """The network parameters behind values (Vals, tuples of them, sets of names; other values have none)."""
    out: set[str] = set()
    for x in xs:
        if isinstance(x, (set, frozenset)):  # names already
            out |= x
        else:
            for v in with_expressions(x):
                out |= v.deps
    return frozenset(out)


def lost(*xs) -> frozenset[str]:
    """The network parameters behind numbers the generated code prints in place of hidden sizes."""
    out: set[str] = set()
    for v in with_expressions(*xs):
        out |= v.lost
    return frozenset(out)


def largest(*xs) -> int:
    """The size, in nodes, of the largest expression among values (Vals, tuples of them)."""
    n = 0
    for x in xs:
        if isinstance(x, Val):
            n = max(n, x.size())
        elif isinstance(x, (tuple, list)):
            n = max(n, largest(*x))
    return n


def expression_problem(n: int, what: str) -> tuple[str, str] | None:
    """(message, hint) when an expression of `n` nodes is too large to print (the `expression` limit)."""
    from .. import limits

    found = limits.problem("expression", n, what)
    if found is None:
        return None
    return found[0], ("a size that grows with each block call or repetition: write it so that it does not grow, e.g."
                      f" name a parameter for it; or {found[1]}")
