"""build(**params): a generated module built with parameter values other than the ones it was compiled with
either is the network those values compile to (same state_dict shapes, same output shape), or refuses them
at construction with a ValueError that names the parameter (the parameter is *pinned*: the code uses its
compiled value without recomputing it). Channel counts stay symbolic through blocks that permute."""

from __future__ import annotations

import random
import re

import black
import pytest
import torch

import cnndsl


def _module(code: str, name: str):
    namespace: dict = {}
    exec(compile(code, "<generated>", "exec"), namespace)
    return namespace[name]


def _shapes(model, x):
    with torch.no_grad():
        y = model.eval()(x)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, tuple(y.shape)


PERMUTE = """\
block NHWC():
    permute 0 2 3 1

block NCHW():
    permute 0 3 1 2

block Mix():
    NHWC() | linear in | NCHW()

network P(c=8):
    input 3x4x4
    conv c k1
    Mix() x2
    NHWC() | linear c | NCHW()
    conv c k1
"""


def test_channels_stay_symbolic_through_blocks_that_permute():
    code = cnndsl.compile(PERMUTE)
    assert "self.mix1 = Mix(c)" in code and "self.mix2 = Mix(c)" in code
    assert "nn.Linear(c, c)" in code and "nn.Conv2d(c, c, kernel_size=1)" in code
    assert len(re.findall(r"^class ", code, re.M)) == 4  # NHWC, NCHW, Mix, P: one class each
    assert "raise ValueError" not in code
    net = _module(code, "P")
    built = net(c=16)
    direct = _module(cnndsl.compile(PERMUTE, c=16), "P")()
    x = torch.randn(2, 3, 4, 4)
    assert _shapes(built, x) == _shapes(direct, x)
    assert _shapes(built, x)[1] == (2, 16, 4, 4)


def test_the_build_function_takes_other_values():
    namespace: dict = {}
    exec(compile(cnndsl.compile(PERMUTE), "<generated>", "exec"), namespace)
    model = namespace["build"]("cpu", c=16)
    assert tuple(model(torch.randn(2, 3, 4, 4)).shape) == (2, 16, 4, 4)


def test_lenet_takes_another_number_of_classes():
    net = _module(cnndsl.compile("examples/lenet5.cnn"), "LeNet5")
    assert tuple(net(num_classes=100)(torch.randn(2, 1, 28, 28)).shape) == (2, 100)
    assert not cnndsl.check("examples/lenet5.cnn").pinned


KERNEL = """\
network K(k=3, n=10):
    input 3x16x16
    conv 8 k=k
    flatten
    linear n
"""


def test_a_parameter_that_sets_a_spatial_size_is_pinned():
    net = cnndsl.check(KERNEL)
    assert [name for name, _ in net.pinned] == ["k"]
    cls = _module(cnndsl.compile(KERNEL), "K")
    assert tuple(cls(n=5)(torch.randn(2, 3, 16, 16)).shape) == (2, 5)  # n is not pinned
    with pytest.raises(ValueError, match=r"^k: this module was compiled with k=3 \(it sets a spatial size\)"):
        cls(k=5)
    assert cls(k=3) is not None


BRANCH = """\
block B(w):
    add:
        conv w k1
        (conv w k3 p1 | relu) if w > 8

network N(c=8):
    input 3x8x8
    conv c k1
    B(c)
"""


def test_a_branch_no_instance_took_pins_its_condition():
    net = cnndsl.check(BRANCH)
    assert net.pinned == (("c", "it decides a branch whose layers this file does not contain"),)
    with pytest.raises(ValueError, match="^c: "):
        _module(cnndsl.compile(BRANCH), "N")(c=16)
    # where one instance took it, the class has the branch and tests the condition itself
    both = BRANCH + "    B(c*2)\n"
    assert not cnndsl.check(both).pinned
    model = _module(cnndsl.compile(both), "N")(c=16)
    direct = _module(cnndsl.compile(both, c=16), "N")()
    x = torch.randn(2, 3, 8, 8)
    assert _shapes(model, x) == _shapes(direct, x)


