"""The README's picture of the editor: examples/resnet18.cnn as the language server shows it, with the output
shape at the end of each layer line (inlay hints) and the hover over the last linear layer.

No editor with a language client runs on the machine that made it, so the picture is rendered (Pillow) from
what the real server (`python -m cnndsl lsp`, over stdio) answers: the scene (the lines, the hints, the hover)
is written to docs/editor.json and drawn into docs/editor.png, which records the scene's SHA-256. The tests
(tests/test_lsp_scene.py) ask the server again and require the same scene, and the picture drawn from it.

    python editors/screenshot.py            # ask the server, write docs/editor.json and docs/editor.png
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "resnet18.cnn"
SCENE, PICTURE = ROOT / "docs" / "editor.json", ROOT / "docs" / "editor.png"
HOVER_AT = ("linear num_classes", 2)  # the text hovered, and how far into it the pointer is
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


async def ask_server() -> dict:
    """The scene as the server gives it: the file's lines, the inlay hints, and a hover."""
    from lsprotocol import types as lsp
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("screenshot", "1")
    client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda params: None)  # they are not in the picture
    await client.start_io(sys.executable, "-m", "cnndsl", "lsp", cwd=str(ROOT))
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
    client.initialized(lsp.InitializedParams())
    text = EXAMPLE.read_text()
    uri = EXAMPLE.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        text_document=lsp.TextDocumentItem(uri=uri, language_id="cnn", version=1, text=text)))
    doc = lsp.TextDocumentIdentifier(uri=uri)
    lines = text.split("\n")
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(text_document=doc, range=lsp.Range(
        start=lsp.Position(line=0, character=0), end=lsp.Position(line=len(lines), character=0))))
    line = next(i for i, t in enumerate(lines) if HOVER_AT[0] in t)
    col = lines[line].index(HOVER_AT[0]) + HOVER_AT[1]
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=lsp.Position(line=line, character=col)))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {
        "file": EXAMPLE.name,
        "lines": lines[:len(lines) - 1] if lines[-1] == "" else lines,
        "hints": [{"line": h.position.line, "character": h.position.character, "label": h.label} for h in hints],
        "hover": {"line": line, "character": col, "markdown": hover.contents.value},
    }


def scene_json(scene: dict) -> str:
    return json.dumps(scene, indent=2, ensure_ascii=False) + "\n"


def draw(scene: dict, digest: str):
    """The scene in a dark editor theme: line numbers, the grammar's colours, grey hints, the hover's box."""
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    font = ImageFont.truetype(FONT, 15)
    cw, lh = font.getlength("M"), 22
    lines = scene["lines"]
    hover_lines = _plain(scene["hover"]["markdown"])
    hints = {h["line"]: h for h in scene["hints"]}
    gutter = 50
    hl, hc = scene["hover"]["line"], scene["hover"]["character"]
    box_w = int(max(font.getlength(t) for t in hover_lines) + 24)
    box_h = lh * len(hover_lines) + 16
    bx, by = gutter + hc * cw, 10 + (hl + 1) * lh + 2
    width = int(max([cw * (h["character"] + 2 + len(h["label"])) + gutter for h in scene["hints"]] + [bx + box_w])) + 20
    height = int(max(10 + lh * len(lines), by + box_h)) + 12
    image = Image.new("RGB", (width, height), "#1e1e1e")
    d = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        y = 10 + i * lh
        d.text((10, y), f"{i + 1:>3}", font=font, fill="#858585")
        for start, piece, colour in _coloured(text):
            d.text((gutter + start * cw, y), piece, font=font, fill=colour)
        if i in hints:
            h = hints[i]
            x = gutter + (h["character"] + 1) * cw
            label = h["label"]
            d.rounded_rectangle((x - 3, y + 1, x + font.getlength(label) + 3, y + lh - 3), 4, fill="#2d2d30")
            d.text((x, y), label, font=font, fill="#9d9d9d")
    d.rectangle((bx, by, bx + box_w, by + box_h), fill="#252526", outline="#454545")
    for j, t in enumerate(hover_lines):
        d.text((bx + 12, by + 8 + j * lh), t, font=font, fill="#cccccc" if j else "#4ec9b0")
    info = PngInfo()
    info.add_text("scene-sha256", digest)
    info.add_text("Software", "editors/screenshot.py (cnndsl lsp)")
    return image, info


def _plain(markdown: str) -> list[str]:
    """The hover's Markdown as the editor shows it: without the marks, one paragraph per line."""
    out = []
    for line in markdown.split("\n"):
        line = line.replace("**", "").replace("`", "").rstrip()
        if line and line != "---":
            out.append(line)
    return out


def _coloured(text: str) -> list[tuple[int, str, str]]:
    """(column, text, colour) pieces of a line, by the TextMate grammar's patterns (first match wins)."""
    grammar = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "cnn.tmLanguage.json").read_text())
    colours = {"comment": "#6a9955", "support.function": "#dcdcaa", "entity.name": "#4ec9b0", "storage": "#569cd6",
               "keyword": "#c586c0", "constant": "#b5cea8", "variable": "#9cdcfe", "string": "#ce9178"}

    def colour(scope: str) -> str:
        return next((c for k, c in colours.items() if scope.startswith(k)), "#d4d4d4")

    pieces, at = [], 0
    compiled = [(re.compile(p["match"]), p) for p in grammar["patterns"]]
    while at < len(text):
        best = None
        for rx, p in compiled:
            m = rx.search(text, at)
            if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                best = (m, p)
        if best is None:
            pieces.append((at, text[at:], "#d4d4d4"))
            break
        m, p = best
        if m.start() > at:
            pieces.append((at, text[at:m.start()], "#d4d4d4"))
        if "name" in p:
            pieces.append((m.start(), m.group(0), colour(p["name"])))
        else:
            last = m.start()
            for group, cap in sorted(p["captures"].items(), key=lambda kv: m.start(int(kv[0]))):
                g = int(group)
                if m.group(g) is None:
                    continue
                if m.start(g) > last:
                    pieces.append((last, text[last:m.start(g)], "#d4d4d4"))
                pieces.append((m.start(g), m.group(g), colour(cap["name"])))
                last = m.end(g)
            if m.end() > last:
                pieces.append((last, text[last:m.end()], "#d4d4d4"))
        at = m.end()
    return pieces


def main() -> int:
    scene = asyncio.run(ask_server())
    text = scene_json(scene)
    SCENE.write_text(text, encoding="utf-8")
    image, info = draw(scene, hashlib.sha256(text.encode()).hexdigest())
    image.save(PICTURE, pnginfo=info)
    print(f"wrote {SCENE.relative_to(ROOT)} and {PICTURE.relative_to(ROOT)} ({image.width}x{image.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
