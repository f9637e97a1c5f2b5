"""Differential property tests: random layers and inputs, written as .cnn text, with torch as the oracle.

For every op family a hypothesis strategy draws options and an input shape, writes them as a .cnn network
(one layer per line) and builds the same layers directly from torch.nn (never from cnndsl's output), each
from the shape torch itself produced before it. Then, for every case:

- where torch raises (building a layer or running it), cnndsl must reject the source, and its first
  diagnostic must be located on the line of the layer torch rejected;
- where torch runs, cnndsl must accept, with torch's output shape and parameter count;
- for a sample of the accepted cases (every `EXEC_EVERY`-th per family) and for every accepted chain, the
  generated module (cnndsl.load) runs and gives that shape, and, with its parameters copied into the
  torch layers in order, the same values.

Deliberate differences (docs/LANGUAGE.md, "Notes and decisions") are expected rejections, not
disagreements: a layer whose torch output has a size of zero (an adaptive pool to 0; in torch 2.14 a transposed
convolution or an upsampling that would be empty raises, so it is an ordinary rejection) and `flatten start_dim=0` are rejected by cnndsl
although torch returns a tensor; explicit `pixelshuffle` on a tensor that is not 4-D is not generated
(torch would shuffle a spatial axis as if it were the channels), and neither is an explicit `instnorm` or
`dropout2d` on the wrong rank (torch reads it as an unbatched input); an explicit `bn2d` on the wrong rank
is generated, and torch rejects it too.

Profiles: "cnndsl-ci" (the default: derandomized, so CI is reproducible, a few thousand cases) and
"cnndsl-deep" (random, twenty times as many), selected by CNNDSL_DEEP=1 for the ordinary test names or by
`pytest -m slow`, which runs the `*_deep` copies of the tests. The number of cases each family ran is
printed at the end of the session (tests/conftest.py, pytest_terminal_summary).

Every disagreement these tests found is pinned by a `test_regression_*` test at the end of this file.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models.convnext import LayerNorm2d
from torchvision.ops import FrozenBatchNorm2d

import cnndsl
from cnndsl import CnnDslError

pytestmark = [
    pytest.mark.usefixtures("one_thread", "differential_counts"),
    pytest.mark.filterwarnings("ignore"),
]

TORCH_ERRORS = (RuntimeError, ValueError, TypeError, NotImplementedError, ZeroDivisionError, IndexError)
EXEC_EVERY = 10  # run the generated module for every 10th accepted case of a family (always for chains)
DEEP = os.environ.get("CNNDSL_DEEP", "") not in ("", "0")
DEEP_FACTOR = 20

settings.register_profile(
    "cnndsl-ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile(
    "cnndsl-deep",
    derandomize=False,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# -- bookkeeping: cases per family, reported at the end of the session --------------------------------

COUNTS: Counter = Counter()
STARTED = [None]


@pytest.fixture(scope="module")
def differential_counts(request):
    """Hands the counters to tests/conftest.py's pytest_terminal_summary."""
    STARTED[0] = STARTED[0] or time.perf_counter()
    request.config.cnndsl_differential = COUNTS
    yield COUNTS
    request.config.cnndsl_differential_seconds = time.perf_counter() - STARTED[0]


# -- cases --------------------------------------------------------------------------------------------


@dataclass
class Stage:
    """One layer: its .cnn text (one or more lines) and a builder of the torch equivalent from torch's
    own input shape (batch included)."""

    text: str
    make: Callable[[tuple[int, ...]], nn.Module]
    deliberate: Optional[str] = None  # why cnndsl rejects where torch runs (documented decision)

    @property
    def height(self) -> int:
        return self.text.count("\n") + 1


@dataclass
class Case:
    family: str
    input: tuple[int, ...]  # (C, *spatial)
    stages: list[Stage] = field(default_factory=list)

    def source(self) -> str:
        lines = ["network T:", "    input " + "x".join(map(str, self.input))]
        for s in self.stages:
            lines += ["    " + t for t in s.text.split("\n")]
        return "\n".join(lines) + "\n"

    def stage_lines(self, i: int) -> range:
        first = 3 + sum(s.height for s in self.stages[:i])
        return range(first, first + self.stages[i].height)

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"Case({self.family!r}, input={self.input}, source=\n{self.source()})"


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@dataclass
class TorchResult:
    shape: Optional[tuple[int, ...]] = None  # output shape without the batch; None when torch rejects
    params: int = 0
    failed: Optional[int] = None  # the stage torch rejected (or cnndsl deliberately rejects)
    why: str = ""
    modules: list[nn.Module] = field(default_factory=list)


BATCH = 2


