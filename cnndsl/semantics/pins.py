"""Pins: the network parameters whose compiled values the generated code uses without recomputing them.

A parameter is *pinned* where the code prints a number computed from it (a spatial size, a number a block's
class cannot name), where a check held only for its compiled value (two sizes that agree, a size that
divides evenly), or where it decides something at compile time (a condition, a merge's shape, a branch whose
layers no instance of a generated class contains). The generated network refuses any other value for it with a
ValueError (codegen prints the check from CheckedNetwork.pinned).

The ops and the walker record pins while they check (`pin`, `pin_lost`, `equal`, `divides`) into the table
of the check in progress: `recording()` gives each check a table of its own for its duration (a ContextVar,
set and reset with a token), so that two checks in two threads, or a check started inside another, never see
each other's pins; outside a check nothing is recorded. When the check is done, `pinned_params` turns its
table and the checked network (the branches no instance of a class filled, cnndsl.ir.classes) into the explicit
field `CheckedNetwork.pinned`, which the checker passes in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from ..ir.classes import block_classes
from ..ir.values import Poly, as_val, deps, expr_deps, lost, same, value
from ..ir.visitor import StepVisitor

if TYPE_CHECKING:
    from ..ir.network import CheckedNetwork

_TABLE: ContextVar[dict | None] = ContextVar("cnndsl_pins", default=None)  # the check in progress's: name -> why

SPATIAL = "it sets a spatial size"
LITERAL = "it sets a number this file writes as a literal"
EQUAL = "two sizes that must agree depend on it"
DECIDED = "it decides a condition that was settled when this file was compiled"
BRANCH = "it decides a branch whose layers this file does not contain"
MERGE = "it decides a conditional merge's shape"
LAYOUT = "it decides which dimensions a layer reorders, flattens or scales"
DIVIDES = "a size that must divide evenly depends on it"
EXISTS = "it decides whether a layer or parameter that an init rule sets exists"
CHOSEN = "it chooses a layer or an option's value"
COUNT = "it sets how many times a part repeats"


@contextmanager
def recording() -> Iterator[dict[str, str]]:
    """A fresh pin table for the check run inside (name -> the first reason recorded), restoring the enclosing
    check's table (if any) afterwards."""
    table: dict[str, str] = {}
    token = _TABLE.set(table)
    try:
        yield table
    finally:
        _TABLE.reset(token)


def pin(*xs, reason: str) -> None:
    """Record the network parameters behind these values as pinned: their compiled values are used concretely."""
    table = _TABLE.get()
    names = deps(*xs) if table is not None else ()
    if names:
        for name in sorted(names):
            table.setdefault(name, reason)


def record(name: str, reason: str) -> None:
    """Record one parameter as pinned, as `pin` does (a walk replayed from cnndsl.semantics.memo)."""
    table = _TABLE.get()
    if table is not None:
        table.setdefault(name, reason)


def pin_lost(*xs) -> None:
    """Pin the parameters behind numbers that the code prints in place of hidden sizes."""
    table = _TABLE.get()
    for name in sorted(lost(*xs)) if table is not None else ():
        table.setdefault(name, LITERAL)


def equal(a, b) -> bool:
    """`value(a) == value(b)`, for a check that two sizes agree; when they agree only for the compiled values
    (not as expressions), their parameters are pinned."""
    result = value(a) == value(b)
    if result and not same(a, b):
        pin(a, b, reason=EQUAL)
    return result


def divides(d, x) -> bool:
    """Whether `d` divides `x` (both known), pinning their parameters unless it holds for every value."""
    dv, xv = value(d), value(x)
    if dv == 1 and getattr(d, "e", None) is None:  # the constant 1 divides every value: nothing to pin
        return True
    ok = dv != 0 and xv % dv == 0
    if ok and (getattr(d, "e", None) is not None or getattr(x, "e", None) is not None):  # else numbers: exact
        e, k = as_val(x).expr().outer(), as_val(d).expr().outer()
        exact = same(d, x) or (isinstance(k, Poly) and k.is_const and isinstance(e, Poly) and k.const > 0 and
                               e.const % k.const == 0 and all(c % k.const == 0 for _, c in e.terms))
        if not exact:
            pin(d, x, reason=DIVIDES)
    return ok


