"""Files: the one atomic writer (build, graph, fmt and export), commands that refuse to write over their own
inputs, loops of symbolic links as usage errors, and a valid class name for a bare pipeline under any file name."""

from __future__ import annotations

import keyword
import os
import stat
import threading
from pathlib import Path

import pytest

import cnndsl
from cnndsl import cli, files
from cnndsl.syntax.parser import network_name_from_file
from cnndsl.tools import export

NET = "network N:\n    input 3x8x8\n    conv 4 k1\n"


@pytest.fixture
def umask():
    mask = os.umask(0o022)
    yield 0o022
    os.umask(mask)


# -- the atomic writer --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", ["text é\n", b"\x00bytes\xff"], ids=["text", "bytes"])
def test_write_atomically_writes_text_and_bytes_and_leaves_no_temporary(tmp_path, data, umask):
    out = tmp_path / "out"
    files.write_atomically(out, data)
    assert out.read_bytes() == (data.encode("utf-8") if isinstance(data, str) else data)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_atomically_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    out = tmp_path / "out.py"
    out.write_text("old\n")
    out.chmod(0o640)
    files.write_atomically(out, "new\n")
    assert out.read_text() == "new\n" and stat.S_IMODE(out.stat().st_mode) == 0o640


@pytest.mark.parametrize("writer", ["files", "export"])
def test_both_writers_write_through_a_symbolic_link_to_its_target(tmp_path, writer):
    """The behaviour `cnndsl build` and `fmt` had (commit 087e92d): the link stays, the file it points to changes.
    export._write_bytes replaced the link itself; it is now the same writer."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.onnx"
    target.write_bytes(b"old")
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    if writer == "files":
        files.write_atomically(link, b"new")
    else:
        export._write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.onnx", "real"]
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["model.onnx"]  # the temporary was beside the target


def test_there_is_one_atomic_writer():
    assert cli.write_atomically is files.write_atomically
    assert not hasattr(export, "secrets")


def test_a_dangling_link_is_written_through_to_a_new_target(tmp_path):
    link = tmp_path / "link.py"
    link.symlink_to(tmp_path / "new.py")
    files.write_atomically(link, "x\n")
    assert link.is_symlink() and (tmp_path / "new.py").read_text() == "x\n"


def test_a_target_that_is_not_a_regular_file_is_written_into(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    files.write_atomically(fifo, b"through")
    reader.join(timeout=30)
    assert got == [b"through"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "out.py"
    out.write_text("old\n")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        files.write_atomically(out, "new\n")
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.py"]


def test_real_path_raises_oserror_for_a_loop_never_runtimeerror(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    for path in (tmp_path / "loop", tmp_path / "loop" / "x.py"):
        with pytest.raises(OSError):
            files.real_path(path)
        with pytest.raises(OSError):
            files.write_atomically(path, "x")
    assert files.real_path(tmp_path / "missing" / "x.py") == tmp_path.resolve() / "missing" / "x.py"


# -- commands never write over their inputs -----------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.cnn").write_text("block B(c):\n    conv c k1\n", encoding="utf-8")
    (tmp_path / "net.cnn").write_text('import "lib/blocks.cnn"\nnetwork N:\n    input 3x8x8\n    B(4)\n', encoding="utf-8")
    return tmp_path


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_symlink(), p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("command,output", [
    ("build", "net.cnn"), ("build", "./net.cnn"), ("build", "lib/blocks.cnn"), ("build", "lib/../lib/blocks.cnn"),
    ("build", "hard.py"), ("build", "link.py"), ("build", "linked-lib/blocks.cnn"),
    ("graph", "link.dot"), ("graph", "blocks-link.dot"), ("export", "link.onnx"), ("export", "blocks.onnx"),
])
def test_a_command_refuses_to_write_over_its_inputs(project, command, output, capsys):
    os.link(project / "net.cnn", project / "hard.py")
    for name in ("link.py", "link.dot", "link.onnx"):
        (project / name).symlink_to(project / "net.cnn")
    (project / "blocks-link.dot").symlink_to(project / "lib" / "blocks.cnn")
    os.link(project / "lib" / "blocks.cnn", project / "blocks.onnx")
    (project / "linked-lib").symlink_to(project / "lib")
    before = _snapshot(project)
    assert cli.main([command, "net.cnn", "-o", output]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnndsl: error: cannot write {output}: it is ") and err.count("\n") == 1, err
    assert "an input of this command" in err
    assert _snapshot(project) == before


def test_the_source_is_refused_as_output_even_when_it_has_errors(project, capsys):
    (project / "bad.cnn").write_text("conv 3->4 k3 | nosuchop\n", encoding="utf-8")
    assert cli.main(["build", "bad.cnn", "-o", "bad.cnn"]) == 2
    assert "it is the source file" in capsys.readouterr().err
    assert (project / "bad.cnn").read_text(encoding="utf-8") == "conv 3->4 k3 | nosuchop\n"


def test_other_outputs_are_still_written(project, capsys):
    assert cli.main(["build", "net.cnn", "-o", "net.py"]) == 0
    assert cli.main(["graph", "net.cnn", "-o", "net.dot"]) == 0
    assert "class N(nn.Module)" in (project / "net.py").read_text(encoding="utf-8")
    assert (project / "net.dot").read_text(encoding="utf-8").startswith("digraph")


@pytest.mark.parametrize("command,output", [("build", "loop"), ("build", "loop/x.py"), ("graph", "loop/x.dot"),
                                            ("export", "loop/x.onnx"), ("export", "loop.onnx")])
def test_a_loop_of_links_in_the_output_is_a_one_line_usage_error(project, command, output, capsys):
    (project / "loop").symlink_to("loop")
    (project / "loop.onnx").symlink_to("loop.onnx")
    assert cli.main([command, "net.cnn", "-o", output]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cnndsl: error: cannot write {output}: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["build", "check", "summary", "graph", "fmt"])
def test_a_loop_of_links_in_the_file_argument_is_a_one_line_usage_error(project, command, capsys):
    (project / "loop").symlink_to("loop")
    (project / "loop.cnn").symlink_to("loop.cnn")
    for path in ("loop/x.cnn", "loop.cnn"):
        out = ["-o", "out.dot"] if command == "graph" else []
        assert cli.main([command, path, *out]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"cnndsl: error: cannot read {path}: ") and err.count("\n") == 1, err


# -- a class name for every file name -----------------------------------------------------------------

HOSTILE = sorted({
    *(k.lower() for k in keyword.kwlist), *keyword.softkwlist, "None", "True", "False",
    "torch", "nn", "build", "self", "super", "x", "m", "device", "params", "in_channels", "isinstance", "print",
    "tuple", "deform-conv", "deform_conv2d", "DeformConv", "stochastic-depth", "exception", "ellipsis",
    "not-implemented", "object", "int", "type", "forward", "training", "to", "state_dict", "eval", "train", "cuda",
    "t-destination", "1", "2d", "-", "--", "_", "__init__", "__class__", ".hidden", "a b", "réseau-été", "网络",
    "ñ", "😀", "ﬁle", "Ⅻ", "net.v2", "NET", "module", "Module", "sequential", "conv", "relu",
})


def test_the_hostile_list_has_the_names_that_failed():
    assert {"none", "true", "false", "class", "torch", "nn", "build", "self", "super"} <= set(HOSTILE)


@pytest.mark.parametrize("stem", HOSTILE)
def test_every_file_name_gives_a_class_that_compiles_and_loads(tmp_path, stem):
    pytest.importorskip("torch")
    path = tmp_path / f"{stem}.cnn"
    path.write_text("conv 3->4 k3 | relu\n", encoding="utf-8")
    name = network_name_from_file(str(path))
    assert name.isidentifier() and name.isascii() and not keyword.iskeyword(name) and name[0].isupper()
    net = cnndsl.check(path, input="3x8x8")
    assert net.name == name
    model = cnndsl.load(path, input="3x8x8", device="cpu")
    assert type(model).__name__ == name
    import torch

    assert tuple(model(torch.zeros(1, 3, 8, 8)).shape) == (1, 4, 6, 6)


@pytest.mark.parametrize("stem,name", [("none", "NoneNet"), ("true", "TrueNet"), ("False", "FalseNet"),
                                       ("my-net", "MyNet"), ("1", "Net1"), ("-", "Net"), ("deform-conv", "DeformConvNet"),
                                       ("exception", "ExceptionNet"), ("resnet18", "Resnet18")])
def test_class_names_from_file_names(stem, name):
    assert network_name_from_file(f"/some/where/{stem}.cnn") == name


def test_a_source_that_is_not_a_regular_file_is_refused_before_it_is_read(tmp_path, capsys):
    """A FIFO named like a source waited forever for a writer; a .cnn link to a device is refused the same way."""
    fifo = tmp_path / "pipe.cnn"
    os.mkfifo(fifo)
    device = tmp_path / "zero.cnn"
    device.symlink_to("/dev/zero")
    for path in (fifo, device):
        with pytest.raises(cnndsl.UsageError, match="not a regular file"):
            cnndsl.check(path)
        assert cli.main(["check", str(path)]) == 2
        assert "not a regular file" in capsys.readouterr().err
