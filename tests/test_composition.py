"""Composition (section 5 of the language) against torch as the oracle.

Every network here is checked, compiled, loaded and run: the checker's shape of every layer is compared
with what the real module produced (forward hooks), its parameter count with the real module's, and the
merges' results with the same arithmetic done by hand on the loaded submodules. The generated text must be
black-stable, and a block used with different arguments must stay one generic class where it can.
The second half is the mistakes: each error with its exact line and column and the words that explain it.
"""

from __future__ import annotations

import re

import black
import pytest
from conftest import EXAMPLES

import cnndsl

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers ------------------------------------------------------------------------------------------


def build(src, **kw):
    """(checked network, eval-mode module, generated code) after checking everything the checker promised."""
    net = cnndsl.check(src, **kw)
    code = cnndsl.compile(src, **kw)
    assert black.format_str(code, mode=black.Mode()) == code, "the generated code is not black-stable"
    assert cnndsl.compile(src, **kw) == code, "the generated code is not deterministic"
    compile(code, "<generated>", "exec")
    model = cnndsl.load(src, device="cpu", **kw).eval()

    seen: dict[str, tuple] = {}
    modules = dict(model.named_modules())
    hooks = []
    for layer in net.layers:
        if layer.name in modules:
            def hook(mod, inputs, out, name=layer.name):
                seen[name] = tuple((out[0] if isinstance(out, tuple) else out).shape[1:])
            hooks.append(modules[layer.name].register_forward_hook(hook))
    torch.manual_seed(0)
    x = torch.randn(2, *net.example_shape)
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    ys = y if isinstance(y, tuple) else (y,)
    assert len(ys) == len(net.outputs)
    for got, want in zip(ys, net.outputs):
        assert tuple(got.shape) == (2, *want)
    for layer in net.layers:  # every module the checker describes ran with the shape it promised
        if layer.name in modules and layer.name in seen:
            assert seen[layer.name] == tuple(layer.output_shape), layer.name
    assert sum(p.numel() for p in model.parameters()) == net.total_params
    return net, model, code


def run(model, x):
    with torch.no_grad():
        return model(x)


def param_keys(model) -> list[str]:
    return list(model.state_dict())


def classes(code: str) -> list[str]:
    return re.findall(r"^class (\w+)\(nn\.Module\):", code, re.M)


def errors(src) -> list:
    with pytest.raises(cnndsl.CnnDslError) as info:
        cnndsl.check(src)
    return [d for d in info.value.diagnostics if d.severity == "error"]


def the_error(src):
    found = errors(src)
    assert len(found) == 1, "\n".join(d.render() for d in found)
    return found[0]


# -- merges -------------------------------------------------------------------------------------------


def test_add_sums_the_branches():
    net, m, _ = build("""
network N:
    input 8x12x12
    add:
        conv 8 k3 p1 | relu
        conv 8 k1
""")
    x = torch.randn(2, 8, 12, 12)
    assert torch.allclose(run(m, x), m.relu1(m.conv1(x)) + m.conv2(x))
    assert net.output_shape == (8, 12, 12)


def test_cat_concatenates_channels():
    net, m, _ = build("""
network N:
    input 8x12x12
    cat:
        conv 4 k3 p1
        conv 6 k1
        identity
""")
    assert net.output_shape == (18, 12, 12)
    x = torch.randn(2, 8, 12, 12)
    assert torch.equal(run(m, x), torch.cat([m.conv1(x), m.conv2(x), x], dim=1))


def test_mul_broadcasts_squeeze_and_excitation():
    net, m, code = build("""
block SE(r=4):
    mul:
        identity
        gap | conv in//r k1 | relu | conv in k1 | sigmoid

network N:
    input 16x8x8
    SE()
""")
    assert net.output_shape == (16, 8, 8)
    assert net.layer("se1.conv1").output_shape == (4, 1, 1)
    se = m.se1
    x = torch.randn(2, 16, 8, 8)
    gate = torch.sigmoid(se.conv2(torch.relu(se.conv1(x.mean((2, 3), keepdim=True)))))
    assert torch.allclose(run(m, x), x * gate, atol=1e-6)
    assert "in_channels // r" in code


