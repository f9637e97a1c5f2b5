"""One file as the editor sees it: parsed (with recovery), its blocks and imports collected, each of its
networks checked, every diagnostic kept. Built by the compiler's own stages; nothing here imports torch."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..errors import CheckError, CnnDslError, Source, Span
from ..syntax import ast
from .recovery import Parsed, parse_recovering

if TYPE_CHECKING:
    from ..errors import Diagnostic
    from ..ir.network import CheckedLayer, CheckedNetwork
    from ..semantics.memo import CallMemo
    from ..tools.summary import LayerSummary


def same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.normpath(a)) == os.path.normcase(os.path.normpath(b))


@dataclass
class NetworkResult:
    """One network of the file: checked whole, or only the layers checked before its errors."""

    node: ast.Network
    checked: CheckedNetwork | None
    layers: tuple[CheckedLayer, ...]
    steps: tuple = ()  # the network's steps and block instances (as far as they were checked)
    instances: tuple = ()
    _summary: dict[str, LayerSummary] | None = None

    def summary(self) -> dict[str, LayerSummary]:
        """Mult-adds and receptive field of each layer (cnndsl summary's), by layer name; made on first use."""
        if self._summary is None:
            self._summary = {}
            if self.checked is not None:
                from ..tools.summary import summarize

                try:
                    self._summary = {row.name: row for row in summarize(self.checked).layers}
                except Exception:  # a fact the catalog lacks must not cost the hover its shapes
                    self._summary = {}
        return self._summary


@dataclass
class Analysis:
    name: str  # the file's path, as its diagnostics and layers name it
    text: str  # as the editor holds it
    source: Source
    parsed: Parsed
    blocks: dict[str, tuple[Any, Source]] = field(default_factory=dict)  # blocks and modules in reach, by name
    networks: list[NetworkResult] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # the real path of every file it reads (itself first)
    imports: dict[int, str] = field(default_factory=dict)  # id(import node) -> the path it names, as reported
    borrowed: list[NetworkResult] = field(default_factory=list)  # the networks of open files that import this one

    def all_networks(self) -> list[NetworkResult]:
        """Its own networks, then those of the files that import it: a file of blocks shows the shapes of the
        calls its importers make."""
        return [*self.networks, *self.borrowed]

    @property
    def file(self) -> ast.File | None:
        return self.parsed.file


def analyze(name: str, text: str, read: Callable[[Any], Source], memo: CallMemo | Literal[False] | None = None) -> Analysis:
    """Check the file `name` whose text is `text`; `read(path)` gives an imported file's source (the editor's
    text where it has the file open); `memo` keeps the walks of block calls from one analysis of the file to the
    next (cnndsl.semantics.memo: the same result, sooner; False: no walk replayed, even within one check)."""
    from .. import _no_gc
    from ..semantics.checker import check_network, collect_blocks, pick_network
    from ..semantics.memo import CallMemo

    source = Source(name, text)
    too_big = _size_problem(text)
    if too_big is not None:  # what `cnndsl check` refuses to read, the server refuses to parse
        from ..errors import Diagnostic

        return Analysis(name, text, source, Parsed(None, text), diagnostics=[Diagnostic(message=too_big[0], hint=too_big[1], file=name)])
    parsed = parse_recovering(source)
    result = Analysis(name, text, source, parsed, diagnostics=list(parsed.errors))
    file = parsed.file
    if file is None:
        return result
    checked_source = Source(name, parsed.text)  # line numbers as written; broken lines blank
    files: list = []
    with _no_gc():
        try:
            result.blocks = collect_blocks(checked_source, file, read, files=files)
        except CheckError as e:
            result.diagnostics.extend(e.diagnostics)
            result.blocks = _own_blocks(file, checked_source)
        except (CnnDslError, RecursionError, OSError, ValueError) as e:
            result.diagnostics.extend(getattr(e, "diagnostics", ()))
        result.files = [str(f) for f in files] or [os.path.realpath(name)]
        _imports(result, file)
        if not file.networks:
            if not (file.blocks or file.modules or file.imports) and text.strip() and not parsed.errors:
                try:
                    pick_network(checked_source, file, None)
                except CnnDslError as e:
                    result.diagnostics.extend(e.diagnostics)
            return _finish(result)
        try:
            pick_network(checked_source, file, file.networks[0].name)  # networks defined twice
        except CnnDslError as e:
            result.diagnostics.extend(e.diagnostics)
        for net in file.networks:
            try:
                checked = check_network(checked_source, net, {}, None, result.blocks, memo=memo)
            except CheckError as e:
                result.diagnostics.extend((*e.diagnostics, *e.warnings))
                result.networks.append(NetworkResult(net, None, tuple(e.layers), tuple(e.steps), tuple(e.instances)))
            except (CnnDslError, RecursionError) as e:
                result.diagnostics.extend(getattr(e, "diagnostics", ()))
                result.networks.append(NetworkResult(net, None, ()))
            else:
                result.diagnostics.extend(checked.warnings)
                result.networks.append(NetworkResult(net, checked, checked.layers, checked.steps, checked.instances))
    if isinstance(memo, CallMemo):
        memo.cycle()
    return _finish(result)


def _size_problem(text: str) -> tuple[str, str] | None:
    from .. import _size_problem as problem, limits

    size = len(text) if len(text) * 4 <= limits.get("file_bytes") else len(text.encode("utf-8", "surrogatepass"))
    return problem(size)


def _own_blocks(file: ast.File, source: Source) -> dict:
    """The blocks this file defines, for a check that goes on after its imports failed."""
    found: dict = {}
    for block in (*file.blocks, *file.modules):
        found.setdefault(block.name, (block, source))
    return found


def _imports(result: Analysis, file: ast.File) -> None:
    base = os.path.dirname(result.name)
    for imp in file.imports:
        result.imports[id(imp)] = os.path.normpath(os.path.join(base, imp.path))


def _finish(result: Analysis) -> Analysis:
    """The diagnostics once each (a block's mistake is found by every network that calls it), as written."""
    seen, kept = set(), []
    for d in result.diagnostics:
        key = (d.severity, d.file, d.span, d.message)
        if key not in seen:
            seen.add(key)
            if same_file(d.file, result.name) and d.span.line in result.parsed.blanked and not _is_syntax(d, result):
                continue  # about a line that was blanked to get past a syntax error: said by that error
            kept.append(d.model_copy(update={"line_text": result.source.line_text(d.span.line)})
                        if same_file(d.file, result.name) else d)
    result.diagnostics = kept
    return result


def _is_syntax(d, result: Analysis) -> bool:
    return any(d is e for e in result.parsed.errors)


def span_contains(span: Span, line: int, col: int) -> bool:
    """Whether 1-based (line, col) lies in `span` (its end column exclusive; a span that ends where the next
    line starts ends there)."""
    if line < span.line or line > span.end_line:
        return False
    if line == span.line and col < span.col:
        return False
    if line == span.end_line and col >= span.end_col:
        return False
    return True