def test_the_check_names_the_parameter_and_how_to_recompile():
    code = cnndsl.compile(KERNEL)
    assert "        super().__init__()\n        if k != 3:\n            raise ValueError(" in code
    assert "recompile with `cnndsl build -D k=...` or `cnndsl.load(..., k=...)`" in code
    for text in (KERNEL, BRANCH, "network F(s=0.5, b=true):\n    input 3x8x8\n    upsample s | conv 4 k1 bias=b\n"):
        code = cnndsl.compile(text)
        assert "raise ValueError(" in code
        assert black.format_str(code, mode=black.Mode()) == code
    assert "if s != 0.5:" in cnndsl.compile("network F(s=0.5):\n    input 3x8x8\n    upsample s\n")


# -- the property: another value is honoured or refused by name -------------------------------------------

BLOCKS = """\
block NHWC():
    permute 0 2 3 1

block NCHW():
    permute 0 3 1 2

block Mix():
    NHWC() | linear in | NCHW()

block Res(w, s=1):
    add:
        conv w k3 s=s p1 | bn | relu
        (conv w k1 s=s) if s != 1 or in != w

block Grow(g):
    cat:
        identity
        conv g k1

block Gate(on):
    mul if on:
        identity
        gap | conv in k1 | sigmoid

block Maybe(w):
    add:
        identity
        conv in k1 if w > 4

block Half():
    split 2:
        conv in//2 k1
        relu

block Wide(f):
    conv in*f k1 | bn | conv in k1

block Twice(w, d=w*2):
    conv d k1 | Res(d)

block Norm():
    NHWC() | ln | layerscale dim=-1 | NCHW()

block Pool():
    maxpool 2 as pool1
    conv in k3 p1
    unpool pool1

block Flat():
    conv in k1 | flatten | linear 5

"""

# stages that use the parameter `p` (1 to 6) in every way a parameter can be used
STAGES = [
    "conv p k1",
    "conv p*2 k3 p1",
    "conv p+3 k1 | bn | relu",
    "conv 8 k1",
    "conv 6 k=p",
    "conv 6 k3 p=p//2",
    "maxpool 2",
    "avgpool p",
    "upsample p",
    "adaptiveavgpool p",
    "Mix()",
    "NHWC() | linear p | NCHW()",
    "Res(p)",
    "Res(p, s=2)",
    "Res(8)",
    "Grow(p)",
    "Grow(4) x2",
    "Gate(p > 3)",
    "Maybe(p)",
    "Half()",
    "Wide(p)",
    "add:\n        conv in k1\n        identity",
    "cat:\n        identity\n        conv p k1 if p > 2",
    "add if p > 3:\n        conv in k1\n        identity",
    "cat if p != 2:\n        conv 4 k1\n        conv p k1",
    "e = conv p k1\n    e | conv p k1 | cat(e)",
    "split p:\n        relu\n        relu",
    "shuffle p",
    "gn p",
    "conv 12 k1 g=p",
    "dwconv in*p k3 p1",
    "pixelshuffle p",
    "layerscale",
    "flatten | linear p",
    "gap | flatten | linear p",
    "dropout p/10",
    "conv p k1 | conv p->4 k1",
    "Twice(p)",
    "Twice(p, d=p+1)",
    "Res(p*2) x2",
    "Norm()",
    "Pool()",
    "convt p k2 s2",
    "avgpool 2 s=p",
    "pixelunshuffle 2",
    "prelu num_parameters=p",
    "mul:\n        identity\n        gap | conv in k1",
    "Gate(p == 4 or p > 5)",
    "Gate(not p > 2)",
    "adaptiveavgpool p | Flat()",
    "Flat()",
    "conv 8 k1 bias=p>3",
    "bn affine=p!=2",
]


