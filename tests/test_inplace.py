"""The in-place rule (cnndsl/semantics/inplace.py): removing every `inplace` from a network changes nothing it computes.

A metamorphic property over generated compositions — merges, conditional branches, nested and repeated
blocks, named values and joins, splits, groups, several outputs, and every op that takes `inplace` — plus
the cases that once miscompiled, each by name."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest
import torch

import cnndsl
from cnndsl.backend.pytorch.loader import instantiate

torch.set_num_threads(1)  # tiny tensors: threads only add overhead

CASES = int(os.environ.get("CNNDSL_INPLACE_CASES", "300"))  # `-m slow` runs 20,000 more
DEEP = 20_000

# every op that takes `inplace`, and ops around them that keep their output for backward or pass their input through
INPLACE_OPS = ["relu", "relu6", "leakyrelu", "elu", "selu", "silu", "mish", "hardswish", "hardsigmoid", "dropout 0.3",
               "dropout2d 0.3", "rrelu", "leakyrelu (-0.2)", "elu (-0.5)", "rrelu (-0.3) (-0.1)"]  # negative slopes: torch
# refuses to backpropagate through them in place
OTHER_OPS = ["conv 4 k1", "conv 4 k3 p1", "bn", "sigmoid", "tanh", "gelu", "softmax", "identity", "relu", "maxpool 3 s1 p1",
             "layerscale 0.5", "droppath 0.2"]


def _inplace_ops() -> set[str]:
    from cnndsl.ops import REGISTRY

    return {spec.name for spec in REGISTRY.values() if spec.option("inplace") is not None}


def test_the_generator_covers_every_op_that_takes_inplace():
    # dropout1d and dropout3d need 3-D and 5-D inputs; they share dropout2d's rule, and tests/test_op_facts.py
    # checks their facts against torch
    assert {op.split()[0] for op in INPLACE_OPS} == _inplace_ops() - {"dropout1d", "dropout3d"}


class _Gen:
    """A random network of 4 channels at 6x6, as .cnn text."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.blocks: list[str] = []
        self.n_values = 0

    def op(self, channels: int = 4) -> str:
        r = self.r
        if r.random() < 0.55:
            op = r.choice(INPLACE_OPS)
            return f"{op} inplace" if r.random() < 0.8 else op
        op = r.choice(OTHER_OPS)
        return op.replace("conv 4", f"conv {channels}")

    def pipeline(self, channels: int = 4, n: int | None = None) -> str:
        n = n if n is not None else self.r.randint(1, 3)
        return " | ".join(self.op(channels) for _ in range(n))

    def merge(self, indent: str, channels: int = 4, depth: int = 0, nested: bool = False) -> list[str]:
        r = self.r
        kind = r.choice(["add", "mul"] if nested else ["add", "add", "cat", "mul", "split"])
        if kind == "split":
            lines = [f"{indent}split 2:"] + [f"{indent}    {self.pipeline(channels // 2).replace(f'conv {channels}', f'conv {channels // 2}')}"
                                              for _ in range(2)]
            return lines
        lines = [f"{indent}{kind}:"]
        for i in range(r.randint(2, 3)):
            choice = r.random()
            if choice < 0.3:
                branch = "identity"
            elif choice < 0.4 and self.blocks and depth < 2:
                branch = f"{r.choice(self.blocks)}({channels})"
            elif choice < 0.5 and depth < 2:  # a merge as a branch, keeping the channels
                lines += self.merge(indent + "    ", channels, depth + 1, nested=True)
                continue
            else:
                branch = self.pipeline(channels)
            if kind != "mul" and i > 0 and r.random() < 0.2:
                branch += r.choice([" if true", " if false"])
            lines.append(f"{indent}    {branch}")
        if kind == "cat":
            lines.append(f"{indent}conv {channels} k1")
        return lines

    def block(self, name: str) -> list[str]:
        r = self.r
        lines = [f"block {name}(c, on=true):"]
        for _ in range(r.randint(1, 3)):
            if r.random() < 0.5:
                lines += self.merge("    ", depth=1)
            else:
                lines.append(f"    {self.pipeline()}")
        if r.random() < 0.4:
            lines += ["    add:", "        identity", f"        {self.pipeline()} if on"]
        if r.random() < 0.3:  # an optional line, decided per call
            lines.append(f"    {self.pipeline()} if {r.choice(['on', 'not on'])}")
        return lines

    def source(self) -> str:
        r = self.r
        out: list[str] = []
        for i in range(r.randint(0, 2)):
            name = f"B{i}"
            out += self.block(name) + [""]
            self.blocks.append(name)
        body = ["    input 4x6x6"]
        values: list[str] = []
        outputs: list[str] = []
        for _ in range(r.randint(2, 6)):
            choice = r.random()
            if choice < 0.3:
                body += self.merge("    ")
            elif choice < 0.45 and self.blocks:
                call = f"{r.choice(self.blocks)}(4{', on=false' if r.random() < 0.3 else ', on=(i == 0)' if r.random() < 0.2 else ''})"
                count = r.choice([" x2", " x(n, i)", " x(n - 1, i)"]) if r.random() < 0.4 else ""
                body.append(f"    {call}{count if 'i ==' not in call or 'i)' in count else ' x(n, i)'}")
            elif choice < 0.6:
                name = f"v{len(values)}"
                body.append(f"    {name} = {self.pipeline()}")
                values.append(name)
            elif choice < 0.72 and values:
                body.append(f"    {r.choice(['add', 'mul', 'cat'])}({r.choice(values)})")
                body.append("    conv 4 k1")
            elif choice < 0.8 and values:
                body.append(f"    {r.choice(values)} | {self.pipeline()}")
            elif choice < 0.84:
                body.append(f"    ({self.pipeline()}) {r.choice(['x2', 'x(n)', 'x(n - 1)'])}")
            elif choice < 0.88:  # a named group whose lines may be taps, values for the lines after it
                body.append(f"    g{len(body)}:")
                for _ in range(r.randint(1, 3)):
                    tap = f"v{len(values)}" if r.random() < 0.5 else None
                    body.append(f"        {tap + ' = ' if tap else ''}{self.pipeline()}")
                    values += [tap] if tap else []
            elif choice < 0.92:
                body.append(f"    {self.pipeline()} if {r.choice(['on', 'not on'])}")  # an optional line
            else:
                body.append(f"    {self.pipeline()}")
        if values and r.random() < 0.3:
            body.append(f"    last = {self.pipeline()}")
            outputs = [r.choice(values), "last"]
        net = [f"network T(n={r.randint(1, 3)}, on={r.choice(['true', 'false'])}):"] + body
        if outputs:
            net.append(f"    output {', '.join(outputs)}")
        return "\n".join(out + net) + "\n"


