"""The memory of a forward pass, computed from the checked network alone (no torch): for a batch size, a dtype
and a device, each layer's output bytes and the bytes its backward keeps (what autograd saves in a training
step), the totals, and the peak of live memory in a training step's forward.

The forward is replayed step by step, block calls inlined (ir/visitor.through_call), over abstract storages:

- a layer's output is a new storage of its output's size, except where it is its input's storage: a view
  (the op's `view` fact: flatten, permute, crop, identity) or a layer that runs in place (an `inplace` the
  checker kept, cnndsl/semantics/inplace.py): these allocate nothing;
- in training, each layer keeps what its op's `saves` fact says (cnndsl/ops/facts.py, Saved: its input, its
  output, or tensors it makes such as a max pool's indices, a dropout's mask, a norm's statistics), counted
  once per storage however many layers keep it (a relu's output is the next conv's input). A layer with no
  parameters whose input needs no gradient (the network's input) keeps nothing, as torch;
- merges: `add` and `cat` keep nothing; `mul` keeps each operand (`a * b * c` also its partial product);
  `split` makes views (torch.chunk); `a + b + c` makes a partial sum, as Python evaluates it;
- liveness: a storage lives from the step that makes it to its last read (a skip connection's tensor until its
  merge), or to the end of the forward when backward keeps it; as the generated code holds them, a block's or
  group's input lives until the block or group returns (its caller holds it), and a named value until the
  `forward` that names it returns (a local variable). The network's input counts from the start. The peak is
  the largest sum of live storages at any step.

Not counted: parameters, their gradients and optimizer state, the backward pass's own tensors, temporaries
inside an op that it does not keep (a composite op's intermediate results), allocator rounding and caches.
tests/test_memory.py measures the figures against torch (saved_tensors_hooks, forward hooks) on every example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..ir.network import (
    CallStep,
    CheckedLayer,
    CheckedNetwork,
    GroupStep,
    JoinStep,
    LayerStep,
    MergeStep,
    OutputStep,
    StepVisitor,
    UseStep,
    ValueStep,
)
from ..ir.visitor import through_call
from ..ops.catalog import fact
from ..ops.facts import Saved, in_place, numel

DTYPES = {"float32": 4, "float16": 2, "bfloat16": 2}
DEVICES = ("cuda", "cpu")
_END = math.inf


@dataclass(eq=False)
class _Storage:
    nbytes: Optional[int]
    born: float
    last: float
    saved_by: Optional[str] = None  # the first layer whose backward keeps it ("" outside any layer: a merge)


@dataclass(eq=False)
class _Tensor:
    storage: _Storage
    grad: bool  # whether it needs a gradient (the network's input does not)


@dataclass
class LayerMemory:
    output_bytes: Optional[int]  # the layer's output tensor (also where it is its input's storage)
    saved_bytes: Optional[int] = 0  # what its backward keeps that no earlier layer keeps
    live_bytes: Optional[int] = None  # every storage alive while it runs


@dataclass
class Memory:
    batch: int
    dtype: str
    device: str
    layers: dict[str, LayerMemory] = field(default_factory=dict)
    input_bytes: Optional[int] = None
    output_bytes: Optional[int] = None  # every layer's output, summed
    saved_bytes: Optional[int] = None  # every storage kept for backward, once
    peak_bytes: Optional[int] = None  # a training step's forward


def memory(net: CheckedNetwork, batch: int = 1, dtype: str = "float32", device: str = "cuda") -> Memory:
    """The memory figures of a network's forward for `batch` samples of `dtype` on `device`."""
    if dtype not in DTYPES or device not in DEVICES or batch < 1:
        raise ValueError(f"dtype one of {', '.join(DTYPES)}, device one of {', '.join(DEVICES)}, batch at least 1")
    train = _Replay(net, batch, dtype, device).run()
    alive = train.timeline()
    saved: dict[str, list[Optional[int]]] = {}
    for s in train.storages:
        if s.saved_by is not None:
            saved.setdefault(s.saved_by, []).append(s.nbytes)
    result = Memory(batch=batch, dtype=dtype, device=device, input_bytes=train.input.nbytes,
                    saved_bytes=_sum(n for kept in saved.values() for n in kept), peak_bytes=alive and max(alive))
    for name, (out, when) in train.rows.items():
        unknown = name in train.unknown
        result.layers[name] = LayerMemory(output_bytes=out, saved_bytes=None if unknown else _sum(saved.get(name, ())),
                                          live_bytes=alive and alive[when])
    result.output_bytes = _sum(row.output_bytes for row in result.layers.values())
    if train.unknown:
        result.saved_bytes = result.peak_bytes = None
    return result