def run_torch(case: Case, x: torch.Tensor) -> TorchResult:
    r = TorchResult()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for i, stage in enumerate(case.stages):
            try:
                m = stage.make(tuple(x.shape))
                m.eval()
                x = m(x)
            except TORCH_ERRORS as e:
                r.failed, r.why = i, f"torch: {type(e).__name__}: {e}"
                return r
            r.modules.append(m)
            r.params += n_params(m)
            if stage.deliberate:
                r.failed, r.why = i, f"deliberate: {stage.deliberate}"
                return r
            if 0 in x.shape:
                r.failed, r.why = i, f"deliberate: torch gives an empty tensor {tuple(x.shape)}, cnndsl rejects sizes of zero"
                return r
    r.shape = tuple(x.shape[1:])

    return r


def differential(case: Case, execute: Optional[bool] = None) -> None:
    """The oracle: torch's verdict, shape and parameter count against cnndsl's."""
    fam = case.family
    COUNTS[fam] += 1
    src = case.source()
    torch.manual_seed(0)
    x = torch.randn(BATCH, *case.input)
    want = run_torch(case, x)
    try:
        net = cnndsl.check(src)
    except CnnDslError as e:
        d = e.diagnostics[0]
        assert want.failed is not None, f"torch accepts, output {want.shape}; cnndsl rejects:\n{e.render()}\n{src}"
        lines = case.stage_lines(want.failed)
        assert d.line in lines and d.col >= 5, (
            f"cnndsl rejects at {d.line}:{d.col}, expected on line(s) {list(lines)} ({want.why}):\n{e.render()}\n{src}"
        )
        COUNTS["rejected"] += 1
        return
    assert want.failed is None, f"{want.why}; cnndsl accepts with output {net.output_shape}:\n{src}"
    assert net.output_shape == want.shape, f"torch {want.shape}, cnndsl {net.output_shape}:\n{src}"
    assert net.total_params == want.params, f"torch {want.params} parameters, cnndsl {net.total_params}:\n{src}"
    COUNTS["accepted"] += 1
    COUNTS[f"{fam}.accepted"] += 1
    if execute is None:
        execute = COUNTS[f"{fam}.accepted"] % EXEC_EVERY == 1
    if execute:
        run_generated(case, src, x, want)


def run_generated(case: Case, src: str, x: torch.Tensor, want: TorchResult) -> None:
    """The generated module gives torch's shape and, with its parameters copied into the torch layers in
    order (state_dict order is declaration order on both sides), torch's values."""
    COUNTS["executed"] += 1
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        gen = cnndsl.load(src).eval()
        assert n_params(gen) == want.params
        y = gen(x)
        assert tuple(y.shape) == (BATCH, *want.shape), f"generated {tuple(y.shape)}, torch {(BATCH, *want.shape)}:\n{src}"
        theirs = list(gen.state_dict().values())
        ours = [(m, k) for m in want.modules for k in m.state_dict()]
        assert len(theirs) == len(ours), f"{[k for k in gen.state_dict()]} vs {[k for _, k in ours]}:\n{src}"
        for m, group in _group(ours, theirs):
            m.load_state_dict(group)
        ref = x
        for m in want.modules:
            ref = m(ref)
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5, msg=lambda s: f"{s}\n{src}")


def _group(ours, theirs):
    out: dict[int, tuple[nn.Module, dict]] = {}
    for (m, k), v in zip(ours, theirs):
        assert m.state_dict()[k].shape == v.shape, f"{k}: {tuple(m.state_dict()[k].shape)} vs {tuple(v.shape)}"
        out.setdefault(id(m), (m, {}))[1][k] = v
    return out.values()


# -- writing options as .cnn text ---------------------------------------------------------------------


def tup(v) -> str:
    return f"({', '.join(map(str, v))})"


def opt(draw, short: str, key: str, v) -> str:
    """`k3`, `k3x5` or `kernel_size=3`, `kernel_size=(3, 5)` (short forms only where the language has one)."""
    long = draw(st.booleans()) or not short
    if isinstance(v, int):
        return f"{key}={v}" if long else f"{short}{v}"
    return f"{key}={tup(v)}" if long else short + "x".join(map(str, v))


def per_dim(draw, dim: int, lo: int, hi: int):
    """An int, or (in 2-d and 3-d) a tuple of one int per spatial dimension."""
    if dim > 1 and draw(st.integers(0, 2)) == 0:
        return tuple(draw(st.integers(lo, hi)) for _ in range(dim))
    return draw(st.integers(lo, hi))


MAX_SIZE = {1: 12, 2: 9, 3: 6}


def spatial(draw, dim: int, lo: int = 1) -> tuple[int, ...]:
    return tuple(draw(st.integers(lo, MAX_SIZE[dim])) for _ in range(dim))


