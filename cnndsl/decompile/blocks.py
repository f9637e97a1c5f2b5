"""From traced units to blocks: every class of user module becomes one block (or a few, where its instances differ
in structure), every call of an instance a call of its block with that instance's arguments; then repeated calls in
a named group fold into repetitions (`x3`, `x(4, i)`)."""

from __future__ import annotations

from typing import Any

from .emit import value
from .generalize import Mismatch, Params, fill, order, unify
from .nodes import Body, Call, Expr, Group, Layer, Merge
from .structure import body
from .trace import Decompose, Unit


def walk(stages: list):
    for s in stages:
        yield s
        if isinstance(s, Group):
            yield from walk(s.stages)
        elif isinstance(s, Merge):
            for b in s.branches:
                yield from walk(b)


def _calls(b: Body):
    for line in b.lines:
        for s in walk(line.stages):
            if isinstance(s, Call):
                yield s


def _in_channels(u: Unit) -> int:
    shape = u.in_shapes[0] if u.in_shapes else ()
    return shape[1] if len(shape) > 1 else 0


class Blocks:
    """The blocks of a decompiled model, in the order a file defines them (a block before the blocks that call it)."""

    def __init__(self, dec: Decompose):
        self.dec = dec
        self.bodies: dict[int, Body] = {id(u): body(u) for u in dec.units.values()}
        self.defined: list[tuple[str, list, Body]] = []
        self.taken: set[str] = set()
        self.info: dict[int, tuple[str, dict, list]] = {}
        classes: dict[type, list[Unit]] = {}
        for u in dec.units.values():
            if u is not dec.root:
                classes.setdefault(type(u.module), []).append(u)
        depth: dict[int, int] = {}

        def height(u: Unit) -> int:  # how deep the calls below a unit go: a class after every class it calls
            if id(u) not in depth:
                depth[id(u)] = 1 + max((height(c.instance) for c in _calls(self.bodies[id(u)]) if c.instance is not None), default=0)
            return depth[id(u)]

        for cls in sorted(classes, key=lambda c: max(height(u) for u in classes[c])):
            self.generalize(cls.__name__, classes[cls])
        self.resolve(self.bodies[id(dec.root)])
        self.root = self.bodies[id(dec.root)]
        for b in [self.root] + [d[2] for d in self.defined]:
            for line in b.lines:
                fold(line.stages)

    def resolve(self, b: Body) -> None:
        for c in _calls(b):
            if c.instance is not None and id(c.instance) in self.info:
                c.block, c.args, c.params = self.info[id(c.instance)]

    def generalize(self, name: str, units: list[Unit]) -> None:
        for u in units:
            self.resolve(self.bodies[id(u)])
        clusters: list[list[Unit]] = []
        for u in units:
            for c in clusters:
                try:
                    unify([self.bodies[id(x)] for x in c + [u]])
                except Mismatch:
                    continue
                c.append(u)
                break
            else:
                clusters.append([u])
        clusters.sort(key=len, reverse=True)  # the class's own name goes to most of its instances
        for c in clusters:
            template = unify([self.bodies[id(x)] for x in c])
            params = Params(c, [_in_channels(x) for x in c])
            fill(template, params)
            block = self._name(name)
            ordered = order(params.params)
            self.defined.append((block, ordered, template))
            for i, u in enumerate(c):
                self.info[id(u)] = (block, {p.name: p.values[i] for p in ordered}, ordered)

    def _name(self, name: str) -> str:
        base = name.lstrip("_") if name.lstrip("_").isidentifier() else "Block"  # `_DenseLayer`: no leading underscore
        found, n = base, 2
        while found in self.taken:
            found, n = f"{base}_{n}", n + 1
        self.taken.add(found)
        return found


def _same_call(a: Any, b: Any) -> bool:
    return isinstance(a, Call) and isinstance(b, Call) and a.block == b.block and a.name is None and b.name is None \
        and not getattr(a, "count", None) and not getattr(b, "count", None) and a.args == b.args \
        and not getattr(a, "given", None) and not getattr(b, "given", None)


def fold_layers(stages: list) -> None:
    """In a named group, a run of n >= 2 equal copies of a few unnamed layers becomes a splice, `*(conv 64 k3 p1 |
    relu inplace) x2`: its stages land numbered in the group as the copies did."""
    i = 0
    while i < len(stages):
        best = None
        for period in range(1, 7):
            unit = stages[i:i + period]
            if len(unit) < period or not all(isinstance(s, Layer) and s.name is None for s in unit):
                break
            if unit[0].op in ("maxpool", "avgpool", "lppool"):  # a pool ends a stage, it does not start one
                break
            n = 1
            while stages[i + n * period:i + (n + 1) * period] == unit:
                n += 1
            if n >= 2 and period * n > 2 and (best is None or period * n > best[0] * best[1]):
                best = (period, n)
        if best:
            period, n = best
            stages[i:i + period * n] = [Group(name=None, stages=stages[i:i + period], splice=True, count=n)]
        i += 1


def fold(stages: list, in_group: bool = False) -> None:
    """Runs of calls of one block in a named group (where stages are numbered, not named) fold into repetitions:
    equal calls into `x3`, a first call that differs from the equal rest into `x(n, i)` with `(a if i == 0 else b)`."""
    for s in stages:
        if isinstance(s, Group):
            fold(s.stages, True)
        elif isinstance(s, Merge):
            for b in s.branches:
                fold(b)
    if in_group:
        fold_layers(stages)
    i = 0
    while i < len(stages):
        s = stages[i]
        if not (isinstance(s, Call) and getattr(s, "in_group", False) and s.name is None):
            i += 1
            continue
        j = i + 1
        while j < len(stages) and _same_call(stages[j], stages[i + 1] if i + 1 < len(stages) else None) \
                and getattr(stages[j], "in_group", False):
            j += 1
        first_equal = j > i + 1 and _same_call(s, stages[i + 1])
        if j - i < 2:
            i += 1
            continue
        rest = stages[i + 1]
        if s.block != rest.block:
            i += 1
            continue
        if not first_equal and any(p.default is None and s.args.get(p.name) != rest.args.get(p.name) for p in s.params):
            i += 1  # a first call with other channels reads better on its own line
            continue
        if first_equal:
            folded = Call(block=s.block, args=dict(s.args), name=None, stateful=s.stateful)
            folded.count = j - i
        else:
            args = {}
            for k in s.args:
                a, b = s.args[k], rest.args.get(k)
                args[k] = a if a == b and type(a) is type(b) else Expr(f"({value(a)} if i == 0 else {value(b)})")
            folded = Call(block=s.block, args=args, name=None, stateful=s.stateful)
            folded.count = (j - i, "i")
        folded.params, folded.in_group = s.params, True
        stages[i:j] = [folded]
        i += 1