def _sum(values) -> Optional[int]:
    values = list(values)
    return None if None in values else sum(values)


class _Replay(StepVisitor):
    """The forward as storages: each `visit_<kind>` takes the tensor before the step and the named values in
    scope, and returns the tensor after it."""

    def __init__(self, net: CheckedNetwork, batch: int, dtype: str, device: str):
        self.net, self.batch, self.dtype, self.device = net, batch, dtype, device
        self.now = 0
        self.storages: list[_Storage] = []
        self.rows: dict[str, tuple[Optional[int], int]] = {}  # layer -> (output bytes, when it ran)
        self.unknown: set[str] = set()  # layers whose saved tensors are unknown (an external module)
        self.indices: dict[str, _Storage] = {}  # a max pool's returned indices, by the name an unpool reads
        self.input = self.allocate(self.bytes(net.input_shape))

    def run(self) -> "_Replay":
        out = self.function(self.net.steps, _Tensor(self.input, grad=False), {})
        self.read(out, _END)
        return self

    def function(self, steps, cur: _Tensor, env: dict) -> _Tensor:
        """The steps of one generated `forward`: its named values are its local variables, alive until it returns."""
        out = self.flow(steps, cur, env)
        for t in list(env.values()):
            self.read(t)
        return out

    # -- storages ---------------------------------------------------------------------------------------

    def bytes(self, shape, dtype: str = "same", batched: bool = True, elements: Optional[int] = None) -> Optional[int]:
        n = numel(shape) if elements is None else elements
        if n is None:
            return None
        size = DTYPES[self.dtype]
        if dtype == "int64":
            size = 8
        elif dtype == "mask" and self.device == "cuda":
            size = 1  # bool
        elif dtype == "stats" and self.device == "cuda":
            size = 4  # float32 statistics, whatever the activations' dtype
        return n * size * (self.batch if batched else 1)

    def allocate(self, nbytes: Optional[int]) -> _Storage:
        s = _Storage(nbytes, born=self.now, last=self.now)
        self.storages.append(s)
        return s

    def read(self, t: _Tensor, when: float | None = None) -> None:
        t.storage.last = max(t.storage.last, self.now if when is None else when)

    def keep(self, s: _Storage, by: str) -> None:
        s.last = _END
        s.saved_by = by if s.saved_by is None else s.saved_by

    def timeline(self) -> Optional[list[int]]:
        """The bytes alive at each step (0: before the first), by one sweep over the storages' lifetimes."""
        if any(s.nbytes is None for s in self.storages):
            return None
        delta = [0] * (self.now + 2)
        for s in self.storages:
            delta[int(s.born)] += s.nbytes
            if s.last != _END:
                delta[int(s.last) + 1] -= s.nbytes
        alive, total = [], 0
        for d in delta[:-1]:
            total += d
            alive.append(total)
        return alive

    # -- steps -------------------------------------------------------------------------------------------

    def visit_value(self, step: ValueStep, cur: _Tensor, env: dict) -> _Tensor:
        env[step.name] = cur
        return cur

    def visit_use(self, step: UseStep, cur: _Tensor, env: dict) -> _Tensor:
        return env[step.name]

    def visit_output(self, step: OutputStep, cur: _Tensor, env: dict) -> _Tensor:
        for name in step.values:
            self.read(env[name], _END)  # returned: alive after the forward
        return cur

    def visit_call(self, step: CallStep, cur: _Tensor, env: dict) -> _Tensor:
        inst = self.net.instances[step.instance]
        inputs = [env[v] if v else cur for v in step.inputs] or [cur]
        out = through_call(step, inst, cur, env, lambda x, inner: self.function(inst.steps, x, inner))
        for t in inputs:  # the caller holds the block's inputs until it returns
            self.read(t)
        return out

    def visit_group(self, step: GroupStep, cur: _Tensor, env: dict) -> _Tensor:
        out = self.flow(step.children, cur, env)
        self.read(cur)  # the caller holds the group's input until it returns
        return out

    def visit_join(self, step: JoinStep, cur: _Tensor, env: dict) -> _Tensor:
        return self.combine(step.merge, [cur, *(env[v] for v in step.values)], step.output_shape)

    def visit_merge(self, step: MergeStep, cur: _Tensor, env: dict) -> _Tensor:
        branches = step.branches if step.active else step.branches[:1]  # `add if cond:` that does not hold
        inputs = [cur] * len(branches)
        if step.merge == "split":  # torch.chunk: views of the input
            self.read(cur)
            inputs = [_Tensor(cur.storage, cur.grad) for _ in branches]
        outs = [self.flow(b.steps, x, env) if b.active and not b.identity else x for b, x in zip(branches, inputs)]
        if not step.active:
            return outs[0]
        out = self.combine(step.merge, outs, step.output_shape)
        self.read(cur)  # the merge's input variable, until the merge's result replaces it
        return out

    def combine(self, merge: str, tensors: list[_Tensor], shape) -> _Tensor:
        """`cat` of tensors, one op; `add` or `mul`, one op per pair from the left as Python evaluates `a + b + c`
        (each partial result alive until the next op has read it, the operands until the last); a product keeps
        its operands."""
        pairs = [tensors] if merge not in ("add", "mul") else [[None, t] for t in tensors[1:]]
        acc = tensors[0]
        for pair in pairs:
            operands = [acc if t is None else t for t in pair]
            self.now += 1
            for t in operands:
                self.read(t)
            out = _Tensor(self.allocate(self.bytes(shape)), any(t.grad for t in operands))
            if merge == "mul":
                left, right = operands
                if right.grad:
                    self.keep(left.storage, "")
                if left.grad:
                    self.keep(right.storage, "")
            acc = out
        for t in tensors:  # the statement's variables hold its operands until it is done
            self.read(t)
        return acc

    def visit_layer(self, step: LayerStep, cur: _Tensor, env: dict) -> _Tensor:
        layer = step.layer
        self.now += 1
        self.read(cur)
        grad = cur.grad or layer.params != 0
        if self._aliases(layer):
            out = _Tensor(cur.storage, grad)
        else:
            out = _Tensor(self.allocate(self.bytes(layer.output_shape)), grad)
        self.rows[layer.name] = (self.bytes(layer.output_shape), self.now)
        if step.indices is not None:  # a max pool that returns its indices: an unpool reads them later
            self.indices[step.indices] = self.allocate(self.bytes(layer.output_shape, "int64"))
        if step.unpool is not None:
            self.read(_Tensor(self.indices[step.unpool], False))
        if grad:
            self._keep_saved(step, layer, cur, out)
        return out

    def _aliases(self, layer: CheckedLayer) -> bool:
        """Whether the output is the input's storage: a view, or a layer run in place."""
        return bool(fact(layer, "view")) or in_place(layer)

    def _keep_saved(self, step: LayerStep, layer: CheckedLayer, cur: _Tensor, out: _Tensor) -> None:
        saves: Optional[tuple[Saved, ...]] = fact(layer, "saves")
        if saves is None:
            self.unknown.add(layer.name)
            return
        for s in saves:
            if s.tensor == "input":
                self.keep(cur.storage, layer.name)
            elif s.tensor == "output":
                self.keep(out.storage, layer.name)
            elif s.tensor == "indices":
                self.keep(self.indices[step.unpool], layer.name)
            elif s.dtype == "int64" and step.indices is not None:  # the indices it also returns
                self.keep(self.indices[step.indices], layer.name)
            else:
                self.keep(self.allocate(self.bytes(None, s.dtype, s.batched, s.elements)), layer.name)
