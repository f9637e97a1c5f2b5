"""Expressions and layer arguments -> values: what `k3`, `s=stride`, `3->16` and `c*4` mean for an op."""

from __future__ import annotations

import re
from typing import Any

from .. import limits
from ..errors import Span, did_you_mean, quote
from ..ir.values import (
    FUNCTIONS,
    Expr,
    Items,
    Val,
    apply_function,
    compare,
    deps,
    expression_problem,
    item,
    logical,
    logical_not,
    value,
)
from ..ops.base import REPEAT, SHORT, Ctx, OpSpec, Opt
from ..syntax import ast
from .pins import CHOSEN, COUNT, DECIDED, pin


class LocatedError(Exception):
    """A mistake in the source at a known place; the checker turns it into a Diagnostic.

    Besides the text, the facts a caller words its own message from: `names`, the bare names in the source that
    the mistake is about (a name that is no parameter, or not one yet: the checker says "declared after" when a
    default uses a later parameter), and `reported`, true for a consequence of a mistake reported already (the use
    of a parameter whose definition failed), which is never shown."""

    def __init__(self, message: str, span: Span, hint: str | None = None, *, names: tuple[str, ...] = (),
                 reported: bool = False):
        super().__init__(message)
        self.message, self.span, self.hint = message, span, hint
        self.names, self.reported = names, reported


class Word(str):
    """A bare word that names no parameter: an enumeration value such as `reflect`, or a mistake."""


class ChosenWord(Word):
    """A word that a parameter holds (`act=relu`, `-D act=hardswish`): a layer or an option's value chosen when
    compiling. The generated code writes the word itself, so a use of it pins the parameter (`pin_chosen`)."""

    param: str | None  # None: a block's default, which pins nothing

    def __new__(cls, text: str, param: str | None):
        self = super().__new__(cls, text)
        self.param = param
        return self

    def __reduce__(self):  # pickles with its parameter
        return (ChosenWord, (str(self), self.param))


# a parameter whose own definition was wrong: using it reports nothing more (the first error says it all)
FAILED = Val(0, "<failed>")