def channels(draw, groups: int) -> int:
    """Mostly a multiple of groups, sometimes anything (torch then rejects)."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.integers(1, 8))
    return groups * draw(st.integers(1, 3))


def family_op(draw, op: str, dim: int) -> str:
    """`conv` (the rank picks the family) or the explicit `conv2d`."""
    return f"{op}{dim}d" if draw(st.booleans()) else op


CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
MAXUNPOOL = {1: nn.MaxUnpool1d, 2: nn.MaxUnpool2d, 3: nn.MaxUnpool3d}
ADAPTIVE = {
    "avg": {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d},
    "max": {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
}
BN = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
INSTNORM = {3: nn.InstanceNorm1d, 4: nn.InstanceNorm2d, 5: nn.InstanceNorm3d}


def conv_stage(draw, dim: int, c_in: int) -> Stage:
    g = draw(st.sampled_from([1, 1, 1, 2, 3, 4]))
    out = channels(draw, g)
    k = per_dim(draw, dim, 1, 4)
    s = per_dim(draw, dim, 1, 3) if draw(st.booleans()) else 1
    d = per_dim(draw, dim, 1, 3) if draw(st.integers(0, 2)) == 0 else 1
    p = draw(st.one_of(st.just(0), st.integers(0, 3), st.sampled_from(["same", "valid"]))) if dim == 1 or draw(st.booleans()) else per_dim(draw, dim, 0, 3)
    mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
    bias = draw(st.integers(0, 3)) > 0
    declared = draw(st.sampled_from([None, None, c_in, c_in, c_in + 1]))
    words = [family_op(draw, "conv", dim), f"{declared}->{out}" if declared else str(out), opt(draw, "k", "kernel_size", k)]
    if s != 1 or draw(st.integers(0, 5)) == 0:
        words.append(opt(draw, "s", "stride", s))
    if isinstance(p, str):
        words.append(f"padding={p}")
    elif p != 0 or draw(st.integers(0, 5)) == 0:
        words.append(opt(draw, "p", "padding", p))
    if d != 1:
        words.append(opt(draw, "d", "dilation", d))
    if g != 1 or draw(st.integers(0, 5)) == 0:
        words.append(opt(draw, "g", "groups", g))
    if mode != "zeros" or draw(st.integers(0, 5)) == 0:
        words.append(f"padding_mode={mode}")
    if not bias:
        words.append(draw(st.sampled_from(["nobias", "bias=false"])))
    draw_perm = draw(st.permutations(words[2:]))
    text = " ".join(words[:2] + list(draw_perm))

    def make(shape):
        return CONV[dim](declared or shape[1], out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias, padding_mode=mode)

    return Stage(text, make)


def convt_stage(draw, dim: int, c_in: int) -> Stage:
    g = draw(st.sampled_from([1, 1, 1, 2, 3]))
    out = channels(draw, g)
    k = per_dim(draw, dim, 1, 4)
    s = per_dim(draw, dim, 1, 3)
    p = per_dim(draw, dim, 0, 3) if draw(st.booleans()) else 0
    op = per_dim(draw, dim, 0, 2) if draw(st.booleans()) else 0
    d = per_dim(draw, dim, 1, 3) if draw(st.integers(0, 2)) == 0 else 1
    bias = draw(st.integers(0, 3)) > 0
    name = draw(st.sampled_from(["convt", "deconv", f"convt{dim}d"]))
    words = [f"{out}", opt(draw, "k", "kernel_size", k), opt(draw, "s", "stride", s)]
    if p != 0:
        words.append(opt(draw, "p", "padding", p))
    if op != 0:
        words.append(opt(draw, "op", "output_padding", op))
    if d != 1:
        words.append(opt(draw, "d", "dilation", d))
    if g != 1:
        words.append(opt(draw, "g", "groups", g))
    if not bias:
        words.append("nobias")

    def make(shape):
        return CONVT[dim](shape[1], out, k, stride=s, padding=p, output_padding=op, groups=g, bias=bias, dilation=d)

    return Stage(f"{name} " + " ".join(words), make)


def pool_stage(draw, dim: int, kind: str) -> Stage:
    k = per_dim(draw, dim, 1, 4)
    s = per_dim(draw, dim, 1, 3) if draw(st.booleans()) else None
    p = per_dim(draw, dim, 0, 2) if draw(st.booleans()) else 0
    ceil = draw(st.booleans())
    words = [family_op(draw, f"{kind}pool", dim), str(k) if isinstance(k, int) else "x".join(map(str, k))]
    if s is not None:
        words.append(opt(draw, "s", "stride", s))
    if p != 0:
        words.append(opt(draw, "p", "padding", p))
    if ceil:
        words.append(draw(st.sampled_from(["ceil", "ceil_mode=true"])))
    if kind == "max":
        d = per_dim(draw, dim, 1, 3) if draw(st.integers(0, 2)) == 0 else 1
        if d != 1:
            words.append(opt(draw, "d", "dilation", d))
        return Stage(" ".join(words), lambda shape: MAXPOOL[dim](k, s, p, dilation=d, ceil_mode=ceil))
    cip = draw(st.booleans())
    div = draw(st.sampled_from([None, None, None, 1, 2, 3, 0]))
    if not cip:
        words.append("count_include_pad=false")
    kw = {}
    if div is not None:
        words.append(f"divisor_override={div}")
        kw["divisor_override"] = div  # AvgPool1d has no divisor_override: torch rejects it (TypeError)
    return Stage(" ".join(words), lambda shape: AVGPOOL[dim](k, s, p, ceil_mode=ceil, count_include_pad=cip, **kw))


# -- strategies, one per family -------------------------------------------------------------------------


@st.composite
def conv_cases(draw):
    dim = draw(st.sampled_from([1, 2, 2, 3]))
    c = draw(st.integers(1, 8))
    return Case("conv", (c, *spatial(draw, dim)), [conv_stage(draw, dim, c)])


@st.composite
def convt_cases(draw):
    dim = draw(st.sampled_from([1, 2, 2, 3]))
    c = channels(draw, draw(st.sampled_from([1, 2, 3])))
    return Case("convt", (c, *spatial(draw, dim)), [convt_stage(draw, dim, c)])


@st.composite
def pool_cases(draw):
    dim = draw(st.sampled_from([1, 2, 2, 3]))
    kind = draw(st.sampled_from(["max", "avg"]))
    return Case(f"{kind}pool", (draw(st.integers(1, 3)), *spatial(draw, dim)), [pool_stage(draw, dim, kind)])


@st.composite
def adaptive_cases(draw):
    dim = draw(st.sampled_from([1, 2, 3]))
    kind = draw(st.sampled_from(["avg", "max"]))
    if draw(st.integers(0, 5)) == 0:
        stage = Stage("gap", lambda shape: ADAPTIVE["avg"][dim](1))
    else:
        size = per_dim(draw, dim, 0, 5) if draw(st.integers(0, 9)) == 0 else per_dim(draw, dim, 1, 5)
        text = family_op(draw, f"adaptive{kind}pool", dim) + " " + (str(size) if isinstance(size, int) else "x".join(map(str, size)))
        stage = Stage(text, lambda shape: ADAPTIVE[kind][dim](size))
    return Case("adaptive", (draw(st.integers(1, 3)), *spatial(draw, dim)), [stage])


class PoolUnpool(nn.Module):
    """maxpool (return_indices) | relu | unpool, restoring the pool's input size as cnndsl does."""

    def __init__(self, dim, k, s, p, d, ceil):
        super().__init__()
        self.dim = dim
        self.pool = MAXPOOL[dim](k, s, p, dilation=d, ceil_mode=ceil, return_indices=True)
        self.unpool = MAXUNPOOL[dim](k, s, p)

    def forward(self, x):
        y, i = self.pool(x)
        return self.unpool(torch.relu(y), i, output_size=x.shape[-self.dim :])


