"""The language server end to end: the real `cnndsl lsp` over stdio, driven by pytest-lsp, one server for the
module. Every answer is compared with what the compiler itself says of the same file."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.asyncio(loop_scope="module")

BLOCKS = """\
block Stem(c):
    conv c k3 p1 nobias | bn | relu
"""
NET = """\
import "blocks.cnn"

network Tiny(num_classes=10, c=8):
    input 3x32x32
    s = Stem(c) as stem
    t = s | conv c*2 k3 s2 p1 | relu
    t | gap | flatten
    linear num_classes
"""


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "cnndsl", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(autouse=True)
def no_server_failures(request):
    """A handler that fails answers with nothing and logs the failure: any such log fails the test."""
    if "client" not in request.fixturenames:
        yield
        return
    client = request.getfixturevalue("client")
    before = len(client.log_messages)
    yield
    failures = [m.message for m in client.log_messages[before:] if m.type == lsp.MessageType.Error]
    assert not failures, failures[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lsp")
    (d / "blocks.cnn").write_text(BLOCKS)
    (d / "tiny.cnn").write_text(NET)
    return d


def uri(path: Path) -> str:
    return path.resolve().as_uri()


async def settled(client: LanguageClient, path: Path) -> list[lsp.Diagnostic]:
    """The diagnostics of `path` once the server has handled everything sent before: it answers in order, so
    the answer to a request sent now comes after every diagnostic it published for the earlier messages."""
    client.diagnostics.pop(uri(path), None)
    await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
    return list(client.diagnostics[uri(path)])


async def open_doc(client: LanguageClient, path: Path, text: str | None = None) -> list[lsp.Diagnostic]:
    client.diagnostics.pop(uri(path), None)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri(path), language_id="cnn", version=1, text=path.read_text() if text is None else text)))
    await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
    return list(client.diagnostics[uri(path)])


async def change(client: LanguageClient, path: Path, text: str, version: int) -> list[lsp.Diagnostic]:
    client.diagnostics.pop(uri(path), None)
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri(path), version=version),
        content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))
    await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
    return list(client.diagnostics[uri(path)])


def pos(line: int, col: int) -> lsp.Position:
    """A 1-based line and column, as an editor's 0-based position."""
    return lsp.Position(line=line - 1, character=col - 1)


def doc(path: Path) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=uri(path))


async def test_diagnostics_errors_warnings_hints_and_notes(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "bad.cnn"
    text = textwrap.dedent("""\
        block B(c):
            conv c k3 | bn | frob
        network N:
            input 3x8x8
            defaults gn eps=0.1
            B(4) | B(8)
            linear 5 | relu6 foo=1
        """)
    diags = await open_doc(client, path, text)
    by_line = {d.range.start.line + 1: d for d in diags}
    assert by_line[5].severity == lsp.DiagnosticSeverity.Warning and "`defaults gn` applies to no layer" in by_line[5].message
    frob = by_line[2]  # the mistake in the block, found through its call, with the call as related information
    assert "unknown op `frob`" in frob.message and frob.severity == lsp.DiagnosticSeverity.Error
    assert (frob.range.start.character, frob.range.end.character) == (21, 25)
    assert frob.related_information and frob.related_information[0].location.range.start.line == 5
    assert "called here" in frob.related_information[0].message
    assert "has no option `foo`" in by_line[7].message and "hint: `relu6` takes: inplace" in by_line[7].message
    assert len([d for d in diags if "frob" in d.message]) == 1  # called twice: said once


async def test_semantic_errors_survive_a_syntax_error(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "broken.cnn"
    text = "network N:\n    input 3x8x8\n    conv 8 k3 |\n    relu )(\n    bogus 3\n    linear 4\n"
    diags = await open_doc(client, path, text)
    lines = sorted((d.range.start.line + 1, d.message) for d in diags)
    assert any(line in (3, 4) for line, _ in lines), lines  # the syntax error
    assert (5, "unknown op `bogus`") in [(line, m.split("\n")[0]) for line, m in lines]  # and the check past it


async def test_hover_layer_op_option_block_and_value(client: LanguageClient, folder: Path):
    await open_doc(client, folder / "tiny.cnn")
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(folder / "tiny.cnn"), position=pos(6, 13)))
    text = hover.contents.value  # `conv c*2 k3 s2 p1` after an 8-channel stem at 32x32
    assert "(N, 8, 32, 32) → (N, 16, 16, 16)" in text and "params 1,168" in text
    assert "mult-adds 294.91 k (294,912)" in text and "receptive field 5x5" in text and "nn.Conv2d" in text
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(folder / "tiny.cnn"), position=pos(6, 33)))
    assert "(N, 16, 16, 16) → (N, 16, 16, 16)" in hover.contents.value and "`nn.ReLU`" in hover.contents.value
    call = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(folder / "tiny.cnn"), position=pos(5, 10)))
    assert "block Stem(c)" in call.contents.value and "this call: (N, 8, 32, 32)" in call.contents.value
    value = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(folder / "tiny.cnn"), position=pos(6, 9)))
    assert value.contents.value == "value `s`: (N, 8, 32, 32)"

