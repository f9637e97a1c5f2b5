"""External modules: `module Name(params) = package.module.Class(args) -> rule` declares an nn.Module from outside
the catalog, and `Name(...)` calls it as a block is called. Checked without importing anything: the constructor's
arguments are evaluated in the caller's terms (the generated code prints them), and the output's shape is the
declared rule's, which `cnndsl.load` verifies against the real module (cnndsl/backend/pytorch/loader.py)."""

from __future__ import annotations

import keyword
import re
from typing import TYPE_CHECKING

from .. import errors as _errors
from .. import limits
from ..errors import CheckError, Source, did_you_mean, first_line, listing
from ..ir.network import CheckedLayer, ExternalModule, LayerStep
from ..ir.values import FUNCTIONS, Val, as_val, expression_problem, largest, plain, value, with_expressions
from ..syntax import ast
from .calls import bind_args
from .pins import pin_lost
from .resolve import LocatedError, Word, evaluate, shown

if TYPE_CHECKING:
    from ..errors import Diagnostic
    from .scope import Scope

SAME = "same"  # the rule that keeps the input's shape
SHAPE = "shape"  # the input's shape without the batch, a tuple, in the arguments and the rule
_STRING = re.compile(r"[A-Za-z0-9_\-]*")  # what a string argument may hold (the generated code quotes it as it is)


# -- the declaration, checked once where it is defined ---------------------------------------------------------


def declaration_problems(decl: ast.ModuleDecl, src: Source) -> list[Diagnostic]:
    """What is wrong with a declaration itself, whether or not anything calls it: its import path, its
    parameters' names, and the names its arguments and rule read."""
    out: list = []

    def problem(message: str, span, hint: str | None = None) -> None:
        out.append(_errors.Diagnostic(message=message, file=src.name, span=span, line_text=src.line_text(span.line), hint=hint))

    bad = [part for part in decl.path.split(".") if keyword.iskeyword(part)]
    if bad:
        problem(f"`{decl.path}` is no import path: `{bad[0]}` is a Python keyword", decl.path_span,
                "write the module's import path and its class, as in `my_layers.SelfAttention`")
    params = [p.name for p in decl.params]
    for p in decl.params:
        if p.name in (SAME, SHAPE):
            problem(f"`{p.name}` names {'the rule that keeps the shape' if p.name == SAME else 'the input shape'} in a "
                    "module declaration and cannot name a parameter", p.span, "choose another name")
    known = {*params, "in", SHAPE, "true", "false"}
    keywords: set[str] = set()
    for arg in decl.args:
        if isinstance(arg, ast.Keyword):
            if arg.key in keywords:
                problem(f"`{arg.key}` is given twice", arg.key_span)
            keywords.add(arg.key)
        elif keywords:
            problem("a positional argument after a keyword argument", arg.span)
        _names(arg.value, known, "the arguments of", decl, problem)
    if not (isinstance(decl.rule, ast.Name) and decl.rule.id == SAME):
        _names(decl.rule, known, "the shape rule of", decl, problem)
    return out


def _names(expr, known: set[str], where: str, decl: ast.ModuleDecl, problem) -> None:
    """Every name an expression reads is known, every function is one of numbers, every string can be printed."""
    if isinstance(expr, ast.Name) and expr.id not in known:
        hint = did_you_mean(expr.id, sorted(known - {"true", "false"}))
        problem(f"unknown name `{expr.id}` in {where} `{decl.name}`", expr.span,
                hint or f"they may read the parameters ({listing([p.name for p in decl.params]) or 'none'}), `in` (the"
                " input channels) and `shape` (the input's shape); a word is written in quotes: \"tanh\"")
    elif isinstance(expr, ast.Str) and not _STRING.fullmatch(expr.value):
        problem("a string argument may hold only letters, digits, `_` and `-`", expr.span)
    elif isinstance(expr, ast.InitCall) and expr.name not in FUNCTIONS:
        problem(f"`{expr.name}` is no function of numbers", expr.span,
                did_you_mean(expr.name, FUNCTIONS) or f"the functions are {', '.join(f for f in FUNCTIONS if f != 'if')}")
    elif isinstance(expr, ast.Node):
        for field in type(expr)._FIELDS:
            _names(getattr(expr, field), known, where, decl, problem)
    elif isinstance(expr, tuple):
        for item in expr:
            _names(item, known, where, decl, problem)


def _reads_shape(expr) -> bool:
    if isinstance(expr, ast.Name):
        return expr.id == SHAPE
    if isinstance(expr, ast.Node):
        return any(_reads_shape(getattr(expr, f)) for f in type(expr)._FIELDS)
    return isinstance(expr, tuple) and any(_reads_shape(x) for x in expr)


# -- a call -----------------------------------------------------------------------------------------------------