def test_split_feeds_one_part_to_each_branch():
    net, m, code = build("""
network N:
    input 12x8x8
    split 3:
        identity
        conv 4 k1
        conv 8 k3 p1
""")
    assert net.output_shape == (16, 8, 8)
    x = torch.randn(2, 12, 8, 8)
    a, b, c = torch.chunk(x, 3, dim=1)
    assert torch.equal(run(m, x), torch.cat([a, m.conv1(b), m.conv2(c)], dim=1))
    assert "torch.chunk(x, 3, dim=1)" in code


def test_shuffle_block_with_split():
    net, m, code = build("""
block ShuffleUnit():
    split 2:
        identity
        conv in//2 k1 nobias | bn | relu | dwconv k3 p1 nobias | bn | conv in//2 k1 nobias | bn | relu
    shuffle 2

network N:
    input 16x8x8
    ShuffleUnit() x2
""")
    assert net.output_shape == (16, 8, 8)
    assert classes(code) == ["ShuffleUnit", "N"]
    assert net.layer("shuffleunit2.conv1").input_shape == (8, 8, 8)


def test_conditional_branch_true_and_false_share_one_class():
    net, m, code = build("""
block Res(proj=false):
    add:
        conv in k3 p1 | bn
        conv in k1 as proj_conv if proj
    relu

network N:
    input 8x8x8
    Res() | Res(proj=true) | Res()
""")
    assert classes(code) == ["Res", "N"]
    assert m.res1.proj_conv is None and m.res2.proj_conv is not None
    assert "res2.proj_conv.weight" in param_keys(m) and "res1.proj_conv.weight" not in param_keys(m)
    x = torch.randn(2, 8, 8, 8)
    r1 = m.res1
    assert torch.allclose(r1(x), torch.relu(r1.bn1(r1.conv1(x)) + x))  # false: the branch is the identity
    r2 = m.res2
    assert torch.allclose(r2(x), torch.relu(r2.bn1(r2.conv1(x)) + r2.proj_conv(x)))


def test_add_if_true_and_false():
    net, m, code = build("""
block Block(res=true):
    add if res:
        conv in k3 p1
        conv in k1
        identity
    relu

network N:
    input 8x8x8
    Block() | Block(res=false)
""")
    assert classes(code) == ["Block", "N"]
    assert net.total_params == (8 * 8 * 9 + 8) * 2 + (8 * 8 + 8)  # the false one has no second conv
    assert not hasattr(m.block2, "conv2") and m.block2.use_res_connect is False
    x = torch.randn(2, 8, 8, 8)
    b1, b2 = m.block1, m.block2
    assert torch.allclose(b1(x), torch.relu(b1.conv1(x) + b1.conv2(x) + x), atol=1e-6)
    assert torch.allclose(b2(x), torch.relu(b2.conv1(x)))  # false: only the first branch runs


def test_add_if_false_everywhere_still_generates_valid_code():
    _, m, code = build("""
network N(res=false):
    input 8x8x8
    add if res:
        conv 8 k1
        conv 8 k3 p1
""")
    x = torch.randn(2, 8, 8, 8)
    assert torch.equal(run(m, x), m.conv1(x))
    assert "self.use_add = res" in code  # no identity branch: no residual
    assert list(dict(m.named_children())) == ["conv1"]


def test_inverted_residual_use_res_connect_is_one_class():
    _, m, code = build("""
block InvertedResidual(out, stride=1, expand=6):
    add if stride == 1 and in == out:
        conv in*expand k1 nobias | bn | relu6 | dwconv k3 s=stride p1 nobias | bn | relu6 | conv out k1 nobias | bn
        identity

network N:
    input 16x16x16
    InvertedResidual(24, stride=2) | InvertedResidual(24) | InvertedResidual(32)
""")
    assert classes(code) == ["InvertedResidual", "N"]
    assert [b.use_res_connect for b in (m.invertedresidual1, m.invertedresidual2, m.invertedresidual3)] == [False, True, False]
    b = m.invertedresidual2
    x = torch.randn(2, 24, 8, 8)
    assert torch.allclose(b(x), b.bn3(b.conv2(b.relu6_2(b.bn2(b.dwconv1(b.relu6_1(b.bn1(b.conv1(x)))))))) + x)


