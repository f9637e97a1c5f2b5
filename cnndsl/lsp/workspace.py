"""The files the server knows: the editor's open documents (their text wins over the disk's), each file's
analysis and index, kept until the file or a file it imports changes."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CnnDslError, Source, UsageError
from ..semantics.memo import CallMemo
from .analysis import Analysis, analyze, same_file
from .index import Index, build

MOST_FILES = 200  # the .cnn files of a folder that find-references and rename read at most


def key(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


class Workspace:
    def __init__(self):
        self.open: dict[str, str] = {}  # key -> the editor's text
        self.names: dict[str, str] = {}  # key -> the path as the editor names it
        self.generation: dict[str, int] = {}  # key -> bumped on each change of that file
        self._analyses: dict[str, tuple[Analysis, dict[str, int]]] = {}  # key -> (analysis, generations it read)
        self._indexes: dict[int, Index] = {}  # id(analysis) -> its index
        self._memos: dict[str, CallMemo] = {}  # key -> the block calls' walks its last analysis kept

    # -- texts -------------------------------------------------------------------------------------

    def set_text(self, path: str, text: str | None) -> None:
        """The editor's text of `path` (None: closed, the disk's text again)."""
        k = key(path)
        if text is None:
            self.open.pop(k, None)
        else:
            self.open[k] = text
            self.names[k] = path
        self.changed(path)

    def changed(self, path: str) -> None:
        k = key(path)
        self.generation[k] = self.generation.get(k, 0) + 1

    def text(self, path: str) -> str | None:
        k = key(path)
        if k in self.open:
            return self.open[k]
        try:
            from .. import read_source

            return read_source(Path(path)).text
        except (CnnDslError, UsageError, OSError):
            return None

    def read(self, path) -> Source:
        """An imported file's source, as collect_blocks reads it: the editor's text where it is open."""
        k = key(str(path))
        if k in self.open:
            return Source(str(path), self.open[k])
        from .. import read_source

        return read_source(Path(path))

    # -- analyses ----------------------------------------------------------------------------------

    def analysis(self, path: str) -> Analysis | None:
        """The analysis of `path` as it is now; checked again only when it or a file it imports changed."""
        k = key(path)
        cached = self._analyses.get(k)
        if cached is not None and all(self.generation.get(f, 0) == g for f, g in cached[1].items()):
            return cached[0]
        text = self.text(path)
        if text is None:
            return None
        memo = self._memos.setdefault(k, CallMemo())
        a = analyze(self.names.get(k, os.path.abspath(path)), text, self.read, memo)
        read = {key(f) for f in (*a.files, *a.imports.values())} | {k}  # an import not there yet: re-checked once it is
        self._analyses[k] = (a, {f: self.generation.get(f, 0) for f in read})
        if cached is not None:
            self._indexes.pop(id(cached[0]), None)
        return a

    def index(self, a: Analysis) -> Index:
        found = self._indexes.get(id(a))
        if found is None:
            found = self._indexes[id(a)] = build(a.file, a.source) if a.file is not None else Index()
        return found

    def importers(self, path: str) -> list[str]:
        """The open documents whose check reads `path` (through their imports), but for `path` itself."""
        k = key(path)
        out = []
        for other in list(self.open):
            if other == k:
                continue
            cached = self._analyses.get(other)
            if cached is not None and k in cached[1]:
                out.append(self.names[other])
        return out

    def with_importers(self, path: str) -> tuple[Analysis | None, list[Analysis]]:
        """The analysis of `path`, lent the networks of the open documents that import it (whose checks reach
        into its blocks), and their analyses."""
        a = self.analysis(path)
        if a is None:
            return None, []
        importers = [x for x in (self.analysis(p) for p in self.importers(path)) if x is not None]
        a.borrowed = [net for x in importers for net in x.networks]
        return a, importers

    def related(self, path: str) -> list[str]:
        """The files a search for a block's uses reads: the open documents and the .cnn files of the folder of
        `path` (MOST_FILES at most)."""
        found = {key(p): p for p in (self.names[k] for k in self.open)}
        folder = os.path.dirname(os.path.abspath(path))
        try:
            siblings = sorted(e.path for e in os.scandir(folder) if e.name.endswith(".cnn") and e.is_file())
        except OSError:
            siblings = []
        for p in siblings[:MOST_FILES]:
            found.setdefault(key(p), p)
        found.setdefault(key(path), path)
        return list(found.values())

    def forget(self, path: str) -> None:
        self._memos.pop(key(path), None)
        cached = self._analyses.pop(key(path), None)
        if cached is not None:
            self._indexes.pop(id(cached[0]), None)


def defined_in(a: Analysis, name: str) -> str | None:
    """The file that defines block `name` as `a` sees it."""
    found = a.blocks.get(name)
    if found is not None:
        return found[1].name
    if a.file is not None and any(b.name == name for b in (*a.file.blocks, *a.file.modules)):
        return a.name
    return None


__all__ = ["Workspace", "defined_in", "same_file", "key"]
