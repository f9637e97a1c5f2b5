"""Every op's facts for the tools (cnndsl/ops/facts.py), measured against torch: what `cnndsl summary` says of a
sample layer of each op (its mult-adds, parameters and buffers, its receptive field, jump and exactness) and
what `cnndsl graph` calls it (its label, which must compile back to the same layer). An op without a sample
fails the test, so no op joins the catalog without its facts being measured.

How each fact is measured:
- mult-adds: torch.utils.flop_counter.FlopCounterMode over the generated module's forward (batch 2), halved and
  divided by the batch. It counts the convolutions and matrix products and nothing else (bias excluded), which
  is the summary's convention; torchvision's deform_conv2d, which it does not know, is counted by a formula for
  its main product only (not the bilinear sampling), as the convention says. Parameters and buffers: the module's.
- receptive field and jump: the input gradient of one output position (all channels, with random positive
  weights), on a random positive input, with positive weights and zero biases, in eval mode; max pools are
  swapped for a sum over the same window (a depthwise conv of ones with the same kernel, stride, padding and
  dilation), so that every pixel of a window gets a gradient. A deformable conv's offsets are zeroed (its
  initial state). The box of nonzero gradients at several neighbouring positions, where it does not touch the
  input's border, must be the summary's field exactly where the summary says `exact`, at every position, and
  move by the jump; where it gives an estimate, the widest box must not exceed it. `global` must cover the whole
  input. The axes where a pointwise op reads statistics (norms, softmax) are not part of the field by
  convention: there the box in training mode must cover the whole input, which shows the op mixes them.
- label: the layer written as its label compiles to the same module (its repr) and the same output shape.

Each sample is measured with the layer applied to the input directly and after `conv 4 k3 s2 p1` (a field of 3
and a jump of 2), so the arithmetic that composes fields is measured too."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnndsl
from cnndsl.ops import REGISTRY
from cnndsl.ops.catalog import FORMS, doc_table, fact, missing_facts, spec_of, specs
from cnndsl.ops.facts import FACTS, MissingFact
from cnndsl.tools.graph import op_text, to_dot
from cnndsl.tools.summary import summarize

pytestmark = pytest.mark.usefixtures("one_thread")

I1, I2, I3 = "4x48", "4x24x24", "4x10x12x12"  # the inputs of the samples, 1-d, 2-d and 3-d

# op -> samples: (input, the layers as written; the last one is the op's)
SAMPLES: dict[str, list[tuple[str, str]]] = {
    "conv": [(I2, "conv 4 k3 p1"), (I2, "conv 6 k3x5 s2 p1 d2"), (I1, "conv1d 4 k5 s3 d2"), (I3, "conv 4 k3 s2 p1")],
    "convt": [(I2, "convt 4 k3 p1"), (I2, "convt 4 k3 s2"), (I2, "convt 4 k4 s2 p1"), (I2, "convt 4 k3 s2 d2"), (I1, "convt 4 k2 s2")],
    "dwconv": [(I2, "dwconv k3 s2 p1"), (I2, "dwconv 8 k5 d2")],
    "deform": [(I2, "deform 4 k3 p1"), (I2, "deform 4 k3 s2 p2 d2 modulated")],
    "maxpool": [(I2, "maxpool 3 s2 p1"), (I2, "maxpool 3 s1 p1"), (I2, "maxpool 2"), (I2, "maxpool 3 s2 d2"), (I1, "maxpool 3 s2 ceil"),
                (I3, "maxpool 2")],
    "avgpool": [(I2, "avgpool 3 s2 p1"), (I2, "avgpool 2"), (I1, "avgpool 4 s3")],
    "lppool": [(I2, "lppool 2 4"), (I2, "lppool 2 3 s2"), (I1, "lppool 1 3 s2"), (I3, "lppool 2 2"), (I2, "lppool 3 2x3 s1x2 ceil")],
    "adaptiveavgpool": [(I2, "adaptiveavgpool 6"), (I2, "adaptiveavgpool 5"), (I2, "adaptiveavgpool 1"), (I1, "adaptiveavgpool 7")],
    "adaptivemaxpool": [(I2, "adaptivemaxpool 6"), (I2, "adaptivemaxpool 7")],
    "gap": [(I2, "gap"), (I1, "gap")],
    "unpool": [(I2, "maxpool 2 as pool1 | unpool pool1"), (I2, "maxpool 3 s2 p1 as pool1 | conv 4 k3 p1 | unpool pool1")],
    "linear": [("4x24", "linear 6"), ("4x6x6", "linear 5"), ("4x6x6", "flatten | linear 5")],
    "flatten": [(I2, "flatten"), (I2, "flatten start_dim=2 end_dim=2")],
    "identity": [(I2, "identity")],
    "upsample": [(I2, "upsample 2"), (I2, "upsample 2 mode=bilinear"), (I2, "upsample 0.5"), (I2, "upsample 0.5 mode=bilinear"),
                 (I2, "upsample 0.25 mode=bicubic"), (I2, "upsample 3 mode=bicubic"), (I2, "upsample size=12 mode=area"),
                 (I2, "upsample size=10 mode=area"), (I2, "upsample size=12 mode=bilinear align_corners=true"),
                 (I2, 'upsample 2 mode="nearest-exact"'), (I2, "upsample 1.5"), (I1, "upsample 2 mode=linear"),
                 (I3, "upsample 0.5 mode=trilinear")],
    "pixelshuffle": [(I2, "pixelshuffle 2")],
    "pixelunshuffle": [(I2, "pixelunshuffle 2")],
    "shuffle": [(I2, "shuffle 2")],
    "permute": [(I2, "permute 0 2 3 1"), (I2, "permute 0 1 2 3")],
    "crop": [(I2, "crop 20x17"), (I1, "crop 5"), (I3, "crop 9")],
    "layerscale": [(I2, "layerscale 0.5"), (I2, "layerscale 0.5 dim=-1")],
    "droppath": [(I2, "droppath 0.2")],
    "unflatten": [(I1, "unflatten 2x24 dim=2"), (I2, "flatten | unflatten 4x24x24"), (I2, "flatten | unflatten sizes=(4, -1, 24)"),
                  ("4x24", "unflatten 4")],
    "pad": [(I2, "pad 1"), (I2, "pad (1, 2, 0, 3) mode=reflect"), (I2, "pad (2, 1) value=0.5"), (I2, "pad (-1, -2, 1, 0)"),
            (I1, "pad 2 mode=replicate"), (I3, "pad 1 mode=circular"), (I3, "pad3d (1, 0, 2, 1, 1, 0) mode=reflect")],
    "bn": [(I2, "bn"), (I1, "bn")],
    "frozenbn": [(I2, "frozenbn"), (I2, "frozenbn eps=0.001")],
    "ln2d": [(I2, "ln2d"), (I2, "ln2d eps=1e-06"), (I2, "ln2d elementwise_affine=false")],
    "gn": [(I2, "gn 2")],
    "ln": [(I2, "ln"), ("4x6x6", "ln 6x6")],
    "instnorm": [(I2, "instnorm"), (I2, "instnorm affine=true track_running_stats=true")],
    "relu": [(I2, "relu")], "relu6": [(I2, "relu6")], "leakyrelu": [(I2, "leakyrelu 0.1")], "prelu": [(I2, "prelu num_parameters=4")],
    "rrelu": [(I2, "rrelu 0.1 0.3")], "elu": [(I2, "elu 0.5")], "selu": [(I2, "selu")], "gelu": [(I2, "gelu approximate=tanh")],
    "silu": [(I2, "silu")], "mish": [(I2, "mish")], "hardswish": [(I2, "hardswish")], "hardsigmoid": [(I2, "hardsigmoid")],
    "sigmoid": [(I2, "sigmoid")], "tanh": [(I2, "tanh")], "softsign": [(I2, "softsign")], "tanhshrink": [(I2, "tanhshrink")],
    "softmax": [(I2, "softmax"), (I2, "softmax dim=-1")], "logsoftmax": [(I2, "logsoftmax dim=2")],
    "dropout": [(I2, "dropout 0.3")], "dropout1d": [(I1, "dropout1d 0.3")], "dropout2d": [(I2, "dropout2d")], "dropout3d": [(I3, "dropout3d")],
}
PREFIX = "conv 4 k3 s2 p1"  # a field of 3 and a jump of 2 before the op
CASES = [(op, shape, layers) for op in sorted(SAMPLES) for shape, layers in SAMPLES[op]]


def source(shape: str, layers: str, prefix: bool) -> str:
    return f"network T:\n    input {shape}\n    {PREFIX + ' | ' if prefix else ''}{layers}\n"


# -- every op, every fact ----------------------------------------------------------------------------------


def test_every_op_has_samples_and_declares_every_fact():
    names = [spec.name for spec in specs()]
    assert sorted(set(REGISTRY.values()), key=lambda s: s.name) and len(names) == len(set(names))
    assert [n for n in names if n not in SAMPLES] == [], "an op without a sample: add it to SAMPLES"
    assert {n: missing_facts(spec_of(n)) for n in names if missing_facts(spec_of(n))} == {}
    for name in names:  # each sample is an instance of its op
        for shape, layers in SAMPLES[name]:
            assert cnndsl.check(source(shape, layers, False)).layers[-1].op == name, layers


def test_the_op_table_in_the_language_reference_is_generated_from_the_catalog():
    language = (ROOT / "docs" / "LANGUAGE.md").read_text(encoding="utf-8")
    assert doc_table() in language, "docs/LANGUAGE.md's op table is stale: paste `python -m cnndsl.ops.catalog` over it"
    assert all(f"`{spec.name}`" in doc_table() for spec in specs())


def test_a_missing_fact_fails_loudly(monkeypatch):
    net = cnndsl.check(source(I2, "conv 4 k3 | relu", False))
    relu = net.layers[-1]
    for name in FACTS:
        broken = replace(REGISTRY["relu"], **{name: None if name != "doc" else ""})
        assert missing_facts(broken) == [name]
        with pytest.raises(MissingFact, match=rf"op `relu`.*`?{name}"):
            broken.fact(name, relu)
    with pytest.raises(TypeError, match="doc"):  # a doc line is required to build a spec at all
        type(REGISTRY["relu"])("nodoc", lambda ctx: None)
    monkeypatch.setitem(REGISTRY, "relu", replace(REGISTRY["relu"], window=None))
    with pytest.raises(MissingFact, match="op `relu` does not declare its `window`"):
        summarize(net)
    monkeypatch.setitem(REGISTRY, "relu", replace(REGISTRY["relu"], label=None))
    with pytest.raises(MissingFact, match="op `relu` does not declare its `label`"):
        to_dot(net)
    with pytest.raises(MissingFact, match="op `nosuch` is not in the catalog"):
        fact(relu.model_copy(update={"op": "nosuch"}), "macs")
    assert spec_of("unpool") is FORMS["unpool"] and "unpool" not in REGISTRY


def test_labels_leave_out_defaults_and_hidden_options():
    """The stride of a pool is its kernel by default; `in`, `bias` and `inplace` are not shown."""
    net = cnndsl.check(source(I2, "maxpool 3 s1 p1 | maxpool 2 s2 | conv 4->8 k3 s1 p0x0 d1x1 nobias | relu inplace | softmax dim=1"
                                  " | avgpool 2x2 s2x2 p0 | upsample scale_factor=2 | softmax dim=-1 | dropout 0.5", False))
    assert [op_text(layer) for layer in net.layers] == [
        "maxpool 3 s1 p1", "maxpool 2", "conv 8 k3", "relu", "softmax", "avgpool 2x2", "upsample 2", "softmax dim=-1", "dropout"]


# -- measuring -------------------------------------------------------------------------------------------


class WindowSum(nn.Module):
    """A max pool's window, summed: every pixel of the window reaches the output."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.rank = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}[type(pool)]
        self.geometry = {key: getattr(pool, key) for key in ("stride", "padding", "dilation")}
        self.kernel = pool.kernel_size

    def forward(self, x):
        k = self.kernel if isinstance(self.kernel, tuple) else (self.kernel,) * self.rank
        ones = torch.ones(x.shape[1], 1, *k, dtype=x.dtype)
        return getattr(F, f"conv{self.rank}d")(x, ones, groups=x.shape[1], **self.geometry)


