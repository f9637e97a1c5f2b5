"""Messages a new user's trial found poor, beyond the goldens (tests/golden/bad/msg_*): the command line's and the
Python API's."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cnndsl


def test_an_input_of_another_rank_than_the_files_warns(tmp_cnn):
    path = tmp_cnn("network N:\n    input 3x32x32\n    conv 8 k3\n")
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(path), "--input", "3x32"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning: the input size given, 3x32, has 1 spatial dimension where this `input` has 2 spatial dimensions: " \
           "the network is checked as a 1-d network" in proc.stderr
    assert "hint: give as many sizes as `input` has, e.g. 3x32x32" in proc.stderr
    assert cnndsl.check(path, input="3x16x16").warnings == ()


@pytest.mark.parametrize("typo", ["net.cn", "models/net", "net.cnn.txt"])
def test_a_mistyped_path_says_the_file_does_not_exist(typo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cnndsl.UsageError, match=rf"cannot read {typo}: No such file or directory"):
        cnndsl.load(typo)
    assert cnndsl.check("relu | flatten", input="3x4x4").output_shape == (48,)  # one-line programs are still programs


LIBRARY = """block A(c):
    conv c k3 p1 | bn | reluu

block B(c, act=relu):
    e = conv c k1 paddin=1 | act
    Unknwn(3)
    e | A(c)
"""


def test_check_takes_every_network_and_a_library_of_blocks(tmp_cnn):
    two = tmp_cnn("block A(c):\n    conv c k3 p1 | bn | relu\n\nnetwork One:\n    input 3x8x8\n    A(4)\n\n"
                  "network Two:\n    input 3x8x8\n    conv 2 k1\n", "two.cnn")
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(two)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "ok: One: 3 layers" in proc.stdout and "ok: Two: 1 layers" in proc.stdout
    assert [net.name for net in cnndsl.check_all(two)] == ["One", "Two"]
    lib = tmp_cnn("block A(c):\n    conv c k3 p1 | bn | relu\n", "lib.cnn")
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(lib)], capture_output=True, text=True)
    assert proc.returncode == 0 and "ok: " in proc.stdout and "no network" in proc.stdout
    assert cnndsl.check_all(lib) == []


def test_a_block_nothing_calls_is_still_checked_for_its_ops_calls_and_options(tmp_cnn):
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check_all(tmp_cnn(LIBRARY, "lib.cnn"))
    found = [(d.span.line, d.message, d.hint) for d in info.value.diagnostics]
    assert found == [
        (2, "unknown op `reluu`", "did you mean `relu`?"),
        (5, "`conv` has no option `paddin`", "did you mean `padding`?"),
        (6, "unknown block `Unknwn`", "define it with `block Name(...):` or import it"),
    ]
    # a called block is checked whole, by its call: nothing is said twice
    called = LIBRARY.replace("reluu", "relu").replace(" paddin=1", "").replace("    Unknwn(3)\n", "") + \
        "\nnetwork N:\n    input 3x8x8\n    A(4)\n"
    assert [net.name for net in cnndsl.check_all(tmp_cnn(called, "ok.cnn"))] == ["N"]


def test_a_missing_import_from_source_text_says_where_it_was_looked_for(tmp_path, monkeypatch):
    """Source text imports relative to the import root, else the working directory (docs/LANGUAGE.md, Imports)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check('import "lib/blocks.cnn"\nnetwork N:\n    input 3x8x8\n    relu\n')
    d = info.value.diagnostics[0]
    assert d.message == 'cannot import "lib/blocks.cnn": there is no such file'
    assert d.hint == ("source text imports relative to the import root where one is given, else to the working "
                      "directory: it names lib/blocks.cnn")
