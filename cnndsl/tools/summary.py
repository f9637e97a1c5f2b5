"""The static summary of a checked network: per layer its output shape, parameters, mult-adds, receptive
field and memory (cnndsl/tools/memory.py: output bytes, bytes kept for backward); then the totals, mult-adds and
FLOPs (2 x mult-adds) apart. Computed from the checked network alone: no torch, no forward pass. `depth` folds
the deeper rows into their block or group (cnndsl/tools/fold.py).

Every per-op fact comes from the op catalog (cnndsl/ops/facts.py: each OpSpec's `window`, `macs`, `buffers`),
and an op that lacks one raises MissingFact; tests/test_op_catalog.py measures them against torch for every op.

Conventions (also in the README, "Summary"):
- mult-adds are counted for one sample, for the products of weights with inputs in convolutions and matrix
  products, bias excluded: what torch.utils.flop_counter.FlopCounterMode counts, halved (fvcore's convention):
  conv = output elements x (in channels / groups) x kernel volume; transposed conv = input elements x (out
  channels / groups) x kernel volume; linear = output elements x in features; a deformable conv counts its
  offset conv and its main conv (not the bilinear sampling). Every other op counts 0, element-wise products
  with weights (prelu, layerscale, a norm's affine) included.
- the receptive field is in input pixels per spatial axis, with its jump (the distance in input pixels between
  neighbouring outputs): a window of k, dilation d, stride s gives rf + d(k-1)*jump and jump*s. Merges take the
  largest field of their branches. Norms, activations and dropout are pointwise (the statistics that batch,
  instance, group and layer norms and softmax read are not counted); global pooling and a linear layer over the
  whole input see all of it ("global"). The figures are exact (every output position has that field, the tests
  measure it) until an op moves its outputs unevenly over the input (a transposed conv with a stride, unpool,
  upsample other than by an integer step down, pixel shuffle, an adaptive pool whose sizes do not divide, a
  deformable conv): from there on they are the same arithmetic's estimate, marked `exact: false` (and `~` in
  the table). Where the output's axes are no longer the input's (flatten, permute, a linear layer over one
  spatial axis), the field is unknown.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Optional, Union

from pydantic import BaseModel

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
from ..ops.common import fmt_shape
from ..ops.facts import Window
from .fold import fold
from .memory import LayerMemory, memory

GLOBAL = "global"
Field = Union[tuple[tuple[Fraction, ...], tuple[Fraction, ...], bool], str, None]  # (rf, jump, exact), GLOBAL, unknown


class LayerSummary(BaseModel):
    name: str  # the path in the state_dict
    op: str
    module: Optional[str]
    output_shape: Optional[list[Optional[int]]]  # without the batch dimension
    params: Optional[int]
    macs: Optional[int]
    receptive_field: Union[list[int], str, None]  # per spatial axis, "global", or None where not known
    jump: Optional[list[Union[int, float]]]
    exact: bool  # False where the receptive field is an estimate (after an op that spreads outputs unevenly)
    external: bool = False  # a module from outside the catalog: its params, mult-adds and field are unknown (None)
    output_bytes: Optional[int] = None  # its output tensor, for the summary's batch and dtype
    saved_bytes: Optional[int] = None  # what its backward keeps in training that no earlier layer keeps


class Summary(BaseModel):
    network: str
    input_shape: Optional[list[int]]
    outputs: list[Optional[list[Optional[int]]]]
    layers: list[LayerSummary]
    total_params: Optional[int]
    trainable_params: Optional[int]
    non_trainable_params: int
    buffers: Optional[int]  # batch/instance norm running statistics: in the state_dict, not trained
    total_macs: Optional[int]
    total_flops: Optional[int]  # 2 x total_macs: a multiply-add is two floating-point operations
    weights_mb: Optional[float]  # float32 parameters and buffers, 10^6 bytes
    batch: int = 1  # the memory figures' batch size, dtype and device
    dtype: str = "float32"
    device: str = "cuda"
    depth: Optional[int] = None  # rows below this depth folded into their block or group (None: every layer)
    input_bytes: Optional[int] = None
    output_bytes: Optional[int] = None  # every layer's output, summed
    saved_bytes: Optional[int] = None  # every tensor kept for backward in a training step, once
    peak_bytes: Optional[int] = None  # the most memory alive at once in a training step's forward


def summarize(net: CheckedNetwork, *, batch: int = 1, dtype: str = "float32", device: str = "cuda",
              depth: Optional[int] = None) -> Summary:
    """The summary of a checked network; memory for `batch` samples of `dtype` (float32, float16, bfloat16) in a
    training step on `device` (cuda or cpu); `depth` folds the rows below it into their block or group."""
    fields = _receptive_fields(net, len(net.example_shape) - 1)  # the rank is known without the input's sizes
    mem = memory(net, batch, dtype, device)
    layers = [_layer(layer, fields.get(layer.name), mem.layers.get(layer.name)) for layer in net.layers]
    total = net.total_params
    buffers = [_buffers(layer) for layer in net.layers]
    macs = [row.macs for row in layers]
    total_buffers = None if None in buffers else sum(buffers)
    total_macs = None if None in macs else sum(macs)
    return Summary(
        network=net.name,
        input_shape=_shape(net.input_shape),
        outputs=[_shape(s) for s in net.outputs],
        layers=layers if depth is None else fold(net, layers, depth),
        total_params=total,
        trainable_params=total,
        non_trainable_params=0,
        buffers=total_buffers,
        total_macs=total_macs,
        total_flops=None if total_macs is None else 2 * total_macs,
        weights_mb=None if total is None or total_buffers is None else round((total + total_buffers) * 4 / 1e6, 2),
        batch=batch, dtype=dtype, device=device, depth=depth,
        input_bytes=mem.input_bytes, output_bytes=mem.output_bytes, saved_bytes=mem.saved_bytes, peak_bytes=mem.peak_bytes,
    )


def _shape(shape) -> Optional[list[Optional[int]]]:
    return None if shape is None else list(shape)


def _layer(layer: CheckedLayer, field: Field, mem: Optional[LayerMemory]) -> LayerSummary:
    if isinstance(field, tuple):
        rf, jump, exact = [math.ceil(r) for r in field[0]], [_number(j) for j in field[1]], field[2]
    else:
        rf, jump, exact = field, None, field == GLOBAL
    return LayerSummary(name=layer.name, op=layer.op, module=layer.module, output_shape=_shape(layer.output_shape),
                        params=layer.params, macs=macs(layer), receptive_field=rf, jump=jump, exact=exact,
                        external=layer.external is not None, output_bytes=mem and mem.output_bytes,
                        saved_bytes=mem and mem.saved_bytes)


def _number(x: Fraction) -> Union[int, float]:
    return int(x) if x.denominator == 1 else float(x)


# -- counts, from the op catalog (cnndsl/ops/facts.py) ---------------------------------------------------


def macs(layer: CheckedLayer) -> Optional[int]:
    """The mult-adds of one layer for one sample (0 for ops that multiply no weights); None if a shape is unknown."""
    return fact(layer, "macs")


def _buffers(layer: CheckedLayer) -> Optional[int]:
    """The numbers a layer keeps in its state_dict besides its parameters (a norm's running statistics)."""
    return fact(layer, "buffers")


# -- receptive fields -----------------------------------------------------------------------------------


def _receptive_fields(net: CheckedNetwork, rank: int) -> dict[str, Field]:
    """Each layer's receptive field and jump, by walking the network's steps as the forward runs them."""
    fields: dict[str, Field] = {}
    if rank == 0:
        return fields
    start = ((Fraction(1),) * rank, (Fraction(1),) * rank, True)
    _Fields(net, fields).flow(net.steps, start, {})
    return fields


class _Fields(StepVisitor):
    """Walks steps as the forward runs them: each `visit_<kind>` takes the field before the step (and the
    named values in scope) and returns the field after it, recording each layer's in `out`."""

    def __init__(self, net: CheckedNetwork, out: dict[str, Field]):
        self.net, self.out = net, out

    def visit_value(self, step: ValueStep, field: Field, values: dict[str, Field]) -> Field:
        values[step.name] = field
        return field

    def visit_use(self, step: UseStep, field: Field, values: dict[str, Field]) -> Field:
        return values.get(step.name)

    def visit_output(self, step: OutputStep, field: Field, values: dict[str, Field]) -> Field:
        return field

    def visit_join(self, step: JoinStep, field: Field, values: dict[str, Field]) -> Field:
        return _widest([field, *(values.get(v) for v in step.values)])

    def visit_merge(self, step: MergeStep, field: Field, values: dict[str, Field]) -> Field:
        branches = step.branches if step.active else step.branches[:1]  # `add if cond:` that does not hold: its first branch
        return _widest([self.flow(branch.steps, field, values) if branch.active and not branch.identity else field
                        for branch in branches])

    def visit_call(self, step: CallStep, field: Field, values: dict[str, Field]) -> Field:
        inst = self.net.instances[step.instance]
        return through_call(step, inst, field, values, lambda x, inner: self.flow(inst.steps, x, inner))

    def visit_group(self, step: GroupStep, field: Field, values: dict[str, Field]) -> Field:
        return self.flow(step.children, field, values)

    def visit_layer(self, step: LayerStep, field: Field, values: dict[str, Field]) -> Field:
        field = self.out[step.layer.name] = _through(step.layer, field)
        return field


def _widest(fields: list[Field]) -> Field:
    if any(f is None for f in fields):
        return None
    if GLOBAL in fields:
        return GLOBAL
    rank = len(fields[0][0])
    return (tuple(max(f[0][i] for f in fields) for i in range(rank)), tuple(max(f[1][i] for f in fields) for i in range(rank)),
            all(f[2] for f in fields))


def _through(layer: CheckedLayer, field: Field) -> Field:
    """The field after one layer, from its op's window geometry (cnndsl/ops/facts.py, Window)."""
    geometry: Window = fact(layer, "window")
    if geometry.spread == "global":
        return GLOBAL  # whatever came before: it sees the whole input
    if field is None or field == GLOBAL or geometry.spread == "pointwise":
        return field
    rf, jump, exact = field
    if geometry.spread == "unknown" or len(geometry.kernel) != len(rf):
        return None  # sizes not known, or axes that are no longer the input's
    k, s, d = geometry.kernel, geometry.stride, geometry.dilation
    return (tuple(rf[i] + d[i] * (k[i] - 1) * jump[i] for i in range(len(rf))), tuple(jump[i] * s[i] for i in range(len(rf))),
            exact and geometry.spread == "window")


# -- rendering ------------------------------------------------------------------------------------------


def render(summary: Summary, fmt: str = "table") -> str:
    """The summary as a text table, JSON or YAML (a trailing newline included)."""
    if fmt == "json":
        return json.dumps(summary.model_dump(), indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(summary.model_dump(), sort_keys=False)
    return _table(summary)


def _count(n: Optional[int]) -> str:
    return "?" if n is None else f"{n:,}"


def _axes(values, missing: str = "?") -> str:
    """Per-axis figures as one cell: `7` when the axes agree, else `7x3`; `missing` where there are none."""
    if values is None:
        return missing
    if isinstance(values, str):
        return values
    text = [str(Fraction(v).limit_denominator()) for v in values]
    return text[0] if len(set(text)) == 1 else "x".join(text)


def _si(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _bytes(n: Optional[int]) -> str:
    """Bytes in decimal units (10^6 bytes a MB), as the weights' size."""
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _table(s: Summary) -> str:
    head = ("layer", "op", "output shape", "params", "mult-adds", "rf", "jump", "out", "saved")
    ones = _axes([1] * (len(s.input_shape) - 1)) if s.input_shape else "-"
    rows = [head, ("input", "", fmt_shape(s.input_shape), "", "", ones, ones, _bytes(s.input_bytes), "")]
    for r in s.layers:
        rf = _axes(r.receptive_field)
        rows.append((r.name, r.op, fmt_shape(r.output_shape), _count(r.params), _count(r.macs),
                     rf if r.exact or r.receptive_field is None else f"~{rf}", _axes(r.jump, "-" if rf == GLOBAL else "?"),
                     _bytes(r.output_bytes), _bytes(r.saved_bytes)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    right = (False, False, False, True, True, True, True, True, True)
    lines = ["  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    macs = "?" if s.total_macs is None else f"{_si(s.total_macs)} MACs ({s.total_macs:,})"
    flops = "?" if s.total_flops is None else f"{_si(s.total_flops)} FLOPs ({s.total_flops:,}: 2 x mult-adds)"
    where = f"batch {s.batch}, {s.dtype}, {s.device}"
    size = "?" if s.weights_mb is None else f"{s.weights_mb:.2f} MB"
    total = f"{_count(s.total_params)} (trainable {_count(s.trainable_params)}, non-trainable {s.non_trainable_params})"
    if s.total_params is None and any(r.external for r in s.layers) and all(r.params is not None for r in s.layers if not r.external):
        known = sum(r.params for r in s.layers if not r.external)
        total = f"? ({known:,} besides the external modules', which are known only once loaded)"
    lines += [
        "-" * len(lines[0]),
        f"total parameters:     {total}",
        f"buffers:              {_count(s.buffers)} (norm running statistics)",
        f"mult-adds per sample: {macs}",
        f"FLOPs per sample:     {flops}",
        f"weights size:         {size} (float32 parameters and buffers)",
        f"layer outputs:        {_bytes(s.output_bytes)} (summed, {where})",
        f"saved for backward:   {_bytes(s.saved_bytes)} (what a training step keeps, each tensor once)",
        f"peak in training:     {_bytes(s.peak_bytes)} (forward, input included; not weights, gradients, optimizer)",
    ]
    return "\n".join(lines) + "\n"
