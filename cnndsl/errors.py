"""Diagnostics: located messages about a user's source, and the exception that carries them."""

from __future__ import annotations

import bisect
import difflib
import heapq
import os
import reprlib
import threading
from typing import TYPE_CHECKING, Iterable, Literal


class Span:
    """A region of source text: 1-based line and column, end column exclusive.

    A plain class (the parser makes one or more per syntax node, where a pydantic model cost ten times as much);
    it is never changed after it is made: `model_copy(update=...)` makes a changed copy. Inside pydantic models
    (Diagnostic, the checked network's layers) it validates from a Span or a mapping and dumps as a mapping."""

    __slots__ = ("line", "col", "end_line", "end_col")
    __match_args__ = __slots__

    def __init__(self, line: int = 1, col: int = 1, end_line: int = 1, end_col: int = 2):
        self.line = line
        self.col = col
        self.end_line = end_line
        self.end_col = end_col

    @classmethod
    def model_construct(cls, **fields) -> "Span":
        return cls(**fields)

    def model_copy(self, *, update: dict | None = None, deep: bool = False) -> "Span":
        """A copy with the fields in `update` changed (the name pydantic gives it, which callers use)."""
        fields = self.model_dump()
        if update:
            fields.update(update)
        return Span(**fields)

    def model_dump(self, **_options) -> dict:
        return {"line": self.line, "col": self.col, "end_line": self.end_line, "end_col": self.end_col}

    def _key(self) -> tuple:
        return (self.line, self.col, self.end_line, self.end_col)

    def __eq__(self, other):
        if type(other) is not Span:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Span(line={self.line!r}, col={self.col!r}, end_line={self.end_line!r}, end_col={self.end_col!r})"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):  # pydantic copies a field's default for each model: a Span is never changed
        return self

    def __reduce__(self):
        return (Span, self._key())

    @classmethod
    def _validate(cls, value):
        if isinstance(value, Span):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise ValueError(f"expected a Span or a mapping of its fields, got {type(value).__name__}")

    @classmethod
    def __get_pydantic_core_schema__(cls, _source, _handler):
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(Span.model_dump)
        )


def first_line(span: Span) -> Span:
    """The first line of a span (a statement's span runs on to the next line), for a caret that fits."""
    if span.end_line == span.line:
        return span
    return Span(span.line, span.col, span.line, span.col + 1)


class Source:
    """A source text and the name it is reported under (never changed: `model_copy(update=...)` for a copy)."""

    __slots__ = ("name", "text", "_lines")

    def __init__(self, name: str, text: str):
        if not isinstance(name, str) or not isinstance(text, str):
            raise TypeError(f"Source(name, text) takes two strings, got {type(name).__name__} and {type(text).__name__}")
        self.name = name
        self.text = text
        self._lines: list[str] | None = None

    def line_text(self, line: int) -> str:
        lines = self._lines
        if lines is None:  # split once: a diagnostic per line of a large file would split it each time
            lines = self._lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def model_copy(self, *, update: dict | None = None, deep: bool = False) -> "Source":
        fields = {"name": self.name, "text": self.text, **(update or {})}
        return Source(**fields)

    def model_dump(self, **_options) -> dict:
        return {"name": self.name, "text": self.text}

    def __eq__(self, other):
        if type(other) is not Source:
            return NotImplemented
        return self.name == other.name and self.text == other.text

    def __hash__(self) -> int:
        return hash((self.name, self.text))

    def __repr__(self) -> str:
        return f"Source(name={self.name!r}, text={quote(self.text)})"

    def __reduce__(self):
        return (Source, (self.name, self.text))


# Diagnostic is a pydantic model (the checked network holds its warnings), made on first use: the parser, the
# formatter and `import cnndsl` need no pydantic, whose import costs more than all of them together.
_diagnostic_lock = threading.Lock()


