"""Block calls, for cnndsl.semantics.scope: each call is checked with its own arguments and input, in a scope of the
block's own; its steps keep the block's parameters symbolic, and its output reads in the caller's terms."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .. import limits
from ..errors import Span, did_you_mean, first_line, listing
from ..ir.network import BlockInstance, CallStep
from ..ir.values import (
    Expr,
    Val,
    as_val,
    expression_problem,
    hidden,
    largest,
    local,
    plain,
    substitute,
    tuple_name,
    value,
)
from ..ops import REGISTRY
from ..syntax import ast
from .memo import walk
from .pins import LITERAL, pin, pin_lost
from .resolve import ChosenWord, LocatedError, Word, evaluate, kind_mismatch, kind_of, shown

if TYPE_CHECKING:
    from .scope import Scope


def call(scope: Scope, node: ast.Call) -> None:
    block, source = scope.prog.blocks[node.callee]
    attr = scope.child_name(node.name, node.callee.lower(), node.span)
    if node.callee in (name for name, _, _ in scope.prog.calls):
        raise LocatedError(f"the block `{node.callee}` calls itself", first_line(node.span), "blocks cannot be recursive")
    found = limits.problem("call_depth", len(scope.prog.calls) + 1, "the depth of this block call")
    if found:
        raise LocatedError(found[0], first_line(node.span), found[1])
    limits.charge(scope, block, span=node.span)
    try:
        inputs = block_inputs(block)
    except LocatedError as e:
        return _in_definition(scope, node, source, e)
    given, sources = bind_args(scope, node, block, inputs)  # checked even after an earlier error, like a layer's own arguments
    missing = [name for name in inputs[1:] if name not in sources]
    if missing:
        raise LocatedError(f"`{node.callee}` needs a value for its input `{missing[0]}`", first_line(node.span),
                           f"name one of this network's or block's values: `{node.callee}({missing[0]}=e1)`")
    first_shape = scope.values[sources[inputs[0]]].shape if inputs and inputs[0] in sources else scope.shape
    if first_shape is None or any(scope.values[v].shape is None for v in sources.values()):
        scope.shape = None
        return
    if len(first_shape) < 1 or first_shape[0] is None:
        raise LocatedError(f"cannot infer the input channels of `{node.callee}`", first_line(node.span), "declare the network's `input`")
    c_in = first_shape[0]
    env: dict[str, Val] = {"in": local("in_channels", c_in)}  # the block's names, bound to this call's values
    chosen: dict[str, Val] = {}
    params, defaults = [], []
    words: set[str] = set()  # parameters that hold words: no parameters of the generated class
    for p in block.params:
        # the signature comes from the definition, the same for every call: a default that uses `in` or the
        # parameters before it is an expression (`mid=None`, computed in __init__), any other a constant
        try:
            default = None if p.default is None else evaluate(p.default, env)
        except LocatedError as e:
            return _in_definition(scope, node, source, e, "a default may use `in` and the parameters before it")
        if isinstance(default, Val) and default.symbolic:
            defaults.append((p.name, default.e))
            params.append((p.name, None))
        else:
            params.append((p.name, value(default)))
        v = given[p.name][1] if p.name in given else default
        if isinstance(v, Word):  # a layer or an option's value: the block's code writes the word (no parameter)
            env[p.name] = v if isinstance(v, ChosenWord) else ChosenWord(v, None)
            words.add(p.name)
            params.pop()
            continue
        if isinstance(v, tuple):
            if not v or not all(isinstance(x, Val) for x in v):
                raise LocatedError(f"`{p.name}` of `{node.callee}` must be numbers, found {shown(p.default, v)}", node.span)
            env[p.name] = tuple_name(p.name, v, "local")
            chosen[p.name] = v
            continue
        env[p.name], chosen[p.name] = local(p.name, v), v
    # the other sizes of the input: numbers in the block, the caller's expressions again at its output
    inner_shape = (env["in"], *(hidden(f"dim{i}", d) for i, d in enumerate(first_shape[1:], 1)))
    sub = type(scope)(scope.prog, source, env, inner_shape, path=f"{scope.path}{attr}.", access=scope.child_access(attr),
                      defaults=scope.defaults)
    if inputs:  # the first input flows in; the others' sizes are numbers in the block's code (its class per shape)
        sub.inputs = inputs
        span = first_line(block.body[0].span)
        sub.bind_input(inputs[0], inner_shape, span, used=True)
        for name in inputs[1:]:
            shape = scope.values[sources[name]].shape
            pin(shape, reason=LITERAL)
            sub.bind_input(name, tuple(Val(value(d)) for d in shape), span, used=False)
    scope.prog.calls.append((node.callee, first_line(node.span), scope.source))
    try:
        printed = walk(scope, sub, block, node, inputs, sources, lambda steps: _printed_among(steps, sub.decided))
    finally:
        scope.prog.calls.pop()
    if sub.shape is None or any(shape is None for shape in sub.output_shapes):  # after an error inside
        scope.shape = None
        return
    # a parameter that only decided optional lines is this class's choice, as a word is: no parameter of it
    decided = sub.decided - printed - _printed_among([e for _, e in defaults], sub.decided)
    words |= decided
    params = [(name, d) for name, d in params if name not in decided]
    for name in decided & given.keys():  # the caller's own parameters that chose this class: its choice too
        v = given[name][1]
        if isinstance(v, Val) and v.e is not None:
            scope.decided |= {s.name for s in v.e.syms() if s.kind == "local" and s.name != "in_channels"}
    index = len(scope.prog.instances)
    scope.prog.instances.append(BlockInstance.make(block=node.callee, file=source.name, params=tuple(params), inputs=inputs,
                                             defaults=tuple(defaults), steps=tuple(sub.steps)))
    mapping = {"in_channels": as_val(c_in), **{f"<dim{i}>": d for i, d in enumerate(first_shape[1:], 1) if d is not None}}
    call_args = []
    for p in block.params:
        if p.name in words:
            continue
        if p.name in given:
            keyword, v = given[p.name]
            mapping[p.name] = as_val(v)
            call_args.append((keyword, v))
        else:
            mapping[p.name] = substitute(chosen[p.name], mapping)  # a default, in the caller's terms
    returned = [tuple(substitute(d, mapping) for d in shape) for shape in (sub.output_shapes if sub.outputs else (sub.shape,))]
    scope.shape = returned[-1]
    scope.returned = tuple(returned) if len(returned) > 1 else None  # several outputs: the line unpacks them
    found = expression_problem(largest(scope.shape, c_in, call_args), "an expression for this call's sizes")
    if found:
        raise LocatedError(found[0], first_line(node.span), found[1])
    pin_lost(c_in, call_args)  # numbers this call prints for sizes the caller's class cannot name
    if scope.first_in is None:
        scope.first_in = value(c_in)
    scope.steps.append(CallStep.make(name=attr, instance=index, call_args=tuple(call_args), in_channels=c_in, span=first_line(node.span),
                                     inputs=tuple(sources.get(name, "") for name in inputs), output_shape=plain(scope.shape)))


def _in_definition(scope: Scope, node: ast.Call, source, e: LocatedError, hint: str | None = None) -> None:
    """A mistake in the block's definition: reported in its file, with a note at this call; the shape after the
    call is unknown."""
    scope.prog.calls.append((node.callee, first_line(node.span), scope.source))
    scope.prog.report(e, source, hint)
    scope.prog.calls.pop()
    scope.shape = None


def block_inputs(block: ast.Block) -> tuple[str, ...]:
    """A block's named inputs, from its first line `input high, low` (empty: one unnamed input)."""
    first = block.body[0] if block.body else None
    if not isinstance(first, ast.Input):
        return ()
    names = []
    for v in first.values:
        if not isinstance(v, ast.Name) or v.id in ("in", "true", "false") or v.id in names:
            raise LocatedError("a block's `input` names its inputs, each once: `input high, low`", v.span,
                               "the shape of a block's input is its caller's")
        names.append(v.id)
    return tuple(names)

