"""Between the compiler's places (1-based lines and columns in code points, Span's end column exclusive) and the
protocol's (0-based lines, columns in UTF-16 code units), and from the compiler's diagnostics to the editor's."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as lsp

from ..errors import Source, Span
from .analysis import Analysis, same_file

if TYPE_CHECKING:
    from ..errors import Diagnostic


def _utf16(text: str, col: int) -> int:
    """The UTF-16 length of the first `col - 1` characters of a line (col is 1-based)."""
    head = text[:max(col - 1, 0)]
    return len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)


def position(source: Source, line: int, col: int) -> lsp.Position:
    return lsp.Position(line=max(line - 1, 0), character=_utf16(source.line_text(line), col))


def to_range(source: Source, span: Span) -> lsp.Range:
    return lsp.Range(start=position(source, span.line, span.col), end=position(source, span.end_line, span.end_col))


def from_position(source: Source, pos: lsp.Position) -> tuple[int, int]:
    """1-based (line, column in code points) of a protocol position."""
    text = source.line_text(pos.line + 1)
    units = col = 0
    while col < len(text) and units < pos.character:
        units += 2 if ord(text[col]) > 0xFFFF else 1
        col += 1
    return pos.line + 1, col + 1


def uri_of(path: str) -> str:
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:(?![/\\])", path):  # an untitled buffer's name is its URI (not C:\...)
        return path
    return Path(os.path.abspath(path)).as_uri()


def path_of(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri  # an untitled buffer: its URI is its name
    return os.path.normpath(unquote(parsed.path))


_SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning}


def diagnostics(a: Analysis, sources: dict[str, Source], lent: list = ()) -> list[lsp.Diagnostic]:
    """The editor's diagnostics for file `a` (and `lent`: those its importers' checks found in it): each one at
    its place, the hint after its message, the notes (the block calls that led to it) as related information.
    A diagnostic about an imported file stands at the place in this file that leads to it: the call noted,
    else the import."""
    out, seen = [], set()
    for d in (*a.diagnostics, *lent):
        key = (d.severity, d.span, d.message)
        if same_file(d.file, a.name) and key in seen:
            continue
        seen.add(key)
        span, moved = d.span, None
        if not same_file(d.file, a.name):
            here = next((n.span for n in reversed(d.notes) if same_file(n.file, a.name)), None) or _import_span(a, d.file)
            span, moved = here, d
        message = d.message if moved is None else f"in {os.path.basename(d.file)}:{d.span.line}: {d.message}"
        if d.hint:
            message += f"\nhint: {d.hint}"
        related = [lsp.DiagnosticRelatedInformation(location=_location(n, sources), message=n.message) for n in d.notes]
        if moved is not None:
            related.insert(0, lsp.DiagnosticRelatedInformation(location=_location(d, sources), message=d.message))
        out.append(lsp.Diagnostic(range=to_range(a.source, _visible(a.source, span)), message=message,
                                  severity=_SEVERITY[d.severity], source="cnndsl", related_information=related or None))
    return out


def _visible(source: Source, span: Span) -> Span:
    """A statement's span runs to the start of the next line: the squiggle stays on its own lines. A span
    without a place (a problem of the whole file) marks the first line."""
    if span.end_line > span.line and span.end_col == 1:
        last = span.end_line - 1
        return Span(span.line, span.col, last, max(len(source.line_text(last)) + 1, span.col if last == span.line else 1))
    return span


def _import_span(a: Analysis, file: str) -> Span:
    imports = a.file.imports if a.file is not None else ()
    for imp in imports:
        if same_file(a.imports.get(id(imp), ""), file):
            return _line(imp.span)
    return _line(imports[0].span) if imports else Span(1, 1, 1, 2)


def _line(span: Span) -> Span:
    return Span(span.line, span.col, span.line, span.col + 1) if span.end_line != span.line else span


def _location(d: Diagnostic, sources: dict[str, Source]) -> lsp.Location:
    """Where a diagnostic or note is, measured on its file's text when the server holds it (else on its line)."""
    source = next((s for name, s in sources.items() if same_file(name, d.file)), None)
    if source is None:
        source = Source(d.file, "\n" * (d.span.line - 1) + d.line_text)  # only its line is known: enough to measure
    return lsp.Location(uri=uri_of(d.file), range=to_range(source, _line(d.span)))
