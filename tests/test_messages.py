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