def __getattr__(name: str):
    if name == "Diagnostic":
        with _diagnostic_lock:
            if "Diagnostic" not in globals():
                globals()["Diagnostic"] = _define_diagnostic()
        return globals()["Diagnostic"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _define_diagnostic() -> type:
    from pydantic import BaseModel, ConfigDict

    class Diagnostic(BaseModel):
        """One located message: what was expected, what was found, and how to fix it."""

        model_config = ConfigDict(frozen=True, defer_build=True)

        severity: Literal["error", "warning"] = "error"
        message: str
        file: str = "<input>"
        span: Span = Span()
        line_text: str = ""
        hint: str | None = None
        notes: tuple["Diagnostic", ...] = ()

        @property
        def line(self) -> int:
            return self.span.line

        @property
        def col(self) -> int:
            return self.span.col

        def render(self) -> str:
            out = [f"{self.file}:{self.span.line}:{self.span.col}: {self.severity}: {self.message}"]
            if self.line_text:
                text = self.line_text.replace("\t", " ")
                gutter = str(self.span.line)
                pad = " " * len(gutter)
                width = 1
                if self.span.end_line == self.span.line:
                    width = max(1, self.span.end_col - self.span.col)
                width = min(width, max(1, len(text) - self.span.col + 1))
                out.append(f" {gutter} | {text}")
                out.append(f" {pad} | {' ' * (self.span.col - 1)}{'^' * width}")
            if self.hint:
                out.append(f"hint: {self.hint}")
            for note in self.notes:
                out.append(note.render().replace(": error: ", ": note: ", 1))
            return "\n".join(out)

    Diagnostic.__qualname__ = "Diagnostic"  # pickled by reference as cnndsl.errors.Diagnostic
    return Diagnostic


if TYPE_CHECKING:  # for type checkers, the same class as a plain definition
    Diagnostic = _define_diagnostic()


MAX_ERRORS = 20


class CnnDslError(Exception):
    """Raised for anything wrong in a user's input; carries the diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        errors = [d for d in self.diagnostics if d.severity == "error"]
        shown = errors[:MAX_ERRORS]
        text = "\n".join(d.render() for d in shown)
        if len(errors) > len(shown):
            text += f"\n... and more errors; stopped after {MAX_ERRORS}"
        return text


class ParseError(CnnDslError):
    """The text is not valid .cnn syntax."""


class CheckError(CnnDslError):
    """The network is well formed but PyTorch would reject it. `layers`, `steps`, `instances` and `warnings`:
    the layers, the network's steps and the block instances checked, and the warnings given, before the errors,
    when check_network raised it (the language server shows their shapes)."""

    layers: tuple = ()
    steps: tuple = ()
    instances: tuple = ()
    warnings: tuple = ()


class UsageError(Exception):
    """A mistake in how cnndsl was called (not in the .cnn source): a missing file, a bad -D."""


QUOTE_WIDTH = 80
_reprs = reprlib.Repr()
_reprs.maxstring = _reprs.maxother = _reprs.maxlong = QUOTE_WIDTH
_reprs.maxlevel, _reprs.maxlist, _reprs.maxtuple, _reprs.maxdict = 3, 8, 8, 4


def quote(value: object, width: int = QUOTE_WIDTH) -> str:
    """repr() of a value for a message, at most `width` characters, in time that does not grow with the value
    (reprlib visits only the first few items of a container and the start of a long string)."""
    text = _reprs.repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def listing(names: Iterable[str], most: int = 10, width: int = 200) -> str:
    """`a, b, c` for a message: at most `most` names and about `width` characters, then `and 6,888 more`."""
    names = list(names)
    shown: list[str] = []
    length = 0
    for name in names[:most]:
        text = quote(name)[1:-1] if len(name) > QUOTE_WIDTH else name
        if shown and length + len(text) > width:
            break
        shown.append(text)
        length += len(text) + 2
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" and {rest:,} more" if rest else "")


# A hint's cost is bounded whatever the number of names in reach. The word is compared with at most
# HINT_NAMES names: those its length allows, and when there are more, half of them nearest to it in length
# (a typo changes the length by a character or two) and half nearest to it in alphabetical order (a typo
# mostly keeps the start of the word). The cheap upper bounds on the similarity (difflib's real_quick_ratio
# and quick_ratio) come first; the full comparison, whose cost grows with the product of the two lengths,
# goes from the most promising name down (the highest bound, then the longest common start) and stops after
# HINT_WORK pairs of characters. A word longer than
# HINT_WORD characters gets no hint. Below these bounds the hint is difflib.get_close_matches's.
HINT_NAMES = 1000
HINT_WORK = 200_000
HINT_WORD = 256
_CUTOFF = 0.6


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choice (difflib's ratio of at least 0.6; the greatest name among equals, as
    difflib.get_close_matches picks it), or None; bounded in time whatever the number of choices."""
    word = str(word)
    n = len(word)
    if not n or n > HINT_WORD:
        return None
    # ratio <= 2 * min(len) / (sum of len), difflib's real_quick_ratio: the lengths alone rule out most names
    lengths = [k for k in range(1, 4 * n) if 2.0 * min(k, n) / (k + n) >= _CUTOFF]
    shortest, longest = lengths[0], lengths[-1]
    pool = [c for c in set(choices) if shortest <= len(c) <= longest and isinstance(c, str)]
    if len(pool) > HINT_NAMES:
        pool.sort()
        at = bisect.bisect_left(pool, word)
        half = HINT_NAMES // 2
        near = pool[max(0, at - half // 2):at + half - half // 2]
        pool = {*near, *heapq.nsmallest(HINT_NAMES - len(near), pool, key=lambda c: abs(len(c) - n))}
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)
    bounds = []
    for c in pool:
        matcher.set_seq1(c)
        bound = matcher.quick_ratio()
        if bound >= _CUTOFF:
            bounds.append((bound, len(os.path.commonprefix((c, word))), c))
    bounds.sort(reverse=True)  # the most promising first; among equals, the one that keeps more of the word's start
    best: tuple[float, str] | None = None
    work = 0
    for bound, _, c in bounds:
        if best is not None and bound < best[0]:
            break  # ratio <= quick_ratio: no name after this one can match better
        work += len(c) * n
        if work > HINT_WORK:
            break
        matcher.set_seq1(c)
        score = matcher.ratio()
        if score >= _CUTOFF and (best is None or (score, c) > best):
            best = (score, c)
    return f"did you mean `{best[1]}`?" if best else None
