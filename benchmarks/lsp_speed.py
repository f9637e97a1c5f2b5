"""How fast the language server answers as you type: a benchmark script, not a test.

It starts the real server (`python -m cnndsl lsp`) and talks to it over stdio as an editor does, with
examples/resnet50.cnn open in a warm server:

1. re-check: a one-character edit (an incremental change: a digit of `num_classes=1000`, alternating between
   two values so that every edit changes the network) sent, until the diagnostics for it arrive; the goal is
   a median of at most 30 ms;
   the server keeps the walks of block calls from one check to the next (cnndsl/semantics/memo.py), so this
   re-check walks no Bottleneck call again; the same edit typed inside the Bottleneck block (a space typed and
   deleted) changes every call, and is reported beside it;
2. hover: over a layer of the Bottleneck block (called 16 times: 16 shapes, mult-adds and receptive fields),
   over a layer of the network and over a block call; the goal is a median of at most 10 ms;
3. inlay hints for the whole file, for reference;
4. the same re-check in process (the server's Workspace.analysis), as wall time and as this process's CPU
   time: on a shared machine the CPU time says what the re-check costs when it has a core of its own.

    python benchmarks/lsp_speed.py               # 40 runs of each
    python benchmarks/lsp_speed.py --runs 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
RESNET = ROOT / "examples" / "resnet50.cnn"
GOALS = {"re-check after a one-character edit": 30.0, "hover": 10.0}


def where(text: str, needle: str, offset: int = 0) -> lsp.Position:
    """The position of `needle` (its first occurrence) plus `offset` characters."""
    at = text.index(needle) + offset
    line = text.count("\n", 0, at)
    return lsp.Position(line=line, character=at - (text.rfind("\n", 0, at) + 1))


async def run(runs: int) -> dict[str, list[float]]:
    client = LanguageClient("lsp-speed", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams):
        published.put_nowait((time.perf_counter(), params))

    await client.start_io(sys.executable, "-m", "cnndsl", "lsp", cwd=str(ROOT))
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), process_id=None))
    client.initialized(lsp.InitializedParams())
    uri, text = RESNET.as_uri(), RESNET.read_text()
    doc = lsp.TextDocumentIdentifier(uri=uri)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        text_document=lsp.TextDocumentItem(uri=uri, language_id="cnn", version=1, text=text)))
    _, first = await published.get()
    assert not first.diagnostics, first.diagnostics
    times: dict[str, list[float]] = {"re-check after a one-character edit": [], "re-check after an edit inside the block": [],
                                     "hover": [], "inlay hints": []}
    warm = 5
    version = 1

    async def recheck(name: str, change_of) -> None:
        """`runs` (after `warm`) edits, `change_of(i)` each, timed until the diagnostics for each arrive."""
        nonlocal version
        for i in range(runs + warm):
            version += 1
            start = time.perf_counter()
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[change_of(i)]))
            end, params = await published.get()
            assert params.uri == uri and not params.diagnostics, params
            if i >= warm:
                times[name].append((end - start) * 1000)

    def replace(at: lsp.Position, length: int, new: str) -> lsp.TextDocumentContentChangePartial:
        return lsp.TextDocumentContentChangePartial(
            range=lsp.Range(start=at, end=lsp.Position(line=at.line, character=at.character + length)), text=new)

    digit = where(text, "num_classes=1000", len("num_classes=100"))
    await recheck("re-check after a one-character edit", lambda i: replace(digit, 1, str((i + 1) % 2)))
    # the same inside the Bottleneck block (a space typed and deleted): no kept walk of its calls applies
    inside = where(text, "conv planes k1", len("conv"))
    await recheck("re-check after an edit inside the block", lambda i: replace(inside, 0, " ") if i % 2 == 0 else replace(inside, 1, ""))
    places = [where(text, "conv planes k3", 2), where(text, "conv 64 k7", 2), where(text, "Bottleneck(128, stride=2)", 3)]
    for i in range(runs + warm):
        start = time.perf_counter()
        hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=places[i % len(places)]))
        elapsed = (time.perf_counter() - start) * 1000
        assert hover is not None and "(N, " in hover.contents.value
        if i >= warm:
            times["hover"].append(elapsed)
    everything = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=text.count("\n") + 1, character=0))
    for i in range(runs):
        start = time.perf_counter()
        hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(text_document=doc, range=everything))
        times["inlay hints"].append((time.perf_counter() - start) * 1000)
        assert hints
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def in_process(runs: int) -> dict[str, list[float]]:
    sys.path.insert(0, str(ROOT))
    from cnndsl.lsp.workspace import Workspace

    ws, text = Workspace(), RESNET.read_text()
    ws.set_text(str(RESNET), text)
    ws.analysis(str(RESNET))
    wall, cpu = [], []
    for i in range(runs):
        ws.set_text(str(RESNET), text.replace("num_classes=1000", f"num_classes=100{(i + 1) % 2}"))
        start, start_cpu = time.perf_counter(), time.process_time()
        a = ws.analysis(str(RESNET))
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        assert a.networks and not a.diagnostics
    return {"re-check in process, wall": wall, "re-check in process, CPU": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    times = asyncio.run(run(args.runs))
    times.update(in_process(args.runs))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"examples/resnet50.cnn in a warm `cnndsl lsp`, {args.runs} runs each (milliseconds); "
          f"{os.cpu_count()} CPUs, load average {load:.1f}\n")
    print("| request | median | p90 | min | goal |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in times.items():
        values.sort()
        goal = GOALS.get(name)
        print(f"| {name} | {statistics.median(values):.1f} | {values[int(len(values) * 0.9) - 1]:.1f} | {values[0]:.1f} | "
              f"{'' if goal is None else f'≤ {goal:.0f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