@st.composite
def unpool_cases(draw):
    dim = draw(st.sampled_from([1, 2, 3]))
    pool = pool_stage(draw, dim, "max")
    m = pool.make((1, 1, *([4] * dim)))
    k, s, p, d, ceil = m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode
    text = f"{pool.text} as pool1\nrelu\nunpool pool1"
    return Case("unpool", (draw(st.integers(1, 3)), *spatial(draw, dim)), [Stage(text, lambda shape: PoolUnpool(dim, k, s, p, d, ceil))])


MODES = {1: ["nearest", "linear", "area", "nearest-exact"], 2: ["nearest", "bilinear", "bicubic", "area", "nearest-exact"], 3: ["nearest", "trilinear", "area", "nearest-exact"]}
ALL_MODES = ["nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact"]
SCALES = [1, 2, 3, 0.5, 0.3, 0.7, 1.5, 2.5]


@st.composite
def upsample_cases(draw):
    dim = draw(st.sampled_from([1, 2, 3]))
    words = ["upsample"]
    kw = {}
    if draw(st.integers(0, 3)) == 0:
        size = per_dim(draw, dim, 0, 8) if draw(st.integers(0, 9)) == 0 else per_dim(draw, dim, 1, 8)
        words.append(f"size={size}" if isinstance(size, int) else f"size={tup(size)}")
        kw["size"] = size
    else:
        scale = draw(st.sampled_from(SCALES)) if dim == 1 or draw(st.booleans()) else tuple(draw(st.sampled_from(SCALES)) for _ in range(dim))
        words.append(str(scale) if not isinstance(scale, tuple) else f"scale_factor={tup(scale)}")
        kw["scale_factor"] = scale
        rsf = draw(st.sampled_from([None, None, True, False]))
        if rsf is not None:
            words.append(f"recompute_scale_factor={str(rsf).lower()}")
            kw["recompute_scale_factor"] = rsf
    mode = draw(st.sampled_from(MODES[dim])) if draw(st.integers(0, 4)) else draw(st.sampled_from(ALL_MODES))
    if mode != "nearest" or draw(st.booleans()):
        words.append(f'mode="{mode}"' if "-" in mode else f"mode={mode}")
    kw["mode"] = mode
    ac = draw(st.sampled_from([None, None, True, False]))
    if ac is not None:
        words.append(f"align_corners={str(ac).lower()}")
        kw["align_corners"] = ac
    return Case("upsample", (draw(st.integers(1, 2)), *spatial(draw, dim)), [Stage(" ".join(words), lambda shape: nn.Upsample(**kw))])


