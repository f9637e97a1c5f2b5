"""Families of architectures: parameters of every kind (numbers, tuples, words), the language's functions, and
what the generated code does with each (generic where it can be, refusing other values clearly where not)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import cnndsl

KINDS = """network Net(act=relu, k=(1, 3), mode=reflect, width=8):
    input 3x16x16
    conv width k=k p1 padding_mode=mode | bn | act
    conv width k3 p1 | act inplace
    gap | flatten | linear 10
"""


def _children(model) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_children()}


def test_a_tuple_parameter_is_passed_on_whole_and_a_word_chooses_a_layer():
    code = cnndsl.compile(KINDS)
    assert 'def __init__(self, act="relu", k=(1, 3), mode="reflect", width=8):' in code
    assert "kernel_size=k," in code  # the tuple itself, not its items
    assert 'padding_mode="reflect"' in code and "nn.ReLU(inplace=True)" in code
    model = cnndsl.load(KINDS, act="hardswish", k=(3, 1), mode="zeros", width=4)
    assert _children(model)["hardswish1"] == "Hardswish" and model.conv1.kernel_size == (3, 1)
    assert model.conv1.padding_mode == "zeros" and model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_a_word_parameter_is_pinned_where_the_code_writes_the_word():
    ns: dict = {}
    exec(cnndsl.compile(KINDS), ns)  # noqa: S102 - our own generated code
    ns["Net"]()
    with pytest.raises(ValueError, match=r"act: this module was compiled with act=relu \(it chooses a layer"):
        ns["Net"](act="gelu")
    with pytest.raises(ValueError, match="mode: this module was compiled with mode=reflect"):
        ns["Net"](mode="zeros")
    ns["Net"](width=16)  # a number the code names stays generic


@pytest.mark.parametrize("given, message", [
    ({"act": "foo"}, "`act` is `foo`, which is no op"),
    ({"act": 3}, "parameter `act` takes a word (its default is one), found a number"),
    ({"k": 3}, "parameter `k` takes a tuple (its default is one), found a number"),
    ({"width": (8, 8)}, "parameter `width` takes a number (its default is one), found a tuple"),
    ({"mode": "mirror"}, "`padding_mode` must be one of zeros, reflect, replicate, circular; found the word `mirror` (the value of `mode`)"),
])
def test_a_value_of_the_wrong_kind_is_a_located_error(given, message):
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(KINDS, **given)
    assert e.value.diagnostics[0].message == message
    assert "Val(" not in str(e.value) and "Traceback" not in str(e.value)


def test_tuples_and_words_from_the_command_line(tmp_path):
    (tmp_path / "net.cnn").write_text(KINDS, encoding="utf-8")
    (tmp_path / "p.yaml").write_text("k: [3, 1]\nact: hardswish\n", encoding="utf-8")
    for args in (["-D", "k=3,1", "-D", "act=hardswish"], ["-D", "k=3x1", "-D", "act=hardswish"], ["--params", "p.yaml"]):
        proc = subprocess.run([sys.executable, "-m", "cnndsl", "build", "net.cnn", *args, "-o", "-"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert 'def __init__(self, act="hardswish", k=(3, 1), mode="reflect", width=8):' in proc.stdout
        assert "nn.Hardswish()" in proc.stdout and "kernel_size=k," in proc.stdout


BLOCKS = """\
block ConvNormAct(out, k=3, act=relu, norm=bn):
    conv out k=k p=k//2 nobias | norm | act

block Sep(out, k=(1, 7)):
    conv out k=k nobias

network Net(act=relu):
    input 3x32x32
    ConvNormAct(16)
    ConvNormAct(32, act=hardswish)
    ConvNormAct(32, act=act)
    ConvNormAct(32, norm=instnorm, act=gelu)
    Sep(32)
    Sep(32, k=(3, 1))
    gap | flatten | linear 10
