"""The README's picture of the editor (docs/editor.png, drawn by editors/screenshot.py) shows what the server
answers today: the server is asked again for the same scene, the picture must be the one drawn from it, and
its shapes must be the checker's."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("pygls")

ROOT = Path(__file__).resolve().parent.parent


def _screenshot():
    spec = importlib.util.spec_from_file_location("screenshot", ROOT / "editors" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_picture_shows_what_the_server_says():
    from PIL import Image

    shot = _screenshot()
    scene = asyncio.run(shot.ask_server())
    written = shot.SCENE.read_text(encoding="utf-8")
    assert shot.scene_json(scene) == written, "run python editors/screenshot.py"
    with Image.open(shot.PICTURE) as image:
        assert image.text["scene-sha256"] == hashlib.sha256(written.encode()).hexdigest()
    _shapes_are_the_checkers(shot, scene)


def _shapes_are_the_checkers(shot, scene: dict) -> None:
    import cnndsl
    from cnndsl.ops.common import fmt_shape

    net = cnndsl.check(shot.EXAMPLE)
    network_line = next(i for i, t in enumerate(scene["lines"]) if t.startswith("network"))
    hints = {h["line"]: h["label"] for h in scene["hints"] if h["line"] > network_line}
    last = {}
    for layer in net.layers:
        if layer.file == str(shot.EXAMPLE) and layer.span.line - 1 > network_line:
            last[layer.span.line - 1] = fmt_shape(layer.output_shape)
    assert len(last) == 3  # the stem, gap | flatten, fc
    for line, label in last.items():
        assert hints[line] == label
    assert hints[network_line + 3] == "(N, 64, 56, 56)"  # layer1: two BasicBlocks, a call's result
    fc = next(layer for layer in net.layers if layer.name == "fc")
    assert f"`fc`: {fmt_shape(fc.input_shape)} → {fmt_shape(fc.output_shape)}" in scene["hover"]["markdown"]
    assert f"params {fc.params:,}" in scene["hover"]["markdown"]
