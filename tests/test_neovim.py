"""The Neovim set-up (editors/neovim/lua/cnndsl.lua) in the real Neovim against the real server: a headless
`nvim` opens a network with a mistake, and its LSP client must hold the checker's diagnostic at its place,
show the output shapes (end-of-line virtual text below Neovim 0.10, Neovim's own inlay hints from 0.10),
open the hover's floating window with the layer's shapes, and after a fix typed in normal mode drop the
diagnostic and show the shapes of the network's lines; a block's body typed is indented. Neovim also gives
every token of every example the syntax group of editors/neovim/syntax/cnn.vim that the parser's reading
asks for, and the README's screenshots (docs/neovim-*.png) hold the text the server answers today. Without
`nvim` the tests that run it are skipped, unless CNNDSL_REQUIRE_EDITORS=1 (CI, which installs Debian's
neovim) makes its absence a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")

ROOT = Path(__file__).resolve().parent.parent

NETWORK = """\
block Down(c):
    conv c k3 p1 | bn | relu
    maxpool 2

network Tiny:
    input 3x32x32
    Down(16) | Down(32)
    conv 64 k9
    gap | flatten
    linear 10
"""

# Neovim runs this; every wait is bounded, and what it saw goes to the JSON file named by vim.g.out.
SCRIPT = r"""
local out = {}
local function finish()
  vim.fn.writefile({ vim.fn.json_encode(out) }, vim.g.out)
  vim.cmd("qa!")