def _printed_among(x, names: set[str]) -> set[str]:
    """Those of the block-local `names` that the code of steps `x` prints (in any value, condition or nested step)."""
    found: set[str] = set()
    stack = [x] if names else []
    while stack and len(found) < len(names):
        x = stack.pop()
        kind = type(x)
        if kind in _PLAIN:
            continue
        if isinstance(x, Val):
            e = x.printed()
            if e is not None:
                found |= {s.name for s in e.syms()} & names
        elif isinstance(x, (tuple, list)):
            stack.extend(x)
        elif isinstance(x, Expr):
            found |= {s.name for s in x.concrete().syms()} & names
        elif dataclasses.is_dataclass(x):  # a step, a branch, a layer
            stack.extend(getattr(x, name) for name in kind.model_fields)
    return found


_PLAIN = frozenset((str, int, float, bool, type(None), Span))


def _written_kind(expr: ast.Expr, names: set[str]) -> str | None:
    """The kind of value a block parameter's default is, as written: a word (a name that is none of the block's
    `names`), a tuple, or a number (None where it cannot be told without evaluating it)."""
    if isinstance(expr, ast.Str) or (isinstance(expr, ast.Name) and expr.id not in names | {"in", "true", "false"}):
        return "a word"
    if isinstance(expr, ast.Tuple):
        return "a tuple"
    return "a number" if isinstance(expr, ast.Num) else None