def test_a_branch_that_is_a_named_value():
    _, m, code = build("""
block B(use_e=true):
    e = conv in k1
    conv in k3 p1
    add:
        conv in k3 p1
        e if use_e
    cat:
        e
        identity

network N:
    input 4x8x8
    B() | B(use_e=false)
""")
    assert classes(code) == ["B", "N"]
    x = torch.randn(2, 4, 8, 8)
    b1 = m.b1
    e = b1.conv1(x)
    c = b1.conv2(e)
    assert torch.allclose(b1(x), torch.cat([e, b1.conv3(c) + e], dim=1), atol=1e-6)
    b2 = m.b2  # false: the branch is the identity
    y = torch.randn(2, 8, 8, 8)
    e = b2.conv1(y)
    c = b2.conv2(e)
    assert torch.allclose(b2(y), torch.cat([e, b2.conv3(c) + c], dim=1), atol=1e-6)


def test_branch_line_may_be_a_plain_layer_with_a_condition():
    net, m, _ = build("""
network N:
    input 8x8x8
    cat:
        conv 4 k1 if true
        conv 4 k1 if false
        conv 4 k1
""")
    # a false branch is the identity, and names do not depend on conditions: the third conv is conv3
    assert [layer.name for layer in net.layers] == ["conv1", "conv3"]
    assert net.output_shape == (16, 8, 8)


# -- named groups, repetition -------------------------------------------------------------------------


def test_named_groups_number_their_children():
    _, m, code = build("""
network N:
    input 3x16x16
    stem: conv 8 k3 p1 | bn | relu
    features:
        (conv 8 k3 p1 | bn) x2
        maxpool 2
    (conv 8 k1 | relu) as head
    conv 4 k1
""")
    keys = param_keys(m)
    assert keys[:2] == ["stem.0.weight", "stem.0.bias"]
    assert "stem.1.running_mean" in keys
    assert {"features.0.0.weight", "features.0.1.weight", "features.1.0.weight", "features.1.1.running_var"} <= set(keys)
    assert "head.0.weight" in keys and "conv1.weight" in keys
    assert isinstance(m.features, torch.nn.Sequential) and isinstance(m.features[0], torch.nn.Sequential)
    assert isinstance(m.features[2], torch.nn.MaxPool2d)


def test_unnamed_group_is_no_scope_and_repeats():
    net, m, _ = build("""
network N:
    input 4x8x8
    (conv 4 k3 p1 | relu) x2
    conv 4 k1 x2
""")
    assert [layer.name for layer in net.layers] == ["conv1", "relu1", "conv2", "relu2", "conv3", "conv4"]
    assert list(dict(m.named_children())) == ["conv1", "relu1", "conv2", "relu2", "conv3", "conv4"]


def test_repeated_group_with_a_name_is_one_sequential():
    net, m, _ = build("""
network N:
    input 4x8x8
    (conv 4 k3 p1 | relu) x3 as body
""")
    assert len(m.body) == 6
    assert [layer.name for layer in net.layers][:2] == ["body.0", "body.1"]


def test_repeated_block_in_a_group_and_resnet_keys():
    net, m, code = build("""
block BasicBlock(planes, stride=1):
    add:
        conv planes k3 s=stride p1 nobias | bn | relu | conv planes k3 p1 nobias | bn
        (conv planes k1 s=stride nobias | bn) as downsample   if stride != 1 or in != planes
    relu

network N:
    input 8x16x16
    layer1: BasicBlock(8) x3
    layer2: BasicBlock(16, stride=2) | BasicBlock(16)
""")
    keys = set(param_keys(m))
    assert {"layer1.0.conv1.weight", "layer1.2.bn2.running_mean", "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_var", "layer2.1.conv2.weight"} <= keys
    assert not any(k.startswith("layer1.0.downsample") or k.startswith("layer2.1.downsample") for k in keys)
    assert classes(code) == ["BasicBlock", "N"]  # with and without downsample: one class with `if`
    assert "if stride != 1 or in_channels != planes:" in code
    assert net.layer("layer2.0.downsample.0").output_shape == (16, 8, 8)
    x = torch.randn(2, 8, 16, 16)
    b = m.layer2[0]
    assert torch.allclose(b(x), torch.relu(b.bn2(b.conv2(b.relu1(b.bn1(b.conv1(x))))) + b.downsample(x)))