@st.composite
def pixelshuffle_cases(draw):
    # 4-D inputs only: torch reads a 5-D input as (*, C, H, W) and would shuffle the depth as if it
    # were the channels; cnndsl rejects pixelshuffle on any other rank (test_pixelshuffle_needs_4d).
    r = draw(st.integers(1, 3))
    if draw(st.booleans()):
        c = r * r * draw(st.integers(1, 2)) if draw(st.integers(0, 5)) else draw(st.integers(1, 9))
        size = spatial(draw, 2)
        stage = Stage(f"pixelshuffle {r}", lambda shape: nn.PixelShuffle(r))
    else:
        c = draw(st.integers(1, 3))
        size = tuple(r * draw(st.integers(1, 3)) if draw(st.integers(0, 5)) else draw(st.integers(1, 9)) for _ in range(2))
        stage = Stage(f"pixelunshuffle {r}", lambda shape: nn.PixelUnshuffle(r))
    return Case("pixelshuffle", (c, *size), [stage])


def flatten_stage() -> Stage:
    return Stage("flatten", lambda shape: nn.Flatten())


@st.composite
def norm_cases(draw):
    dim = draw(st.sampled_from([0, 1, 2, 3]))  # 0: after flatten, (N, C)
    c = draw(st.integers(1, 6))
    stages = []
    if dim == 0:
        inp = (c, 1)
        stages.append(flatten_stage())
        rank = 2
    else:
        inp = (c, *spatial(draw, dim))
        rank = dim + 2
    kind = draw(st.sampled_from(["bn", "gn", "ln", "instnorm"] if rank > 2 else ["bn", "gn", "ln"]))
    eps = draw(st.sampled_from([None, 1e-3, 0.1]))
    words = []
    kw = {} if eps is None else {"eps": eps}
    if eps is not None:
        words.append(f"eps={eps}")
    if kind == "bn":
        explicit = draw(st.sampled_from([None, None, 1, 2, 3]))
        name = "bn" if explicit is None else f"bn{explicit}d"  # explicit, and possibly the wrong rank: torch rejects that too
        cls = BN[rank] if explicit is None else {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[explicit]
        for key in ("affine", "track_running_stats"):
            if draw(st.integers(0, 3)) == 0:
                words.append(f"{key}=false")
                kw[key] = False
        if draw(st.integers(0, 3)) == 0:
            words.append("momentum=0.2")
            kw["momentum"] = 0.2
        make = lambda shape: cls(shape[1], **kw)
        text = " ".join([name, *words])
    elif kind == "gn":
        g = draw(st.integers(1, 4))
        if draw(st.integers(0, 3)) == 0:
            words.append("affine=false")
            kw["affine"] = False
        make = lambda shape: nn.GroupNorm(g, shape[1], **kw)
        text = " ".join(["gn", str(g), *words])
    elif kind == "ln":
        shape_words = ""
        trailing = None
        if draw(st.booleans()):
            full = inp if dim > 0 else (c,)
            n = draw(st.integers(1, len(full)))
            trailing = tuple(full[-n:])
            if draw(st.integers(0, 5)) == 0:
                trailing = tuple(draw(st.integers(1, 6)) for _ in trailing)
            shape_words = " " + (str(trailing[0]) if len(trailing) == 1 else tup(trailing))
        if draw(st.integers(0, 3)) == 0:
            words.append("elementwise_affine=false")
            kw["elementwise_affine"] = False
        elif draw(st.integers(0, 3)) == 0:
            words.append("bias=false")
            kw["bias"] = False
        make = lambda shape: nn.LayerNorm(trailing or shape[-1], **kw)
        text = " ".join(["ln" + shape_words, *words])
    else:
        explicit = draw(st.booleans())
        for key in ("affine", "track_running_stats"):
            if draw(st.integers(0, 2)) == 0:
                words.append(f"{key}=true")
                kw[key] = True
        cls = INSTNORM[rank]
        make = lambda shape: cls(shape[1], **kw)
        text = " ".join([f"instnorm{rank - 2}d" if explicit else "instnorm", *words])
    stages.append(Stage(text, make))
    return Case("norm", inp, stages)


@st.composite
def linear_cases(draw):
    dim = draw(st.sampled_from([1, 2, 3]))
    inp = (draw(st.integers(1, 4)), *spatial(draw, dim))
    rank = dim + 2
    words = ["flatten"]
    start, end = 1, -1
    if draw(st.integers(0, 2)) == 0:
        start = draw(st.integers(-rank - 1, rank))
        words.append(f"start_dim={start}")
    if draw(st.integers(0, 2)) == 0:
        end = draw(st.integers(-rank - 1, rank))
        words.append(f"end_dim={end}")
    deliberate = "flatten start_dim=0 flattens the batch" if start in (0, -rank) else None
    flat = Stage(" ".join(words), lambda shape: nn.Flatten(start, end), deliberate=deliberate)
    out = draw(st.integers(1, 6))
    bias = draw(st.booleans())
    declared = draw(st.sampled_from([None, None, "right", "wrong"]))
    lin_words = [draw(st.sampled_from(["linear", "fc"]))]

    def features(shape):
        n = shape[-1]
        return n + 1 if declared == "wrong" else n

    if declared:
        # cnndsl checks `in` against the last dimension; the torch layer is built with the declared size
        lin_words.append(f"in=@IN@")
    lin_words.append(str(out))
    if not bias:
        lin_words.append("nobias")
    # the declared in_features must be written before torch runs: compute the last dimension from torch
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            last = nn.Flatten(start, end)(torch.zeros(BATCH, *inp)).shape[-1]
        except TORCH_ERRORS:
            last = 1
    text = " ".join(lin_words).replace("@IN@", str(last + 1 if declared == "wrong" else last))
    lin = Stage(text, lambda shape: nn.Linear(features(shape), out, bias=bias))
    return Case("linear", inp, [flat, lin])


PAD = {"reflect": "ReflectionPad", "replicate": "ReplicationPad", "circular": "CircularPad"}


@st.composite
def pad_cases(draw):
    """pad: one number or F.pad's pairs (sometimes an odd count, or more pairs than spatial dimensions), negative
    numbers (cropping) now and then, every mode, `value` now and then (also where the mode has none)."""
    dim = draw(st.sampled_from([1, 2, 2, 3]))
    mode = draw(st.sampled_from(["constant", "constant", "reflect", "replicate", "circular"]))
    low = -4 if draw(st.integers(0, 3)) == 0 else 0
    if draw(st.booleans()):
        padding = draw(st.integers(low, 4))
    else:
        n = 2 * draw(st.integers(1, dim)) if draw(st.integers(0, 7)) else draw(st.integers(2, 2 * dim + 2))  # (no 1-tuple in .cnn)
        padding = tuple(draw(st.integers(low, 4)) for _ in range(n))
    fill = draw(st.sampled_from([None, None, 0, 0.5, -2]))
    words = [family_op(draw, "pad", dim) if draw(st.integers(0, 3)) == 0 else "pad"]
    words.append((f"({padding})" if padding < 0 else str(padding)) if isinstance(padding, int) else tup(padding))
    if mode != "constant" or draw(st.integers(0, 3)) == 0:
        words.append(f"mode={mode}")
    if fill is not None:
        words.append(f"value={fill}")
    pads = padding if isinstance(padding, tuple) else (padding,)
    deliberate = None
    if mode != "constant" and min(pads) < 0:
        deliberate = "cnndsl takes no negative padding outside mode=constant"
    elif len(pads) > 2 * dim:
        deliberate = "cnndsl pads the spatial dimensions only (torch would pad the channels too)"

    def make(shape):
        if fill is not None and mode != "constant":
            raise TypeError(f"{PAD[mode]}{dim}d takes no value")  # what torch's constructor would say
        if mode == "constant":
            return getattr(nn, f"ConstantPad{dim}d")(padding, fill or 0.0)
        return getattr(nn, f"{PAD[mode]}{dim}d")(padding)

    c = draw(st.integers(1, 3))
    return Case("pad", (c, *spatial(draw, dim)), [Stage(" ".join(words), make, deliberate=deliberate)])


@st.composite
def unflatten_cases(draw):
    """A flat input (N, F) through `linear` now and then, or a tensor with spatial dimensions, unflattened at a random
    dim into random sizes (their product right most of the time, one of them -1 now and then), then a conv where
    the result has spatial dimensions."""
    stages = []
    if draw(st.booleans()):
        inp = (draw(st.integers(1, 60)),)
        if draw(st.booleans()):
            out = draw(st.sampled_from([12, 16, 24, 36, 48]))
            stages.append(Stage(f"linear {out}", lambda shape: nn.Linear(shape[-1], out)))
            size = out
        else:
            size = inp[0]
    else:
        inp = (draw(st.integers(1, 4)), *spatial(draw, draw(st.sampled_from([1, 2]))))
        size = None
    rank = len(inp) + 1
    dim = draw(st.integers(-rank - 1, rank)) if draw(st.integers(0, 3)) == 0 else 1
    current = (size,) if size is not None else inp
    target = current[dim % rank - 1] if -rank <= dim < rank and dim % rank else None
    n = draw(st.integers(1, 4))
    if target is not None and draw(st.integers(0, 5)):
        sizes = _factors(draw, target, n)
    else:
        sizes = [draw(st.integers(1, 6)) for _ in range(n)]
    if draw(st.integers(0, 4)) == 0:
        sizes[draw(st.integers(0, n - 1))] = -1
    if draw(st.integers(0, 15)) == 0:
        sizes[0] = draw(st.sampled_from([0, -1, -2]))
    sizes = tuple(sizes)
    text = f"unflatten {'x'.join(map(str, sizes))}" if min(sizes) >= 0 else f"unflatten sizes={tup(sizes)}"
    if dim != 1 or draw(st.integers(0, 5)) == 0:
        text += f" dim={dim}"
    deliberate = "unflattening the batch is refused" if dim in (0, -rank) else None
    if deliberate is None and rank - 1 + len(sizes) > 5:
        deliberate = "cnndsl's tensors have at most 5 dimensions"
    stages.append(Stage(text, lambda shape: nn.Unflatten(dim, sizes), deliberate=deliberate))
    if draw(st.booleans()):
        stages.append(Stage("conv 2 k1", lambda shape: CONV[len(shape) - 2](shape[1], 2, 1) if 3 <= len(shape) <= 5 else nn.Conv2d(shape[1], 2, 1)))
    return Case("unflatten", inp, stages)


def _factors(draw, total: int, n: int) -> list[int]:
    """n numbers whose product is total."""
    out = []
    for _ in range(n - 1):
        divisors = [d for d in range(1, total + 1) if total % d == 0]
        d = draw(st.sampled_from(divisors))
        out.append(d)
        total //= d
    return out + [total]


@st.composite
def frozen_ln2d_cases(draw):
    """frozenbn and ln2d (torchvision's FrozenBatchNorm2d and LayerNorm2d) on inputs of every rank, after a conv so
    that their inputs are not all alike."""
    dim = draw(st.sampled_from([0, 1, 2, 2, 2, 3]))
    c = draw(st.integers(1, 6))
    inp = (c, *spatial(draw, dim)) if dim else (c,)
    eps = draw(st.sampled_from([None, 1e-3, 1e-6]))
    kw = {} if eps is None else {"eps": eps}
    words = [] if eps is None else [f"eps={eps}"]
    if draw(st.booleans()):
        deliberate = None if dim == 2 else "frozenbn takes 4-D inputs only (torchvision's broadcasts others into a 4-D tensor)"
        stage = Stage(" ".join(["frozenbn", *words]), lambda shape: FrozenBatchNorm2d(shape[1], **kw), deliberate=deliberate)
    else:
        if draw(st.integers(0, 3)) == 0:
            words.append("bias=false")
            kw["bias"] = False
        stage = Stage(" ".join(["ln2d", *words]), lambda shape: LayerNorm2d(shape[1], **kw))
    return Case("frozen_ln2d", inp, [stage])


# chains: several layers on a 2-d input, each built by torch from torch's own running shape

CHAIN_OPS = ["conv", "conv", "convt", "bn", "gn", "act", "maxpool", "avgpool", "upsample", "pixelshuffle", "pixelunshuffle", "dropout", "adaptive", "dwconv"]
ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "silu": nn.SiLU, "tanh": nn.Tanh, "hardswish": nn.Hardswish}