def pinned_params(net: CheckedNetwork, table: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The network's pinned parameters, (name, why), in declaration order (CheckedNetwork.pinned): from what its
    check recorded (`table`, from `recording`) and from the branches of the generated classes that no instance
    filled."""
    names = [p.name for p in net.params]
    found = {name: table[name] for name in names if name in table}
    for name in _unfilled_branch_deps(net, set(names)):
        found.setdefault(name, BRANCH)
    for name in _init_target_deps(net, set(names)):
        found.setdefault(name, EXISTS)
    layers = {layer.name: layer for layer in net.layers}
    for rule in net.init_rules:  # a rule sets a weight or bias that a parameter could take away
        for name in rule.layers:
            flags = [v for k, v in layers[name].kwargs if k in ("bias", "affine", "elementwise_affine")] if name in layers else []
            for dep in sorted(deps(*flags) & set(names)):
                found.setdefault(dep, EXISTS)
    return tuple((name, found[name]) for name in names if name in found)


class _Slots(StepVisitor):
    """(branch, its condition) for each conditional branch of steps, in the order the code generator numbers
    their slots (cnndsl.backend.pytorch.emit.Body.slot), a branch's own slots after it. Only merges have slots (a merge cannot
    be inside a named group)."""

    def of(self, steps):
        for step in steps:
            yield from self.visit(step)

    def visit_merge(self, step):
        for i, branch in enumerate(step.branches):
            if branch.identity and branch.condition is None:
                continue
            guarded = step.condition is not None and i > 0
            if branch.condition is None and not guarded:
                yield from self.of(branch.steps)
                continue
            yield branch, branch.condition if branch.condition is not None else step.condition
            if branch.active and not branch.identity:
                yield from self.of(branch.steps)

    def visit_layer(self, step):
        return ()

    visit_call = visit_group = visit_value = visit_use = visit_join = visit_output = visit_layer


def _slot_branches(steps):
    return _Slots().of(steps)


def _guard(step, i: int):
    """The condition that guards branch i of a merge step (its own, or the merge's for a later branch)."""
    branch = step.branches[i]
    return branch.condition if branch.condition is not None else step.condition if i > 0 else None


def _unfilled_branch_deps(net: CheckedNetwork, params: set[str]) -> set[str]:
    """The parameters behind the conditions of branches that no instance of a class took (the class has no
    code for them, so a value that would take them cannot be honoured), unless the condition fails for every
    value (`in != planes` where both are `c`). A block's condition reads its local names, each of which knows
    what it stands for in this instance (`outer`): its parameters follow from its structure."""
    steps, instances = net.steps, net.instances
    if not params:
        return set()
    out: set[str] = set()
    for branch, cond in _slot_branches(steps):  # the network's own class: one instance
        if not branch.active and not branch.identity:
            out |= expr_deps(cond) & params
    # the classes the code generator makes: a slot is filled where any instance of the class took it
    class_of = block_classes(instances) if any(True for inst in instances for _ in _slot_branches(inst.steps)) else {}
    filled: dict[object, set[int]] = {}
    for index, inst in enumerate(instances):
        for k, (branch, _) in enumerate(_slot_branches(inst.steps)):
            if branch.active and not branch.identity:
                filled.setdefault(class_of[index], set()).add(k)
    for index, inst in enumerate(instances):
        for k, (branch, cond) in enumerate(_slot_branches(inst.steps)):
            if branch.identity or k in filled.get(class_of[index], ()):
                continue
            out |= expr_deps(cond) & params
    return out


def _init_target_deps(net: CheckedNetwork, params: set[str]) -> set[str]:
    """The parameters behind the conditions around a layer that an init rule sets: the rule's line runs
    whether or not the layer exists."""
    targets = {name for rule in net.init_rules for name in rule.layers}
    if not targets or not params:
        return set()
    walk = _Around(targets)
    walk.flow(net.steps, frozenset())
    instances = net.instances
    for index in reversed(range(len(instances))):  # a caller comes after the instances it calls
        walk.flow(instances[index].steps, walk.around_call.get(index, frozenset()))
    return walk.out & params


class _Around(StepVisitor):
    """The parameters behind the conditions around each layer in `targets` (into `out`), and around each block
    call (`around_call`, by instance); every visit returns the conditions around the next step unchanged."""

    def __init__(self, targets: set[str]):
        self.targets, self.out, self.around_call = targets, set(), {}

    def visit_layer(self, step, around: frozenset) -> frozenset:
        if step.layer.name in self.targets:
            self.out.update(around)
        return around

    def visit_call(self, step, around: frozenset) -> frozenset:
        self.around_call[step.instance] = self.around_call.get(step.instance, frozenset()) | around
        return around

    def visit_group(self, step, around: frozenset) -> frozenset:
        self.flow(step.children, around)
        return around

    def visit_merge(self, step, around: frozenset) -> frozenset:
        for i, branch in enumerate(step.branches):
            cond = _guard(step, i)
            self.flow(branch.steps, around | (expr_deps(cond) if cond is not None else frozenset()))
        return around

    def visit_value(self, step, around: frozenset) -> frozenset:
        return around

    visit_use = visit_join = visit_output = visit_value

