"""ONNX export (cnndsl/tools/export.py and `cnndsl export`): the file passes onnx.checker, names its input and outputs,
has a symbolic batch dimension, and onnxruntime agrees with the PyTorch module (cnndsl.load of the same file, with
the same weights, in eval mode) at batch sizes other than the one exported with. Exports take seconds each (torch.onnx
builds its op registry every time), so each test exports once, and small inputs keep the examples quick.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import EXAMPLES

import cnndsl
from cnndsl import cli
from cnndsl.tools.export import export_onnx, output_names

TOLERANCE = 1e-4

TWO_HEADS = """\
network TwoHeads:
    input 3x16x16
    features = conv 8 k3 p1 | bn | relu
    logits = features | gap | flatten | linear 5
    mask = features | conv 1 k1 | sigmoid
    output logits, mask
"""

SAME_TWICE = """\
network Twice:
    input 3x8x8
    a = conv 4 k1
    output a, a
"""

RRELU = """\
network Noisy:
    input 3x16x16
    conv 8 k3 p1 | rrelu
"""


def export(src, path, *, input=None, **options):
    """Export the network in `src` to `path`; the module it exported and the checked network."""
    net = cnndsl.check(src, input=input)
    return export_onnx(net, path, **options), net


def reference(src, state, *, input=None):
    """cnndsl.load of `src` with the weights `state`, in eval mode: what the ONNX file must compute."""
    module = cnndsl.load(src, input=input, device="cpu")
    module.load_state_dict(state)
    return module.eval()


def assert_agrees(path, module, input_shape, batch: int) -> list[np.ndarray]:
    """onnxruntime's outputs for a random batch equal the module's; they are returned."""
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        expected = module(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})
    assert len(got) == len(expected)
    for out, want in zip(got, expected):
        np.testing.assert_allclose(out, want.numpy(), atol=TOLERANCE, rtol=TOLERANCE)
    return got


def dims(value_info) -> list:
    """A graph input's or output's shape: ints, and the names of symbolic dimensions."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_lenet5_is_a_valid_file_with_named_io_and_a_dynamic_batch(tmp_path):
    path = tmp_path / "lenet5.onnx"
    module, net = export(EXAMPLES / "lenet5.cnn", path)
    assert not module.training
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]  # the weights are initializers, not inputs
    assert [o.name for o in model.graph.output] == ["output"]
    assert dims(model.graph.input[0]) == ["batch", 1, 28, 28]
    assert dims(model.graph.output[0]) == ["batch", 10]
    same = reference(EXAMPLES / "lenet5.cnn", module.state_dict())
    for batch in (1, 3):  # exported with a batch of 2
        assert assert_agrees(path, same, net.input_shape, batch)[0].shape == (batch, 10)


OTHERS = sorted({p.stem for p in EXAMPLES.glob("*.cnn")} - {"resnet18", "deform", "ecg1d", "oneliner", "lenet5", "segnet",
                                                            "custom_module"})


@pytest.mark.parametrize("name, input", [("resnet18", "3x64x64"), ("deform", None), ("ecg1d", None), ("custom_module", None)] + [
    pytest.param(name, "3x64x64" if name in ("resnet50", "vgg16_bn", "alexnet", "mobilenet_v2", "squeezenet1_1") else None,
                 marks=pytest.mark.slow) for name in OTHERS])
def test_examples_agree_with_torch(tmp_path, name, input):
    """A residual network, torchvision's deformable convolution and a dilated 1-D `padding=same` conv (which the
    TorchScript exporter writes in a form onnxruntime refuses), external modules (torchvision's and our own);
    segnet's MaxUnpool is exported through the CLI."""
    src = EXAMPLES / f"{name}.cnn"
    module, net = export(src, tmp_path / "net.onnx", input=input)
    assert_agrees(tmp_path / "net.onnx", reference(src, module.state_dict(), input=input), net.input_shape, 3)


RESHAPING = """\
network Reshaping:
    input 24
    linear 3*8*8 | unflatten 3x8x8
    pad (1, 2, 0, 1) mode=reflect | conv 8 k3 nobias | frozenbn | relu
    pad 1 mode=circular | pad (-1, 0, 1, 1) value=0.5 | pad 1 mode=replicate | ln2d eps=1e-6
"""


def test_flat_inputs_unflatten_pad_frozenbn_and_ln2d_export(tmp_path, tmp_cnn):
    """Every pad mode, cropping, a flat input, and the helper classes (FrozenBatchNorm2d, LayerNorm2d)."""
    src = tmp_cnn(RESHAPING)
    module, net = export(src, tmp_path / "net.onnx")
    assert dims(onnx.load(tmp_path / "net.onnx").graph.input[0]) == ["batch", 24]
    assert_agrees(tmp_path / "net.onnx", reference(src, module.state_dict()), net.input_shape, 3)