def chain_stage(draw, op: str) -> Stage:
    if op == "conv":
        return conv_stage(draw, 2, 1)  # declares `1->out` now and then: right or wrong, torch decides
    if op == "convt":
        return convt_stage(draw, 2, 0)
    if op == "dwconv":
        k, p = draw(st.integers(1, 3)), draw(st.integers(0, 1))
        return Stage(f"dwconv k{k} p{p}", lambda shape: nn.Conv2d(shape[1], shape[1], k, padding=p, groups=shape[1]))
    if op == "bn":
        return Stage("bn", lambda shape: nn.BatchNorm2d(shape[1]))
    if op == "gn":
        g = draw(st.integers(1, 2))
        return Stage(f"gn {g}", lambda shape: nn.GroupNorm(g, shape[1]))
    if op == "act":
        name = draw(st.sampled_from(sorted(ACTS)))
        return Stage(name, lambda shape: ACTS[name]())
    if op in ("maxpool", "avgpool"):
        return pool_stage(draw, 2, op[:3])
    if op == "upsample":
        scale = draw(st.sampled_from([2, 0.5, 1.5]))
        mode = draw(st.sampled_from(["nearest", "bilinear"]))
        return Stage(f"upsample {scale} mode={mode}", lambda shape: nn.Upsample(scale_factor=scale, mode=mode))
    if op == "pixelshuffle":
        return Stage("pixelshuffle 2", lambda shape: nn.PixelShuffle(2))
    if op == "pixelunshuffle":
        return Stage("pixelunshuffle 2", lambda shape: nn.PixelUnshuffle(2))
    if op == "dropout":
        name = draw(st.sampled_from(["dropout", "dropout2d"]))
        cls = nn.Dropout if name == "dropout" else nn.Dropout2d
        return Stage(f"{name} 0.3", lambda shape: cls(0.3))
    size = draw(st.integers(1, 3))
    return Stage(f"adaptiveavgpool {size}", lambda shape: nn.AdaptiveAvgPool2d(size))


