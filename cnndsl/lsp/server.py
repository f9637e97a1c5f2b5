"""The language server: pygls's protocol, each request answered from the workspace's analyses. Every handler
answers, whatever the text: a failure inside one is logged and answered with nothing, never a crash."""

from __future__ import annotations

import functools
import logging
import traceback

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from .. import __version__
from . import convert, features
from .analysis import same_file
from .workspace import Workspace

log = logging.getLogger("cnndsl.lsp")


class CnnServer(LanguageServer):
    def __init__(self):
        super().__init__("cnndsl", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.ws = Workspace()
        self.inlay_hints = True

    def publish(self, path: str) -> None:
        """Check `path` and send its diagnostics, then those of the open documents that import it."""
        for p in [path, *self.ws.importers(path)]:
            a, importers = self.ws.with_importers(p)
            if a is None:
                continue
            sources = {x.name: x.source for x in (a, *importers)}
            # a mistake in this file's blocks that only a call from an importer reveals is shown here too
            lent = [d for x in importers for d in x.diagnostics if same_file(d.file, a.name)]
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                uri=convert.uri_of(p), diagnostics=convert.diagnostics(a, sources, lent)))


server = CnnServer()


def guarded(default=None):
    """A handler that never raises: its error goes to the log, and the request gets `default`."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(ls: CnnServer, params):
            try:
                return fn(ls, params)
            except JsonRpcException:  # a refusal meant for the client (an unsafe rename)
                raise
            except Exception:  # the editor must never lose its server to one file's surprise
                log.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
                ls.window_log_message(lsp.LogMessageParams(type=lsp.MessageType.Error,
                                                           message=f"cnndsl: {fn.__name__} failed:\n{traceback.format_exc()}"))
                return default
        return inner
    return wrap


@server.feature(lsp.INITIALIZE)
def initialize(ls: CnnServer, params: lsp.InitializeParams):
    options = params.initialization_options
    if isinstance(options, dict):
        ls.inlay_hints = bool(options.get("inlayHints", True))


@server.feature(lsp.INITIALIZED)
@guarded()
def initialized(ls: CnnServer, params: lsp.InitializedParams):
    """Check a tiny network and a broken one once, before any document: the first keystroke then costs a
    check, not the imports of the catalog, pydantic and the summary, and Lark's parser (about a second)."""
    from .analysis import analyze

    warm = analyze("<warm-up>", "block B:\n    conv 4 k3 | bn | relu\nnetwork N:\n    input 3x8x8\n    B()\n", ls.ws.read)
    if warm.networks:
        warm.networks[0].summary()
    analyze("<warm-up>", "network N(:\n", ls.ws.read)  # and the error path: Lark's own parser, built once


@server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
@guarded()
def did_change_configuration(ls: CnnServer, params: lsp.DidChangeConfigurationParams):
    settings = params.settings
    if isinstance(settings, dict):
        settings = settings.get("cnndsl", settings)
        if isinstance(settings, dict) and "inlayHints" in settings:
            ls.inlay_hints = bool(settings["inlayHints"])
            workspace = ls.client_capabilities.workspace
            if workspace is not None and workspace.inlay_hint is not None and workspace.inlay_hint.refresh_support:
                ls.workspace_inlay_hint_refresh(None)  # the editor asks again, and gets the hints or none


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
@guarded()
def did_open(ls: CnnServer, params: lsp.DidOpenTextDocumentParams):
    path = convert.path_of(params.text_document.uri)
    ls.ws.set_text(path, params.text_document.text)
    ls.publish(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
@guarded()
def did_change(ls: CnnServer, params: lsp.DidChangeTextDocumentParams):
    doc = ls.workspace.get_text_document(params.text_document.uri)
    path = convert.path_of(params.text_document.uri)
    ls.ws.set_text(path, doc.source)
    ls.publish(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
@guarded()
def did_close(ls: CnnServer, params: lsp.DidCloseTextDocumentParams):
    path = convert.path_of(params.text_document.uri)
    ls.ws.set_text(path, None)
    ls.ws.forget(path)
    ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))
    for p in ls.ws.importers(path):
        ls.publish(p)


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
@guarded()
def did_change_watched(ls: CnnServer, params: lsp.DidChangeWatchedFilesParams):
    for change in params.changes:
        path = convert.path_of(change.uri)
        ls.ws.changed(path)
        for p in ls.ws.importers(path):
            ls.publish(p)


features.register(server, guarded)


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    server.start_io()
    return 0