async def test_hover_op_and_option_docs(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "lib.cnn"
    await open_doc(client, path, "block Unused(c):\n    conv c k3 padding=1 | upsample 2 mode=bilinear\n")
    op = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos(2, 6)))
    assert "nn.Conv1d/2d/3d" in op.contents.value and "`kernel_size`" in op.contents.value  # uncalled: the op's doc
    option = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos(2, 17)))
    assert option.contents.value.startswith("**padding** (padding) of `conv`: `padding=0`")
    mode = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos(2, 39)))
    assert "`nearest`, `linear`, `bilinear`" in mode.contents.value and "nn.Upsample" in mode.contents.value


async def test_inlay_hints_show_each_lines_output_shape(client: LanguageClient, folder: Path):
    await open_doc(client, folder / "tiny.cnn")
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        text_document=doc(folder / "tiny.cnn"), range=lsp.Range(start=pos(1, 1), end=pos(9, 1))))
    shown = {h.position.line + 1: h.label for h in hints}
    assert shown == {5: "(N, 8, 32, 32)", 6: "(N, 16, 16, 16)", 7: "(N, 16)", 8: "(N, 10)"}
    line8 = NET.splitlines()[7]
    assert next(h for h in hints if h.position.line == 7).position.character == len(line8)


async def test_inlay_hints_match_the_checker_on_lenet(client: LanguageClient):
    import cnndsl
    from cnndsl.ops.common import fmt_shape

    path = EXAMPLES / "lenet5.cnn"
    await open_doc(client, path)
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        text_document=doc(path), range=lsp.Range(start=pos(1, 1), end=pos(200, 1))))
    net = cnndsl.check(path)
    last = {}
    for layer in net.layers:
        last[layer.span.line] = fmt_shape(layer.output_shape)
    assert {h.position.line + 1: h.label for h in hints} == last


async def test_definition_and_references_across_files(client: LanguageClient, folder: Path):
    await open_doc(client, folder / "tiny.cnn")
    await open_doc(client, folder / "blocks.cnn")
    found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(folder / "tiny.cnn"), position=pos(5, 10)))
    assert [(Path(loc.uri[7:]).name, loc.range.start.line, loc.range.start.character) for loc in found] == [("blocks.cnn", 0, 6)]
    found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(folder / "tiny.cnn"), position=pos(7, 5)))
    assert [(loc.range.start.line, loc.range.start.character) for loc in found] == [(5, 4)]  # `t` at its definition
    found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(folder / "tiny.cnn"), position=pos(8, 13)))
    assert [(loc.range.start.line, loc.range.start.character) for loc in found] == [(2, 13)]  # the parameter num_classes
    found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(folder / "tiny.cnn"), position=pos(1, 10)))
    assert [Path(loc.uri[7:]).name for loc in found] == ["blocks.cnn"]
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc(folder / "blocks.cnn"), position=pos(1, 8), context=lsp.ReferenceContext(include_declaration=True)))
    assert sorted((Path(r.uri[7:]).name, r.range.start.line) for r in refs) == [("blocks.cnn", 0), ("tiny.cnn", 4)]
    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc(folder / "tiny.cnn"), position=pos(3, 31), context=lsp.ReferenceContext(include_declaration=False)))
    assert sorted(r.range.start.line for r in refs) == [4, 5]  # `c` in Stem(c) and conv c*2