def _prepared(model: nn.Module) -> nn.Module:
    """Positive weights (scaled by the fan-in), zero biases, zero deformable offsets, max pools as window sums."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) and not child.return_indices:
                setattr(module, name, WindowSum(child))
            elif isinstance(child, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
                setattr(module, name, getattr(nn, type(child).__name__.replace("Max", "Avg"))(child.output_size))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".offset." in name:
                p.zero_()
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_((torch.rand_like(p) * 0.5 + 0.5) / fan_in)
    return model.double()


def _box(model: nn.Module, x: torch.Tensor, position: tuple, weights: torch.Tensor) -> tuple[tuple, tuple] | None:
    """(first, last) input pixel per spatial axis whose gradient reaches the output at `position` (all channels,
    weighted); None where nothing does."""
    x = x.clone().requires_grad_(True)
    y = model(x)
    picked = y[(0, slice(None), *position)] if y.dim() > 2 else y[0, position[0]]
    (picked * weights[: picked.numel()].reshape(picked.shape)).sum().backward()
    nonzero = (x.grad[0].abs().sum(0) > 0).nonzero()
    if len(nonzero) == 0:
        return None
    return tuple(nonzero.min(0).values.tolist()), tuple(nonzero.max(0).values.tolist())


def _measure_boxes(model, shape, positions, train: bool = False) -> dict[tuple, list]:
    """The boxes at each position on 3 random inputs, as (first, extent) per axis, merged over the inputs (a max
    pool kept for its indices routes each input differently)."""
    model.train(train)
    found: dict[tuple, list] = {}
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(1, *shape, generator=gen, dtype=torch.float64) * 0.5 + 0.25
        weights = torch.rand(4096, generator=gen, dtype=torch.float64) + 0.5
        for pos in positions:
            box = _box(model, x, pos, weights)
            if box is None:
                continue
            lo, hi = box
            if pos in found:
                lo = tuple(min(a, b) for a, b in zip(lo, found[pos][0]))
                hi = tuple(max(a, b) for a, b in zip(hi, found[pos][1]))
            found[pos] = [lo, hi]
    return found


def flops_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Mult-adds per sample: FlopCounterMode's FLOPs (2 per multiply-add), and deform_conv2d's main product."""
    def deform_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * math.prod(out_shape) * math.prod(w_shape[1:])

    mapping = {}
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "deform_conv2d"):
        mapping[torch.ops.torchvision.deform_conv2d] = deform_flop
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter, torch.no_grad():
        model.eval()(torch.rand(2, *shape))
    return counter.get_total_flops() // 2 // 2