def test_resnet18_example_has_torchvisions_keys():
    tv = pytest.importorskip("torchvision")
    model = cnndsl.load(EXAMPLES / "resnet18.cnn", device="cpu")
    reference = tv.models.resnet18()
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)
    model.eval(), reference.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(run(model, x), run(reference, x), atol=1e-5)


# -- named values, joins, outputs ---------------------------------------------------------------------


def test_named_values_and_joins():
    net, m, code = build("""
network N:
    input 4x8x8
    e1 = conv 8 k1
    e2 = e1 | conv 8 k3 p1
    g = e1 | conv 1 k1 | sigmoid
    a = e2 | add(e1) | mul(g)
    a | cat(e1, e2)
""")
    assert net.output_shape == (24, 8, 8)
    x = torch.randn(2, 4, 8, 8)
    e1 = m.conv1(x)
    e2 = m.conv2(e1)
    g = torch.sigmoid(m.conv3(e1))
    a = (e2 + e1) * g
    assert torch.allclose(run(m, x), torch.cat([a, e1, e2], dim=1))
    assert "torch.cat([a, e1, e2], dim=1)" in code


def test_output_of_two_values():
    net, m, code = build("""
network N:
    input 4x8x8
    feat = conv 8 k3 p1 | relu
    logits = feat | gap | flatten | linear 3
    mask = feat | conv 1 k1
    output logits, mask
""")
    assert net.output_shape == ((3,), (1, 8, 8))
    assert "return logits, mask" in code
    x = torch.randn(2, 4, 8, 8)
    logits, mask = run(m, x)
    assert logits.shape == (2, 3) and mask.shape == (2, 1, 8, 8)


def test_unet_example_skips():
    net, m, _ = build(EXAMPLES / "unet.cnn")
    assert net.output_shape == (2, 64, 64)
    assert net.layer("dec2.conv1").input_shape == (64, 32, 32)  # up2's 32 channels and e2's 32


# -- unpool -------------------------------------------------------------------------------------------


def test_unpool_uses_the_pools_indices():
    net, m, code = build("""
network N:
    input 4x8x8
    maxpool 2 as pool1
    conv 4 k3 p1
    unpool pool1
""")
    assert m.pool1.return_indices
    assert "x, pool1_indices = self.pool1(x)" in code
    x = torch.randn(2, 4, 8, 8)
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    assert torch.allclose(run(m, x), F.max_unpool2d(m.conv1(pooled), idx, 2))


def test_unpool_of_an_odd_size_needs_output_size():
    net, m, code = build("""
network N:
    input 4x9x7
    maxpool 2 as pool1
    unpool pool1
""")
    assert net.output_shape == (4, 9, 7)
    assert "output_size=(9, 7)" in code
    x = torch.randn(2, 4, 9, 7)
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(run(m, x), F.max_unpool2d(pooled, idx, 2, output_size=(9, 7)))


def test_unpool_inside_a_block_and_with_stride():
    net, m, code = build("""
block Down(c):
    e = conv c k3 p1 | relu
    e | maxpool 3 s2 p1 as pool | conv c k3 p1 | unpool pool | cat(e)

network N:
    input 3x16x16
    Down(8)
""")
    assert net.output_shape == (16, 16, 16)
    assert "nn.MaxUnpool2d(3, stride=2, padding=1)" in code


def test_segnet_example():
    net, m, code = build(EXAMPLES / "segnet.cnn")
    assert net.output_shape == (4, 60, 60)
    assert code.count("return_indices=True") == 3
    assert "output_size=(15, 15)" in code


# -- blocks: parameters, generic classes, import ------------------------------------------------------


