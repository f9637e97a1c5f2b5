"""The server under random edits of every example (and of a file of blocks while its importer is open):
truncations, insertions and deletions, each followed by the requests an editor sends as you type. It must
never crash, never hang (each answer within REQUEST_SECONDS) and always answer; a handler that fails inside
(logged, answered with nothing) fails the test too."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.cnn"))
REQUEST_SECONDS = 10.0  # the bound on one answer (a check of resnet50 takes 60 ms on a busy machine)
EDITS, SLOW_EDITS = 3, 60  # per example; five times as many of the file of blocks
SNIPPETS = ["|", "(", ")", ":", "\n", "\n    ", "    ", "conv", " x3", "=", '"', "#", "add:\n", " as ", " in ", "->", "1e9",
            "99999999999999", "Bottleneck(", "e1", ",", "*", "//", "-", " if ", "\t", "é", "𝔵", "\\\n", "input ", "block B:\n"]


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "cnndsl", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


def mutate(text: str, rng: random.Random) -> str:
    kind = rng.choice(("truncate", "insert", "insert", "delete", "delete"))
    at = rng.randrange(len(text) + 1)
    if kind == "truncate":
        return text[:at]
    if kind == "insert":
        return text[:at] + rng.choice(SNIPPETS) + text[at:]
    return text[:at] + text[at + rng.randint(1, 40):]


async def answered(request) -> object:
    return await asyncio.wait_for(request, REQUEST_SECONDS)


async def edit_and_ask(client: LanguageClient, path: Path, text: str, version: int, rng: random.Random) -> None:
    uri = path.as_uri()
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))
    doc = lsp.TextDocumentIdentifier(uri=uri)
    lines = text.split("\n")
    line = rng.randrange(len(lines))
    where = lsp.Position(line=line, character=rng.randint(0, len(lines[line])))
    everything = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=len(lines), character=0))
    await answered(client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=where)))
    hints = await answered(client.text_document_inlay_hint_async(lsp.InlayHintParams(text_document=doc, range=everything)))
    assert isinstance(hints, (list, tuple))
    await answered(client.text_document_completion_async(lsp.CompletionParams(text_document=doc, position=where)))
    await answered(client.text_document_definition_async(lsp.DefinitionParams(text_document=doc, position=where)))
    symbols = await answered(client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc)))
    assert isinstance(symbols, (list, tuple))
    await answered(client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=doc, options=lsp.FormattingOptions(tab_size=4, insert_spaces=True))))


async def fuzz(client: LanguageClient, tmp_path: Path, edits: int) -> None:
    for example in EXAMPLES:
        rng = random.Random(example.name)
        path = tmp_path / example.name
        original = example.read_text()
        path.write_text(original)
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
            uri=path.as_uri(), language_id="cnn", version=1, text=original)))
        text = original
        for version in range(2, edits + 2):
            text = mutate(text if rng.random() < 0.7 else original, rng)
            await edit_and_ask(client, path, text, version, rng)
        client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=path.as_uri())))
        failures = [m.message for m in client.log_messages if m.type == lsp.MessageType.Error]
        assert not failures, f"{example.name}: {failures[0]}"
        assert client.error is None, client.error


async def fuzz_imports(client: LanguageClient, tmp_path: Path, edits: int) -> None:
    """Random edits of a file of blocks while the file that imports it is open: both are asked each time."""
    rng = random.Random("imports")
    blocks, net = tmp_path / "parts.cnn", tmp_path / "whole.cnn"
    original = (ROOT / "examples" / "resnet50.cnn").read_text().split("network")[0]
    blocks.write_text(original)
    net.write_text('import "parts.cnn"\nnetwork N:\n    input 3x64x64\n    conv 64 k3 | Bottleneck(16) | Bottleneck(32, stride=2)\n')
    for path in (blocks, net):
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
            uri=path.as_uri(), language_id="cnn", version=1, text=path.read_text())))
    text = original
    for version in range(2, edits + 2):
        text = mutate(text if rng.random() < 0.7 else original, rng)
        await edit_and_ask(client, blocks, text, version, rng)
        await answered(client.text_document_hover_async(lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=net.as_uri()), position=lsp.Position(line=3, character=rng.randint(0, 60)))))
    failures = [m.message for m in client.log_messages if m.type == lsp.MessageType.Error]
    assert not failures, failures[0]


@pytest.mark.asyncio(loop_scope="module")
async def test_random_edits_of_every_example(client: LanguageClient, tmp_path: Path):
    await fuzz(client, tmp_path, EDITS)
    await fuzz_imports(client, tmp_path, 5 * EDITS)


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_random_edits_of_every_example_deep(client: LanguageClient, tmp_path: Path):
    await fuzz(client, tmp_path, SLOW_EDITS)
    await fuzz_imports(client, tmp_path, 5 * SLOW_EDITS)