def call(scope: Scope, node: ast.Call) -> None:
    """`Name(args) [as name]`: one layer, the external module made with the declaration's arguments."""
    decl, source = scope.prog.blocks[node.callee]
    attr = scope.child_name(node.name, node.callee.lower(), node.span)
    given, _ = bind_args(scope, node, decl)
    if scope.shape is None:
        return
    at = first_line(node.span)
    if len(scope.shape) < 1 or scope.shape[0] is None:
        raise LocatedError(f"cannot infer the input channels of `{node.callee}`", at, "declare the network's `input`")
    if None in scope.shape and (_reads_shape(decl.args) or _reads_shape(decl.rule)):
        raise LocatedError(f"`{node.callee}` reads the input's `shape`, but its sizes are unknown here", at,
                           "declare the network's `input`")
    scope.prog.calls.append((node.callee, at, scope.source))
    try:
        args, kwargs, out = _evaluated(decl, given, scope.shape)
    except LocatedError as e:  # a mistake in the declaration, for this call's values: reported where it is
        scope.prog.report(e, source)
        scope.shape = None
        return
    finally:
        scope.prog.calls.pop()
    found = expression_problem(largest(args, [v for _, v in kwargs], out), "an expression for this module's arguments")
    if found:
        raise LocatedError(found[0], at, found[1])
    from .scope import _shape_within_limits  # (scope imports this module)

    _shape_within_limits(out, at)
    pin_lost(with_expressions(args, [v for _, v in kwargs]))  # numbers printed for sizes the class cannot name
    external = ExternalModule.make(
        name=decl.name, path=decl.path, rule=_rule_kind(decl.rule), file=source.name,
        path_span=decl.path_span, path_line=source.line_text(decl.path_span.line),
        rule_span=decl.rule.span, rule_line=source.line_text(decl.rule.span.line),
    )
    layer = CheckedLayer.make(
        name=scope.path + attr, attr=attr, access=scope.child_access(attr), op=decl.name, module=decl.path.rsplit(".", 1)[1],
        args=args, kwargs=kwargs, input_shape=plain(scope.shape), output_shape=plain(out), params=None,
        span=at, file=scope.source.name, external=external,
    )
    scope.prog.layers.append(layer)
    found = limits.problem("layers", len(scope.prog.layers), "the number of layers")
    if found:
        raise CheckError([*scope.prog.errors, scope.prog.diagnostic("error", *found[:1], at, scope.source, found[1])])
    scope.steps.append(LayerStep.make(name=attr, layer=layer, output_shape=layer.output_shape))
    if scope.first_in is None:
        scope.first_in = value(scope.shape[0])
    scope.shape = out


def _rule_kind(rule) -> str:
    if isinstance(rule, ast.Name) and rule.id == SAME:
        return "same"
    return "shape" if isinstance(rule, ast.Tuple) else "channels"


def _evaluated(decl: ast.ModuleDecl, given: dict, shape: tuple) -> tuple[tuple, tuple, tuple]:
    """The constructor's positional and keyword arguments and the output's shape, for one call: the
    declaration's expressions over this call's values, in the caller's terms."""
    env: dict = {"in": as_val(shape[0])}
    if None not in shape:
        env[SHAPE] = tuple(as_val(d) for d in shape)
    for p in decl.params:
        env[p.name] = given[p.name][1] if p.name in given else evaluate(p.default, env)
    args, kwargs = [], []
    for arg in decl.args:
        v = _argument(evaluate(arg.value, env), arg.value)
        if isinstance(arg, ast.Keyword):
            kwargs.append((arg.key, v))
        else:
            args.append(v)
    rule = decl.rule
    if isinstance(rule, ast.Name) and rule.id == SAME:
        return tuple(args), tuple(kwargs), shape
    found = evaluate(rule, env)
    out = (found, *shape[1:]) if isinstance(found, Val) else found
    if not (isinstance(out, tuple) and out and all(isinstance(d, Val) and type(d.v) is int for d in out)):
        raise LocatedError(f"the shape rule of `{decl.name}` must be `same`, a channel count or a tuple of whole sizes,"
                           f" found {shown(rule, found)}", rule.span, "e.g. `-> same`, `-> out` or `-> (out, shape[1]//2, shape[2]//2)`")
    for axis, d in enumerate(out):
        if d.v < 1:
            raise LocatedError(f"the shape rule of `{decl.name}` gives a size of {d.v} in axis {axis + 1}", rule.span,
                               "every size of the output must be at least 1")
    return tuple(args), tuple(kwargs), out


def _argument(v, expr):
    """A constructor argument the generated code can print: a number, true/false, a tuple of them, or a string."""
    if isinstance(v, Val) or (isinstance(v, Word) and _STRING.fullmatch(v)):
        return v
    if isinstance(v, tuple) and v and all(isinstance(x, Val) for x in v):
        return v
    raise LocatedError(f"a module's argument must be a number, true/false, a string or a tuple of numbers, found {shown(expr, v)}",
                       expr.span)

