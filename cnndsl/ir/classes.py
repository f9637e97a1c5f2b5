"""Which block instances share one generated class: a fact of the checked network, decided here (on the IR
side) and followed by the code generator (cnndsl.backend.pytorch.codegen) and the pin analysis (cnndsl.semantics.pins) alike.

Two instances of a block share a class when their code would be the same: the same signature and the same
steps as the backend prints them (values as their printed expressions, or as the numbers where they name no
parameter; conditions as their concrete expressions), except for conditional branches. Each conditional
branch is a *slot* (numbered in the order the code generator renders them, cnndsl.backend.pytorch.emit.Body.slot): filled by
the instances that took it, empty in the others. An instance joins the first class of its block whose steps
agree and whose filled slots agree with its own; a slot filled in one and empty in the other agrees.

The key mirrors what cnndsl.backend.pytorch.emit prints (and nothing that only comments or the state_dict path show: shapes,
spans, a layer's full name); codegen checks that every instance of a class renders to the class's text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .values import Val
from .visitor import StepVisitor

if TYPE_CHECKING:
    from .network import BlockInstance


def _lit(x):
    """A value as the backend prints it, structurally: a Val as its printed expression or its number; numbers
    with their type (1, 1.0 and True print differently)."""
    if isinstance(x, Val):
        e = x.printed()
        return ("e", e.key) if e is not None else _lit(x.v)
    if isinstance(x, tuple):
        return ("t", tuple(_lit(i) for i in x))
    return (type(x).__name__, repr(x))


def _cond(e):
    return None if e is None else e.concrete().key


class _Key(StepVisitor):
    """The structural key of one instance's steps; filled slots land in `slots` (number -> key or None)."""

    def __init__(self, class_of: dict[int, int]):
        self.class_of = class_of
        self.slots: dict[int, object] = {}

    def of(self, steps) -> tuple:
        return tuple(self.visit(step) for step in steps)

    def visit_layer(self, step):
        layer = step.layer
        return ("layer", step.name, layer.module, _lit(layer.args), tuple((k, _lit(v)) for k, v in layer.kwargs),
                layer.forward, layer.helper, layer.imports, step.indices, step.unpool, _lit(step.output_size),
                layer.external and layer.external.path)

    def visit_call(self, step):
        return ("call", step.name, self.class_of[step.instance], _lit(step.in_channels),
                tuple((k, _lit(v)) for k, v in step.call_args))

    def visit_group(self, step):
        return ("group", step.name, self.of(step.children))

    def visit_value(self, step):
        return ("value", step.name)

    def visit_use(self, step):
        return ("use", step.name)

    def visit_join(self, step):
        return ("join", step.merge, step.values)

    def visit_output(self, step):
        return ("output", step.values)

    def visit_merge(self, step):
        branches = []
        for i, branch in enumerate(step.branches):
            guarded = step.condition is not None and i > 0
            if branch.identity and branch.condition is None:
                branches.append(("identity",))
            elif branch.condition is None and not guarded:
                branches.append(("steps", self.of(branch.steps)))
            else:  # a slot, numbered before the slots inside it (as emit.Body.slot numbers them); what the
                key = len(self.slots)  # branch is, its condition and flag are printed only where it is filled
                if not branch.active or branch.identity:
                    self.slots[key] = None
                else:
                    self.slots[key] = (_cond(branch.condition), branch.flag, self.of(branch.steps))
                branches.append(("slot", key, branch.condition is None, guarded))
        return ("merge", step.name, step.merge, step.parts, _cond(step.condition), tuple(branches))


def block_classes(instances: tuple[BlockInstance, ...]) -> dict[int, int]:
    """Block instance -> the first instance of its generated class (itself where it starts a class), in the
    order the code generator declares the classes (inner instances come first)."""
    class_of: dict[int, int] = {}
    classes: list[tuple[int, str, tuple, dict]] = []  # (first instance, block, key, slots filled so far)
    for index, inst in enumerate(instances):
        walk = _Key(class_of)
        key = (tuple((n, _lit(v)) for n, v in inst.params), tuple((n, _cond(e)) for n, e in inst.defaults),
               walk.of(inst.steps))
        for first, block, other, slots in classes:
            if block == inst.block and other == key and all(
                    v is None or slots.get(k) is None or slots[k] == v for k, v in walk.slots.items()):
                for k, v in walk.slots.items():
                    if slots.get(k) is None:
                        slots[k] = v
                class_of[index] = first
                break
        else:
            classes.append((index, inst.block, key, dict(walk.slots)))
            class_of[index] = index
    return class_of
