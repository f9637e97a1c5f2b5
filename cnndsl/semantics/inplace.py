"""The in-place rule: an `inplace` layer runs in place only where overwriting its input changes nothing else.

The checked network's forward is replayed abstractly — block calls inlined, so a block's input is its
caller's tensor — as tensors, the reads of each tensor, and storages (a view, an identity or a layer run in
place shares its input's storage). A layer that asks for `inplace` keeps it only when

- its input's storage belongs to this forward (not the network's input, which is the caller's tensor, nor a
  part of `split`, which torch.chunk returns as views that torch forbids changing in place);
- the op that last wrote that storage does not keep its output for backward (relu, sigmoid, tanh, softmax,
  and some activations run in place: the op facts in cnndsl/ops);
- nothing else reads the storage's earlier contents: no other branch of a merge, identity, named value,
  join, output, or an earlier layer (whose backward may need its input).

Elsewhere the layer runs out of place, with a warning that names the reader; the network computes the same
either way, which tests/test_inplace.py checks on thousands of generated networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import errors as _errors
from ..errors import Source, Span
from ..ir.network import (
    BlockInstance,
    Branch,
    CallStep,
    CheckedLayer,
    GroupStep,
    JoinStep,
    LayerStep,
    MergeStep,
    OutputStep,
    Step,
    StepVisitor,
    UseStep,
    ValueStep,
)
from ..ir.values import value
from ..ir.visitor import LayerMap, through_call
from ..ops.catalog import layer_spec

if TYPE_CHECKING:
    from ..errors import Diagnostic  # pydantic, made on first use


@dataclass(eq=False)
class _Read:
    who: str  # "the identity branch of `add:` (line 4)"
    span: Span | None
    file: str


@dataclass(eq=False)
class _Tensor:
    reads: list[_Read] = field(default_factory=list)


@dataclass(eq=False)
class _Event:
    """One op of the replayed forward: the tensor it reads first, the tensor it makes, and how."""

    input: _Tensor | None
    output: _Tensor
    read: _Read | None = None  # its read of `input`
    layer: CheckedLayer | None = None  # a layer (may run in place or pass its input through)
    file: str = ""
    calls: tuple = ()  # (block, call span, caller's file) from the network down to this layer
    alias: bool = False  # the output may be the input itself (a view, an identity, a merge switched off)
    external: _Read | None = None  # the output belongs to someone else (the caller, torch.chunk)
    keeps: _Read | None = None  # the op that keeps the output for backward, when one does


def _spec(layer: CheckedLayer):
    return layer_spec(layer)


def _asks_in_place(layer: CheckedLayer) -> bool:
    return any(k == "inplace" and (bool(value(v)) or getattr(v, "symbolic", False)) for k, v in layer.kwargs)


def _where(span: Span | None, file: str, here: str) -> str:
    if span is None:
        return ""
    return f" (line {span.line})" if file == here else f" ({file}, line {span.line})"


class _Replay(StepVisitor):
    """Pass 1: the forward as events and reads, in the order the generated code runs them."""

    def __init__(self, instances: tuple[BlockInstance, ...]):
        self.instances = instances
        self.events: list[_Event] = []

    def read(self, t: _Tensor, who: str, span: Span | None, file: str) -> _Read:
        r = _Read(who, span, file)
        t.reads.append(r)
        return r

    def new(self, event: _Event) -> _Tensor:
        self.events.append(event)
        return event.output

    def steps(self, steps, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        return self.flow(steps, cur, file, calls, env)

    def visit_value(self, step: ValueStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        env[step.name] = cur
        return cur

    def visit_use(self, step: UseStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        return env[step.name]

    def visit_output(self, step: OutputStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        for name in step.values:
            self.read(env[name], "`output`", step.span, file)
        return cur

    def visit_join(self, step: JoinStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        for t in [cur, *(env[n] for n in step.values)]:
            self.read(t, f"`{step.merge}({', '.join(step.values)})`", step.span, file)
        return self.new(_Event(None, _Tensor()))

    def visit_call(self, step: CallStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        inst = self.instances[step.instance]
        inner_calls = (*calls, (inst.block, step.span, file))
        return through_call(step, inst, cur, env, lambda x, inner: self.steps(inst.steps, x, inst.file, inner_calls, inner))

    def visit_group(self, step: GroupStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        return self.steps(step.children, cur, file, calls, env)

    def visit_layer(self, step: LayerStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        return self.layer(step.layer, cur, file, calls)

    def layer(self, layer: CheckedLayer, cur: _Tensor, file: str, calls: tuple) -> _Tensor:
        spec = _spec(layer)
        r = self.read(cur, f"`{layer.op}`", layer.span, file)
        keeps = _Read(f"`{layer.op}`", layer.span, file) if spec is not None and spec.keeps_output else None
        return self.new(_Event(cur, _Tensor(), r, layer, file, calls, alias=spec is not None and spec.returns_input, keeps=keeps))

    def visit_merge(self, step: MergeStep, cur: _Tensor, file: str, calls: tuple, env: dict) -> _Tensor:
        label = f"`{step.merge}:`"
        if step.merge == "split":
            self.read(cur, label, step.span, file)
            part = _Read(f"a part of {label}", step.span, file)
            inputs = [self.new(_Event(None, _Tensor(), external=part))
                      for _ in step.branches]
        else:
            inputs = [cur] * len(step.branches)
        outs: list[tuple[_Tensor, str]] = []
        for i, (branch, x) in enumerate(zip(step.branches, inputs)):
            conditional = branch.condition is not None or (step.condition is not None and i > 0)
            if branch.identity or not branch.active:
                outs.append((x, f"the identity branch of {label}" if branch.identity else f"branch {i + 1} of {label}"))
                continue
            out = self.steps(branch.steps, x, file, calls, env)
            outs.append((out, f"branch {i + 1} of {label}"))
            if conditional:  # where the condition is false at run time, the branch is its input
                outs.append((x, f"branch {i + 1} of {label} (when its condition is false)"))
        for t, who in outs:
            self.read(t, who, step.span, file)
        first = outs[0][0]
        # a merge switched off at run time (`add if cond:`) is its first branch itself
        return self.new(_Event(first if step.condition is not None else None, _Tensor(), alias=step.condition is not None))


@dataclass(eq=False)
class _Storage:
    external: _Read | None = None  # who owns it, when not this forward
    writer: _Read | None = None  # the op that keeps the current contents for backward
    reads: dict = field(default_factory=dict)  # id(read) -> read: every read of its tensors not yet passed through


def decide(steps: tuple[Step, ...], instances: tuple[BlockInstance, ...], file: str) -> dict[str, tuple[CheckedLayer, _Read | str, tuple]]:
    """The layers that asked for `inplace` and must run out of place: layer name -> (layer, the reader or the
    reason, where: (file, calls))."""
    replay = _Replay(instances)
    start = _Tensor()
    result = replay.steps(steps, start, file, (), {})
    replay.read(result, "the network's output", None, file)
    storage: dict[int, _Storage] = {id(start): _Storage(external=_Read("the network's input", None, file))}
    storage[id(start)].reads.update((id(r), r) for r in start.reads)
    out: dict[str, tuple] = {}

    def join(t: _Tensor, s: _Storage) -> None:
        storage[id(t)] = s
        s.reads.update((id(r), r) for r in t.reads)

    for ev in replay.events:
        s_in = storage.get(id(ev.input)) if ev.input is not None else None
        layer = ev.layer
        if layer is not None and _asks_in_place(layer):
            spec = _spec(layer)
            others = [r for k, r in s_in.reads.items() if k != id(ev.read)]
            reason = (("reads", others[0]) if others else ("owner", s_in.external) if s_in.external else
                      ("keeps", s_in.writer) if s_in.writer else None)
            if reason is None:
                del s_in.reads[id(ev.read)]  # passed through: the layer's output is the storage's new contents
                join(ev.output, s_in)
                s_in.writer = _Read(f"`{layer.op} inplace`", layer.span, ev.file) if (
                    spec.keeps_output or spec.keeps_output_in_place) else None
                continue
            out[layer.name] = (layer, reason, (ev.file, ev.calls))
            if not ev.alias:
                join(ev.output, _Storage(writer=ev.keeps))
                continue
        if ev.alias and s_in is not None:  # out of place, an op such as dropout still returns its input in eval
            if ev.read is not None:
                s_in.reads.pop(id(ev.read), None)
            join(ev.output, s_in)
            if ev.keeps:
                s_in.writer = ev.keeps
            continue
        join(ev.output, _Storage(external=ev.external, writer=ev.keeps))
    return out


def apply(steps: tuple[Step, ...], instances: tuple[BlockInstance, ...], layers: list[CheckedLayer], file: str,
          sources: dict[str, Source]) -> tuple[tuple[Step, ...], tuple[BlockInstance, ...], list[CheckedLayer], list[Diagnostic]]:
    """The network with every unsafe `inplace` dropped, and a warning for each."""
    if not any(_asks_in_place(layer) for layer in layers):  # nothing runs in place: nothing to decide
        return steps, instances, layers, []
    unsafe = decide(steps, instances, file)
    if not unsafe:
        return steps, instances, layers, []
    fixed = {name: layer.model_copy(update={"kwargs": tuple((k, v) for k, v in layer.kwargs if k != "inplace")})
             for name, (layer, _, _) in unsafe.items()}
    warnings = []
    for name, (layer, why, (where, calls)) in unsafe.items():
        src = sources.get(where)
        how, who = why
        said = who.who + _where(who.span, who.file, where)
        message = f"`{layer.op} inplace` would overwrite " + {
            "reads": f"its input, which {said} also reads",
            "owner": f"{said}" + (", which belongs to the caller" if who.span is None else ", a view that torch forbids changing in place"),
            "keeps": f"the output of {said}, which that layer's backward needs",
        }[how] + "; it runs out of place"
        notes = tuple(
            _errors.Diagnostic(message=f"in `{block}`, called here", file=caller, span=at or Span(),
                       line_text=sources[caller].line_text(at.line) if caller in sources and at is not None else "")
            for block, at, caller in reversed(calls)
        )
        warnings.append(_errors.Diagnostic(severity="warning", message=message, file=where, span=layer.span,
                                   line_text=src.line_text(layer.span.line) if src else "",
                                   hint="drop `inplace` here (the result is the same either way)", notes=notes))
    rewrite = _Rewrite(fixed)
    return (rewrite.steps(steps), tuple(i.model_copy(update={"steps": rewrite.steps(i.steps)}) for i in instances),
            [fixed.get(layer.name, layer) for layer in layers], warnings)


class _Rewrite(LayerMap):
    """Steps with the layers in `fixed` (by name) replaced, at any depth."""

    def __init__(self, fixed: dict[str, CheckedLayer]):
        self.fixed = fixed

    def layer(self, layer: CheckedLayer) -> CheckedLayer:
        return self.fixed.get(layer.name, layer)


__all__ = ["apply", "decide", "Branch"]
