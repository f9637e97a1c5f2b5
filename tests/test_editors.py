"""The VS Code extension (editors/vscode): its generated grammar and grammar tests are up to date, the grammar
passes vscode-tmgrammar-test on every example, the client starts the server as configured, and the `.vsix`
packages with @vscode/vsce. The npm tools come from `npm ci` in editors/vscode (what .ci/run does); without
them these tests are skipped, unless CNNDSL_REQUIRE_EDITORS=1 (CI) makes their absence a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
BIN = VSCODE / "node_modules" / ".bin"


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists() or shutil.which("node") is None:
        if os.environ.get("CNNDSL_REQUIRE_EDITORS") == "1":
            pytest.fail(f"{path} is missing: run `npm ci` in editors/vscode")
        pytest.skip(f"{name} is not installed (npm ci in editors/vscode)")
    return path


def test_generated_grammar_and_grammar_tests_are_up_to_date():
    proc = subprocess.run([sys.executable, str(VSCODE / "generate.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    examples = {p.name for p in (ROOT / "examples").glob("*.cnn")}
    assert {p.name for p in (VSCODE / "tests").glob("*.cnn")} == examples  # a grammar test per example


def test_every_op_of_the_catalog_is_highlighted():
    from cnndsl.ops.base import REGISTRY

    grammar = json.loads((VSCODE / "syntaxes" / "cnn.tmLanguage.json").read_text())
    ops = next(p["match"] for p in grammar["patterns"] if p.get("captures", {}).get("1", {}).get("name") == "support.function.op.cnn")
    assert all(f"|{op}|" in f"|{ops[3:-3]}|" for op in REGISTRY), ops


def test_grammar_on_every_example():
    proc = subprocess.run([str(tool("vscode-tmgrammar-test")), "-c", "-g", "syntaxes/cnn.tmLanguage.json", "tests/*.cnn"],
                          cwd=VSCODE, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.count("run successfuly") == len(list((ROOT / "examples").glob("*.cnn"))), proc.stdout


def test_grammar_test_fails_on_a_wrong_scope(tmp_path: Path):
    """The grammar tests can fail: an op asserted to be a comment is reported."""
    (tmp_path / "wrong.cnn").write_text('# SYNTAX TEST "source.cnn" "wrong"\nconv 3 k3\n# <--- comment.line.number-sign.cnn\n')
    proc = subprocess.run([str(tool("vscode-tmgrammar-test")), "-c", "-g", str(VSCODE / "syntaxes" / "cnn.tmLanguage.json"),
                           str(tmp_path / "wrong.cnn")], cwd=VSCODE, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "support.function.op.cnn" in proc.stdout + proc.stderr


def test_client_starts_the_configured_server():
    tool("vsce")
    proc = subprocess.run(["node", "tests/extension.test.js"], cwd=VSCODE, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_vsix_packages(tmp_path: Path):
    out = tmp_path / "cnndsl.vsix"
    proc = subprocess.run([str(tool("vsce")), "package", "--allow-missing-repository", "--out", str(out)],
                          cwd=VSCODE, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("extension/package.json"))
    assert {"extension/extension.js", "extension/language-configuration.json", "extension/syntaxes/cnn.tmLanguage.json",
            "extension/node_modules/vscode-languageclient/package.json"} <= names
    assert not any(n.startswith("extension/tests/") for n in names)
    assert manifest["contributes"]["languages"][0]["extensions"] == [".cnn"]
    assert manifest["contributes"]["configuration"]["properties"]["cnndsl.server.command"]["default"] == ["cnndsl", "lsp"]


def test_readme_editor_set_ups_start_this_server():
    """The README's Helix set-up is valid TOML that runs `cnndsl lsp`; the JSON records it lists are those
    `check --format json` writes; the VS Code setting it names has the default it says."""
    import re
    import tomllib

    from cnndsl.cli import COMMANDS, _record
    from cnndsl.errors import Diagnostic

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    helix = tomllib.loads(re.search(r"```toml\n(.*?)```", readme, re.S).group(1))
    server = helix["language-server"]["cnndsl"]
    assert server["command"] == "cnndsl" and server["args"][0] in COMMANDS and server["args"] == ["lsp"]
    assert helix["language"][0]["file-types"] == ["cnn"] and helix["language"][0]["language-servers"] == ["cnndsl"]
    assert 'cmd = { "cnndsl", "lsp" }' in readme and '(cnn-mode "cnndsl" "lsp")' in readme
    listed = re.search(r"records for CI and other tools: (.*?) \|", readme).group(1)
    record = _record(Diagnostic(message="m"))
    assert [f for f in re.findall(r"`(\w+)`", listed) if f in record] == list(record)
    package = json.loads((VSCODE / "package.json").read_text())
    default = package["contributes"]["configuration"]["properties"]["cnndsl.server.command"]["default"]
    assert f'`cnndsl.server.command` (default `{json.dumps(default)}`)' in readme