def _strip(source: str) -> str:
    return re.sub(r" inplace\b", "", source)


def _run(model, x, seed: int, train: bool):
    model.train(train)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = model(x)
    ys = y if isinstance(y, tuple) else (y,)
    if not train:
        return [t.detach() for t in ys], []
    loss = sum((t * torch.linspace(-1, 1, t.numel(), dtype=t.dtype).reshape(t.shape)).sum() for t in ys)
    loss.backward()
    grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for _, p in sorted(model.named_parameters())]
    return [t.detach() for t in ys], grads


def _same(a, b) -> bool:
    """Equal up to float64 rounding, measured against the largest value (a gradient that is zero in exact
    arithmetic, such as a bias's before a batch norm, is rounding noise in both)."""
    scale = max([1.0] + [t.abs().max().item() for t in b if t.numel()])
    return len(a) == len(b) and all(s.shape == t.shape and torch.allclose(s, t, rtol=1e-9, atol=1e-11 * scale) for s, t in zip(a, b))


def _diff(a, b) -> str:
    return ", ".join(f"#{i}: {(s - t).abs().max().item():.3g} of {t.abs().max().item():.3g}" for i, (s, t) in enumerate(zip(a, b))
                     if s.shape != t.shape or not torch.allclose(s, t, rtol=1e-9, atol=1e-12))