async def test_completion(client: LanguageClient, folder: Path):
    path = folder / "tiny.cnn"
    await open_doc(client, path)

    async def labels(line: int, col: int, text: str | None = None) -> dict[str, lsp.CompletionItem]:
        if text is not None:
            await change(client, path, text, 50 + line + col)
        result = await client.text_document_completion_async(lsp.CompletionParams(text_document=doc(path), position=pos(line, col)))
        return {i.label: i for i in result.items}

    start = await labels(7, 9, NET.replace("    t | gap", "    t | ga"))  # a stage's start: ops, blocks, values
    assert {"gap", "conv", "maxpool", "Stem", "s", "t", "cat"} <= set(start)
    assert start["Stem"].detail.startswith("block Stem(c)") and "blocks.cnn" in start["Stem"].detail
    options = await labels(6, 29, NET.replace("s2 p1 | relu", "s2 p1  | relu"))  # after an op: its options
    assert "stride=" in options and options["stride="].detail == "ints, default 1" and "nobias" in options
    assert "num_classes" in options and "c" in options  # the parameters, for expressions
    call = await labels(5, 15, NET.replace("Stem(c)", "Stem(c, "))  # inside a block call: its parameters
    assert call["c="].detail == "parameter of Stem" and "num_classes" in call and "conv" not in call
    paths = await labels(1, 9, NET.replace('import "blocks.cnn"', 'import "'))
    assert "blocks.cnn" in paths and "tiny.cnn" not in paths
    await change(client, path, NET, 99)


async def test_formatting_and_symbols(client: LanguageClient, tmp_path: Path):
    from cnndsl.tools.fmt import format_source

    path = tmp_path / "ugly.cnn"
    text = "network  N( a = 1 ):\n    input 3x8x8\n    x=conv 4 k3|relu\n    x|linear a\n"
    await open_doc(client, path, text)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=doc(path), options=lsp.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert len(edits) == 1 and edits[0].new_text == format_source(text, str(path)) != text
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
    assert [(s.name, s.kind) for s in symbols] == [("N", lsp.SymbolKind.Class)]
    assert [(c.name, c.kind) for c in symbols[0].children] == [("a", lsp.SymbolKind.TypeParameter), ("x", lsp.SymbolKind.Variable)]


async def test_rename_value_and_block_and_refusal(client: LanguageClient, folder: Path):
    await open_doc(client, folder / "tiny.cnn")
    await open_doc(client, folder / "blocks.cnn")
    edit = await client.text_document_rename_async(lsp.RenameParams(text_document=doc(folder / "tiny.cnn"), position=pos(5, 5), new_name="stem_out"))
    assert sorted((e.range.start.line, e.range.start.character) for e in edit.changes[uri(folder / "tiny.cnn")]) == [(4, 4), (5, 8)]
    edit = await client.text_document_rename_async(lsp.RenameParams(text_document=doc(folder / "tiny.cnn"), position=pos(5, 10), new_name="Entry"))
    assert sorted(Path(u[7:]).name for u in edit.changes) == ["blocks.cnn", "tiny.cnn"]
    with pytest.raises(Exception, match="already defined"):
        await client.text_document_rename_async(lsp.RenameParams(text_document=doc(folder / "tiny.cnn"), position=pos(5, 5), new_name="t"))
    with pytest.raises(Exception, match="op"):
        await client.text_document_rename_async(lsp.RenameParams(text_document=doc(folder / "tiny.cnn"), position=pos(5, 10), new_name="conv"))


async def test_an_edit_of_an_imported_file_rechecks_its_importer(client: LanguageClient, folder: Path):
    tiny, blocks = folder / "tiny.cnn", folder / "blocks.cnn"
    assert await open_doc(client, tiny) == []
    await open_doc(client, blocks)
    client.diagnostics.pop(uri(tiny), None)
    await change(client, blocks, BLOCKS.replace("block Stem(c)", "block Stem(c, k)"), 7)
    diags = client.diagnostics[uri(tiny)]  # published again, unasked: the importer of the edited file
    assert len(diags) == 1 and diags[0].range.start.line == 4 and "`k`" in diags[0].message, diags
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        text_document=doc(tiny), range=lsp.Range(start=pos(1, 1), end=pos(9, 1))))
    assert 4 not in {h.position.line for h in hints}  # the call fails: no shape for it
    await change(client, blocks, BLOCKS, 8)
    assert list(client.diagnostics[uri(tiny)]) == []


async def test_a_file_of_blocks_shows_what_its_importers_calls_make_of_it(client: LanguageClient, folder: Path):
    tiny, blocks = folder / "tiny.cnn", folder / "blocks.cnn"
    await open_doc(client, tiny)
    await open_doc(client, blocks)
    hints = await client.text_document_inlay_hint_async(lsp.InlayHintParams(
        text_document=doc(blocks), range=lsp.Range(start=pos(1, 1), end=pos(3, 1))))
    assert [(h.position.line, h.label) for h in hints] == [(1, "(N, 8, 32, 32)")]  # Stem(c) with c=8 at 32x32
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(blocks), position=pos(2, 6)))
    assert "`stem.conv1`: (N, 3, 32, 32) → (N, 8, 32, 32)" in hover.contents.value
    diags = await change(client, blocks, BLOCKS.replace("conv c k3 p1", "conv c k3 p1 groups=3"), 9)
    assert any("groups" in d.message for d in diags), diags  # found only by the call in tiny.cnn, shown here
    assert diags[0].related_information and diags[0].related_information[0].location.uri == uri(tiny)
    await change(client, blocks, BLOCKS, 10)


