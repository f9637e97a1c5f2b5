"""From traced units to blocks: every class of user module becomes one block (or a few, where its instances differ
in structure), every call of an instance a call of its block with that instance's arguments; then repeated calls in
a named group fold into repetitions (`x3`, `x(4, i)`)."""

from __future__ import annotations

from typing import Any

from .emit import value
from .generalize import Mismatch, Params, fill, order, unify
from .nodes import Body, Call, Expr, Group, Layer, Line, Merge
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
        absorb(self.bodies, [u for u in dec.units.values() if u is not dec.root])
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
            fold_calls(b)

    def resolve(self, b: Body) -> None:
        for c in _calls(b):
            if c.instance is not None and id(c.instance) in self.info:
                c.block, c.args, c.params = self.info[id(c.instance)]

    def generalize(self, name: str, units: list[Unit]) -> None:
        for u in units:
            self.resolve(self.bodies[id(u)])
            fold_calls(self.bodies[id(u)])  # before unifying: `DenseLayer() x6` and `x12` are one block, `x(n)`
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


def absorb(bodies: dict[int, Body], units: list[Unit]) -> None:
    """A class every instance of which is called once, as the second branch of `cat:` after `identity` (DenseNet's
    layers, which return their new channels only), takes the merge into its body: the block returns the
    concatenation and its callers call it alone, so a dense block is a chain of calls."""
    sites: dict[int, list] = {}
    calls: dict[int, int] = {}

    def visit(stages: list) -> None:
        for k, s in enumerate(stages):
            if isinstance(s, Merge):
                inner = s.branches[1] if s.kind == "cat" and len(s.branches) == 2 and not s.branches[0] else []
                if len(inner) == 1 and isinstance(inner[0], Call) and inner[0].instance is not None and not s.cond \
                        and not any(s.branch_conds) and not getattr(inner[0], "given", None):
                    sites.setdefault(id(inner[0].instance), []).append((stages, k))
                for b in s.branches:
                    visit(b)
            elif isinstance(s, Group):
                visit(s.stages)

    for b in bodies.values():
        for line in b.lines:
            visit(line.stages)
        for c in _calls(b):
            if c.instance is not None:
                calls[id(c.instance)] = calls.get(id(c.instance), 0) + 1
    classes: dict[type, list[Unit]] = {}
    for u in units:
        classes.setdefault(type(u.module), []).append(u)
    for members in classes.values():
        if not all(len(sites.get(id(u), [])) == 1 and calls.get(id(u)) == 1 and _plain(bodies[id(u)]) for u in members):
            continue
        for u in members:
            stages, k = sites[id(u)][0]
            stages[k] = stages[k].branches[1][0]
            own = bodies[id(u)]
            own.lines = [Line(stages=[Merge(kind="cat", branches=[[], own.lines[0].stages])])]


def _plain(b: Body) -> bool:
    """One pipeline from the input to the output: no named values, one input, one output."""
    return len(b.lines) == 1 and not b.lines[0].targets and b.lines[0].source is None and not b.inputs and not b.outputs


def fold_calls(b: Body) -> None:
    """Outside named groups, a run of equal calls of a block that are all its calls in the body and take the
    checker's automatic names (`denselayer1`, `denselayer2`, ...) is one repetition, `DenseLayer() x6`."""
    kinds: dict[str, int] = {}
    for c in _calls(b):
        kinds[c.block.lower()] = kinds.get(c.block.lower(), 0) + 1
    names = [s.name for line in b.lines for s in walk(line.stages) if getattr(s, "name", None)]
    for line in b.lines:
        st = line.stages
        for i, s in enumerate(st):
            if not isinstance(s, Call) or getattr(s, "in_group", False) or getattr(s, "count", None) or getattr(s, "given", None):
                continue
            kind = s.block.lower()
            sep = "_" if kind[-1].isdigit() else ""
            j = i
            while j < len(st) and isinstance(st[j], Call) and st[j].block == s.block and st[j].args == s.args and \
                    not getattr(st[j], "given", None) and not getattr(st[j], "count", None) and \
                    st[j].name == f"{kind}{sep}{j - i + 1}":
                j += 1
            taken = sum(1 for n in names if n.startswith(kind))  # no other stage takes one of the names
            if j - i >= 2 and j - i == kinds[kind] == taken:
                folded = Call(block=s.block, args=dict(s.args), name=None, stateful=s.stateful)
                folded.count, folded.params = j - i, s.params
                st[i:j] = [folded]


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