def _network(rng: random.Random) -> str:
    stages = [rng.choice(STAGES) for _ in range(rng.randint(1, 4))]
    # a network without blocks sometimes; `in` exists only in blocks: wrap those stages in a block
    body, blocks = [], []
    for i, stage in enumerate(stages):
        if " in" in stage or "in*" in stage or "in//" in stage:
            name = f"S{i}"
            blocks.append(f"block {name}(p):\n    " + stage.replace("\n        ", "\n        ") + "\n")
            body.append(f"{name}(p)")
        else:
            body.append(stage)
    text = BLOCKS + "".join(blocks) + "\nnetwork Net(p=4):\n    input 3x12x12\n    conv 8 k1\n"
    for line in body:
        text += "    " + line + "\n"
    if rng.random() < 0.5:
        text += "    gap | flatten | linear 3\n"
    if rng.random() < 0.2:
        text += "    init conv bias=0\n    init bn weight=1 bias=0\n"
    return text


def _compile(text: str, p):
    try:
        return cnndsl.compile(text, p=p)
    except cnndsl.CnnDslError:
        return None


def test_another_value_is_honoured_or_refused_by_name():
    rng = random.Random(20261201)
    counts = {"honoured": 0, "refused": 0, "refused, and v2 does not compile": 0, "v2 does not compile": 0}
    cases = 0
    while cases < 300:
        text = _network(rng)
        v1, v2 = rng.randint(1, 6), rng.randint(1, 6)
        if v1 == v2:
            continue
        code = _compile(text, v1)
        if code is None:
            continue
        cases += 1
        direct = _compile(text, v2)
        net = _module(code, "Net")
        x = torch.randn(2, 3, 12, 12)
        try:
            model = net(p=v2)
        except ValueError as e:
            assert str(e).startswith(f"p: this module was compiled with p={v1} ("), (text, v1, v2, e)
            counts["refused" if direct is not None else "refused, and v2 does not compile"] += 1
            continue
        if direct is None:  # a value the checker refuses that the module took (a size out of range, say)
            counts["v2 does not compile"] += 1
            continue
        expected = _shapes(_module(direct, "Net")(), x)
        assert _shapes(model, x) == expected, (text, v1, v2)
        counts["honoured"] += 1
    print(counts)
    assert counts["honoured"] > 50 and counts["refused"] > 20


def test_pins_belong_to_the_check_that_recorded_them():
    """Each check records into a table of its own (cnndsl.semantics.pins.recording): a check inside a check, a check in
    another thread, or a network built by hand never sees another check's pins."""
    import threading

    from cnndsl.ir.network import CheckedNetwork, NetworkParam
    from cnndsl.ir.values import Val
    from cnndsl.semantics import pins

    free = "network F(k=3):\n    input 3x16x16\n    conv k k1\n"  # k is a channel count: not pinned
    with pins.recording() as outer:
        pins.pin(Val(3, "k"), reason=pins.SPATIAL)
        assert [name for name, _ in cnndsl.check(KERNEL).pinned] == ["k"]  # a check inside a check
        assert not cnndsl.check(free).pinned  # the enclosing table's `k` is not this check's
        assert outer == {"k": pins.SPATIAL}  # and the inner checks left the enclosing table alone
    seen: list = []
    thread = threading.Thread(target=lambda: seen.append((cnndsl.check(KERNEL).pinned, cnndsl.check(free).pinned)))
    thread.start()
    thread.join()
    assert [name for name, _ in seen[0][0]] == ["k"] and seen[0][1] == ()
    cnndsl.check(KERNEL)
    assert CheckedNetwork(name="F", file="<string>", params=(NetworkParam(name="k", value=3),), example_shape=(3, 16, 16), outputs=((3, 16, 16),)).pinned == ()


def test_instances_share_a_class_as_the_checked_network_says():
    """Which instances share a generated class is the checked network's fact (cnndsl.ir.classes), which the code
    generator follows: `B(c)` and `B(c*2)` differ only in a branch, so they share `B`."""
    from cnndsl.ir.classes import block_classes

    net = cnndsl.check(BRANCH + "    B(c*2)\n")
    assert block_classes(net.instances) == {0: 0, 1: 0}
    assert cnndsl.compile(BRANCH + "    B(c*2)\n").count("class B") == 1
