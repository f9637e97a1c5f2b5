"""The static memory figures (cnndsl/tools/memory.py) against torch on the CPU, in train mode.

- every op's `saves` and `view` facts: the tensors its backward keeps, measured with
  torch.autograd.graph.saved_tensors_hooks (unique storages, parameters and buffers excluded), by their bytes and
  by whether they are the op's input or output storage, out of place and in place, and whether its output is its
  input's storage;
- every example: the bytes of every layer's output (forward hooks), of what each layer keeps and of everything
  kept (saved_tensors_hooks), and the peak of live storages in the forward (a TorchDispatchMode that holds a
  weak reference to every storage an op makes): all exact;
- small networks for merges, joins, splits, taps and several outputs, and networks of tests/test_inplace.py's
  generator: every output and saved figure exact, the peak never above torch's (a lower bound: it leaves out
  an op's temporaries and merge branches' outputs that the forward's local variables still hold)."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import EXAMPLES
from test_inplace import _Gen
from test_op_facts import SAMPLES
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import cnndsl
from cnndsl.ops import REGISTRY
from cnndsl.ops.catalog import fact
from cnndsl.ops.facts import in_place
from cnndsl.tools.memory import memory

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def _owned(model) -> set[int]:
    return {_storage(t) for t in [*model.parameters(), *model.buffers()]}


# -- every op ------------------------------------------------------------------------------------------------

CASES = sorted(SAMPLES.items()) + [
    (f"{op} inplace", (shape, f"{layer} inplace")) for op, (shape, layer) in sorted(SAMPLES.items())
    if REGISTRY[op].option("inplace") is not None
] + [
    ("deform modulated", ("4x6x6", "deform 4 k3 p1 modulated offset_groups=2")),
    ("deform nobias", ("4x6x6", "deform 4 k3 p1 nobias")),
    ("dropout 0", ("4x6x6", "dropout 0")), ("droppath 0", ("4x6x6", "droppath 0")),
    ("gap 1d", ("4x6", "gap")), ("gap 3d", ("4x4x4x4", "gap")), ("adaptiveavgpool 1", ("4x6x6", "adaptiveavgpool 1")),
    ("bn affine=false", ("4x6x6", "bn affine=false")), ("instnorm", ("4x6x6", "instnorm")),
    ("ln 6x6", ("4x6x6", "ln 6x6")), ("linear 2d", ("36", "linear 6")), ("lppool1d", ("4x9", "lppool 3 3")),
    ("upsample bilinear", ("4x6x6", "upsample 2 mode=bilinear")), ("maxpool1d", ("4x9", "maxpool 3")),
]


def probe(shape: str, layer: str) -> str:
    """The layer between two others, so that its input needs a gradient."""
    producer = "conv 4 k1" if "x" in shape else "linear 8"
    return f"network T:\n    input {shape}\n    {producer} as producer | {layer} as probe | identity as after\n"


def measure_op(shape: str, layer: str, dtype=torch.float32) -> tuple[int, set[str], bool]:
    """(the bytes the probe's backward keeps, which of its input and output they include, whether its output
    is its input's storage)."""
    model = cnndsl.load(probe(shape, layer), device="cpu").to(dtype).train()
    owned, kept, io, on = _owned(model), {}, {}, [False]

    def pack(t):
        if on[0] and _storage(t) not in owned:
            kept[_storage(t)] = t.untyped_storage().nbytes()
        return t

    model.producer.register_forward_hook(lambda m, a, o: (on.__setitem__(0, True), io.__setitem__("in", o)) and None)
    model.after.register_forward_pre_hook(lambda m, a: (on.__setitem__(0, False), io.__setitem__("out", a[0])) and None)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(2, *(int(d) for d in shape.split("x")), dtype=dtype))
    inp, out = _storage(io["in"]), _storage(io["out"])
    roles = {"input" if p == inp else "output" for p in kept if p in (inp, out)}
    return sum(kept.values()), roles, inp == out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_saved_tensors_of_every_op(case, one_thread):
    _, (shape, layer) = case
    bytes_kept, roles, alias = measure_op(shape, layer)
    net = cnndsl.check(probe(shape, layer))
    row = memory(net, batch=2, device="cpu").layers.get("probe")
    if row is None:  # a layer without a module of its own (permute, crop): the network's total minus the rest
        mem = memory(net, batch=2, device="cpu")
        rest = sum(r.saved_bytes for r in mem.layers.values())
        assert mem.saved_bytes - rest == bytes_kept, (layer, mem.saved_bytes - rest, bytes_kept)
        return
    assert row.saved_bytes == bytes_kept, f"{layer}: the catalog says {row.saved_bytes} bytes, torch keeps {bytes_kept}"
    layer_ = net.layer("probe")
    static_alias = bool(fact(layer_, "view")) or in_place(layer_)
    assert static_alias == alias, f"{layer}: torch's output is its input's storage: {alias}"
    said = {s.tensor for s in fact(layer_, "saves") if s.tensor in ("input", "output")}
    if alias:
        said = {"input"} if said else set()
    assert said == roles, f"{layer}: torch keeps {roles or 'neither its input nor its output'}"


