"""The requests: hover, inlay hints, definition, references, completion, formatting, symbols and rename, each a
thin translation between the protocol and the modules that know the answer."""

from __future__ import annotations

from lsprotocol import types as lsp

from . import complete, convert, hover, inlay, navigate, symbols
from .convert import from_position, to_range, uri_of

_ITEM_KINDS = {
    "op": lsp.CompletionItemKind.Function, "option": lsp.CompletionItemKind.Property, "flag": lsp.CompletionItemKind.EnumMember,
    "block": lsp.CompletionItemKind.Class, "value": lsp.CompletionItemKind.Variable, "param": lsp.CompletionItemKind.TypeParameter,
    "merge": lsp.CompletionItemKind.Operator, "keyword": lsp.CompletionItemKind.Keyword, "file": lsp.CompletionItemKind.File,
}
_SYMBOL_KINDS = {
    "network": lsp.SymbolKind.Class, "block": lsp.SymbolKind.Function, "module": lsp.SymbolKind.Module,
    "param": lsp.SymbolKind.TypeParameter, "value": lsp.SymbolKind.Variable, "import": lsp.SymbolKind.File,
}


def register(server, guarded) -> None:
    def at(ls, params):
        """(analysis, 1-based line, column) of a request's document and position; None without an analysis."""
        path = convert.path_of(params.text_document.uri)
        a = ls.ws.with_importers(path)[0]
        if a is None:
            return None
        line, col = from_position(a.source, params.position) if hasattr(params, "position") else (1, 1)
        return a, line, col

    def locations(ls, places) -> list[lsp.Location]:
        out = []
        for path, span in places:
            other = ls.ws.analysis(path)
            source = other.source if other is not None else None
            rng = to_range(source, span) if source is not None else lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))
            out.append(lsp.Location(uri=uri_of(path), range=rng))
        return out

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    @guarded()
    def on_hover(ls, params: lsp.HoverParams):
        found = at(ls, params)
        if found is None:
            return None
        a, line, col = found
        text = hover.hover(a, ls.ws.index(a), line, col)
        if text is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text))

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT, lsp.InlayHintOptions(resolve_provider=False))
    @guarded(default=[])
    def on_inlay_hint(ls, params: lsp.InlayHintParams):
        if not ls.inlay_hints:
            return []
        found = at(ls, params)
        if found is None:
            return []
        a = found[0]
        hints = inlay.shape_hints(a, params.range.start.line + 1, params.range.end.line + 1)
        return [lsp.InlayHint(position=convert.position(a.source, line, col), label=label, kind=lsp.InlayHintKind.Type,
                              padding_left=True) for line, col, label in hints]

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    @guarded(default=[])
    def on_definition(ls, params: lsp.DefinitionParams):
        found = at(ls, params)
        return locations(ls, navigate.definition(ls.ws, *found)) if found else []

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    @guarded(default=[])
    def on_references(ls, params: lsp.ReferenceParams):
        found = at(ls, params)
        if found is None:
            return []
        return locations(ls, navigate.references(ls.ws, *found, declaration=params.context.include_declaration))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=['"', "=", "/"]))
    @guarded(default=[])
    def on_completion(ls, params: lsp.CompletionParams):
        found = at(ls, params)
        if found is None:
            return []
        a, line, col = found
        items = complete.complete(a, ls.ws.index(a), line, col)
        return lsp.CompletionList(is_incomplete=False, items=[
            lsp.CompletionItem(label=i.label, kind=_ITEM_KINDS.get(i.kind), detail=i.detail or None,
                               documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=i.doc) if i.doc else None,
                               insert_text=i.insert) for i in items])

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    @guarded(default=None)
    def on_formatting(ls, params: lsp.DocumentFormattingParams):
        from ..errors import CnnDslError
        from ..tools.fmt import format_source

        path = convert.path_of(params.text_document.uri)
        text = ls.ws.text(path)
        if text is None:
            return None
        try:
            after = format_source(text, path)
        except CnnDslError:
            return None  # a file that does not parse is left as it is: its diagnostics say why
        if after == text:
            return []
        lines = text.split("\n")
        end = lsp.Position(line=len(lines), character=0)
        return [lsp.TextEdit(range=lsp.Range(start=lsp.Position(line=0, character=0), end=end), new_text=after)]

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @guarded(default=[])
    def on_symbols(ls, params: lsp.DocumentSymbolParams):
        found = at(ls, params)
        if found is None:
            return []
        a = found[0]

        def convert_symbol(s: symbols.Symbol) -> lsp.DocumentSymbol:
            return lsp.DocumentSymbol(name=s.name, kind=_SYMBOL_KINDS[s.kind], detail=s.detail, range=_clip(a, s.span),
                                      selection_range=to_range(a.source, s.name_span),
                                      children=[convert_symbol(c) for c in s.children] or None)

        return [convert_symbol(s) for s in symbols.symbols(ls.ws.index(a))]

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    @guarded(default=None)
    def on_prepare_rename(ls, params: lsp.PrepareRenameParams):
        found = at(ls, params)
        if found is None:
            return None
        a, line, col = found
        ref = ls.ws.index(a).at(line, col)
        if ref is None or ref.kind not in ("value", "block", "param"):
            return None
        return lsp.PrepareRenamePlaceholder(range=to_range(a.source, ref.span), placeholder=ref.name)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    @guarded(default=None)
    def on_rename(ls, params: lsp.RenameParams):
        found = at(ls, params)
        if found is None:
            return None
        places, problem = navigate.rename(ls.ws, *found, params.new_name)
        if problem:
            from pygls.exceptions import JsonRpcInvalidRequest

            raise JsonRpcInvalidRequest(f"cannot rename: {problem}")  # an answer, passed on by `guarded`
        changes: dict[str, list[lsp.TextEdit]] = {}
        for loc in locations(ls, places):
            changes.setdefault(loc.uri, []).append(lsp.TextEdit(range=loc.range, new_text=params.new_name))
        return lsp.WorkspaceEdit(changes=changes)


def _clip(a, span):
    from ..errors import Span

    last = min(span.end_line, max(1, len(a.source.text.split("\n"))))
    end_col = span.end_col if span.end_line == last else len(a.source.line_text(last)) + 1
    end_col = min(end_col, len(a.source.line_text(last)) + 1)
    return to_range(a.source, Span(span.line, span.col, last, max(end_col, 1)))