"""


def test_a_block_takes_layers_and_tuples_as_arguments():
    code = cnndsl.compile(BLOCKS)
    # a word is the block's code (one class per choice of layers); a tuple stays a parameter of the class
    assert "class ConvNormAct(nn.Module):\n    def __init__(self, in_channels, out, k=3):" in code
    assert "self.hardswish1 = nn.Hardswish()" in code and "self.instnorm1 = nn.InstanceNorm2d(out)" in code
    assert "class Sep(nn.Module):\n    def __init__(self, in_channels, out, k=(1, 7)):" in code
    assert "self.sep2 = Sep(32, 32, k=(3, 1))" in code and "kernel_size=k, bias=False" in code
    model = cnndsl.load(BLOCKS)
    assert model.sep2.conv1.kernel_size == (3, 1) and model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert type(cnndsl.load(BLOCKS, act="silu").convnormact3.silu1).__name__ == "SiLU"


@pytest.mark.parametrize("call, message", [
    ("ConvNormAct(16, act=relux)", "`act` is `relux`, which is no op"),
    ("Sep(16, k=(1, 3, 3))", "`kernel_size` has 3 values, but the input has 2 spatial dimensions"),
    ("ConvNormAct(16, k=relu)", "unknown name `relu`"),  # k takes a number: a word is a name it does not know
    ("Sep(16, k=relu)", "unknown name `relu`"),  # a number stands in each place of a tuple (k=3 is (3, 3)), a word not
    ("ConvNormAct(16, norm=conv)", "`conv` needs its output size"),
])
def test_a_block_argument_of_the_wrong_kind_is_located(call, message):
    source = BLOCKS.split("network")[0] + f"network Net:\n    input 3x32x32\n    {call}\n"
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(source)
    assert e.value.diagnostics[0].message.startswith(message), e.value.diagnostics[0].message


OPTIONAL = """\
block Stage(out, se=false, use_bn=true):
    conv out k3 p1 nobias
    bn if use_bn
    relu
    (gap | conv out k1 | sigmoid) as se_gate if se

network Net(use_bn=true, extra=false):
    input 3x32x32
    features:
        conv 16 k3 p1
        bn if use_bn
        relu
        conv 16 k3 p1 if extra
        maxpool 2
    Stage(32)
    Stage(32, use_bn=false, se=true)
    gap | flatten | linear 10
"""


def _without_optional(source: str, **values) -> str:
    """The source with each optional line kept or dropped as its condition decides (conditions here are one name)."""
    out = []
    for line in source.splitlines():
        head, sep, cond = line.rpartition(" if ")
        if sep and ":" not in cond and cond.strip() in values:
            if values[cond.strip()]:
                out.append(head)
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("use_bn, extra", [(True, False), (False, True), (False, False)])
def test_an_optional_line_is_the_line_or_nothing(use_bn, extra):
    """Metamorphic: the network with optional lines has the state_dict keys and outputs of the network written
    without them (kept where true, dropped where false); a named group numbers only the stages present."""
    text = OPTIONAL.replace("network Net(use_bn=true, extra=false)", "network Net(use_bn=true, extra=false)")
    model = cnndsl.load(text, use_bn=use_bn, extra=extra)
    plain = _without_optional(text.split("network")[1], use_bn=use_bn, extra=extra)
    block = "block" + text.split("block")[1].split("network")[0]
    reference = cnndsl.load(block + "network" + plain, use_bn=use_bn, extra=extra)
    assert list(model.state_dict()) == list(reference.state_dict())
    assert list(model.features.state_dict()) == [f"{i}.{k}" for i, k in _numbered(use_bn, extra)]
    reference.load_state_dict(model.state_dict())
    model.eval(), reference.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), reference(x))


def _numbered(use_bn, extra):
    stages = [("conv", ("weight", "bias"))]
    if use_bn:
        stages.append(("bn", ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")))
    stages.append(("relu", ()))
    if extra:
        stages.append(("conv", ("weight", "bias")))
    return [(i, key) for i, (_, keys) in enumerate(stages) for key in keys]


def test_a_parameter_that_decides_an_optional_line_is_pinned_and_a_block_is_a_class_per_choice():
    code = cnndsl.compile(OPTIONAL)
    assert "if use_bn != True:" in code and "it decides a condition" in code
    assert "class Stage(nn.Module):\n    def __init__(self, in_channels, out):" in code  # se, use_bn: the class's choice
    assert "self.stage2 = Stage_2(32, 32)" in code and "self.se_gate = nn.Sequential(" in code


def test_functions_indexing_and_conditional_values_print_generic_code():
    """The language's functions, tuple items and `a if c else b` are the numbers the module computes: the
    generated class computes them from its parameters, for other values too (checked against a fresh compile)."""
    source = """network N(w=1.0, layers=(2, 3), extra=false):
    input 3x16x16
    conv max(8, int(16*w)) k3 p1 | bn
    conv make_divisible(24*w, 8) k1
    conv (16 if extra else 8) k1
    conv layers[1] * 4 k1
    gap | flatten | linear round(sqrt(100))