def check_case(seed: int, source: str | None = None) -> str:
    """Compile a case with and without `inplace`; both must compute the same outputs and gradients."""
    source = source or _Gen(seed).source()
    try:
        code = cnndsl.compile(source)
    except cnndsl.CnnDslError:
        # the generator may write a network the checker refuses (e.g. a merge of shapes that differ); the
        # same network without `inplace` must then be refused too
        with pytest.raises(cnndsl.CnnDslError):
            cnndsl.compile(_strip(source))
        return "refused"
    with_inplace = instantiate(code, "T", "cpu").double()  # float64: rounding noise far below any real difference
    # every tenth case removes `inplace` from the source, the others (faster) from the generated module
    stripped = cnndsl.compile(_strip(source)) if seed % 10 == 0 else code.replace("inplace=True", "")
    assert "inplace" not in stripped
    without = instantiate(stripped, "T", "cpu").double()
    without.load_state_dict(with_inplace.state_dict())
    torch.manual_seed(seed)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    for train in (True, False):
        state = {k: v.clone() for k, v in with_inplace.state_dict().items()}
        out_a, grad_a = _run(with_inplace, x, seed, train)
        with_inplace.load_state_dict(state)
        without.load_state_dict(state)
        out_b, grad_b = _run(without, x, seed, train)
        with_inplace.load_state_dict(state)
        without.load_state_dict(state)
        assert _same(out_a, out_b), f"outputs differ (train={train}, seed {seed}): {_diff(out_a, out_b)} for\n{source}"
        assert _same(grad_a, grad_b), f"gradients differ (seed {seed}): {_diff(grad_a, grad_b)} for\n{source}"
    return "compared"


def test_removing_every_inplace_changes_nothing():
    outcomes = [check_case(seed) for seed in range(CASES)]
    compared = outcomes.count("compared")
    print(f"in-place property: {compared} networks compared, {outcomes.count('refused')} refused by both")
    assert compared >= CASES * 0.8  # the generator writes mostly valid networks


@pytest.mark.slow
def test_removing_every_inplace_changes_nothing_deep():
    for seed in range(CASES, CASES + DEEP):
        check_case(seed)


# -- the cases that once miscompiled ------------------------------------------------------------------------

MISCOMPILED = {
    "identity beside an in-place branch": """
network T:
    input 4x8x8
    conv 4 k1
    add:
        identity
        relu inplace
""",
    "pre-activation residual": """
network T:
    input 4x8x8
    conv 4 k1
    add:
        relu inplace | conv 4 k3 p1
        identity
""",
    "cat with identity": """
network T:
    input 4x8x8
    conv 4 k1
    cat:
        identity
        leakyrelu inplace
""",
    "a named value read after an in-place layer": """
network T:
    input 4x8x8
    conv 4 k1
    a = bn
    b = a | relu inplace
    cat(a)
""",
    "a block whose input is reused": """
block Pre(c):
    relu inplace | conv c k3 p1

network T:
    input 4x8x8
    conv 4 k1
    add:
        identity
        Pre(4)
""",
    "sigmoid then in-place relu": """
network T:
    input 4x8x8
    conv 4 k1 | sigmoid | relu inplace
""",
    "tanh then in-place elu": """
network T:
    input 4x8x8
    conv 4 k1 | tanh | elu inplace
""",
    "two in-place relus in a row": """
network T:
    input 4x8x8
    conv 4 k1 | relu inplace | relu inplace
""",
    "the network's input": """
network T:
    input 4x8x8
    relu inplace | conv 4 k1
""",
    "a part of split": """
network T:
    input 4x8x8
    conv 4 k1
    split 2:
        relu inplace
        hardswish inplace
""",
    "dropout passes its input through in eval": """
network T:
    input 4x8x8
    conv 4 k1
    add:
        identity
        dropout | relu inplace
""",
}


@pytest.mark.parametrize("name", sorted(MISCOMPILED))
def test_once_miscompiled_now_warns_and_computes_the_same(name):
    source = MISCOMPILED[name]
    net = cnndsl.check(source)
    warned = [w for w in net.warnings if "inplace` would overwrite" in w.message]
    assert warned, net.warnings
    assert all(w.line >= 1 and w.hint for w in warned)
    assert check_case(0, source) == "compared"