@pytest.mark.parametrize("op,shape,layers", CASES, ids=[f"{op}: {layers}" for op, _, layers in CASES])
def test_summary_facts_agree_with_torch(op, shape, layers):
    measured = 0
    for prefix in (False, True):
        src = source(shape, layers, prefix)
        try:
            net = cnndsl.check(src)
        except cnndsl.CnnDslError:
            assert prefix, f"the sample does not check:\n{src}"
            continue  # this sample's sizes do not survive the prefix
        s = summarize(net)
        model = cnndsl.load(src, device="cpu")
        dims = tuple(int(d) for d in shape.split("x"))
        assert s.total_macs == flops_macs(model, dims), f"{src}mult-adds"
        assert s.total_params == sum(p.numel() for p in model.parameters()), f"{src}parameters"
        assert s.buffers == sum(b.numel() for b in model.buffers()), f"{src}buffers"
        measured += _check_field(net, s.layers[-1], _prepared(model), dims, src)
    assert measured >= 1, f"{op} {layers}: no placement measured a field; make the input larger"


def _check_field(net, row, model, shape, src) -> int:
    """Checks the last layer's field against the gradient; the number of placements it measured (0 or 1)."""
    layer = net.layers[-1]
    rank = len(shape) - 1
    if row.receptive_field is None:  # unknown: the output's axes are not the input's
        assert fact(layer, "window").spread == "unknown" or any(r.receptive_field is None for r in summarize(net).layers[:-1]), src
        return 1
    out = layer.output_shape
    centre = tuple(d // 2 for d in out[1:]) if len(out) > 1 else (out[0] // 2,)
    if row.receptive_field == "global":
        boxes = _measure_boxes(model, shape, [centre])
        lo, hi = boxes[centre]
        assert lo == (0,) * rank and hi == tuple(d - 1 for d in shape[1:]), f"{src}global, but torch sees {lo}..{hi}"
        return 1
    statistics = set(fact(layer, "window").statistics)
    positions = sorted(set(itertools.product(*(range(c, min(c + 4, d)) for c, d in zip(centre, out[1:])))))
    boxes = _measure_boxes(model, shape, positions)
    rf, jump = row.receptive_field, row.jump
    checked = {axis: [] for axis in range(rank) if axis not in statistics}
    for pos, (lo, hi) in boxes.items():
        for axis in checked:
            if lo[axis] > 0 and hi[axis] < shape[1 + axis] - 1:  # not clipped by the border
                checked[axis].append((pos, lo[axis], hi[axis] - lo[axis] + 1))
    for axis, seen in checked.items():
        assert seen, f"{src}axis {axis}: every box touches the border; make the input larger"
        extents = [e for _, _, e in seen]
        if row.exact:
            assert set(extents) == {rf[axis]}, f"{src}axis {axis}: exact field {rf[axis]}, torch measures {extents}"
            for pos, start, _ in seen:  # the box moves by the jump per output position
                for other, other_start, _ in seen:
                    if other[axis] > pos[axis] and all(p == q for a, (p, q) in enumerate(zip(pos, other)) if a != axis):
                        moved = (other_start - start) / (other[axis] - pos[axis])
                        assert moved == jump[axis], f"{src}axis {axis}: jump {jump[axis]}, torch moves {moved} from {pos} to {other}"
        else:
            assert max(extents) <= rf[axis], f"{src}axis {axis}: estimate {rf[axis]} below what torch measures, {max(extents)}"
            assert max(extents) >= rf[axis] / 2, f"{src}axis {axis}: estimate {rf[axis]} far above what torch measures, {max(extents)}"
    if statistics:  # the statistics really are over these axes: in training, the whole axis reaches the output
        (lo, hi), = _measure_boxes(model, shape, [centre], train=True).values()
        for axis in statistics:
            assert (lo[axis], hi[axis]) == (0, shape[1 + axis] - 1), f"{src}axis {axis}: declared statistics, torch sees {lo}..{hi}"
    return 1


# -- labels ----------------------------------------------------------------------------------------------


def _module_text(model: nn.Module, layer) -> str:
    target = getattr(model, layer.attr, None)
    if isinstance(target, nn.Module):
        return repr(target)
    if isinstance(target, torch.Tensor):
        return f"{tuple(target.shape)} {target.flatten()[0].item()}"
    return repr(layer.args)


@pytest.mark.parametrize("op,shape,layers", CASES, ids=[f"{op}: {layers}" for op, _, layers in CASES])
def test_label_compiles_to_the_same_layer(op, shape, layers):
    net = cnndsl.check(source(shape, layers, False))
    layer = net.layers[-1]
    label = op_text(layer)
    assert label.split()[0] == op
    if op in FORMS:  # unpool is drawn with a dashed edge from its pool; its label is the op alone
        assert label == op
        return
    stages = layers.rsplit("|", 1)
    again = source(shape, (stages[0] + "| " if len(stages) > 1 else "") + label, False)
    other = cnndsl.check(again).layers[-1]
    assert other.output_shape == layer.output_shape, again
    first = _module_text(cnndsl.load(source(shape, layers, False), device="cpu"), layer)
    second = _module_text(cnndsl.load(again, device="cpu"), other)
    assert first == second, f"{layers!r} is labelled {label!r}, which compiles to {second}, not {first}"