async def test_inlay_hints_can_be_turned_off(client: LanguageClient, folder: Path):
    tiny = folder / "tiny.cnn"
    await open_doc(client, tiny)
    everything = lsp.Range(start=pos(1, 1), end=pos(9, 1))
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"cnndsl": {"inlayHints": False}}))
    assert await client.text_document_inlay_hint_async(lsp.InlayHintParams(text_document=doc(tiny), range=everything)) in ([], None, ())
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"cnndsl": {"inlayHints": True}}))
    assert len(await client.text_document_inlay_hint_async(lsp.InlayHintParams(text_document=doc(tiny), range=everything))) == 4


async def test_a_block_calls_keyword_is_its_parameter(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "kw.cnn"
    await open_doc(client, path, "block B(c, stride=1):\n    conv c k3 s=stride\nnetwork N:\n    input 3x8x8\n    B(4, stride=2)\n")
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos(5, 11)))
    assert hover.contents.value == "parameter `stride` of `block B(c, stride=1)` (default 1)"
    found = await client.text_document_definition_async(lsp.DefinitionParams(text_document=doc(path), position=pos(5, 11)))
    assert [(loc.range.start.line, loc.range.start.character, loc.range.end.character) for loc in found] == [(0, 11, 17)]


async def test_hover_named_group(client: LanguageClient):
    path = EXAMPLES / "resnet18.cnn"
    await open_doc(client, path)
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos(12, 6)))
    assert hover.contents.value == "group (`nn.Sequential`) `layer2`: (N, 128, 28, 28)"


async def test_incremental_edits(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "inc.cnn"
    text = (EXAMPLES / "lenet5.cnn").read_text()
    assert await open_doc(client, path, text) == []
    line = next(i for i, t in enumerate(text.split("\n")) if "linear 84" in t)
    col = text.split("\n")[line].index("linear 84")
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri(path), version=2),
        content_changes=[lsp.TextDocumentContentChangePartial(range=lsp.Range(
            start=lsp.Position(line=line, character=col + 4), end=lsp.Position(line=line, character=col + 5)), text="")]))
    diags = await settled(client, path)  # `linear` lost its `a`
    assert [(d.range.start.line, d.range.start.character, d.message.split("\n")[0]) for d in diags] == [
        (line, col, "unknown op `liner`")]
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri(path), version=3),
        content_changes=[lsp.TextDocumentContentChangePartial(range=lsp.Range(
            start=lsp.Position(line=line, character=col + 4), end=lsp.Position(line=line, character=col + 4)), text="a")]))
    assert await settled(client, path) == []


async def test_a_bare_pipeline_file(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "tiny-net.cnn"
    text = "input 3x16x16\nskip = conv 8 k3 p1 | relu\nskip | conv 8 k1 | add(skip)\n"
    assert await open_doc(client, path, text) == []
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc(path)))
    assert [(s.name, [c.name for c in s.children]) for s in symbols] == [("TinyNet", ["skip"])]
    items = await client.text_document_completion_async(lsp.CompletionParams(text_document=doc(path), position=pos(3, 29)))
    assert "skip" in {i.label for i in items.items}
    hover = await client.text_document_hover_async(lsp.HoverParams(text_document=doc(path), position=pos(3, 2)))
    assert hover.contents.value == "value `skip`: (N, 8, 16, 16)"


async def test_an_import_that_appears_later(client: LanguageClient, tmp_path: Path):
    net = tmp_path / "later.cnn"
    diags = await open_doc(client, net, 'import "lib.cnn"\nnetwork N:\n    input 3x8x8\n    Lib()\n')
    assert any("there is no such file" in d.message for d in diags), diags
    (tmp_path / "lib.cnn").write_text("block Lib:\n    conv 4 k3\n")
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(changes=[
        lsp.FileEvent(uri=uri(tmp_path / "lib.cnn"), type=lsp.FileChangeType.Created)]))
    assert await settled(client, net) == []
