"""What the checker proves is what the module computes: the cases a trial found, each at its root."""

from __future__ import annotations

import pytest
import torch

import cnndsl

UNKNOWN_MERGE = """
network T:
    conv 3->8 k3 p1
    mul:
        gap
        identity
    flatten
    linear 10
"""


def test_a_merge_of_an_unknown_size_broadcasts_as_torch_does():
    net = cnndsl.check(UNKNOWN_MERGE)
    flatten = net.layer("flatten1")
    assert flatten.output_shape == (None,)  # (8, H, W) flattened: unknown until the input is known
    for size in (8, 13):  # a lazy linear takes its size from the first input it sees
        model = cnndsl.load(UNKNOWN_MERGE, device="cpu")
        x = torch.randn(2, 3, size, size)
        assert model(x).shape == (2, 10)
    known = cnndsl.check(UNKNOWN_MERGE, input="3x13x13")
    assert known.layer("flatten1").output_shape == (8 * 13 * 13,)


@pytest.mark.parametrize("first, second, expected", [
    ("gap", "identity", (8, None, None)),
    ("identity", "gap", (8, None, None)),
    ("identity", "identity", (8, None, None)),
])
def test_merged_shapes_with_unknown_sizes(first, second, expected):
    source = f"network T:\n    conv 3->8 k1\n    mul:\n        {first}\n        {second}\n    conv 8 k1\n"
    assert cnndsl.check(source).layer("conv2").input_shape == expected


def test_split_needs_two_parts():
    with pytest.raises(cnndsl.CnnDslError) as e:
        cnndsl.check("network T:\n    input 4x8x8\n    split 1:\n        relu\n")
    (d,) = e.value.diagnostics
    assert "at least 2 parts" in d.message and (d.line, d.col) == (3, 11) and d.hint


def test_a_condition_is_true_or_false_not_a_number():
    source = "network N(c=1):\n    input 3x4x4\n    add if c:\n        identity\n        conv 3 k1\n"
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.check(source)
    (d,) = info.value.diagnostics
    assert d.message == "a condition must be true or false, found 1" and (d.line, d.col) == (3, 12) and "c > 0" in d.hint
    assert cnndsl.check(source.replace("if c:", "if c > 0:")).layers


def test_a_layer_may_take_the_name_a_condition_flag_would_have():
    """The checker names no flag: the backend names each around the layers (use_res_connect_2 beside a layer
    named use_res_connect), so a user's name is never refused for it, and the module runs."""
    import torch

    for name in ("use_res_connect", "use_add1", "use_add"):
        source = f"network N(c=1):\n    input 3x4x4\n    add if c > 0:\n        identity\n        conv 3 k1\n    conv c k1 as {name}\n"
        code = cnndsl.compile(source)
        assert f"self.{name} = nn.Conv2d" in code
        model = cnndsl.load(source)
        assert model(torch.zeros(1, 3, 4, 4)).shape == (1, 1, 4, 4)