@st.composite
def chain_cases(draw):
    inp = (draw(st.integers(1, 6)), draw(st.integers(3, 14)), draw(st.integers(3, 14)))
    ops = draw(st.lists(st.sampled_from(CHAIN_OPS), min_size=2, max_size=6))
    stages = [chain_stage(draw, op) for op in ops]
    if draw(st.booleans()):
        out = draw(st.integers(1, 5))
        stages += [flatten_stage(), Stage(f"linear {out}", lambda shape: nn.Linear(shape[-1], out))]
    return Case("chain", inp, stages)


# -- the tests ------------------------------------------------------------------------------------------

FAMILIES = {
    # name: (strategy, CI examples)
    "conv": (conv_cases(), 700),
    "convt": (convt_cases(), 300),
    "pool": (pool_cases(), 700),
    "adaptive": (adaptive_cases(), 300),
    "unpool": (unpool_cases(), 250),
    "upsample": (upsample_cases(), 300),
    "pixelshuffle": (pixelshuffle_cases(), 200),
    "norm": (norm_cases(), 300),
    "linear": (linear_cases(), 400),
    "chain": (chain_cases(), 300),
    "pad": (pad_cases(), 300),
    "unflatten": (unflatten_cases(), 200),
    "frozen_ln2d": (frozen_ln2d_cases(), 100),
}


