"""Merges, for cnndsl.semantics.scope: `add:`, `cat:`, `mul:` and `split N:` over branches, with their conditions,
and the inline joins `cat(e1)`, `add(e1)`, `mul(e1)` with named values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Span, did_you_mean, first_line
from ..ir.network import Branch, JoinStep, MergeStep
from ..ir.values import Val, as_val, plain, same, value
from ..ops.common import fmt_shape
from ..syntax import ast
from .pins import DECIDED, EQUAL, LITERAL, MERGE, divides, equal, pin
from .resolve import LocatedError, condition, condition_deps, evaluate, truth

MERGES = ("add", "cat", "mul", "split")
JOINS = ("add", "cat", "mul")

if TYPE_CHECKING:
    from .scope import Scope


def merge(scope: Scope, stmt: ast.Labeled) -> None:
    kind, head = stmt.label, stmt.label_span
    if scope.sequential:
        raise LocatedError(f"a merge (`{kind}:`) cannot be inside a named group", head, "put it in a block, and call the block")
    parts = 0
    if kind == "split":
        if len(stmt.args) != 1 or not isinstance(stmt.args[0], ast.Positional):
            raise LocatedError("`split` needs the number of parts, e.g. `split 2:`", head)
        n = evaluate(stmt.args[0].value, scope.env)
        if not (isinstance(n, Val) and type(n.v) is int and n.v >= 2):
            raise LocatedError("`split` needs at least 2 parts", stmt.args[0].span,
                               "a split into one part is its input: drop `split 1:` and keep its branch")
        parts = n.v
        pin(n, reason=LITERAL)  # torch.chunk(x, 2): a number in the code
    elif stmt.args:
        raise LocatedError(f"`{kind}:` takes no arguments", stmt.args[0].span)
    lines = [s for s in stmt.body]
    for s in lines:
        if not (isinstance(s, ast.Line) or _nested(s)):
            raise LocatedError(f"the body of `{kind}:` holds branches, one pipeline or merge per line", first_line(s.span),
                               "name a value before the merge, or put the lines in a block and call it")
    if kind == "split" and len(lines) != parts:
        raise LocatedError(f"`split {parts}:` needs {parts} branches, found {len(lines)}", head)
    if kind != "split" and len(lines) < 2:
        raise LocatedError(f"`{kind}:` needs at least two branches, one per line", head)
    enabled, merge_cond, flag = True, None, None
    if stmt.condition is not None:
        if kind == "split":
            raise LocatedError("`split` takes no condition: without the merge its branches would see only part of the channels",
                               stmt.condition.span, "put the condition on a branch, or call a block conditionally")
        x = evaluate(stmt.condition, scope.env)
        enabled = truth(stmt.condition, x, scope.env)
        merge_cond = condition(stmt.condition, scope.env, x)
        if merge_cond is None:  # no parameter in it: decided here, and the class needs no `if`
            pin(x, reason=DECIDED)
        else:
            flag = scope.condition_key()  # the module keeps it in an attribute that the backend names
    start = scope.shape
    if start is None:
        return
    branch_in = start
    if kind == "split":
        c = start[0]
        if c is not None and not divides(parts, c):
            raise LocatedError(f"`split {parts}` needs channels divisible by {parts}, found {value(c)} in {fmt_shape(start)}", head)
        branch_in = (None if c is None else c // parts, *start[1:])
    branches: list[Branch] = []
    outputs: list[tuple[int, tuple]] = []
    saved = scope.steps
    for i, line in enumerate(lines):
        active = enabled or i == 0
        cond = None
        if _nested(line):  # a merge as a branch (`cat:` inside `cat:`): its condition is its own
            if not active:
                _skip_merge(scope, line)
                branches.append(Branch.make(active=False))
                continue
            scope.steps, scope.shape = [], branch_in
            try:
                merge(scope, line)
            finally:
                branch_steps, scope.steps = scope.steps, saved
            if scope.shape is None:
                return
            branches.append(Branch.make(steps=tuple(branch_steps), active=True))
            outputs.append((i, scope.shape))
            lines[i] = _LineLike(_At(first_line(line.span)))  # a mismatch points at its first line
            continue
        if line.condition is not None:
            if kind == "mul":
                raise LocatedError("a branch of `mul` takes no condition: a false branch would be the identity and square the input",
                                   line.condition.span, "make the whole merge conditional: `mul if condition:`")
            x = evaluate(line.condition, scope.env)
            active = active and truth(line.condition, x, scope.env)
            cond = condition(line.condition, scope.env, x)
            if kind == "cat":  # the branch or its input: the concatenation's channels follow the condition
                pin(condition_deps(line.condition, scope.env), reason=MERGE)
            if cond is None:
                pin(x, reason=DECIDED)
                if not active:  # decided here: the branch is the identity
                    scope.skip(line.pipeline)
                    branches.append(Branch.make(identity=True, active=True))
                    if enabled or i == 0:
                        outputs.append((i, branch_in))
                    continue
        if _is_identity(line.pipeline):
            branches.append(Branch.make(identity=True, condition=cond, active=active))
            if enabled or i == 0:
                outputs.append((i, branch_in))
            continue
        if not active:
            scope.skip(line.pipeline)
            branches.append(Branch.make(condition=cond, active=False))
            if line.condition is not None and (enabled or i == 0):
                outputs.append((i, branch_in))  # a false condition makes the branch the identity
            continue
        scope.steps, scope.shape = [], branch_in
        try:
            scope.pipeline(line.pipeline)
        finally:
            branch_steps, scope.steps = scope.steps, saved
        if scope.shape is None:
            return
        branch_flag = None
        if cond is not None and not any(s.declares for s in branch_steps):
            branch_flag = scope.condition_key()  # no module to test for None in forward: the backend names a flag
        branches.append(Branch.make(steps=tuple(branch_steps), condition=cond, active=True, flag=branch_flag))
        outputs.append((i, scope.shape))
    scope.shape = _combine(scope, kind if enabled else "first", outputs, lines, head)
    if stmt.condition is not None and kind != "add" and not (enabled and all(map(same, scope.shape, outputs[0][1]))):
        pin(condition_deps(stmt.condition, scope.env), reason=MERGE)  # on and off give different shapes
    if kind == "split" and enabled and all(out[0] is branch_in[0] or (out[0] is not None and branch_in[0] is not None and
                                               value(out[0]) == value(branch_in[0]) and as_val(out[0]).printed() == as_val(branch_in[0]).printed())
                                               for _, out in outputs):
        scope.shape = (start[0], *scope.shape[1:])  # each part kept its channels: the whole, not c // 2 + c // 2
    if not enabled and merge_cond is None:  # a merge switched off here for good: only its first branch
        first = branches[0]
        if not first.identity:
            scope.steps.extend(first.steps)
        return
    scope.steps.append(MergeStep.make(name=flag, merge=kind, parts=parts, branches=tuple(branches), condition=merge_cond,
                           active=enabled, output_shape=plain(scope.shape), span=head))

def _combine(scope: Scope, kind: str, outputs: list[tuple[int, tuple]], lines, head: Span,
             labels: tuple[str, ...] | None = None) -> tuple:
    """The merged shape of the outputs, (index, shape) each; a mismatch names output i `labels[i]`, or branch i+1."""
    (i0, first), rest = outputs[0], outputs[1:]
    if kind == "first" or not rest:
        return first
    if kind in ("add", "mul"):
        shape = list(first)
        for i, other in rest:
            if len(other) != len(first):
                raise _mismatch(kind, i0, first, i, other, None, lines[i], labels)
            for axis, b in enumerate(other):
                a = shape[axis]
                if a is None or b is None:
                    # torch broadcasts: an unknown size against 1 is that unknown size, against k it is k
                    known = b if a is None else a
                    shape[axis] = None if known is None or value(known) == 1 else known
                    continue
                if equal(a, b):
                    continue
                if kind == "mul" and (value(a) == 1 or value(b) == 1):
                    pin(*(x for x in (a, b) if value(x) == 1), reason=EQUAL)  # which one broadcasts
                    shape[axis] = a if value(b) == 1 else b
                    continue
                raise _mismatch(kind, i0, first, i, other, axis, lines[i], labels)
        return tuple(shape)
    total = first[0]
    for i, other in rest:  # cat and split: all but the channels must match
        if len(other) != len(first):
            raise _mismatch("cat", i0, first, i, other, None, lines[i], labels)
        for axis in range(1, len(first)):
            a, b = first[axis], other[axis]
            if a is not None and b is not None and not equal(a, b):
                raise _mismatch(kind, i0, first, i, other, axis, lines[i], labels)
        total = None if total is None or other[0] is None else total + other[0]
    return (total, *first[1:])

def _mismatch(kind, i, a, j, b, axis, line, labels=None) -> LocatedError:
    need = {"add": "the same shape", "mul": "shapes that broadcast", "cat": "the same shape but for the channels",
            "split": "the same shape but for the channels"}[kind]
    hint = None
    if axis is None:
        where = ": they have different ranks"
    else:
        first = 1 if kind in ("cat", "split") else 0  # the channels may differ in a concatenation
        axes = [k for k in range(first, len(a)) if a[k] is not None and b[k] is not None and value(a[k]) != value(b[k])
                and not (kind == "mul" and 1 in (value(a[k]), value(b[k])))]
        named = [f"{k + 1} ({_axis_name(k + 1, len(a) + 1)})" for k in axes]
        where = f": they differ in axis {named[0]}" if len(named) == 1 else \
            f": they differ in axes {', '.join(named[:-1])} and {named[-1]}"
        if kind != "mul":
            sizes, channels = any(k > 0 for k in axes), 0 in axes
            hint = ("make the channels and sizes agree, e.g. with a strided 1x1 conv on one side" if sizes and channels else
                    "make the sizes agree, e.g. with a stride, a pool or an upsampling on one side" if sizes else
                    "make the channels agree, e.g. with a 1x1 conv on one side")
    return LocatedError(
        f"`{kind}` needs branches of {need}, but {_called(i, labels)} gives {fmt_shape(a)} and {_called(j, labels)} gives {fmt_shape(b)}{where}",
        line.pipeline.span,
        hint,
    )

def join(scope: Scope, node: ast.Call) -> None:
    kind = node.callee
    if node.args or node.name is not None:
        raise LocatedError(f"`{kind}(...)` takes only the names of values", first_line(node.span))
    if scope.sequential:
        raise LocatedError(f"`{kind}(...)` cannot be inside a named group", first_line(node.span))
    names = []
    for arg in node.call_args:
        if not (isinstance(arg, ast.Positional) and isinstance(arg.value, ast.Name)):
            raise LocatedError(f"`{kind}(...)` takes the names of values, e.g. {kind}(e1)", arg.span)
        name = arg.value.id
        if name not in scope.values and name in scope.later:
            raise LocatedError(scope.used_before(name), arg.span, "move the line that defines it above this one")
        if name not in scope.values:
            raise LocatedError(f"`{name}` is not a named value (or is used before it is defined)", arg.span,
                               did_you_mean(name, scope.values) or f"define it first: `{name} = pipeline`")
        scope.values[name].used = True
        names.append(name)
    if not names:
        raise LocatedError(f"`{kind}()` needs at least one value", first_line(node.span))
    if scope.shape is None or any(scope.values[n].shape is None for n in names):
        scope.shape = None  # a value whose pipeline failed: that error is reported already
        return
    outputs = [(0, scope.shape)] + [(i + 1, scope.values[n].shape) for i, n in enumerate(names)]
    labels = ("the pipeline", *(f"`{n}`" for n in names))  # rather than branch numbers
    scope.shape = _combine(scope, kind, outputs, [_LineLike(node)] * len(outputs), node.span, labels)
    scope.steps.append(JoinStep.make(merge=kind, values=tuple(names), output_shape=plain(scope.shape), span=first_line(node.span)))


def _called(i: int, labels: tuple[str, ...] | None) -> str:
    return labels[i] if labels else f"branch {i + 1}"


@dataclass
class _LineLike:
    """Lets an inline merge report through the same path as a merge's branch."""

    node: Any

    @property
    def pipeline(self):
        return self.node


@dataclass
class _At:
    span: Span


def _nested(s) -> bool:
    return isinstance(s, ast.Labeled) and s.label in MERGES and s.pipeline is None


def _skip_merge(scope: Scope, stmt: ast.Labeled) -> None:
    """A nested merge in a branch that is off: its layers keep their names, as a skipped pipeline's do."""
    for s in stmt.body:
        if _nested(s):
            _skip_merge(scope, s)
        elif isinstance(s, ast.Line):
            scope.skip(s.pipeline)


def _is_identity(p: ast.Pipeline) -> bool:
    return len(p.stages) == 1 and isinstance(p.stages[0], ast.Layer) and p.stages[0].op == "identity" and not p.stages[0].args and p.stages[0].name is None


def _axis_name(axis: int, rank: int) -> str:
    if axis == 1:
        return "channels"
    names = {3: ("length",), 4: ("height", "width"), 5: ("depth", "height", "width")}.get(rank)
    return names[axis - 2] if names and axis - 2 < len(names) else f"dimension {axis}"