def test_defaults_use_in_and_earlier_parameters():
    net, m, code = build("""
block SE(r=4, mid=in//r):
    mul:
        identity
        gap | conv mid k1 | relu | conv in k1 | sigmoid

network N:
    input 16x4x4
    SE() | SE(r=2) | SE(mid=3)
""")
    assert classes(code) == ["SE", "N"]
    assert "def __init__(self, in_channels, r=4, mid=None):" in code
    assert "mid = in_channels // r" in code
    assert [m.se1.conv1.out_channels, m.se2.conv1.out_channels, m.se3.conv1.out_channels] == [4, 8, 3]
    assert [layer.output_shape for layer in net.layers if layer.name.endswith("conv1")] == [(4, 1, 1), (8, 1, 1), (3, 1, 1)]


def test_block_arguments_from_network_parameters_stay_symbolic():
    net, m, code = build("""
block Conv(out, k=3):
    conv out k=k p=k//2 | relu

network N(c=8):
    input 3x8x8
    Conv(c) | Conv(c*2, k=5)
""", c=4)
    assert "self.conv2 = Conv(c, c * 2, k=5)" in code
    assert net.output_shape == (8, 8, 8)


def test_block_used_at_different_channels_is_one_class():
    _, m, code = build("""
block Unit(out):
    conv out k3 p1 nobias | bn | relu

network N:
    input 3x8x8
    Unit(8) | Unit(16) | Unit(16)
""")
    assert classes(code) == ["Unit", "N"]


def test_import_brings_blocks_from_another_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text("block Unit(out):\n    conv out k3 p1 | relu\n")
    main = tmp_path / "main.cnn"
    main.write_text('import "lib/blocks.cnn"\n\nnetwork N:\n    input 3x8x8\n    Unit(8) x2\n')
    net, m, code = build(main)
    assert classes(code) == ["Unit", "N"]
    assert "unit2.conv1.weight" in param_keys(m)