end
local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(vim.g.net))
  local buf = vim.api.nvim_get_current_buf()
  out.version = vim.version()
  out.filetype, out.commentstring = vim.bo.filetype, vim.bo.commentstring
  local function hints()
    local found = {}
    if vim.fn.has("nvim-0.10") == 1 then
      for _, h in ipairs(vim.lsp.inlay_hint.get({ bufnr = buf })) do
        local label = h.inlay_hint.label
        found[#found + 1] = { line = h.inlay_hint.position.line, text = type(label) == "string" and label or label[1].value }
      end
    else
      local ns = vim.api.nvim_get_namespaces()["cnndsl_inlay_hints"]
      for _, m in ipairs(vim.api.nvim_buf_get_extmarks(buf, ns, 0, -1, { details = true })) do
        found[#found + 1] = { line = m[2], text = m[4].virt_text[1][1], pos = m[4].virt_text_pos }
      end
    end
    return found
  end
  local function diagnostics()
    local found = {}
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      found[#found + 1] = { lnum = d.lnum, col = d.col, end_col = d.end_col, severity = d.severity, message = d.message, source = d.source }
    end
    return found
  end
  out.saw_diagnostics = vim.wait(15000, function() return #vim.diagnostic.get(buf) > 0 end, 20)
  out.diagnostics = diagnostics()
  out.saw_hints = vim.wait(5000, function() return #hints() > 0 end, 20)
  out.hints = hints()
  -- the hover: K on the block's conv, as a user presses it
  vim.api.nvim_win_set_cursor(0, { 2, 5 })
  vim.cmd("normal K")
  local float
  out.saw_hover = vim.wait(5000, function()
    for _, w in ipairs(vim.api.nvim_list_wins()) do
      if vim.api.nvim_win_get_config(w).relative ~= "" then float = w return true end
    end
    return false
  end, 20)
  out.hover = float and vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(float), 0, -1, false) or {}
  if float then vim.api.nvim_win_close(float, true) end
  -- the fix, typed: the kernel 9 on line 8 becomes 3
  vim.api.nvim_win_set_cursor(0, { 8, 0 })
  vim.cmd("normal! $r3")
  out.fixed_line = vim.api.nvim_buf_get_lines(buf, 7, 8, false)[1]
  out.saw_fix = vim.wait(10000, function() return #vim.diagnostic.get(buf) == 0 and #hints() > #out.hints end, 20)
  out.diagnostics_after = diagnostics()
  out.hints_after = hints()
  -- a block's body typed: indented after the `:`, with spaces
  vim.api.nvim_buf_set_lines(buf, -1, -1, false, { "", "block B:  # a comment: after the colon" })
  vim.cmd("normal! Goconv 8 k3")
  out.typed = vim.api.nvim_buf_get_lines(buf, -4, -1, false)
end)
out.error = (not ok) and tostring(err) or nil
finish()
"""


def nvim() -> str:
    path = shutil.which("nvim")
    if path is None:
        if os.environ.get("CNNDSL_REQUIRE_EDITORS") == "1":
            pytest.fail("nvim is missing: apt-get install neovim (what .ci/run does)")
        pytest.skip("nvim is not installed")
    return path


def test_neovim_shows_the_servers_diagnostics_hover_and_shapes(tmp_path: Path):
    net = tmp_path / "net.cnn"
    net.write_text(NETWORK, encoding="utf-8")
    (tmp_path / "init.lua").write_text(
        f"vim.opt.runtimepath:append({json.dumps(str(ROOT / 'editors' / 'neovim'))})\n"
        f'require("cnndsl").setup({{ cmd = {{ {json.dumps(sys.executable)}, "-m", "cnndsl", "lsp" }} }})\n')
    (tmp_path / "script.lua").write_text(SCRIPT)
    out = tmp_path / "out.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([nvim(), "--headless", "-n", "-i", "NONE", "-u", str(tmp_path / "init.lua"),
                             "--cmd", f"let g:net = {json.dumps(str(net))} | let g:out = {json.dumps(str(out))}",
                             "-c", f"luafile {tmp_path / 'script.lua'}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # while Neovim works: the checker's answers for the network, and for it fixed
    import cnndsl
    from cnndsl.errors import CheckError
    from cnndsl.ops.common import fmt_shape

    with pytest.raises(CheckError) as raised:
        cnndsl.check(NETWORK)
    layers = {layer.name: layer for layer in cnndsl.check(NETWORK.replace("k9", "k3")).layers}
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out.exists(), stdout[-2000:] + stderr[-2000:]
    seen = json.loads(out.read_text())
    assert seen.get("error") is None, seen["error"]
    assert (seen["filetype"], seen["commentstring"]) == ("cnn", "# %s")

    # the diagnostic: the checker's, at the checker's place (1-based line and column -> 0-based)
    assert seen["saw_diagnostics"] and len(seen["diagnostics"]) == len(raised.value.diagnostics) == 1
    d, c = seen["diagnostics"][0], raised.value.diagnostics[0]
    assert (d["lnum"], d["col"], d["end_col"]) == (c.span.line - 1, c.span.col - 1, c.span.end_col - 1) == (7, 12, 14)
    assert d["severity"] == 1 and d["source"] == "cnndsl" and d["message"] == f"{c.message}\nhint: {c.hint}"

    # the shapes of the block's lines, each as the end-of-line text (or inlay hint) of its line
    assert seen["saw_hints"]
    before = {h["line"]: h["text"] for h in seen["hints"]}
    assert sorted(before) == [1, 2, 6]  # the network's lines after its error have none
    assert before[6] == f'{fmt_shape(layers["down2.maxpool1"].output_shape)}' == "(N, 32, 8, 8)"  # the calls before it
    assert before[1] == f'{fmt_shape(layers["down1.relu1"].output_shape)} | ... (2 shapes)' == "(N, 16, 32, 32) | ... (2 shapes)"
    assert before[2] == f'{fmt_shape(layers["down1.maxpool1"].output_shape)} | ... (2 shapes)'
    if seen["version"]["minor"] < 10 and seen["version"]["major"] == 0:
        assert {h["pos"] for h in seen["hints"]} == {"eol"}

    # the hover's floating window: the conv's shapes in both calls, and its parameters
    assert seen["saw_hover"], seen
    hover = "\n".join(seen["hover"])
    for name in ("down1.conv1", "down2.conv1"):
        conv = layers[name]
        assert f"{name}`: {fmt_shape(conv.input_shape)} → {fmt_shape(conv.output_shape)}" in hover, hover
        assert f"params {conv.params:,}" in hover

    # the fix typed in normal mode: no diagnostic, and the network's lines show their shapes
    assert seen["fixed_line"] == "    conv 64 k3"
    assert seen["saw_fix"] and seen["diagnostics_after"] == []
    after = {h["line"]: h["text"] for h in seen["hints_after"]}
    assert sorted(after) == [1, 2, 6, 7, 8, 9] and after[6] == fmt_shape(layers["down2.maxpool1"].output_shape)
    assert after[7] == fmt_shape(layers["conv1"].output_shape) == "(N, 64, 6, 6)"
    assert after[8] == fmt_shape(layers["flatten1"].output_shape) and after[9] == "(N, 10)"
    assert seen["typed"] == ["", "block B:  # a comment: after the colon", "    conv 8 k3"]


SYNTAX_SCRIPT = r"""
local out = {}
for _, file in ipairs(vim.fn.json_decode(vim.fn.readfile(vim.g.todo)[1])) do
  vim.cmd("edit " .. vim.fn.fnameescape(file.path))
  vim.bo.filetype = "cnn"
  local groups = {}
  for _, t in ipairs(file.tokens) do
    local names = {}
    for col = t[2], t[2] + t[3] - 1 do
      names[#names + 1] = vim.fn.synIDattr(vim.fn.synID(t[1], col, 1), "name")
    end
    groups[#groups + 1] = names
  end
  out[#out + 1] = groups
end
vim.fn.writefile({ vim.fn.json_encode(out) }, vim.g.out)
vim.cmd("qa!")
"""


def test_vim_syntax_on_every_example(tmp_path: Path):
    """editors/neovim/syntax/cnn.vim, in Neovim: every op, block call, option keyword, network and block name,
    merge and comment of every example has its syntax group, as the parser reads the example."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", ROOT / "editors" / "vscode" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    files = []
    for example in sorted((ROOT / "examples").glob("*.cnn")):
        marks = generate.tokens(example)
        files.append({"path": str(example), "tokens": [[line, col, width, scope] for line in sorted(marks)
                                                       for col, width, scope in sorted(marks[line])]})
    assert sum(len(f["tokens"]) for f in files) > 500
    todo, out = tmp_path / "todo.json", tmp_path / "out.json"
    todo.write_text(json.dumps(files))
    (tmp_path / "script.lua").write_text(SYNTAX_SCRIPT)
    (tmp_path / "init.lua").write_text(f"vim.opt.runtimepath:append({json.dumps(str(ROOT / 'editors' / 'neovim'))})\n"
                                       "vim.cmd('syntax on')\n")
    proc = subprocess.run([nvim(), "--headless", "-n", "-i", "NONE", "-u", str(tmp_path / "init.lua"),
                           "--cmd", f"let g:todo = {json.dumps(str(todo))} | let g:out = {json.dumps(str(out))}",
                           "-c", f"luafile {tmp_path / 'script.lua'}"],
                          cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    wrong = []
    for file, groups in zip(files, json.loads(out.read_text())):
        for (line, col, width, scope), names in zip(file["tokens"], groups):
            if set(names) != {generate.VIM_GROUPS[scope]}:
                wrong.append(f"{Path(file['path']).name}:{line}:{col}: {names} for {scope}")
    assert not wrong, "\n".join(wrong[:30])


def _screen(name: str) -> tuple[list[str], dict]:
    from PIL import Image

    with Image.open(ROOT / "docs" / f"neovim-{name}.png") as image:
        text = dict(image.text)
    assert text["Software"].startswith("editors/neovim/screenshot.py (NVIM v0."), text["Software"]
    return text["screen"].split("\n"), text


def test_the_screenshots_show_what_the_server_says():
    """docs/neovim-*.png (editors/neovim/screenshot.py) record the terminal's text: it must be what the server
    and the checker answer today: every line of examples/resnet18.cnn with its shape at its end, the hover of
    the downsample's conv, and the diagnostic of ` | flatten` typed on the stem's line."""
    import cnndsl
    from cnndsl.errors import CheckError
    from cnndsl.lsp import hover, inlay
    from cnndsl.lsp.workspace import Workspace

    example = ROOT / "examples" / "resnet18.cnn"
    text = example.read_text(encoding="utf-8")
    lines = text.rstrip("\n").split("\n")
    ws = Workspace()
    ws.set_text(str(example), text)
    a = ws.analysis(str(example))
    hints = {line: label for line, _, label in inlay.shape_hints(a, 1, len(lines))}
    assert sorted(hints) == [4, 5, 6, *range(10, 17)]

    screen, about = _screen("hints")
    assert about["keys"] == ""
    for number, code in enumerate(lines, 1):
        assert screen[number - 1].rstrip() == (f"{number:>3} {code}" + (f" {hints[number]}" if number in hints else "")).rstrip()

    screen, about = _screen("hover")
    assert about["keys"] == "5G10|K" and lines[4][9:13] == "conv"
    assert screen[16].split()[-2:] == ["5,10", "All"]  # the cursor, on the downsample's conv
    shown = "\n".join(screen)
    markdown = hover.hover(a, ws.index(a), 5, 10)
    told = [t.rstrip().replace("**", "") for t in markdown.split("\n") if t.strip() and t != "---"]
    assert len(told) == 8 and all(t in shown for t in told), (told, shown)

    screen, about = _screen("error")
    assert about["keys"].startswith("5G10|K10GA | flatten\x1b")
    edited = text.replace("maxpool 3 s2 p1\n", "maxpool 3 s2 p1 | flatten\n")
    with pytest.raises(CheckError) as raised:
        cnndsl.check(edited)
    [d] = raised.value.diagnostics
    assert d.span.line == 4 and screen[3].startswith("E   4 ") and "■ `conv` needs" in screen[3]
    shown = "\n".join(screen)
    assert d.message in shown and f"hint: {d.hint}" in shown
    assert screen[9].rstrip().endswith("maxpool 3 s2 p1 | flatten (N, 200704)")