TORCHVISION_STYLE = """
block Basic(planes, stride=1):
    add:
        conv planes k3 s=stride p1 nobias | bn | relu inplace | conv planes k3 p1 nobias | bn
        (conv planes k1 s=stride nobias | bn) as downsample if stride != 1 or in != planes
    relu inplace

block Fire(s, e):
    conv s k1 | relu inplace
    cat:
        conv e k1 | relu inplace
        conv e k3 p1 | relu inplace

network T:
    input 3x16x16
    conv 8 k3 p1 nobias | bn | relu inplace | maxpool 2
    Basic(8) | Basic(16, stride=2)
    Fire(4, 8)
    conv 8 k1 | relu inplace | dropout | gap | flatten | linear 4 | relu inplace
"""


def test_torchvision_style_uses_stay_in_place():
    net = cnndsl.check(TORCHVISION_STYLE)
    assert not net.warnings
    inplace = [layer.name for layer in net.layers if any(k == "inplace" for k, _ in layer.kwargs)]
    assert "relu1" in inplace and "basic1.relu1" in inplace and "basic2.relu2" in inplace and "fire1.relu2" in inplace
    assert check_case(0, TORCHVISION_STYLE.replace("3x16x16", "4x6x6").replace("maxpool 2", "identity")) == "compared"


def test_the_warning_names_the_reader_and_the_call():
    source = MISCOMPILED["a block whose input is reused"]
    net = cnndsl.check(source)
    (w,) = net.warnings
    assert "identity branch of `add:` (line 8)" in w.message and w.line == 3
    assert [n.message for n in w.notes] == ["in `Pre`, called here"] and w.notes[0].line == 10


NEGATIVE_SLOPES = {"leakyrelu (-0.1)": ("nn.LeakyReLU(-0.1, inplace=True)", True),
                   "elu (-0.5)": ("nn.ELU(alpha=-0.5, inplace=True)", True),
                   "rrelu (-0.3) (-0.1)": ("nn.RReLU(-0.3, -0.1, inplace=True)", False),
                   "leakyrelu s": (None, True)}


@pytest.mark.parametrize("op", sorted(NEGATIVE_SLOPES))
def test_a_negative_slope_runs_out_of_place(op):
    """torch's in-place leaky_relu_, elu_ (and rrelu_ in eval) refuse to backpropagate through a negative slope,
    so such a layer, or one whose slope is a parameter, runs out of place with a warning."""
    module, train = NEGATIVE_SLOPES[op]
    if module is not None:  # the oracle: torch itself fails
        m = eval(module, {"nn": torch.nn}).train(train)
        x = torch.randn(8, requires_grad=True)
        with pytest.raises(RuntimeError, match="negative"):
            m(x * 1).sum().backward()
    source = f"network T(s=-0.2):\n    input 4x6x6\n    conv 4 k3 p1 | {op} inplace | conv 4 k1\n"
    net = cnndsl.check(source)
    (w,) = net.warnings
    assert "runs out of place" in w.message and w.line == 3 and w.hint, w
    assert not any(k == "inplace" for layer in net.layers for k, _ in layer.kwargs)
    assert check_case(0, source) == "compared"


def test_a_warning_is_given_once_per_line_and_the_cli_shows_twenty(tmp_path):
    repeated = "block B(c):\n    add:\n        identity\n        relu inplace\n\nnetwork N:\n    input 4x8x8\n    conv 4 k1\n    B(4) x3\n"
    (w,) = cnndsl.check(repeated).warnings
    assert w.line == 4 and [n.line for n in w.notes] == [9]
    many = "network N:\n    input 4x8x8\n    conv 4 k1\n    add:\n        identity\n" + "        relu inplace\n" * 100
    assert len(cnndsl.check(many).warnings) == 100
    path = tmp_path / "many.cnn"
    path.write_text(many)
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr.count("warning:") == 20 and "80 more warnings" in proc.stderr