@pytest.mark.parametrize("op", ["bn", "gn", "ln", "maxpool", "dropout", "frozenbn", "lppool", "softsign"])
def test_saved_dtypes_on_the_cpu(op, one_thread):
    """In bfloat16 on the CPU, statistics and masks take the activations' dtype, indices stay int64."""
    shape, layer = SAMPLES[op]
    bytes_kept, _, _ = measure_op(shape, layer, torch.bfloat16)
    net = cnndsl.check(probe(shape, layer))
    assert memory(net, batch=2, dtype="bfloat16", device="cpu").layers["probe"].saved_bytes == bytes_kept


def test_cuda_masks_and_statistics():
    """On CUDA (not measured here: no GPU in CI), a dropout mask is bool and half-precision statistics float32."""
    net = cnndsl.check("network T:\n    input 4x6x6\n    conv 4 k1 | bn | dropout 0.5\n")
    cpu, cuda = (memory(net, batch=2, dtype="float16", device=d).layers for d in ("cpu", "cuda"))
    assert (cpu["dropout1"].saved_bytes, cuda["dropout1"].saved_bytes) == (2 * 144 * 2, 2 * 144)
    assert (cpu["bn1"].saved_bytes - cuda["bn1"].saved_bytes) == 2 * 4 * (2 - 4)


# -- every example -------------------------------------------------------------------------------------------


class LivePeak(TorchDispatchMode):
    """The most bytes of storages alive at once, after each op: every storage an op makes, held by a weak
    reference, plus the input (parameters and buffers excluded)."""

    def __init__(self, owned: set[int], x: torch.Tensor):
        super().__init__()
        self.owned, self.refs, self.base = owned, {}, x.untyped_storage().nbytes()
        self.refs[_storage(x)] = (StorageWeakRef(x.untyped_storage()), self.base)
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and _storage(t) not in self.owned and t.untyped_storage().nbytes():
                self.refs[_storage(t)] = (StorageWeakRef(t.untyped_storage()), t.untyped_storage().nbytes())
        self.peak = max(self.peak, sum(n for ref, n in self.refs.values() if not ref.expired()))
        return out


def measure_network(model, x: torch.Tensor, names: set[str]):
    """(saved bytes by the layer that first keeps them, all saved bytes, output bytes by layer, the peak)."""
    owned, first, outputs, stack = _owned(model), {}, {}, []

    def pack(t):
        if _storage(t) not in owned and _storage(t) not in first:
            first[_storage(t)] = (stack[0] if stack else "", t.untyped_storage().nbytes(), t)
        return t

    def done(module, args, out, name):
        stack.pop()
        out = out[0] if isinstance(out, tuple) else out  # a max pool that also returns its indices
        outputs[name] = out.numel() * out.element_size()

    for name, module in model.named_modules():
        if name in names:
            module.register_forward_pre_hook(lambda m, a, name=name: stack.append(name) and None)
            module.register_forward_hook(lambda m, a, o, name=name: done(m, a, o, name))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), LivePeak(owned, x) as live:
        model.train()(x)
    by: dict[str, int] = {}
    for who, n, _ in first.values():
        by[who] = by.get(who, 0) + n
    return by, sum(n for _, n, _ in first.values()), outputs, live.peak


SMALL = {"convnext": "3x64x64", "vgg16_bn": "3x64x64", "vgg": "3x64x64", "resnet50_fpn": "3x64x64", "resnet50": "3x64x64",
         "mobilenet_v2": "3x64x64", "alexnet": "3x96x96", "video3d": "3x8x32x32", "squeezenet1_1": "3x64x64",
         "resnet18": "3x64x64", "resnet": "3x64x64", "mobile_block": "3x64x64", "segnet": "3x64x64", "deform": "3x32x32"}
SLOW = {"unet_original", "alexnet", "vgg", "vgg16_bn"}  # large weights: building them dominates
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.cnn"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES])
def test_every_example_agrees_with_torch(name, one_thread):
    net = cnndsl.check(EXAMPLES / f"{name}.cnn", input=SMALL.get(name))
    shape = net.input_shape or net.example_shape
    net = cnndsl.check(EXAMPLES / f"{name}.cnn", input="x".join(map(str, shape)))
    mem = memory(net, batch=2, device="cpu")
    model = cnndsl.load(EXAMPLES / f"{name}.cnn", input="x".join(map(str, shape)), device="cpu")
    torch.manual_seed(0)
    by, total, outputs, peak = measure_network(model, torch.randn(2, *shape), set(mem.layers))
    for layer, row in mem.layers.items():
        if layer in outputs:  # a layer with a module of its own (permute, crop and layerscale have none)
            assert row.output_bytes == outputs[layer], layer
            if row.saved_bytes is not None:
                assert row.saved_bytes == by.get(layer, 0), layer
    externals = [x for x in net.layers if x.external is not None]
    if externals:  # what an external module keeps is unknown: so are the totals
        assert mem.saved_bytes is None and mem.peak_bytes is None
        return
    assert mem.saved_bytes == total
    assert mem.peak_bytes == peak