"""
    code = cnndsl.compile(source)
    assert "max(8, int(16 * w))" in code and "_make_divisible(24 * w, 8)" in code or "make_divisible" in code
    assert "16 if extra else 8" in code and "layers[1] * 4" in code
    for params in ({}, {"w": 0.75}, {"w": 1.4, "layers": (1, 5), "extra": True}):
        model = cnndsl.load(source, **params)
        check = cnndsl.check(source, **params)
        assert [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Conv2d)] == \
            [(layer.args[1].v if hasattr(layer.args[1], "v") else layer.args[1], layer.args[0].v if hasattr(layer.args[0], "v") else layer.args[0], *((layer.kwargs[0][1].v,) * 2)) for layer in check.layers if layer.op == "conv"]
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


@pytest.mark.parametrize("depth, copies", [(8, 1), (20, 3), (2, 0)])
def test_a_repetition_count_is_an_expression_and_the_index_numbers_the_copies(depth, copies):
    source = f"""block Basic(planes, stride=1):
    add:
        conv planes k3 s=stride p1 nobias | bn | relu | conv planes k3 p1 nobias | bn
        (conv planes k1 s=stride nobias | bn) as downsample if stride != 1 or in != planes
    relu

network R(depth={depth}):
    input 3x32x32
    conv 16 k3 p1 nobias | bn | relu
    Basic(16) x((depth - 2) // 6)
    layer2: Basic(32, stride=(2 if i == 0 else 1)) x(max(1, (depth - 2) // 6), i)
    gap | flatten | linear 10
"""
    model = cnndsl.load(source)
    blocks = [name for name, _ in model.named_children() if name.startswith("basic")]
    assert len(blocks) == copies and len(model.layer2) == max(1, copies)
    assert model.layer2[0].conv1.stride == (2, 2) and all(b.conv1.stride == (1, 1) for b in list(model.layer2)[1:])
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert "it sets how many times a part repeats" in cnndsl.compile(source)


def test_defaults_apply_below_and_into_called_blocks():
    source = """block B(c):
    conv c k3 p1 | bn
    defaults bn momentum=0.5
    bn

network N:
    input 3x8x8
    defaults bn eps=0.001 momentum=0.01
    defaults conv nobias
    conv 8 k3 | bn
    B(8)
    bn eps=0.1
    conv 8 k1 bias=true
"""
    model = cnndsl.load(source)
    assert (model.bn1.eps, model.bn1.momentum, model.conv1.bias) == (0.001, 0.01, None)
    assert (model.b1.bn1.eps, model.b1.bn1.momentum) == (0.001, 0.01) and model.b1.bn2.momentum == 0.5
    assert (model.bn2.eps, model.bn2.momentum) == (0.1, 0.01) and model.conv2.bias is not None


@pytest.mark.parametrize("line, message", [
    ("relu x(2.5)", "a repetition's count must be an integer, found `2.5`"),
    ("relu x(-1)", "a repetition's count must be at least 0, found -1"),
    ("relu x(layers[2])", "index 2 is out of range: the tuple has 2 items"),
    ("relu x(layers[0], k)", "`k` already names a parameter or index here"),
    ("conv sqrt(-4) k1", "cannot compute the square root of a negative number"),
    ("conv maxx(1, 2) k1", "`maxx` is no function of numbers"),
    ("conv max(1) k1", "`max` takes 2 to 8 arguments, found 1"),
    ("conv k[0] k1", "only a tuple has items, found `3`"),
    ("defaults bn epz=1", "`bn` has no option `epz`"),
    ("defaults conv 16", "`defaults` takes options by name (`eps=0.001`) or flags (`nobias`)"),
    ("relu x n", "a repetition is `x` and a number in one word, such as `x2`, or `x(n)`"),
])
def test_the_new_forms_have_located_diagnostics(line, message):
    source = f"network N(layers=(1, 2), k=3):\n    input 3x8x8\n    {line}\n"
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(source)
    d = e.value.diagnostics[0]
    assert d.message.startswith(message), d.message
    assert d.line == 3 and "Val(" not in str(e.value)


@pytest.mark.parametrize("depth", [18, 34, 50, pytest.param(101, marks=pytest.mark.slow), pytest.param(152, marks=pytest.mark.slow)])
def test_the_resnet_family_is_torchvisions_weight_for_weight(depth):
    """examples/resnet.cnn with `depth` loads torchvision's resnet{depth} state_dict strictly and computes its
    outputs (eval, random weights)."""
    import torchvision

    from conftest import EXAMPLES

    model = cnndsl.load(EXAMPLES / "resnet.cnn", depth=depth, device="cpu").eval()
    ref = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5, rtol=1e-4)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


def test_a_parameter_may_name_the_block_a_stage_calls():
    source = """block A(c):
    conv c k1

block B(c):
    conv c k3 p1 | relu

network N(block=A):
    input 3x8x8
    stage: block(8) x2
"""
    assert isinstance(cnndsl.load(source).stage[0].conv1, torch.nn.Conv2d)
    assert cnndsl.load(source, block="B").stage[1].conv1.kernel_size == (3, 3)
    with pytest.raises(cnndsl.CheckError, match="`block` is `C`, which is no block"):
        cnndsl.check(source, block="C")
    assert 'if block != "A":' in cnndsl.compile(source)  # the class writes A's calls: another block is refused


@pytest.mark.parametrize("width", [0.5, 1.0, pytest.param(0.75, marks=pytest.mark.slow), pytest.param(1.4, marks=pytest.mark.slow)])
def test_the_mobilenet_v2_family_is_torchvisions_weight_for_weight(width):
    """examples/mobilenet_v2.cnn with `width_mult` (torchvision's _make_divisible rounding) loads
    torchvision's mobilenet_v2(width_mult=...) state_dict strictly and computes its outputs."""
    import torchvision

    from conftest import EXAMPLES

    model = cnndsl.load(EXAMPLES / "mobilenet_v2.cnn", width_mult=width, device="cpu").eval()
    ref = torchvision.models.mobilenet_v2(weights=None, width_mult=width).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("depth, paper", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6)])
def test_the_cifar_resnets_have_the_papers_parameter_counts(depth, paper):
    """He et al. 2016, Table 6 (identity shortcuts); with projection shortcuts where the shape changes, as
    examples/resnet_cifar.cnn has them, within 2%."""
    from conftest import EXAMPLES

    total = cnndsl.check(EXAMPLES / "resnet_cifar.cnn", depth=depth).total_params
    assert abs(total / paper - 1) < 0.02, total


def test_the_depth_20_cifar_resnet_learns_the_digits():
    """ResNet-20 from examples/resnet_cifar.cnn, on scikit-learn's digits at their own 8x8 (the input given at
    load), six epochs of Adam: at least 0.97 on the held-out fifth."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from conftest import EXAMPLES

    torch.manual_seed(0)
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - x.mean()) / x.std()
    y = torch.tensor(data.target)
    train, test = train_test_split(range(len(y)), test_size=0.2, random_state=0, stratify=data.target)
    model = cnndsl.load(EXAMPLES / "resnet_cifar.cnn", depth=20, input=(1, 8, 8), device="cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    epochs = 6
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[train], y[train]), batch_size=64, shuffle=True)
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    assert accuracy >= 0.97, accuracy


@pytest.mark.parametrize("depth, batch_norm", [(11, False), (11, True), (13, False), (13, True),
                                               *[pytest.param(d, b, marks=pytest.mark.slow) for d in (16, 19) for b in (False, True)]])
def test_the_vgg_family_is_torchvisions_weight_for_weight(depth, batch_norm):
    """examples/vgg.cnn with `depth` and `batch_norm`: torchvision's vgg{depth}[_bn], whose `features` numbers its
    layers flat across the stages (the spliced groups `*( ... )`), loads strictly and computes the same."""
    import torchvision

    from conftest import EXAMPLES

    model = cnndsl.load(EXAMPLES / "vgg.cnn", depth=depth, batch_norm=batch_norm, device="cpu").eval()
    ref = getattr(torchvision.models, f"vgg{depth}{'_bn' if batch_norm else ''}")(weights=None).eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5, rtol=1e-4)


def test_defaults_take_flags_short_options_and_names_but_no_value_by_position():
    head = "network N(c=4):\n    input 3x8x8\n"
    model = cnndsl.load(head + "    defaults maxpool k3 s1 p1\n    defaults conv nobias out=16\n    conv k1 | maxpool\n")
    assert model.conv1.out_channels == 16 and model.conv1.bias is None
    assert (model.maxpool1.kernel_size, model.maxpool1.stride) == (3, 1)
    with pytest.raises(cnndsl.CheckError, match="`defaults` takes options by name"):
        cnndsl.check(head + "    defaults conv c\n    conv 8 k1\n")  # c is a value: it would fill conv's `out`


def test_a_parameter_that_only_chooses_a_called_blocks_class_is_the_callers_choice_too():
    """Found by a new-user trial: `Outer(se)` passed `se` on to `Inner`, whose optional line it decides; `Outer`
    kept a parameter `se` that its code no longer used (another value would have done nothing)."""
    src = """block Inner(out, se=false):
    conv out k1
    bn if se

block Outer(out, se=false):
    Inner(out, se=se)
    relu

network N(use_se=true):
    input 3x8x8
    Outer(8, se=use_se)
    Outer(8)
"""
    code = cnndsl.compile(src)
    assert "def __init__(self, in_channels, out):" in code and "se=" not in code.split("class N(")[0]
    model = cnndsl.load(src)
    assert type(model.outer1.inner1.bn1).__name__ == "BatchNorm2d" and not hasattr(model.outer2.inner1, "bn1")


def test_a_depthwise_conv_does_not_pin_its_width():
    """A depthwise conv's groups are its input channels: they divide its output channels for every width, so
    the width stays a parameter of the generated class (a new-user trial found it pinned)."""
    src = "network N(w=1.0):\n    input 3x8x8\n    conv make_divisible(16*w, 8) k3 | dwconv k3 | bn\n"
    ns: dict = {}
    exec(cnndsl.compile(src), ns)  # noqa: S102 - our own generated code
    generic = ns["N"](w=2.0)
    direct = cnndsl.load(src, w=2.0)
    assert {k: v.shape for k, v in generic.state_dict().items()} == {k: v.shape for k, v in direct.state_dict().items()}