def test_two_outputs_are_named_as_in_the_file_at_the_opset_asked_for(tmp_path, tmp_cnn):
    src = tmp_cnn(TWO_HEADS)
    module, net = export(src, tmp_path / "heads.onnx", opset=19)
    model = onnx.load(tmp_path / "heads.onnx")
    onnx.checker.check_model(model)
    assert {o.domain: o.version for o in model.opset_import}[""] == 19
    assert [o.name for o in model.graph.output] == ["logits", "mask"]
    assert [dims(o) for o in model.graph.output] == [["batch", 5], ["batch", 1, 16, 16]]
    logits, mask = assert_agrees(tmp_path / "heads.onnx", reference(src, module.state_dict()), net.input_shape, 3)
    assert logits.shape == (3, 5) and mask.shape == (3, 1, 16, 16)


def test_output_names_fall_back_to_numbers_when_the_file_repeats_one(tmp_cnn):
    assert output_names(cnndsl.check(tmp_cnn(TWO_HEADS))) == ["logits", "mask"]
    assert output_names(cnndsl.check(tmp_cnn(SAME_TWICE))) == ["output_0", "output_1"]
    assert output_names(cnndsl.check(EXAMPLES / "lenet5.cnn")) == ["output"]


@pytest.mark.parametrize("opset", [11, 13, 17, 18])
def test_resnet18_exports_at_the_opsets_people_deploy_with(tmp_path, opset):
    """Below 18 through the TorchScript exporter, from 18 through torch.export: the opset asked for, and onnxruntime
    computes what the module does, with two outputs named and a batch size other than the one exported with."""
    module, net = export(EXAMPLES / "resnet18.cnn", tmp_path / "r.onnx", input="3x32x32", opset=opset)
    model = onnx.load(tmp_path / "r.onnx")
    onnx.checker.check_model(model)
    assert {o.domain: o.version for o in model.opset_import}[""] == opset
    assert dims(model.graph.input[0]) == ["batch", 3, 32, 32]
    assert_agrees(tmp_path / "r.onnx", reference(EXAMPLES / "resnet18.cnn", module.state_dict(), input="3x32x32"), net.input_shape, 3)


def test_an_old_opset_that_would_compute_otherwise_or_not_run_is_an_error(tmp_path, tmp_cnn):
    """The TorchScript exporter writes a dilated `padding=same` conv that onnxruntime refuses: checked, never written."""
    src = tmp_cnn("network Dilated:\n    input 2x32\n    conv1d 4 k3 dilation=2 padding=same\n")
    with pytest.raises(cnndsl.UsageError, match=r"cannot export Dilated to ONNX opset 13: onnxruntime cannot run .*"
                                                 r"opset 18 or newer exports it another way"):
        export(src, tmp_path / "old.onnx", opset=13)
    with pytest.raises(cnndsl.UsageError, match=r"ONNX opset 5 is not one cnndsl exports: choose 7 to 23"):
        export(EXAMPLES / "lenet5.cnn", tmp_path / "old.onnx", opset=5)
    assert not (tmp_path / "old.onnx").exists()


def export_command(capsys, folder, *options, file=EXAMPLES / "lenet5.cnn") -> tuple[int, str]:
    """`cnndsl export FILE -o FOLDER/n.onnx OPTIONS` in this process (torch is imported already): status, stderr."""
    status = cli.main(["export", str(file), "-o", str(folder / "n.onnx"), *map(str, options)])
    return status, capsys.readouterr().err


def test_weights_that_do_not_fit_are_summarized_in_one_line(tmp_path, capsys):
    state = cnndsl.load(EXAMPLES / "lenet5.cnn", device="cpu").state_dict()
    del state["linear3.bias"]
    state["head.weight"] = torch.zeros(2)
    state["conv1.weight"] = torch.zeros(6, 3, 5, 5)
    torch.save(state, tmp_path / "bad.pt")
    status, err = export_command(capsys, tmp_path, "--weights", tmp_path / "bad.pt")
    assert status == cli.EXIT_USAGE
    assert err == (f"cnndsl: error: {tmp_path / 'bad.pt'} does not fit LeNet5: 1 missing key: linear3.bias; "
                   "1 unexpected key: head.weight; 1 shape mismatch: conv1.weight is (6, 3, 5, 5) in the file, "
                   "(6, 1, 5, 5) in the network\n")
    assert not (tmp_path / "n.onnx").exists()


def test_long_weight_mismatches_are_cut_short(tmp_path, capsys):
    torch.save({f"w{i}": torch.zeros(1) for i in range(5)}, tmp_path / "other.pt")
    status, err = export_command(capsys, tmp_path, "--weights", tmp_path / "other.pt")
    assert status == cli.EXIT_USAGE
    assert ("10 missing keys: conv1.weight, conv1.bias, conv2.weight and 7 more; "
            "5 unexpected keys: w0, w1, w2 and 2 more\n") in err


@pytest.mark.parametrize("content, message", [
    ("model", "is not a state_dict saved with torch.save (torch.load with weights_only=True refuses it)"),
    ("list", "holds a list, not a state_dict"),
    ("text", "is not a state_dict saved with torch.save"),
    (None, "cannot read"),
])
def test_a_weights_file_that_is_no_state_dict_is_a_usage_error(tmp_path, capsys, content, message):
    weights = tmp_path / "w.pt"
    if content == "model":
        torch.save(torch.nn.Linear(2, 2), weights)
    elif content == "list":
        torch.save([torch.zeros(1)], weights)
    elif content == "text":
        weights.write_text("not a checkpoint")
    status, err = export_command(capsys, tmp_path, "--weights", weights)
    assert status == cli.EXIT_USAGE and message in err and err.count("\n") == 1


