"""The Python verbs: parse, check, compile, load — paths or text, parameters, input, errors."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES

import cnndsl

NET = """network Net(c=8, classes=10):
    input 3x16x16
    conv c k3 p1 nobias | bn | relu
    conv c*2 k3 s2 p1 | relu
    gap | flatten
    linear classes
"""


def real_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_each_verb_takes_a_path_a_path_string_or_text(tmp_cnn):
    path = tmp_cnn(NET)
    for src in (path, str(path), NET):
        assert cnndsl.check(src).output_shape == (10,)
    assert cnndsl.compile(path) == cnndsl.compile(NET).replace("from source text.", "from net.cnn.")


def test_check_reports_each_layer():
    net = cnndsl.check(NET)
    assert [(l.name, l.op) for l in net.layers] == [
        ("conv1", "conv"), ("bn1", "bn"), ("relu1", "relu"), ("conv2", "conv"), ("relu2", "relu"),
        ("avgpool1", "gap"), ("flatten1", "flatten"), ("linear1", "linear"),
    ]
    assert net.layer("conv2").output_shape == (16, 8, 8)
    assert net.layer("conv1").params == 8 * 3 * 9
    assert net.input_shape == (3, 16, 16)


def test_parameters_flow_into_the_generated_class_symbolically():
    net = cnndsl.check(NET, c=16, classes=5)
    model = cnndsl.load(NET, device="cpu", c=16, classes=5)
    assert real_params(model) == net.total_params
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    code = cnndsl.compile(NET)
    assert "hidden_dim = c * 2" in code  # named once, as torchvision names a block's inner width
    assert "nn.Conv2d(c, hidden_dim, kernel_size=3, stride=2, padding=1)" in code
    assert "nn.Linear(hidden_dim, classes)" in code
    # the generated build() honours other values of the parameters as well
    module = sys.modules[type(model).__module__]
    other = module.build("cpu", c=4, classes=3)
    assert other(torch.randn(1, 3, 16, 16)).shape == (1, 3)
    assert real_params(other) == cnndsl.check(NET, c=4, classes=3).total_params


def test_input_overrides_the_declared_input():
    assert cnndsl.check(NET, input="3x32x32").layer("conv2").output_shape == (16, 16, 16)
    assert cnndsl.check(NET, input=(3, 9, 9)).layer("conv2").output_shape == (16, 5, 5)
    with pytest.raises(cnndsl.UsageError):
        cnndsl.check(NET, input="3xx")


def test_errors_are_cnndslerrors_with_located_diagnostics():
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(NET.replace("conv c*2", "cnov c*2"))
    (d,) = e.value.diagnostics
    assert (d.file, d.line, d.col, d.hint) == ("<string>", 4, 5, "did you mean `conv`?")
    assert isinstance(e.value, cnndsl.CnnDslError)
    assert "<string>:4:5: error: unknown op `cnov`" in str(e.value)
    with pytest.raises(cnndsl.ParseError):
        cnndsl.check("conv 3->8 k3 |\n")


def test_unknown_and_missing_parameters():
    with pytest.raises(cnndsl.CheckError, match="has no parameter `clases`") as e:
        cnndsl.check(NET, clases=3)
    assert e.value.diagnostics[0].hint == "did you mean `classes`?"
    with pytest.raises(cnndsl.CheckError, match="parameter `c` has no default"):
        cnndsl.check(NET.replace("c=8", "c"))
    assert cnndsl.check(NET.replace("c=8", "c"), c=4).layer("conv1").output_shape == (4, 16, 16)


def test_a_parameter_that_is_no_number_is_described_in_words_not_by_its_repr():
    class Loud:
        def __repr__(self):
            return "x" * 10_000 + "`injected`"

    def message(**params):
        with pytest.raises(cnndsl.CheckError) as e:
            cnndsl.check(NET, **params)
        (d,) = e.value.diagnostics
        return d.message

    start = "parameter `c` must be a number, true/false, a word or a tuple of numbers, found "
    assert message(c=Loud()) == start + "a value of type `Loud`"
    assert message(c=object()) == start + "a value of type `object`"  # no memory address
    assert message(c=None) == start + "nothing (None)"
    assert message(c="8") == start + "a string '8'"
    # a value of another kind than the default's: the kind, in words
    kind = "parameter `c` takes a number (its default is one), found "
    assert message(c=[1, 2]) == kind + "a tuple"
    assert message(c="relu") == kind + "the word 'relu'"
    assert len(message(c="x" * 10_000)) <= len(kind + "the word ") + 80
    # a default of another kind is a parameter of that kind: the mistake is where a number was needed, in words
    # (once the repr of the checker's own values)
    for default, found in (("(1, 2)", "a tuple"), ("w", "the word `w` (the value of `c`)"), ('"w"', "the word `w` (the value of `c`)")):
        with pytest.raises(cnndsl.CheckError) as e:
            cnndsl.check(NET.replace("c=8", f"c={default}"))
        assert e.value.diagnostics[0].message == "`out` must be an integer, found " + found
    # a block's parameter takes the kind of its default: a tuple for a number is refused at the call, in words
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check("block B(a=1):\n    relu\n\nnetwork N:\n    input 3x8x8\n    B((1, 2))\n")
    assert e.value.diagnostics[0].message == "`a` of `B` takes a number (its default is one), found a tuple"


@pytest.mark.parametrize("default", ["classes", "classes + 1", "not classes", "classes < 1", "1 < classes"])
def test_a_default_that_uses_a_later_parameter(default):
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(NET.replace("c=8", f"c={default}"))
    (d,) = e.value.diagnostics
    assert d.message == "`classes` is declared after `c`: a default can use only the parameters before it"
    assert d.hint == "reorder the parameters"


@pytest.mark.parametrize("default", ["c", "c + 1"])
def test_a_default_that_uses_its_own_parameter(default):
    """Once silent (the use of a parameter not yet defined read as "reported already"): then `has no layers`."""
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(NET.replace("c=8", f"c={default}"))
    assert [(d.message, d.line, d.col) for d in e.value.diagnostics][0] == ("`c` uses itself in its default", 1, 15)


def test_a_failed_parameter_is_reported_once_not_at_each_use():
    text = NET.replace("c=8, classes=10", "c=1/0, classes=c+1").replace("conv c*2", "conv classes")
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(text)
    assert [(d.message, d.line) for d in e.value.diagnostics] == [("division by zero", 1)]


def test_several_networks_need_a_choice():
    text = "network A:\n    input 3x8x8\n    relu\n\nnetwork B:\n    input 3x8x8\n    conv 4 k1\n"
    with pytest.raises(cnndsl.CheckError, match="defines 2 networks: A, B"):
        cnndsl.check(text)
    assert cnndsl.check(text, network="B").output_shape == (4, 8, 8)
    with pytest.raises(cnndsl.CheckError, match="no network `C`"):
        cnndsl.check(text, network="C")


def test_semantic_errors_are_collected():
    text = "network N:\n    input 3x8x8\n    conv 8 k3 strid=2\n    relu nobias\n    linear 4 | relux\n"
    with pytest.raises(cnndsl.CheckError) as e:
        cnndsl.check(text)
    assert [(d.line, d.col) for d in e.value.diagnostics] == [(3, 15), (4, 10), (5, 16)]


def test_lazy_linear_warns_instead_of_failing():
    net = cnndsl.check(EXAMPLES / "oneliner.cnn")
    assert net.total_params is None and net.layers[-1].lazy
    (w,) = net.warnings
    assert w.severity == "warning" and "nn.LazyLinear" in w.message
    assert net.example_shape == (3, 32, 32)
    model = cnndsl.load(EXAMPLES / "oneliner.cnn", device="cpu")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_smoke_input_grows_until_the_network_accepts_it():
    net = cnndsl.check("conv 3->8 k7 s2 | maxpool 3 s2 | conv 8 k7 s2 | conv 8 k7 | flatten | linear 4\n")
    assert net.example_shape == (3, 128, 128)


def test_load_defaults_to_cuda_when_available_and_survives_copy_and_save():
    model = cnndsl.load(NET)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected
    model = cnndsl.load(NET, device="cpu").eval()
    clone = copy.deepcopy(model)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = cnndsl.load(NET, device="cpu").eval()
    fresh.load_state_dict(torch.load(buf), strict=True)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model(x), clone(x)) and torch.equal(model(x), fresh(x))


def test_generated_code_is_registered_for_tracebacks():
    import inspect

    model = cnndsl.load(NET, device="cpu")
    assert "def forward(self, x):" in inspect.getsource(type(model))


def test_init_rules_are_applied():
    text = "network N:\n    input 3x8x8\n    init conv weight=constant(0.5) bias=0\n    init bn weight=2 bias=1\n    conv 4 k3 | bn | conv 2 k1 nobias init=ones\n"
    model = cnndsl.load(text, device="cpu")
    assert torch.all(model.conv1.weight == 0.5) and torch.all(model.conv1.bias == 0)
    assert torch.all(model.bn1.weight == 2) and torch.all(model.bn1.bias == 1)
    assert torch.all(model.conv2.weight == 1)


def test_init_rule_mistakes():
    base = "network N:\n    input 3x8x8\n    {rule}\n    conv 4 k3\n"
    for rule, words in [
        ("init conv weight=kaiming_normal(mode=fan_of)", "`mode` must be one of fan_in, fan_out"),
        ("init conv weight=xavier_norm", "unknown initialiser `xavier_norm`"),
        ("init conv weigth=0", "sets `weight` or `bias`"),
        ("init relu weight=0", "`relu` has no weights"),
        ("init conv weight=normal(0, 0.1, 3)", "too many positional arguments for `normal`"),
        ("init conv weight=eye", "`eye` needs a tensor of at most 2 dimensions, but the weight of `conv1` has 4"),
        ("init conv bias=xavier_uniform", "`xavier_uniform` needs a tensor of at least 2 dimensions, but the bias of `conv1` has 1"),
    ]:
        with pytest.raises(cnndsl.CheckError, match=words.replace("(", r"\(")):
            cnndsl.check(base.format(rule=rule))


def test_lazy_layers_cannot_be_initialised():
    with pytest.raises(cnndsl.CheckError, match="cannot initialise `linear1`"):
        cnndsl.check("conv 3->4 k3 | flatten | linear 4 init=xavier_normal\n")


def test_compile_path_never_imports_torch():
    code = (
        "import sys, cnndsl\n"
        f"cnndsl.compile({str(EXAMPLES / 'lenet5.cnn')!r})\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_binary_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "weights.cnn"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(cnndsl.CnnDslError) as e:
        cnndsl.check(path)
    assert str(e.value).count("\n") == 0 and "not a text file" in str(e.value)
    with pytest.raises(cnndsl.UsageError):
        cnndsl.check(Path(tmp_path / "missing.cnn"))


def test_the_checked_network_is_validated_whole_with_its_invariants():
    """The checker builds the network unvalidated (fast); cnndsl.check validates it whole before a user has it:
    a network whose layer does not take what the step before it produced, or that pins a name that is no
    parameter, is refused by CheckedNetwork's own validation."""
    from pydantic import ValidationError

    net = cnndsl.check(NET)
    assert net.validated() == net
    steps = list(net.steps)
    second = next(i for i, s in enumerate(steps) if s.kind == "layer" and s.layer.name == "conv2")
    wrong = steps[second].layer.model_copy(update={"input_shape": (7, 16, 16)})
    steps[second] = steps[second].model_copy(update={"layer": wrong})
    with pytest.raises(ValidationError, match="`conv2` takes \\(7, 16, 16\\), but \\(8, 16, 16\\) reaches it"):
        net.model_copy(update={"steps": tuple(steps)}).validated()
    with pytest.raises(ValidationError, match="pinned `nope` is no parameter"):
        net.model_copy(update={"pinned": (("nope", "why"),)}).validated()
    with pytest.raises(ValidationError, match="layer names repeat"):
        net.model_copy(update={"layers": net.layers + net.layers[:1]}).validated()