def test_error_inside_an_imported_block_is_located_there(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text("block Unit(out):\n    conv out k3 g3\n")
    main = tmp_path / "main.cnn"
    main.write_text('import "lib/blocks.cnn"\n\nnetwork N:\n    input 4x8x8\n    Unit(8)\n')
    d = the_error(main)
    assert d.file.endswith("blocks.cnn") and (d.line, d.col) == (2, 17)
    assert "divisible by groups (3)" in d.message
    assert [(n.file, n.line, n.col, n.message) for n in d.notes] == [(str(main), 5, 5, "in `Unit`, called here")]


def test_import_cycle_is_an_error(tmp_path):
    (tmp_path / "a.cnn").write_text('import "b.cnn"\nnetwork N:\n    input 3x8x8\n    conv 4 k1\n')
    (tmp_path / "b.cnn").write_text('# b\nimport "a.cnn"\nblock B(c):\n    conv c k1\n')
    d = the_error(tmp_path / "a.cnn")
    assert d.file.endswith("b.cnn") and (d.line, d.col) == (2, 1)
    assert "cycle" in d.message
    d = the_error('import "net.cnn"\nnetwork N:\n    input 3x8x8\n    conv 4 k1\n'.replace("net.cnn", str(tmp_path / "self.cnn")))
    assert "cannot import" in d.message  # (a missing file, given as text)
    (tmp_path / "self.cnn").write_text('import "self.cnn"\nnetwork N:\n    input 3x8x8\n    conv 4 k1\n')
    d = the_error(tmp_path / "self.cnn")
    assert "cycle" in d.message and (d.line, d.col) == (1, 1)


def test_missing_import_is_an_error(tmp_path):
    main = tmp_path / "main.cnn"
    main.write_text('network N:\n    input 3x8x8\n    conv 4 k1\n\nimport "nowhere.cnn"\n')
    d = the_error(main)
    assert (d.line, d.col) == (5, 1)
    assert d.message == 'cannot import "nowhere.cnn": there is no such file'


# -- mistakes -----------------------------------------------------------------------------------------

BASIC = """block A(planes, stride=1):
    conv planes k3 s=stride p1

"""

ERRORS = {
    "add_channels": ("""network N:
    input 8x16x16
    add:
        conv 8 k1
        conv 16 k1
""", 5, 9, ["`add`", "(N, 8, 16, 16)", "(N, 16, 16, 16)", "axis 1 (channels)"]),
    "cat_spatial": ("""network N:
    input 8x16x16
    cat:
        conv 8 k1
        conv 8 k1 s2
""", 5, 9, ["`cat`", "(N, 8, 16, 16)", "(N, 8, 8, 8)", "axes 2 (height) and 3 (width)"]),
    "mul_no_broadcast": ("""network N:
    input 8x16x16
    mul:
        conv 8 k1
        conv 4 k1
""", 5, 9, ["`mul`", "broadcast", "(N, 4, 16, 16)", "axis 1 (channels)"]),
    "split_indivisible": ("""network N:
    input 9x16x16
    split 2:
        conv 8 k1
        conv 8 k1
""", 3, 5, ["`split 2`", "divisible by 2", "9", "(N, 9, 16, 16)"]),
    "join_mismatch": ("""network N:
    input 8x16x16
    e1 = conv 8 k1
    e1 | maxpool 2 | cat(e1)
""", 4, 22, ["the pipeline gives (N, 8, 8, 8)", "`e1` gives (N, 8, 16, 16)", "axes 2 (height) and 3 (width)"]),
    "undefined_value": ("""network N:
    input 8x16x16
    enc = conv 8 k1
    conv 8 k1 | cat(enc, end)
""", 4, 26, ["`end` is not a named value"]),
    "value_before_defined": ("""network N:
    input 8x16x16
    conv 8 k1 | cat(e1)
    e1 = conv 8 k1
    e1
""", 3, 21, ["`e1` is used before it is defined (on line 4)"]),
    "value_before_defined_at_start": ("""network N:
    input 8x16x16
    e2 | conv 8 k1
    e2 = conv 8 k1
""", 3, 5, ["`e2` is used before it is defined (on line 4)"]),
    "value_defined_twice": ("""network N:
    input 8x16x16
    a = conv 8 k1
    a = a | conv 8 k1
    a
""", 4, 5, ["`a` is already defined"]),
    "recursive_block": ("""block A(c):
    conv c k1 | A(c)

network N:
    input 8x16x16
    A(8)
""", 2, 17, ["`A` calls itself"]),
    "recursive_via_another": ("""block A(c):
    conv c k1 | B(c)

block B(c):
    A(c)

network N:
    input 8x16x16
    A(8)
""", 5, 5, ["`A` calls itself"]),
    "unknown_keyword": (BASIC + """network N:
    input 8x16x16
    A(8, strid=2)
""", 6, 10, ["`A` has no parameter `strid`"]),
    "too_many_arguments": (BASIC + """network N:
    input 8x16x16
    A(8, 2, 3)
""", 6, 13, ["too many arguments", "takes 2"]),
    "missing_argument": (BASIC + """network N:
    input 8x16x16
    A(stride=2)
""", 6, 5, ["`A` needs a value for `planes`"]),
    "unknown_block": ("""block Bottleneck(c):
    conv c k1

network N:
    input 8x16x16
    Botleneck(4)
""", 6, 5, ["unknown block `Botleneck`"]),
    "unpool_not_a_pool": ("""network N:
    input 8x16x16
    conv 8 k1 as c1
    unpool c1
""", 4, 12, ["`unpool` needs a max pool", "`c1` is a `conv`"]),
    "unpool_unknown": ("""network N:
    input 8x16x16
    maxpool 2 as pool1
    unpool pool2
""", 4, 12, ["`unpool` names `pool2`", "no max pool"]),
    "unpool_wrong_shape": ("""network N:
    input 8x16x16
    maxpool 2 as pool1
    conv 4 k1
    unpool pool1
""", 5, 5, ["expects the shape pool1 produced, (N, 8, 8, 8)", "(N, 4, 8, 8)"]),
    "merge_in_named_group": ("""network N:
    input 8x16x16
    g:
        conv 8 k1
        add:
            conv 8 k1
            identity
""", 5, 9, ["cannot be inside a named group"]),
    "input_in_block": ("""block A(c):
    input 3x8x8
    conv c k1

network N:
    input 8x16x16
    A(4)
""", 2, 11, ["a block's `input` names its inputs"]),
    "output_keys_in_block": ("""block A(c):
    a = conv c k1
    output a as first

network N:
    input 8x16x16
    A(4)
""", 3, 5, ["a block returns its values in order"]),
    "as_forward": ("""network N:
    input 8x16x16
    conv 8 k1 as forward
""", 3, 5, ["`forward` is an attribute of nn.Module"]),
    "as_clash": ("""network N:
    input 8x16x16
    conv 8 k1 as a
    relu as a
""", 4, 5, ["the name `a` is already taken"]),
    "as_clash_with_automatic_name": ("""network N:
    input 8x16x16
    conv 8 k1
    conv 8 k1 as conv1
""", 4, 5, ["`conv1` is already taken", "automatically"]),
    "split_branch_count": ("""network N:
    input 8x16x16
    split 3:
        conv 8 k1
        conv 8 k1
""", 3, 5, ["`split 3:` needs 3 branches, found 2"]),
    "merge_one_branch": ("""network N:
    input 8x16x16
    add:
        conv 8 k1
""", 3, 5, ["`add:` needs at least two branches"]),
    "condition_outside_merge_is_no_bool": ("""network N:
    input 8x16x16
    conv 8 k1 if 3
""", 3, 18, ["a condition must be true or false, found 3"]),
    "condition_colon_after_pipeline": ("""network N:
    input 8x16x16
    conv 8 k1 | relu if true:
        conv 8 k1
        identity
""", 3, 25, ["a condition before `:` belongs to a merge"]),
    "repeat_with_a_parameter": ("""block A(n):
    (conv 8 k1) x n

network N:
    input 8x16x16
    A(2)
""", 2, 17, ["a repetition is `x` and a number in one word"]),
    "block_without_parentheses": ("""block A(c):
    conv c k1

network N:
    input 8x16x16
    A 4
""", 6, 5, ["`A` is a block: call it with parentheses"]),
    "default_uses_an_unknown_name": ("""block A(c, d=e*2):
    conv c k1

network N:
    input 8x16x16
    A(8)
""", 1, 14, ["`e` is not defined here"]),
    "output_unknown_value": ("""network N:
    input 8x16x16
    a = conv 8 k1
    output a, b
""", 4, 5, ["`output` names `b`"]),
}


@pytest.mark.parametrize("name", ERRORS)
def test_composition_mistakes(name):
    src, line, col, fragments = ERRORS[name]
    d = the_error(src)
    assert (d.line, d.col) == (line, col), d.render()
    for fragment in fragments:
        assert fragment in d.message, d.render()


def test_error_inside_a_block_points_inside_and_notes_each_call():
    d = the_error("""block Inner(c):
    conv c k3 g3

block Outer(c):
    relu
    Inner(c)

network N:
    input 8x16x16
    Outer(8)
""")
    assert (d.line, d.col) == (2, 15) and "divisible by groups (3)" in d.message
    assert [(n.line, n.col, n.message) for n in d.notes] == [(6, 5, "in `Inner`, called here"), (10, 5, "in `Outer`, called here")]
    assert "note: in `Outer`, called here" in d.render()


def test_a_mistake_in_a_block_called_twice_is_reported_once():
    found = errors("""block A(c):
    conv c k3 g3

network N:
    input 8x16x16
    A(8) | A(8)
""")
    assert len(found) == 1


def test_recursive_block_notes_the_calls():
    d = the_error(ERRORS["recursive_via_another"][0])
    assert [(n.line, n.col) for n in d.notes] == [(2, 17), (9, 5)]


def test_unknown_keyword_suggests_the_parameter():
    d = the_error(ERRORS["unknown_keyword"][0])
    assert d.hint == "did you mean `stride`?"


def test_unused_value_is_a_warning():
    net = cnndsl.check("""network N:
    input 8x16x16
    skip = conv 8 k1
    conv 8 k1
""")
    (w,) = net.warnings
    assert w.severity == "warning" and (w.line, w.col) == (3, 5)
    assert "the value `skip` is never used" in w.message


def test_unused_value_inside_a_block_warns_with_the_call():
    net = cnndsl.check("""block A(c):
    skip = conv c k1
    conv c k1

network N:
    input 8x16x16
    A(4)
""")
    (w,) = net.warnings
    assert (w.line, w.col) == (2, 5)
    assert [(n.line, n.col) for n in w.notes] == [(7, 5)]


def test_errors_after_a_failed_pool_do_not_cascade():
    found = errors("""network N:
    input 8x16x16
    conv 8 k99
    maxpool 2 as pool1
    unpool pool1
""")
    assert len(found) == 1 and found[0].line == 3


def test_every_bad_call_is_reported_not_only_the_first():
    found = errors(BASIC + """network N:
    input 8x16x16
    A(8, strid=2)
    A(8, 2, 3)
    A(stride=2)
""")
    assert [(d.line, d.col) for d in found] == [(6, 10), (7, 13), (8, 5)]


def test_missing_import_names_the_path_it_looked_for(tmp_path):
    main = tmp_path / "main.cnn"
    main.write_text('import "lib/x.cnn"\nnetwork N:\n    input 3x8x8\n    conv 4 k1\n')
    d = the_error(main)
    assert d.message == 'cannot import "lib/x.cnn": there is no such file'
    assert d.hint.endswith(str(tmp_path / "lib" / "x.cnn"))
    assert (d.span.col, d.span.end_col) == (1, 19)  # the whole import line


def test_a_line_whose_result_is_dropped_is_a_warning():
    net = cnndsl.check("""network N:
    input 8x8x8
    e1 = conv 8 k1
    conv 8 k3 p1 | relu   # dropped: the next line starts again from e1
    e2 = e1 | maxpool 2
    f = e2 | conv 4 k1
    f | relu
    output f, e2
""")
    assert [(w.line, w.col, w.span.end_col) for w in net.warnings] == [(4, 5, 24), (7, 5, 13)]
    assert all(w.message == "the result of this line is never used" for w in net.warnings)
    assert "starts again from `e1`" in net.warnings[0].hint and "`output`" in net.warnings[1].hint
    clean = cnndsl.check("""network N:
    input 8x8x8
    e1 = conv 8 k1
    conv 8 k3 p1 | relu
    e2 = maxpool 2
    output e1, e2
""")
    assert clean.warnings == ()


def test_the_grammar_has_no_lalr_conflicts(caplog):
    """`conv 16 k1 if cond` (a branch) and `add if cond:` (a merge) once met in a shift/reduce conflict on `if`."""
    import logging

    from lark import Lark, logger

    from cnndsl.syntax.parser import CnnIndenter, _grammar_path

    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="lark"):
            Lark(_grammar_path().read_text(encoding="utf-8"), parser="lalr", postlex=CnnIndenter(),
                 propagate_positions=True, maybe_placeholders=True, debug=True)
    finally:
        logger.setLevel(level)
    assert not [r for r in caplog.records if "conflict" in r.getMessage().lower()]