def test_a_network_without_an_input_shape_needs_one(tmp_path, capsys):
    status, err = export_command(capsys, tmp_path, file=EXAMPLES / "oneliner.cnn")
    assert status == cli.EXIT_USAGE
    assert err.splitlines()[-1] == ("cnndsl: error: Oneliner has no input shape, and ONNX export needs one: "
                                    "give --input CxHxW (or declare `input` in the file)")


@pytest.mark.parametrize("package", ["onnx", "onnxscript"])
def test_missing_packages_say_what_to_install(tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(cnndsl.UsageError, match=rf"needs the package {package}: pip install onnx onnxscript"):
        export(EXAMPLES / "lenet5.cnn", tmp_path / "n.onnx")


def run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnndsl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


def test_cli_exports_with_weights_in_one_quiet_line(tmp_path):
    """SegNet (MaxUnpool2d with the pools' indices), with trained-looking weights: BatchNorm's running statistics
    are not their defaults, so eval mode matters. stderr is the one line cnndsl prints, no exporter chatter."""
    src = EXAMPLES / "segnet.cnn"
    module = cnndsl.load(src, device="cpu")
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                tensor.uniform_(0.5, 1.5)
    torch.save(module.state_dict(), tmp_path / "segnet.pt")
    proc = run("export", src, "-o", "segnet.onnx", "--weights", "segnet.pt", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr == ("wrote segnet.onnx (SegNet, ONNX: input (batch, 3, 60, 60) -> output (batch, 4, 60, 60))\n")
    onnx.checker.check_model(onnx.load(tmp_path / "segnet.onnx"))
    assert_agrees(tmp_path / "segnet.onnx", module.eval(), (3, 60, 60), 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segnet.onnx", "segnet.pt"]  # no temporary file left


def test_cli_names_the_layer_whose_op_onnx_lacks(tmp_path, monkeypatch, capfd):
    """In this process, to save the seconds a second torch import takes; capfd sees what reaches the terminal."""
    (tmp_path / "net.cnn").write_text(RRELU, encoding="utf-8")
    (tmp_path / "net.onnx").write_bytes(b"old")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", "net.cnn", "-o", "net.onnx"]) == cli.EXIT_DIAGNOSTICS
    assert capfd.readouterr() == ("", (
        "net.cnn:3:20: error: cannot export layer `rrelu1` (rrelu, nn.RReLU) to ONNX: torch.onnx has no ONNX "
        "function for aten.rrelu_with_noise_functional\n"
        " 3 |     conv 8 k3 p1 | rrelu\n"
        "   |                    ^^^^^\n"
        "hint: replace it with an op that ONNX supports, or use the PyTorch module\n"
        "1 error\n"))
    assert (tmp_path / "net.onnx").read_bytes() == b"old"  # the file is replaced only by a finished export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.cnn", "net.onnx"]


def test_a_layer_inside_an_imported_block_is_located_in_its_file(tmp_path, monkeypatch, capfd):
    (tmp_path / "blocks.cnn").write_text("block Noisy(c):\n    conv c k3 p1 | rrelu\n", encoding="utf-8")
    (tmp_path / "net.cnn").write_text('import "blocks.cnn"\n\nnetwork N:\n    input 3x16x16\n    Noisy(8)\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", "net.cnn", "-o", "net.onnx"]) == cli.EXIT_DIAGNOSTICS
    err = capfd.readouterr().err
    assert err.startswith("blocks.cnn:2:20: error: cannot export layer `noisy1.rrelu1` (rrelu, nn.RReLU)"), err
    assert " 2 |     conv c k3 p1 | rrelu\n" in err


def test_cli_wants_an_onnx_suffix(tmp_path):
    proc = run("export", EXAMPLES / "lenet5.cnn", "-o", "net.pt", cwd=tmp_path)
    assert proc.returncode == cli.EXIT_USAGE
    assert proc.stderr == "cnndsl: error: the ONNX file's name must end in .onnx, got 'net.pt'\n"


def test_cli_reports_a_parse_error_at_its_place(tmp_path):
    (tmp_path / "net.cnn").write_text("network Net:\n    input 3x8x8\n    conv 8 k3 |\n", encoding="utf-8")
    proc = run("export", "net.cnn", "-o", "net.onnx", cwd=tmp_path)
    assert proc.returncode == cli.EXIT_DIAGNOSTICS
    assert proc.stderr.startswith("net.cnn:3:") and proc.stderr.endswith("1 error\n")
    assert "Traceback" not in proc.stderr and not (tmp_path / "net.onnx").exists()


def test_the_cli_and_the_exporter_module_do_not_import_torch(tmp_path):
    code = "import sys, cnndsl.cli, cnndsl.tools.export; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.stdout == "False\n"
