"""The checks of block calls, kept from one check of a file to the next: the language server's re-check after a
keystroke walks again only the calls that the edit can change.

A call's walk (its block's body, with this call's values) is a function of what it reads, and that is all in its
key: the text and place of every block in reach (an edit inside any block changes every key: simple, and exact),
the limits in force, the callee, where the call is (its state_dict path, its attribute path, the blocks calling
it, the number of block instances before it: the indices its steps hold), its scope's values (each number with
the expression it came from, in the network's parameters, and those parameters' values) and its inputs' shapes.
A walk is kept only when it was clean: no diagnostic attempted, no `defaults` or per-layer `init` met (they hold
syntax nodes of the file), no exception. Replaying it does to the check what the walk did: the same layers and
block instances appended, the same pins recorded, the same work spent; a replay that would cross the `work` or
`layers` limit is not made (the walk runs and reports where it crosses).

So a check with a memo gives exactly what a check without one gives (tests/test_memo.py compares them on every
example and on edits of them). The memo keeps the entries the last analysis used, nothing older."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import limits
from ..ir.network import CallStep, CheckedLayer
from ..ir.values import Sym, Val
from ..ir.visitor import LayerMap
from . import pins
from .resolve import ChosenWord, Word

if TYPE_CHECKING:
    from ..syntax import ast
    from .scope import Program, Scope


class _Unkeyed(Exception):
    """A value the key cannot describe: the call is walked, not remembered."""


@dataclass(frozen=True)
class _Walk:
    """What one clean walk did: its module's results and what it added to the check."""

    shape: Any
    output_shapes: tuple
    outputs: tuple
    decided: frozenset
    steps: tuple
    printed: frozenset  # those of the parameters that decided optional lines (`decided`) which the steps print
    layers: tuple
    instances: tuple
    pinned: tuple  # (name, reason), in the order they were first recorded
    work: int
    path: str  # where it was walked: the module's state_dict prefix, its attribute path,
    access: tuple
    base: int  # and the number of block instances before it (its calls' instances follow)

    def replay(self, prog: Program, sub: Scope) -> bool:
        if prog.work.spent + self.work > prog.work.limit:
            return False
        if limits.problem("layers", len(prog.layers) + len(self.layers), ""):
            return False
        steps, layers, instances = self.steps, self.layers, self.instances
        if (sub.path, sub.access, len(prog.instances)) != (self.path, self.access, self.base):
            moved = _Moved(self, sub.path, sub.access, len(prog.instances))
            layers = tuple(moved.layer(layer) for layer in layers)
            steps = moved.steps(steps)
            instances = tuple(i.model_copy(update={"steps": moved.steps(i.steps)}) for i in instances)
        prog.work.spent += self.work
        prog.layers.extend(layers)
        prog.instances.extend(instances)
        for name, reason in self.pinned:
            pins.record(name, reason)
        sub.shape, sub.output_shapes, sub.outputs = self.shape, self.output_shapes, self.outputs
        sub.decided, sub.steps = set(self.decided), list(steps)
        return True


class _Moved(LayerMap):
    """A walk's steps as the same walk made elsewhere gives them: each layer's state_dict name and attribute path
    under the new module's, each call's instance index after the new instances before it."""

    def __init__(self, walk: _Walk, path: str, access: tuple, base: int):
        self.walk, self.path, self.access, self.base = walk, path, access, base
        self.moved: dict[int, CheckedLayer] = {}  # id(layer) -> where it is now: one object stays one object

    def layer(self, layer: CheckedLayer) -> CheckedLayer:
        found = self.moved.get(id(layer))
        if found is None:
            w = self.walk
            found = self.moved[id(layer)] = layer.model_copy(update={
                "name": self.path + layer.name[len(w.path):], "access": (*self.access, *layer.access[len(w.access):])})
        return found

    def call(self, step: CallStep) -> CallStep:  # the instances of a walk's calls are the walk's own
        return step.model_copy(update={"instance": step.instance - self.walk.base + self.base})


class CallMemo:
    """Clean walks of block calls by key, for one file's successive checks (cnndsl.lsp's Workspace keeps one per
    file). Not shared between threads."""

    def __init__(self) -> None:
        self._kept: dict = {}  # the entries of the previous analysis
        self._used: dict = {}  # the entries this analysis read or wrote
        self.hits = 0  # the walks replayed, since it was made

    def cycle(self) -> None:
        """An analysis is done: keep what it used, forget the rest."""
        self._kept, self._used = self._used, {}

    def get(self, key) -> _Walk | None:
        found = self._used.get(key)
        if found is None:
            found = self._kept.get(key)
            if found is not None:
                self._used[key] = found
        return found

    def put(self, key, walk: _Walk) -> None:
        self._used[key] = walk