def make_test(name: str, strategy, examples: int, deep: bool):
    profile = settings.get_profile("cnndsl-deep" if deep else "cnndsl-ci")

    @settings(profile, max_examples=examples * DEEP_FACTOR if deep else examples)
    @given(case=strategy)
    def test(case):
        differential(case, execute=True if case.family == "chain" else None)

    test.__name__ = f"test_{name}" + ("_deep" if deep and not DEEP else "")
    test.__doc__ = f"Differential: random `{name}` cases against torch ({'deep' if deep else 'ci'} profile)."
    return test


for _name, (_strategy, _n) in FAMILIES.items():
    globals()[f"test_{_name}"] = make_test(_name, _strategy, _n, deep=DEEP)
    if not DEEP:
        globals()[f"test_{_name}_deep"] = pytest.mark.slow(make_test(_name, _strategy, _n, deep=True))


# -- deliberate differences, stated once --------------------------------------------------------------


def test_zero_sizes_are_rejected_where_torch_returns_an_empty_tensor():
    """Documented decision: torch returns an empty tensor, cnndsl rejects (and says which size is zero)."""
    cases = [
        ("adaptiveavgpool 0", (2, 4, 4), lambda: nn.AdaptiveAvgPool2d(0)),
    ]
    for text, inp, make in cases:
        with torch.no_grad():
            out = make()(torch.zeros(1, *inp))
        assert 0 in out.shape
        with pytest.raises(CnnDslError) as e:
            cnndsl.check(f"network T:\n    input {'x'.join(map(str, inp))}\n    {text}\n")
        assert e.value.diagnostics[0].line == 3


def test_flatten_start_dim_0_is_rejected():
    """Documented decision: flattening the batch is rejected, although torch runs it."""
    assert nn.Flatten(0)(torch.zeros(2, 3, 4)).shape == (24,)
    with pytest.raises(CnnDslError) as e:
        cnndsl.check("network T:\n    input 3x4\n    flatten start_dim=0\n")
    assert (e.value.diagnostics[0].line, e.value.diagnostics[0].col) == (3, 13)


def test_pixelshuffle_needs_4d():
    """cnndsl's pixelshuffle acts on (N, C, H, W); torch would read a 5-D input as (*, C, H, W)."""
    with pytest.raises(CnnDslError) as e:
        cnndsl.check("network T:\n    input 4x4x4x4\n    pixelshuffle 2\n")
    assert e.value.diagnostics[0].line == 3


# -- regressions: every disagreement the property tests found -------------------------------------------


def regression(family: str, inp: tuple[int, ...], *stages: tuple[str, Callable[[tuple[int, ...]], nn.Module]]) -> None:
    differential(Case(family, inp, [Stage(text, make) for text, make in stages]), execute=True)


def test_regression_avgpool1d_divisor_override():
    """nn.AvgPool1d takes no divisor_override (TypeError); cnndsl accepted it and emitted a module that fails."""
    regression("avgpool", (1, 1), ("avgpool 1 count_include_pad=false divisor_override=1",
                                   lambda shape: nn.AvgPool1d(1, count_include_pad=False, divisor_override=1)))


def test_regression_unpool_after_dilated_pool_window_in_padding():
    """A dilated pool whose window steps over the whole input into the padding keeps an index past the input's
    end; MaxUnpool then fails ("Found an invalid max index: 2"). cnndsl accepted it."""
    regression("unpool", (1, 1), ("maxpool 2 p1 d2 as pool1\nrelu\nunpool pool1", lambda shape: PoolUnpool(1, 2, 2, 1, 2, False)))


def test_regression_instnorm_on_one_spatial_element():
    """InstanceNorm (without running stats) needs more than one spatial element ("Expected more than 1 spatial
    element when training"), in eval mode too; cnndsl accepted it."""
    regression("norm", (1, 1), ("instnorm affine=true", lambda shape: nn.InstanceNorm1d(1, affine=True)))