# -- conditions decided at compile time, and conditions that would be mistakes ---------------------


def test_conditions_without_parameters_are_decided_at_compile_time():
    net, m, code = build("""
network N:
    input 8x8x8
    add if 1 == 2:
        conv 4 k1
        identity
    add:
        conv 4 k1
        conv 4 k3 p1 if 1 > 2
""")
    assert "use_add" not in code and "if " not in code.split("def forward")[1].split("def build")[0]
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        first = m.conv1(x)
        assert torch.allclose(run(m, x), m.conv2(first) + first)
    assert [l.name for l in net.layers] == ["conv1", "conv2"]  # `conv3` would be the switched-off branch


def test_a_condition_on_a_mul_branch_is_an_error():
    d = the_error("block G:\n    mul:\n        identity\n        gap | sigmoid if in > 4\nnetwork N:\n    input 8x4x4\n    G()\n")
    assert (d.line, d.col) == (4, 26)
    assert "square the input" in d.message and d.hint == "make the whole merge conditional: `mul if condition:`"


def test_split_takes_no_condition():
    d = the_error("network N(s=1):\n    input 8x4x4\n    split 2 if s == 1:\n        identity\n        conv 4 k1\n")
    assert (d.line, d.col) == (3, 16) and "`split` takes no condition" in d.message