def bind_args(scope: Scope, node: ast.Call, block: ast.Block,
             inputs: tuple[str, ...] = ()) -> tuple[dict[str, tuple[str | None, Any]], dict[str, str]]:
    """The call's arguments: (parameter -> (keyword or None, value)), and (block input -> the caller's value)."""
    names = [p.name for p in block.params]
    given: dict[str, tuple[str | None, Any]] = {}
    sources: dict[str, str] = {}
    positional = 0
    for arg in node.call_args:
        if isinstance(arg, ast.Keyword) and arg.key in inputs:
            if not (isinstance(arg.value, ast.Name) and arg.value.id in scope.values):
                found = f"`{arg.value.id}` is not a value here" if isinstance(arg.value, ast.Name) else "this is not a value's name"
                raise LocatedError(f"the input `{arg.key}` of `{node.callee}` takes a named value: {found}", arg.value.span,
                                   did_you_mean(arg.value.id, scope.values) if isinstance(arg.value, ast.Name) else None)
            if arg.key in sources:
                raise LocatedError(f"`{arg.key}` is given twice", arg.span)
            scope.values[arg.value.id].used = True
            sources[arg.key] = arg.value.id
            continue
        if isinstance(arg, ast.Keyword):
            if arg.key not in names:
                raise LocatedError(f"`{node.callee}` has no parameter `{arg.key}`", arg.key_span,
                                   did_you_mean(arg.key, names) or f"its parameters are: {listing(names) or 'none'}")
            key, keyword = arg.key, arg.key
        elif isinstance(arg, ast.Positional):
            if given and any(k is not None for k, _ in given.values()):
                raise LocatedError("a positional argument after a keyword argument", arg.span)
            if positional >= len(names):
                raise LocatedError(f"too many arguments: `{node.callee}` takes {len(names)}", arg.span,
                                   f"its parameters are: {listing(names) or 'none'}")
            key, keyword = names[positional], None
            positional += 1
        else:
            raise LocatedError("a block call takes values, not channels", arg.span)
        if key in given:
            raise LocatedError(f"`{key}` is given twice", arg.span)
        v = evaluate(arg.value, scope.env)
        param = next(p for p in block.params if p.name == key)
        default = None if param.default is None else _written_kind(param.default, set(names))
        if isinstance(v, Word) and not isinstance(v, ChosenWord) and not (default == "a word" or (default is None and v in REGISTRY)):
            raise LocatedError(f"unknown name `{v}`", arg.value.span, did_you_mean(v, scope.env))
        if default == "a tuple" and kind_of(v) == "a number" and isinstance(param.default, ast.Tuple):
            v = (v,) * len(param.default.items)  # `k=3` for a kernel whose default is `(1, 7)`: (3, 3), as torch's kernel_size=3
        mismatch = kind_mismatch(default, v) if default is not None else None
        if mismatch:
            raise LocatedError(f"`{key}` of `{node.callee}` {mismatch}", arg.value.span)
        given[key] = (keyword, v)
    for p in block.params:
        if p.name not in given and p.default is None:
            raise LocatedError(f"`{node.callee}` needs a value for `{p.name}`", first_line(node.span),
                               f"e.g. `{node.callee}({', '.join(names)})`")
    return given, sources