def evaluate(expr: ast.Expr, env: dict[str, Val]) -> Any:
    """An expression's value: Val for numbers and booleans, Word for bare words, tuples of those."""
    if isinstance(expr, ast.Num):
        return Val(expr.value)
    if isinstance(expr, ast.Name):
        if expr.id in env:
            if env[expr.id] is FAILED:
                raise LocatedError(f"`{expr.id}` is a parameter whose definition failed", expr.span, names=(expr.id,), reported=True)
            return env[expr.id]
        if expr.id in ("true", "false"):
            return Val(expr.id == "true")
        return Word(expr.id)
    if isinstance(expr, ast.Str):
        return Word(expr.value)
    if isinstance(expr, ast.Tuple):
        return tuple(evaluate(i, env) for i in expr.items)
    if isinstance(expr, ast.Neg):
        x = _number(expr.operand, env)
        return _bounded(-x, expr.span)
    if isinstance(expr, ast.BinOp):
        a, b = _number(expr.left, env), _number(expr.right, env)
        if expr.op in ("//", "/") and b.v == 0:
            raise LocatedError("division by zero", expr.span)
        try:
            result = {"+": a.__add__, "-": a.__sub__, "*": a.__mul__, "//": a.__floordiv__, "/": a.__truediv__}[expr.op](b)
        except OverflowError:  # a huge integer mixed with a float
            raise LocatedError("the result of this expression is too large", expr.span) from None
        return _bounded(result, expr.span)
    if isinstance(expr, ast.Compare):
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        a, b = value(left), value(right)  # tuples of numbers compare as tuples
        ops = {"==": a == b, "!=": a != b}
        if expr.op in ops:
            if isinstance(left, Word) != isinstance(right, Word):  # `j == 0` with no `j`: an error, not false
                undefined(expr.left, left, env)
                undefined(expr.right, right, env)
            return _bounded(compare(expr.op, left, right, ops[expr.op]), expr.span)
        if not all(isinstance(x, (int, float)) for x in (a, b)):  # words and tuples have no order here
            texts = [f"({', '.join(map(str, x))})" if isinstance(x, tuple) else str(x) for x in (a, b)]
            raise LocatedError(f"cannot compare `{texts[0]}` and `{texts[1]}` with {expr.op}", expr.span,
                               hint="only numbers can be ordered", names=_names((expr.left, left), (expr.right, right)))
        return _bounded(compare(expr.op, left, right, {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[expr.op]), expr.span)
    if isinstance(expr, ast.BoolOp):
        left, a = _truth_val(expr.left, env)
        if (expr.op == "and" and not a) or (expr.op == "or" and a):
            right = None
            if left.symbolic:  # the parameters may decide otherwise: the other side too, where it can be evaluated
                try:
                    right = _truth_val(expr.right, env)[0]
                except LocatedError:
                    pass
            return _bounded(logical(expr.op, left, right, a), expr.span)
        right, b = _truth_val(expr.right, env)
        return _bounded(logical(expr.op, left, right, b), expr.span)
    if isinstance(expr, ast.Not):
        x, a = _truth_val(expr.operand, env)
        return _bounded(logical_not(x, not a), expr.span)
    if isinstance(expr, ast.Index):
        return _index(expr, env)
    if isinstance(expr, ast.IfExp):
        return _if_else(expr, env)
    if isinstance(expr, ast.InitCall) and expr.name in FUNCTIONS:
        return _function(expr, env)
    raise LocatedError(f"`{expr.name}` is no function of numbers", expr.span, did_you_mean(expr.name, FUNCTIONS) or
                       f"the functions are {', '.join(f for f in FUNCTIONS if f != 'if')}; an initialiser such as "
                       "`normal(0, 0.01)` goes in `init` rules and `init=`")


def _function(expr: ast.InitCall, env) -> Val:
    """`max(8, c // 4)` and the other functions of numbers (cnndsl.ir.values.FUNCTIONS)."""
    f = FUNCTIONS[expr.name]
    args = []
    for arg in expr.args:
        if not isinstance(arg, ast.Positional):
            raise LocatedError(f"`{expr.name}` takes its arguments by position", arg.span)
        args.append(_number(arg.value, env))
    low, high = f.arity
    if not low <= len(args) <= high:
        takes = str(low) if low == high else f"{low} to {high}"
        raise LocatedError(f"`{expr.name}` takes {takes} argument{'s' * (high != 1)}, found {len(args)}", expr.span)
    try:
        result = apply_function(expr.name, tuple(args))
    except (ArithmeticError, ValueError):  # int() or round() of inf or nan
        raise LocatedError(f"cannot compute `{expr.name}({', '.join(str(a.v) for a in args)})`", expr.span,
                           "infinity and nan have no integer value") from None
    if isinstance(result.v, complex):  # a negative number's ** 0.5 (sqrt is printed as that)
        raise LocatedError("cannot compute the square root of a negative number", expr.span)
    return _bounded(result, expr.span)


def _index(expr: ast.Index, env) -> Val:
    """`layers[2]`: an item of a tuple (a negative index counts from the end, as in Python)."""
    base, i = evaluate(expr.base, env), _number(expr.index, env)
    if not isinstance(base, tuple):
        undefined(expr.base, base, env)
        raise LocatedError(f"only a tuple has items, found {shown(expr.base, base)}", expr.base.span)
    if type(i.v) is not int:
        raise LocatedError(f"an index must be an integer, found {shown(expr.index, i)}", expr.index.span)
    if not -len(base) <= i.v < len(base):
        raise LocatedError(f"index {i.v} is out of range: the tuple has {len(base)} item{'s' * (len(base) != 1)}", expr.index.span,
                           f"the items are numbered 0 to {len(base) - 1}")
    found = base[i.v]
    if i.e is None or not all(isinstance(x, Val) for x in base):
        pin(i, reason=DECIDED)
        return found
    return _bounded(Val(found.v, item(Items(tuple(x.expr() for x in base)), i.e)), expr.span)


def _if_else(expr: ast.IfExp, env) -> Any:
    """`a if c else b`: the side the condition takes; the whole, for the code to print, where a parameter decides
    the condition and both sides are numbers."""
    c = evaluate(expr.condition, env)
    taken = truth(expr.condition, c, env)
    chosen_side, other = (expr.then, expr.otherwise) if taken else (expr.otherwise, expr.then)
    x = evaluate(chosen_side, env)
    if c.e is None:
        return x
    try:
        y = evaluate(other, env)
    except LocatedError:
        y = None
    if isinstance(x, Val) and isinstance(y, Val):
        a, b = (x, y) if taken else (y, x)
        return _bounded(apply_function("if", (c, a, b)), expr.span)
    pin(c, reason=DECIDED)  # words, tuples, or a side that fails: the code writes the side taken
    return x


def _bounded(x: Val, span: Span) -> Val:
    """An integer result within the `integer` limit, so that no later step meets a number too large to print,
    and an expression within the `expression` limit, so that no line of the generated code grows without end."""
    if type(x.v) is int:
        found = limits.problem("integer", abs(x.v), "this value")
        if found:
            raise LocatedError(*found[:1], span, found[1])
    found = expression_problem(x.size(), "this expression")
    if found:
        raise LocatedError(found[0], span, found[1])
    return x


def undefined(expr: ast.Expr, x: Any, env) -> None:
    """Raise where a bare name that is no parameter, index or value in scope stands for a number, a tuple or a
    condition: a word is only ever the value of an option or a parameter."""
    if isinstance(expr, ast.Name) and isinstance(x, Word) and not isinstance(x, ChosenWord) and expr.id not in env:
        names = [n for n in env if n.isidentifier()]
        hint = did_you_mean(expr.id, names)
        if hint is None and expr.id in ("k", "s", "p", "d", "g"):
            hint = _unknown_name_hint(x, env)
        if hint is None and expr.id in ("True", "False", "None"):
            hint = f"true and false are written in lowercase: `{expr.id.lower()}`" if expr.id != "None" else \
                "leave the option out for its default"
        raise LocatedError(f"`{expr.id}` is not defined here", expr.span,
                           hint or "name a parameter, the index of a repetition `x(count, i)`, or write a number",
                           names=(expr.id,))


def truth(expr: ast.Expr, x: Any, env) -> bool:
    """A condition's value (`x`, evaluated from `expr`), which must be true or false."""
    if isinstance(x, Val) and isinstance(x.v, bool):
        return x.v
    undefined(expr, x, env)
    found = f", found {x.v}" if isinstance(x, Val) else f", found {shown(expr, x)}"
    raise LocatedError(f"a condition must be true or false{found}", expr.span,
                       "compare the number, e.g. `c > 0`" if isinstance(x, Val) else None)


def _number(expr: ast.Expr, env) -> Val:
    x = evaluate(expr, env)
    if isinstance(x, Val) and not isinstance(x.v, bool):
        return x
    undefined(expr, x, env)
    hint = _item_hint(expr, x) or _unknown_name_hint(x, env)
    raise LocatedError(f"expected a number, found {shown(expr, x)}", expr.span, hint, names=_names((expr, x)))


def _item_hint(expr: ast.Expr, x: Any) -> str | None:
    """Where a tuple parameter stands for a number: take one of its items."""
    return f"take one of its items: `{expr.id}[0]`" if isinstance(x, tuple) and isinstance(expr, ast.Name) else None


def _truth(expr: ast.Expr, env) -> bool:
    return _truth_val(expr, env)[1]


def _truth_val(expr: ast.Expr, env) -> tuple[Val, bool]:
    x = evaluate(expr, env)
    if isinstance(x, Val):
        return x, bool(x.v)
    undefined(expr, x, env)
    raise LocatedError(f"expected a condition, found {shown(expr, x)}", expr.span, _unknown_name_hint(x, env), names=_names((expr, x)))


def _names(*pairs: tuple[ast.Expr, Any]) -> tuple[str, ...]:
    """The bare names among (expression, value) pairs: what an error about them is about."""
    return tuple(str(x) for expr, x in pairs if isinstance(x, Word) and isinstance(expr, ast.Name))


def shown(expr: ast.Expr, x: Any) -> str:
    """What an expression evaluated to, in words for a message: the name `b`, "text", a tuple, true, `3`."""
    if isinstance(x, ChosenWord) and isinstance(expr, ast.Name) and expr.id == x.param:
        return f"the word `{x}` (the value of `{x.param}`)"
    if isinstance(x, Word):
        return f"the name `{x}`" if isinstance(expr, ast.Name) else f'"{x}"'
    if isinstance(x, tuple):
        return "a tuple"
    if isinstance(x, Val) and isinstance(x.v, bool):
        return "true" if x.v else "false"
    return f"`{x.v if isinstance(x, Val) else x}`"


def kind_of(x: Any) -> str | None:
    """What kind of value a parameter holds: a number (or true/false), a tuple, or a word; None if neither."""
    if isinstance(x, (tuple, list)) and not isinstance(x, str):
        return "a tuple"
    v = x.v if isinstance(x, Val) else x
    if isinstance(v, str):
        return "a word" if v.isascii() and v.isidentifier() else None
    if isinstance(v, bool):
        return "true or false"
    return "a number" if isinstance(v, (int, float)) else None


_NUMBERS = {"a number", "true or false"}  # either may stand for the other, as in Python (`-D use_bn=1`)


def kind_mismatch(want: str | None, given: Any) -> str | None:
    """Why a value given for a parameter does not fit the kind of its default (`want`, as kind_of says it), in
    words; None where it does."""
    got = kind_of(given)
    if want is None or got is None or want == got or {want, got} <= _NUMBERS:
        return None
    shown = f"the word {quote(given)}" if got == "a word" else got
    return f"takes {want} ({'its default is one' if want != 'true or false' else 'like its default'}), found {shown}"


def _unknown_name_hint(x: Any, env) -> str | None:
    if isinstance(x, Word) and x in ("k", "s", "p", "d", "g", "op"):
        return f"a short option takes a plain number, as in `{x}1` (`{x}-1` reads as `{x} - 1`)"
    if isinstance(x, Word) and x == "in":
        return "`in`, the incoming channels, exists only inside a block"
    if isinstance(x, Word):
        return did_you_mean(x, env) or "name a parameter, or write a number"
    return None


# -- options --------------------------------------------------------------------------------------


def convert(opt: Opt, x: Any, expr: ast.Expr, env) -> Any:
    """Check a value against an option's kind; returns the value the op's rule reads."""
    kind = opt.kind
    where = f"`{opt.name}`"
    if kind in ("int", "float", "bool"):
        if kind == "bool" and isinstance(x, Val) and isinstance(x.v, bool):
            return x
        if kind == "int" and isinstance(x, Val) and type(x.v) is int:
            return x
        if kind == "float" and isinstance(x, Val) and type(x.v) in (int, float):
            return x
        want = {"int": "an integer", "float": "a number", "bool": "true or false"}[kind]
        undefined(expr, x, env)
        raise LocatedError(f"{where} must be {want}, found {shown(expr, x)}", expr.span, _unknown_name_hint(x, env) if kind != "bool" else None)
    if kind in ("ints", "floats", "padding", "dims"):
        if kind == "padding" and isinstance(x, Word):
            if x in ("same", "valid"):
                return chosen(x)
            raise LocatedError(f"{where} must be a number, a tuple, `same` or `valid`, found {shown(expr, x)}", expr.span, did_you_mean(x, ("same", "valid", *env)))
        number = (int,) if kind != "floats" else (int, float)
        items = x if isinstance(x, tuple) else (x,)
        if kind == "dims" or isinstance(x, tuple):
            if not items:
                raise LocatedError(f"{where} must not be empty", expr.span)
        for i in items:
            if not (isinstance(i, Val) and type(i.v) in number):
                want = ("integers" if kind != "floats" else "numbers") if isinstance(x, tuple) else ("an integer" if kind != "floats" else "a number")
                raise LocatedError(f"{where} must be {want}, found {shown(expr, i)}", expr.span, _unknown_name_hint(i, env))
        return x
    if kind == "value":  # `like=e1`: a named tensor value of the network or block, looked up by the scope
        if isinstance(expr, ast.Name) and isinstance(x, Word) and not isinstance(x, ChosenWord):
            return x
        raise LocatedError(f"{where} takes the name of a value, such as `{opt.name}=e1`, found {shown(expr, x)}", expr.span,
                           "name a tensor with `e1 = ...` on an earlier line")
    if kind == "enum":
        if isinstance(x, Word) and x in opt.choices:
            return chosen(x)
        choices = ", ".join(opt.choices)
        hint = did_you_mean(x, opt.choices) if isinstance(x, Word) else None
        raise LocatedError(f"{where} must be one of {choices}; found {shown(expr, x)}", expr.span, hint)
    raise AssertionError(kind)  # pragma: no cover


def chosen(word: Word) -> str:
    """A word as the generated code writes it; a parameter's word pins the parameter (the code has no name
    for it)."""
    if isinstance(word, ChosenWord) and word.param is not None:
        pin({word.param}, reason=CHOSEN)
    return str(word)


def _short_value(text: str, span: Span):
    parts = tuple(Val(_literal(p, span)) for p in text.split("x"))
    return parts[0] if len(parts) == 1 else parts


def unknown_option(spec: OpSpec, op: str, arg: ast.Keyword) -> LocatedError:
    """`conv 16 kernal_size=3`: the option the op lacks, with the one it has that is nearest."""
    names = [o.name for o in spec.all_options] + [a for o in spec.all_options for a in o.aliases]
    return LocatedError(f"`{op}` has no option `{arg.key}`", arg.key_span, did_you_mean(arg.key, names) or _options_hint(spec))


def resolve(ctx: Ctx, layer: ast.Layer, env: dict[str, Val], spans: dict[str, Span],
            defaults=()) -> dict[str, ast.Keyword]:
    """Fill ctx.opts from a layer's arguments, then from `defaults` ((argument, the env it was written in), one
    for each option the `defaults` statements in force set) for the options the layer does not give. Returns
    keyword arguments the op does not own (init=)."""
    spec = ctx.spec
    extra: dict[str, ast.Keyword] = {}
    slots = list(spec.positional)
    varargs: list = []
    varargs_span: Span | None = None

    def put(key: str, val: Any, span: Span) -> None:
        if key in ctx.given:
            raise LocatedError(f"`{key}` is given twice", span, "remove one of them")
        ctx.opts[key] = val
        ctx.given.add(key)
        spans[key] = span

    for arg in layer.args:
        if isinstance(arg, ast.Keyword):
            if arg.key == "init" and _initialiser(spec, arg.value, env):
                extra["init"] = arg
                continue
            opt = spec.option(arg.key)
            if opt is None:
                raise unknown_option(spec, layer.op, arg)
            put(opt.name, convert(opt, evaluate(arg.value, env), arg.value, env), arg.span)
        elif isinstance(arg, ast.Channels):
            if not spec.channels:
                raise LocatedError(f"`{layer.op}` takes no channel counts", arg.span, "only conv-like ops and linear take `in->out`")
            for key, expr in (("in", arg.in_), ("out", arg.out)):
                put(key, convert(spec.option(key), evaluate(expr, env), expr, env), expr.span)
        else:
            expr = arg.value
            x = evaluate(expr, env)
            if isinstance(x, Word) and not isinstance(x, ChosenWord) and isinstance(expr, ast.Name):  # a parameter's word is a value
                if _word(ctx, x, arg.span, put):
                    continue
                if spec.varargs is None and not (slots and spec.option(slots[0]).kind in ("enum", "padding")):
                    raise LocatedError(f"`{layer.op}` has no option `{x}`", arg.span, _word_hint(spec, x, env))
            if spec.varargs:
                varargs.append(x)
                varargs_span = arg.span if varargs_span is None else varargs_span.model_copy(update={"end_col": arg.span.end_col})
                continue
            if not slots:
                if spec.positional:
                    raise LocatedError(f"too many positional arguments: `{layer.op}` takes {len(spec.positional)}", arg.span, _options_hint(spec))
                raise LocatedError(f"`{layer.op}` takes no positional arguments, found {shown(expr, x)}", arg.span, _options_hint(spec))
            key = slots.pop(0)
            while key in ctx.given and slots:
                key = slots.pop(0)
            put(key, convert(spec.option(key), x, expr, env), arg.span)
    def put_default(key: str, val: Any, span: Span) -> None:
        if key not in ctx.given:
            put(key, val, span)

    for arg, where in defaults:
        if isinstance(arg, ast.Keyword):
            opt = spec.option(arg.key)
            if opt is not None and opt.name not in ctx.given:
                put(opt.name, convert(opt, evaluate(arg.value, where), arg.value, where), arg.span)
        else:
            _word(ctx, evaluate(arg.value, where), arg.span, put_default)
    if spec.varargs and varargs:
        put(spec.varargs, tuple(varargs), varargs_span)
        for v in varargs:
            if not (isinstance(v, Val) and type(v.v) is int):
                raise LocatedError(f"`{spec.varargs}` must be integers", varargs_span)
    for name, default in spec.defaults:
        ctx.opts.setdefault(name, default)
    return extra


def _initialiser(spec: OpSpec, expr: ast.Expr, env) -> bool:
    """Whether `init=` names the layer's weight initialiser rather than the op's own `init` option
    (prelu's and layerscale's initial value, PyTorch's name): a number goes to the option."""
    if spec.option("init") is None or isinstance(expr, ast.InitCall):
        return True
    return not isinstance(evaluate(expr, env), Val)


def _word(ctx: Ctx, word: str, span: Span, put) -> bool:
    """A bare word as a flag (`nobias`) or a short option (`k3`, `p1x2`); False when it is neither."""
    found = word_option(ctx.spec, word, span)
    if found is None:
        return False
    put(found[0].name, found[1], span)
    return True


def word_option(spec: OpSpec, word: str, span: Span) -> tuple[Opt, Any] | None:
    """The option a bare word sets and its value: a flag (`nobias`: bias, false) or a short option (`k3`:
    kernel_size, 3); None when the word is neither."""
    for opt in spec.all_options:
        for flag, val in opt.flags:
            if word == flag:
                return opt, Val(val)
    m = SHORT.match(word)
    if m:
        for opt in spec.all_options:
            if opt.short == m.group(1):
                return opt, _short_value(m.group(2), span)
    return None


def _word_hint(spec: OpSpec, word: str, env) -> str:
    from ..ops import REGISTRY

    if word in REGISTRY:
        return f"`{word}` is an op: did you forget `|` before it?"
    if word == "in":
        return "`in`, the incoming channels, exists only inside a block; write the number, or `3->16`"
    option = spec.option(word)
    if option is not None and option.short:
        return f"write `{option.short}3` or `{option.name}=3`, with no space before the number"
    words = [f for o in spec.all_options for f, _ in o.flags] + list(env)
    # a mistyped short option such as `j3` or `kk3` for `k3`: the short forms with the word's number
    digits = re.search(r"\d+(x\d+)*$", word)
    shorts = [f"{o.short}{digits.group(0)}" for o in spec.all_options if o.short] if digits else []
    return did_you_mean(word, words + shorts) or _options_hint(spec)


def _options_hint(spec: OpSpec) -> str:
    names = [o.name for o in spec.all_options if o.name not in ("in", "out")]
    if not names:
        return f"`{spec.name}` takes no options"
    return f"`{spec.name}` takes: " + ", ".join(names)


def condition(expr: ast.Expr, env: dict[str, Val], x: Val) -> Expr | None:
    """A condition, already evaluated to `x`, as the generated code tests it: its expression over the names
    in scope, or None where it names no parameter (it is decided here, and the code needs no `if`). A
    condition compares numbers and parameters: a word or a string in it is an error."""
    _condition_names(expr, env)
    return x.e if x.symbolic else None


def _condition_names(expr: ast.Expr, env: dict[str, Val]) -> None:
    if isinstance(expr, ast.Name):
        if expr.id not in env and expr.id not in ("true", "false"):
            raise LocatedError(f"unknown name `{expr.id}` in a condition", expr.span, did_you_mean(expr.id, env))
    elif isinstance(expr, (ast.Neg, ast.Not)):
        _condition_names(expr.operand, env)
    elif isinstance(expr, (ast.BinOp, ast.Compare, ast.BoolOp)):
        _condition_names(expr.left, env)
        _condition_names(expr.right, env)
    elif not isinstance(expr, ast.Num):
        raise LocatedError("a condition compares numbers and parameters", expr.span)


def condition_deps(expr: ast.Expr, env: dict[str, Val]) -> frozenset[str]:
    """The network parameters a condition reads (through the names in scope), for pinning."""
    if isinstance(expr, ast.Name):
        return deps(env.get(expr.id))
    found: frozenset[str] = frozenset()
    for child in (getattr(expr, "operand", None), getattr(expr, "left", None), getattr(expr, "right", None)):
        if isinstance(child, ast.Node):
            found |= condition_deps(child, env)
    return found


def split_repeat(args: tuple, env: dict | None = None) -> tuple[tuple, int, Span | None, str | None]:
    """A stage's repetition taken out of its arguments: (the other arguments, the count, its span, the name of
    the copy's index or None). `x2` is a count written out; `x(count)` and `x(count, i)` take an expression
    (in `env`), which may be 0 (no copy: an empty stage), and `i` is each copy's index, 0, 1, ..."""
    rest, count, span, index = [], 1, None, None
    for arg in args:
        written = isinstance(arg, ast.Positional) and isinstance(arg.value, ast.Name) and REPEAT.match(arg.value.id)
        if written or isinstance(arg, ast.Repeat):
            if span is not None:
                raise LocatedError("repetition is given twice", arg.span)
            span = arg.span
            if written:
                count = _literal(arg.value.id[1:], arg.span)
                if count < 1:
                    raise LocatedError("repetition needs at least one copy, found x0", arg.span, "for no copy where a parameter says so, write `x(n)`")
            else:
                count, index = _count(arg, env or {})
            found = limits.problem("repeat", count, "this repetition")
            if found:
                raise LocatedError(found[0], arg.span, found[1])
        else:
            rest.append(arg)
    return tuple(rest), count, span, index


def _count(arg: ast.Repeat, env: dict) -> tuple[int, str | None]:
    """The count of `x(count, i)` (an integer, at least 0) and the index's name; the count's parameters pinned (the
    generated code writes each copy)."""
    x = evaluate(arg.count, env)
    if not (isinstance(x, Val) and type(x.v) is int):
        undefined(arg.count, x, env)
        hint = "round it: `x(int(n))`, `x(round(n))`" if isinstance(x, Val) and isinstance(x.v, float) else _item_hint(arg.count, x)
        raise LocatedError(f"a repetition's count must be an integer, found {shown(arg.count, x)}", arg.count.span, hint)
    if x.v < 0:
        raise LocatedError(f"a repetition's count must be at least 0, found {x.v}", arg.count.span)
    if arg.index is not None and arg.index in env:
        raise LocatedError(f"`{arg.index}` already names a parameter or index here", arg.span, "choose another name for the index")
    pin(x, reason=COUNT)
    return x.v, arg.index


def _literal(digits: str, span: Span) -> int:
    """The integer in a word such as `k3` or `x2`, within the `integer` limit."""
    digits = digits.lstrip("0") or "0"
    n = int(digits) if len(digits) <= 4000 else 1 << int(len(digits) * 3.33)
    found = limits.problem("integer", n, "this number")
    if found:
        raise LocatedError(found[0], span, found[1])
    return n
