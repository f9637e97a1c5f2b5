"""What the editor support rests on, without a server: `cnndsl check --format json` and `--werror`, the parser's
recovery past syntax errors, and the server's modules importing no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl.errors import Source

ROOT = Path(__file__).resolve().parent.parent
WARNS = "network N:\n    input 3x8x8\n    defaults bn eps=0.1\n    conv 4 k3\n"
BROKEN = "network N:\n    input 3x8x8\n    conv 4 k3 | frob\n    linear 5 | relu6 foo=1\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`cnndsl ARGS` in `cwd`, in this process (the command line's main, as the script calls it)."""
    import contextlib
    import io
    import os

    from cnndsl.cli import main

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_check_json_records_every_diagnostic(tmp_path: Path):
    (tmp_path / "bad.cnn").write_text(BROKEN)
    proc = cli("check", "bad.cnn", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    records = json.loads(proc.stdout)
    assert [(r["severity"], r["range"]["start"]["line"], r["range"]["start"]["column"]) for r in records] == [
        ("error", 3, 17), ("error", 4, 22)]
    assert records[0] == {"file": "bad.cnn", "range": {"start": {"line": 3, "column": 17}, "end": {"line": 3, "column": 21}},
                          "severity": "error", "message": "unknown op `frob`", "hint": records[0]["hint"], "notes": []}
    assert records[1]["hint"] == "`relu6` takes: inplace"


def test_check_json_notes_name_the_calls(tmp_path: Path):
    (tmp_path / "net.cnn").write_text("block B:\n    conv 4 k3 | frob\nnetwork N:\n    input 3x8x8\n    B() as b\n")
    records = json.loads(cli("check", "net.cnn", "--format", "json", cwd=tmp_path).stdout)
    assert records[0]["notes"][0]["message"] == "in `B`, called here" and records[0]["notes"][0]["range"]["start"]["line"] == 5


def test_werror_makes_warnings_fail(tmp_path: Path):
    (tmp_path / "warn.cnn").write_text(WARNS)
    assert cli("check", "warn.cnn", cwd=tmp_path).returncode == 0
    proc = cli("check", "warn.cnn", "--werror", cwd=tmp_path)
    assert proc.returncode == 1 and "1 warning, made errors by --werror" in proc.stderr
    ok = cli("check", "warn.cnn", "--format", "json", cwd=tmp_path)
    assert ok.returncode == 0 and json.loads(ok.stdout)[0]["severity"] == "warning"
    assert cli("check", "warn.cnn", "--format", "json", "--werror", cwd=tmp_path).returncode == 1
    clean = cli("check", str(ROOT / "examples" / "lenet5.cnn"), "--format", "json", "--werror", cwd=tmp_path)
    assert clean.returncode == 0 and json.loads(clean.stdout) == []


@pytest.mark.parametrize("text, syntax_line, later", [
    ("network N:\n    input 3x8x8\n    conv 8 k3 )(\n    frob\n", 3, (4, "unknown op `frob`")),
    ("block B(c:\n    conv c k3\nnetwork N:\n    input 3x8x8\n    frob\n", 1, (5, "unknown op `frob`")),
    ("network N(:\n    input 3x8x8\n    frob\nnetwork M:\n    input 3x8x8\n    frob 3\n", 1, (6, "unknown op `frob`")),
    ("network N:\n    input 3x8x8\n      conv 8 k3\n    frob\n", 3, (4, "unknown op `frob`")),
    ("network N:\n    input 3x8x8\n    conv 8 k3 |\n    relu )\n    frob 2\n", 4, (5, "unknown op `frob`")),
])
def test_recovery_checks_past_a_syntax_error(text: str, syntax_line: int, later: tuple):
    from cnndsl.lsp.analysis import analyze

    a = analyze("/nowhere/net.cnn", text, read=lambda path: pytest.fail("no import"))
    lines = [(d.span.line, d.message) for d in a.diagnostics]
    assert a.parsed.errors and a.parsed.errors[0].span.line == syntax_line, lines
    assert later in lines and a.networks  # the lines past the error are checked


def test_recovery_gives_up_without_crashing_on_noise():
    from cnndsl.lsp.recovery import ROUNDS, parse_recovering

    parsed = parse_recovering(Source("x.cnn", ")(\n" * 50))
    assert parsed.file is None and len(parsed.errors) == ROUNDS


def test_lsp_modules_never_import_torch():
    code = ("import sys, cnndsl.lsp.server, cnndsl.lsp.hover, cnndsl.tools.summary, cnndsl.tools.fmt\n"
            "from cnndsl.lsp.workspace import Workspace\n"
            f"a = Workspace().analysis({str(ROOT / 'examples' / 'resnet18.cnn')!r})\n"
            "assert a.networks[0].summary(), 'summary'\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_lsp_without_pygls_says_what_to_install(tmp_path: Path):
    (tmp_path / "pygls").mkdir()
    (tmp_path / "pygls" / "__init__.py").write_text("raise ImportError('no pygls here', name='pygls')\n")
    env_path = f"{tmp_path}:{ROOT}"
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "lsp"], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and 'pip install "cnndsl[lsp]"' in proc.stderr, proc.stderr


def test_a_buffer_over_the_size_limit_is_refused_unparsed():
    from cnndsl import limits
    from cnndsl.lsp.analysis import analyze

    before = limits.get("file_bytes")
    limits.set_limit("file_bytes", 1000)
    try:
        a = analyze("/nowhere/big.cnn", "conv 3->4 k3\n" + "#" * 2000, read=lambda path: pytest.fail("no import"))
    finally:
        limits.set_limit("file_bytes", before)
    assert a.file is None and len(a.diagnostics) == 1 and "exceeds the limit of 1,000" in a.diagnostics[0].message


def test_check_json_keeps_the_warnings_beside_the_errors(tmp_path: Path):
    (tmp_path / "both.cnn").write_text(WARNS.replace("conv 4 k3", "conv 4 k3 | frob"))
    proc = cli("check", "both.cnn", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1
    assert [(r["severity"], r["range"]["start"]["line"]) for r in json.loads(proc.stdout)] == [("error", 4), ("warning", 3)]


def test_block_calls_keep_their_shapes_when_the_network_has_an_error():
    """A mistake further down must not take the shapes of the block calls checked before it (inlay hints and
    hovers read them from the steps and instances checked so far)."""
    from cnndsl.lsp.analysis import analyze
    from cnndsl.lsp.inlay import shape_hints

    text = ("block Down(c):\n    conv c k3 s2 p1 | relu\n"
            "network N:\n    input 3x32x32\n    Down(16) | Down(32)\n    conv 64 k9\n    Down(8)\n")
    a = analyze("/nowhere/n.cnn", text, read=lambda path: pytest.fail("no import"))
    assert [d.span.line for d in a.diagnostics] == [6]  # 8x8 is smaller than the kernel
    hints = {line: label for line, _, label in shape_hints(a, 1, 7)}
    assert hints[5] == "(N, 32, 8, 8)" and hints[2] == "(N, 16, 16, 16) | ... (2 shapes)"
    assert 7 not in hints  # after the error the shape is unknown