def walk(scope: Scope, sub: Scope, block: ast.Block, node: ast.Call, inputs: tuple[str, ...], sources: dict[str, str],
         printed: Callable[[list], set[str]]) -> frozenset[str]:
    """`sub.body(block.body)` for the call `node` made in `scope`, or its replay from the check's memo; and
    `printed(sub.steps)` (the parameters that decided optional lines and that the steps print)."""
    prog = scope.prog
    memo = prog.memo
    key = _key(scope, sub, node, inputs, sources) if memo is not None else None
    if key is None:
        sub.body(block.body)
        return frozenset(printed(sub.steps))
    found = memo.get(key)
    if found is not None and found.replay(prog, sub):
        memo.hits += 1
        return found.printed
    clean = _untouched(prog)
    layers, instances, work = len(prog.layers), len(prog.instances), prog.work.spent
    pinned: dict[str, str] = {}
    try:
        with pins.recording() as pinned:
            sub.body(block.body)
    finally:
        for name, reason in pinned.items():  # what the walk recorded, for the check around it too
            pins.record(name, reason)
    names = frozenset(printed(sub.steps))
    if _untouched(prog) == clean:
        memo.put(key, _Walk(shape=sub.shape, output_shapes=tuple(sub.output_shapes), outputs=tuple(sub.outputs),
                            decided=frozenset(sub.decided), steps=tuple(sub.steps), printed=names,
                            layers=tuple(prog.layers[layers:]), instances=tuple(prog.instances[instances:]),
                            pinned=tuple(pinned.items()), work=prog.work.spent - work, path=sub.path, access=sub.access,
                            base=instances))
    return names


def _untouched(prog: Program) -> tuple:
    """What a walk that can be kept leaves as it was: the diagnostics attempted, the per-layer `init`s and the
    `defaults` met (syntax nodes of the file)."""
    return prog.reports, len(prog.layer_inits), len(prog.defaults_seen), len(prog.defaults_used)


def _key(scope: Scope, sub: Scope, node: ast.Call, inputs: tuple[str, ...], sources: dict[str, str]):
    if scope.defaults:  # `defaults` in force hold syntax nodes of this file
        return None
    prog = scope.prog
    try:
        return (
            prog.memo_base(),
            node.callee,
            tuple(name for name, _, _ in prog.calls),
            tuple((name, _key_of(v)) for name, v in sub.env.items()),
            tuple(_key_of(d) for d in sub.shape),
            inputs,
            tuple(_key_of(d) for name in inputs[1:] for d in (*scope.values[sources[name]].shape, None)),
        )
    except _Unkeyed:
        return None


def _key_of(x) -> Any:
    """A value of the walk's scope as a key: equal keys, equal walks."""
    if x is None or type(x) in (int, float, bool, str):
        return (type(x).__name__, x)
    if isinstance(x, ChosenWord):
        return ("chosen", str(x), x.param)
    if isinstance(x, Word):
        return ("word", str(x))
    if isinstance(x, tuple):
        return ("tuple", *(_key_of(i) for i in x))
    if isinstance(x, Val):
        if x.e is None:
            return (type(x.v).__name__, x.v)
        e = x.e  # a block's name stands for its outer expression (what `outer()` expands it to)
        outer = e.outer_expr if isinstance(e, Sym) and e.outer_expr is not None else e.outer()
        params = tuple(sorted((s.name, s.kind, type(s.value).__name__, s.value) for s in outer.syms()))
        return (type(x.v).__name__, x.v, x.e.key, outer.key, params)
    raise _Unkeyed


def blocks_key(blocks: dict) -> tuple:
    """Every block and module in reach: its name, file, place and text."""
    out = []
    for name, (block, source) in blocks.items():
        span = block.span
        lines = [source.line_text(i) for i in range(span.line, span.end_line + 1)]
        lines[-1] = lines[-1][:span.end_col - 1]
        lines[0] = lines[0][span.col - 1:]
        out.append((name, source.name, span.line, span.col, span.end_line, span.end_col, tuple(lines)))
    return tuple(out)


def limits_key() -> tuple:
    return tuple(limits.get(name) for name in limits.LIMITS)