# -- merges, named values, blocks: small networks for what the examples do not all show ------------------------

NETWORKS = {
    "se": "input 8x8x8\n    mul:\n        identity\n        gap | conv 2 k1 | relu | conv 8 k1 | sigmoid\n    conv 8 k1",
    "mul3": "input 8x8x8\n    conv 8 k1\n    mul:\n        identity\n        conv 8 k1 | sigmoid\n        conv 8 k1 | tanh",
    "split": "input 8x8x8\n    conv 8 k1\n    split 2:\n        conv 4 k3 p1\n        conv 4 k3 p1 | relu\n    conv 8 k1",
    "nested": "input 8x8x8\n    conv 8 k1\n    add:\n        identity\n        cat:\n            conv 4 k1\n            conv 4 k3 p1 | bn | relu inplace",
    "joins": "input 8x8x8\n    a = conv 8 k3 p1\n    b = a | relu | conv 8 k3 p1\n    b | mul(a) | cat(b) | conv 8 k1 | add(a, a)",
    "off": "input 8x8x8\n    conv 8 k1\n    add if 1 == 2:\n        identity\n        conv 8 k3 p1\n    relu",
    "param_free_first": "input 3x8x8\n    maxpool 2 | frozenbn | relu | dropout 0.2 | conv 4 k1",
    "in_place": "input 3x8x8\n    conv 8 k3 | bn | relu inplace | dropout 0.3 inplace | conv 4 k1 | hardswish inplace",
    "taps": "input 3x16x16\n    body:\n        conv 8 k3 p1 | relu\n        c2 = conv 8 k3 s2 p1 | relu\n        c3 = conv 8 k3 s2 p1\n    output c2, c3",
}
BLOCKS = "block Two:\n    a = conv 8 k1\n    b = a | relu\n    output a, b\n\n"
NETWORKS["outputs"] = "input 3x8x8\n    x, y = Two()\n    x | add(y) | conv 4 k1"


@pytest.mark.parametrize("case", sorted(NETWORKS))
def test_merges_and_values_agree_with_torch(case, one_thread):
    source = f"{BLOCKS}network N:\n    {NETWORKS[case]}\n"
    net = cnndsl.check(source)
    mem = memory(net, batch=2, device="cpu")
    model = cnndsl.load(source, device="cpu")
    by, total, outputs, peak = measure_network(model, torch.randn(2, *net.input_shape), set(mem.layers))
    assert mem.saved_bytes == total
    for layer, row in mem.layers.items():
        if layer in outputs:
            assert (row.output_bytes, row.saved_bytes) == (outputs[layer], by.get(layer, 0)), layer
    # the peak leaves out an op's temporaries (frozenbn's x * scale, the contiguous copy a conv makes of a
    # chunk, CPU dropout's noise where nothing needs a gradient) and merge branches' outputs that the forward's
    # local variables hold until it returns: a lower bound, exact where these are not alive at the peak
    assert mem.peak_bytes <= peak


# -- generated compositions ------------------------------------------------------------------------------------

GENERATED = int(os.environ.get("CNNDSL_MEMORY_CASES", "12"))  # `-m slow` runs 500 more


def check_generated(seed: int) -> bool:
    """A network of tests/test_inplace.py's generator (merges nested in merges, conditional branches, blocks,
    named values, joins, splits, taps, several outputs, every op that takes `inplace`): every layer's output and
    saved bytes and the saved total exact, the peak never above torch's. False where the checker refuses it."""
    source = _Gen(seed).source()
    try:
        net = cnndsl.check(source)
    except cnndsl.CnnDslError:
        return False
    mem = memory(net, batch=2, device="cpu")
    torch.manual_seed(seed)
    by, total, outputs, peak = measure_network(cnndsl.load(source, device="cpu"), torch.randn(2, *net.input_shape), set(mem.layers))
    assert mem.saved_bytes == total, (seed, source)
    for layer, row in mem.layers.items():
        if layer in outputs:
            assert (row.output_bytes, row.saved_bytes) == (outputs[layer], by.get(layer, 0)), (seed, layer, source)
    assert mem.peak_bytes <= peak, (seed, source)
    return True


def test_generated_compositions_agree_with_torch(one_thread):
    assert sum(check_generated(seed) for seed in range(GENERATED)) >= GENERATED * 0.8


@pytest.mark.slow
def test_generated_compositions_agree_with_torch_deep(one_thread):
    assert sum(check_generated(seed) for seed in range(GENERATED, GENERATED + 500)) >= 400
