"""The static summary of a checked network: per layer its output shape, parameters, mult-adds and receptive
field; then the totals. Computed from the checked network alone: no torch, no forward pass.

Conventions (also in the README, "Summary"):
- mult-adds are counted for one sample, for the layers that multiply weights with inputs, bias excluded
  (fvcore's convention): conv = output elements x (in channels / groups) x kernel volume; transposed conv =
  input elements x (out channels / groups) x kernel volume; linear = output elements x in features; a
  deformable conv counts its offset conv and its main conv (not the bilinear sampling). Every other op counts 0.
- the receptive field is in input pixels per spatial axis, with its jump (the distance in input pixels between
  neighbouring outputs): a window of k, dilation d, stride s gives rf + d(k-1)*jump and jump*s. Merges take the
  largest field of their branches. Norms, activations and dropout are pointwise (batch/instance/group/layer
  statistics are not counted); global pooling and linear layers see the whole input ("global"). The figures are
  exact (every output position has that field, the tests measure it) until an op moves its outputs unevenly over
  the input (a transposed conv, unpool, upsample, pixel shuffle, an adaptive pool whose sizes do not divide):
  from there on they are the same arithmetic's estimate, marked `exact: false` (and `~` in the table).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from typing import Any, Optional, Union

from pydantic import BaseModel

from .network import CheckedLayer, CheckedNetwork, Step
from .ops.common import fmt_shape
from .values import value

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
    weights_mb: Optional[float]  # float32 parameters and buffers, 10^6 bytes


def summarize(net: CheckedNetwork) -> Summary:
    """The summary of a checked network."""
    fields = _receptive_fields(net, len(net.example_shape) - 1)  # the rank is known without the input's sizes
    layers = [_layer(layer, fields.get(layer.name)) for layer in net.layers]
    total = net.total_params
    buffers = [_buffers(layer) for layer in net.layers]
    macs = [row.macs for row in layers]
    total_buffers = None if None in buffers else sum(buffers)
    return Summary(
        network=net.name,
        input_shape=_shape(net.input_shape),
        outputs=[_shape(s) for s in net.outputs],
        layers=layers,
        total_params=total,
        trainable_params=total,
        non_trainable_params=0,
        buffers=total_buffers,
        total_macs=None if None in macs else sum(macs),
        weights_mb=None if total is None or total_buffers is None else round((total + total_buffers) * 4 / 1e6, 2),
    )


def _shape(shape) -> Optional[list[Optional[int]]]:
    return None if shape is None else list(shape)


def _layer(layer: CheckedLayer, field: Field) -> LayerSummary:
    if isinstance(field, tuple):
        rf, jump, exact = [math.ceil(r) for r in field[0]], [_number(j) for j in field[1]], field[2]
    else:
        rf, jump, exact = field, None, field == GLOBAL
    return LayerSummary(name=layer.name, op=layer.op, module=layer.module, output_shape=_shape(layer.output_shape),
                        params=layer.params, macs=macs(layer), receptive_field=rf, jump=jump, exact=exact)


def _number(x: Fraction) -> Union[int, float]:
    return int(x) if x.denominator == 1 else float(x)


# -- mult-adds ------------------------------------------------------------------------------------------


def _kwargs(layer: CheckedLayer) -> dict[str, Any]:
    return {k: value(v) for k, v in layer.kwargs}


def _per_axis(x, n: int) -> tuple:
    return tuple(x) if isinstance(x, tuple) else (x,) * n


def macs(layer: CheckedLayer) -> Optional[int]:
    """The mult-adds of one layer for one sample (0 for ops that multiply no weights); None if a shape is unknown."""
    module = layer.module or ""
    if not (module.startswith(("nn.Conv", "nn.Linear", "nn.LazyLinear")) or module == "DeformConv"):
        return 0
    shape_in, shape_out = layer.input_shape, layer.output_shape
    if shape_in is None or shape_out is None or None in shape_in or None in shape_out:
        return None
    if module.startswith(("nn.Linear", "nn.LazyLinear")):
        return math.prod(shape_out) * shape_in[-1]
    c_in, c_out = (value(a) for a in layer.args[:2])
    kw = _kwargs(layer)
    groups = kw.get("groups", 1)
    kernel = math.prod(_per_axis(kw["kernel_size"], len(shape_out) - 1))
    if module.startswith("nn.ConvTranspose"):
        return math.prod(shape_in) * (c_out // groups) * kernel
    count = math.prod(shape_out) * (c_in // groups) * kernel
    if module == "DeformConv":  # its offset conv: the same window over the input, 2 or 3 values per tap
        offsets = (3 if kw.get("modulated") else 2) * kw.get("offset_groups", 1) * kernel
        count += math.prod(shape_out[1:]) * offsets * c_in * kernel
    return count


def _buffers(layer: CheckedLayer) -> Optional[int]:
    """The numbers a layer keeps in its state_dict besides its parameters (a norm's running statistics)."""
    module = layer.module or ""
    if module.startswith(("nn.BatchNorm", "nn.InstanceNorm")):
        tracked = _kwargs(layer).get("track_running_stats", module.startswith("nn.BatchNorm"))
        return 2 * value(layer.args[0]) + 1 if tracked else 0
    return 0


# -- receptive fields -----------------------------------------------------------------------------------


def _receptive_fields(net: CheckedNetwork, rank: int) -> dict[str, Field]:
    """Each layer's receptive field and jump, by walking the network's steps as the forward runs them."""
    fields: dict[str, Field] = {}
    if rank == 0:
        return fields
    start = ((Fraction(1),) * rank, (Fraction(1),) * rank, True)
    _walk(net, net.steps, start, {}, fields)
    return fields


def _walk(net: CheckedNetwork, steps: tuple[Step, ...], field: Field, values: dict[str, Field], out: dict[str, Field]) -> Field:
    for step in steps:
        if step.kind == "value":
            values[step.name] = field
        elif step.kind == "use":
            field = values.get(step.name)
        elif step.kind == "join":
            field = _widest([field, *(values.get(v) for v in step.values)])
        elif step.kind == "merge":
            field = _merge(net, step, field, values, out)
        elif step.kind == "call":
            field = _walk(net, net.instances[step.instance].steps, field, {}, out)
        elif step.kind == "group":
            field = _walk(net, step.children, field, values, out)
        elif step.kind == "layer":
            field = _through(step.layer, field)
            out[step.layer.name] = field
    return field


def _merge(net: CheckedNetwork, step: Step, field: Field, values: dict[str, Field], out: dict[str, Field]) -> Field:
    branches = step.branches if step.active else step.branches[:1]  # `add if cond:` that does not hold: its first branch
    results = [
        _walk(net, branch.steps, field, values, out) if branch.active and not branch.identity else field
        for branch in branches
    ]
    return _widest(results)


def _widest(fields: list[Field]) -> Field:
    if any(f is None for f in fields):
        return None
    if GLOBAL in fields:
        return GLOBAL
    rank = len(fields[0][0])
    return (tuple(max(f[0][i] for f in fields) for i in range(rank)), tuple(max(f[1][i] for f in fields) for i in range(rank)),
            all(f[2] for f in fields))


def _through(layer: CheckedLayer, field: Field) -> Field:
    """The field after one layer."""
    module = layer.module or ""
    if module.startswith(("nn.Linear", "nn.LazyLinear")):
        return GLOBAL  # every output feature sees every input element
    if module.startswith(("nn.AdaptiveAvgPool", "nn.AdaptiveMaxPool")) and _is_global(layer):
        return GLOBAL  # whatever came before: it pools the whole input
    if field is None or field == GLOBAL:
        return field
    rf, jump, exact = field
    n = len(rf)
    kw = _kwargs(layer)
    shape_in, shape_out = layer.input_shape, layer.output_shape
    if module.startswith(("nn.Conv", "nn.MaxPool", "nn.AvgPool")) and not module.startswith("nn.ConvTranspose") or module == "DeformConv":
        kernel = _per_axis(kw.get("kernel_size", value(layer.args[0]) if layer.args and "Pool" in module else None), n)
        stride = _per_axis(kw.get("stride") or (kernel if "Pool" in module else 1), n)
        dilation = _per_axis(kw.get("dilation", 1), n)
        return (tuple(rf[i] + dilation[i] * (kernel[i] - 1) * jump[i] for i in range(n)),
                tuple(jump[i] * stride[i] for i in range(n)), exact)
    if module.startswith(("nn.ConvTranspose", "nn.MaxUnpool")):
        kernel = _per_axis(kw.get("kernel_size", value(layer.args[0])), n)
        stride = _per_axis(kw.get("stride") or (kernel if "Unpool" in module else 1), n)
        dilation = _per_axis(kw.get("dilation", 1), n)
        return (tuple(rf[i] + (math.ceil((dilation[i] * (kernel[i] - 1) + 1) / stride[i]) - 1) * jump[i] for i in range(n)),
                tuple(jump[i] / stride[i] for i in range(n)), False)
    resizes = ("nn.AdaptiveAvgPool", "nn.AdaptiveMaxPool", "nn.Upsample", "nn.PixelShuffle", "nn.PixelUnshuffle", "nn.Flatten")
    if not module.startswith(resizes) and layer.forward != "permute":
        return field  # pointwise: activations, norms, dropout, channel shuffle, layer scale
    known = [s for s in (shape_in, shape_out) if s is not None and len(s) == n + 1 and None not in s]
    if len(known) < 2 or module.startswith("nn.Flatten") or layer.forward == "permute":
        return None  # sizes not known, or axes that are no longer the input's
    scale = [Fraction(shape_out[1 + i], shape_in[1 + i]) for i in range(n)]
    if module.startswith(("nn.AdaptiveAvgPool", "nn.AdaptiveMaxPool")):
        windows = [_adaptive_window(shape_in[1 + i], shape_out[1 + i]) for i in range(n)]
        even = exact and all(shape_in[1 + i] % shape_out[1 + i] == 0 for i in range(n))
        return (tuple(rf[i] + (windows[i] - 1) * jump[i] for i in range(n)), tuple(jump[i] / scale[i] for i in range(n)), even)
    if module.startswith(("nn.Upsample", "nn.PixelShuffle", "nn.PixelUnshuffle")):
        taps = {"linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}.get(kw.get("mode"), 1)
        if module.startswith("nn.PixelUnshuffle"):
            taps = int(1 / scale[0])
        even = exact and all(s <= 1 and (1 / s).denominator == 1 for s in scale)  # an integer downscale keeps an even grid
        return (tuple(rf[i] + (taps - 1) * jump[i] for i in range(n)), tuple(jump[i] / scale[i] for i in range(n)), even)
    return field


def _is_global(layer: CheckedLayer) -> bool:
    """Whether an adaptive pool pools everything (to size 1 on every axis)."""
    if layer.output_shape is not None:
        return all(d == 1 for d in layer.output_shape[1:])
    return all(value(d) == 1 for d in _per_axis(value(layer.args[0]), 1))  # an adaptive pool's output size


def _adaptive_window(size_in: int, size_out: int) -> int:
    """The widest window of an adaptive pool from size_in to size_out (PyTorch's start/end index rule)."""
    return max(-(-(i + 1) * size_in // size_out) - (i * size_in // size_out) for i in range(size_out))


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


def _table(s: Summary) -> str:
    head = ("layer", "op", "output shape", "params", "mult-adds", "rf", "jump")
    ones = _axes([1] * (len(s.input_shape) - 1)) if s.input_shape else "-"
    rows = [head, ("input", "", fmt_shape(s.input_shape), "", "", ones, ones)]
    for r in s.layers:
        rf = _axes(r.receptive_field)
        rows.append((r.name, r.op, fmt_shape(r.output_shape), _count(r.params), _count(r.macs),
                     rf if r.exact or r.receptive_field is None else f"~{rf}", _axes(r.jump, "-" if rf == GLOBAL else "?")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    right = (False, False, False, True, True, True, True)
    lines = ["  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    macs = "?" if s.total_macs is None else f"{_si(s.total_macs)} ({s.total_macs:,})"
    size = "?" if s.weights_mb is None else f"{s.weights_mb:.2f} MB"
    lines += [
        "-" * len(lines[0]),
        f"total parameters:     {_count(s.total_params)} (trainable {_count(s.trainable_params)}, non-trainable {s.non_trainable_params})",
        f"buffers:              {_count(s.buffers)} (norm running statistics)",
        f"mult-adds per sample: {macs}",
        f"weights size:         {size} (float32 parameters and buffers)",
    ]
    return "\n".join(lines) + "\n"
