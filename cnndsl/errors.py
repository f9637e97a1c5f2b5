"""Diagnostics: located messages about a user's source, and the exception that carries them."""

from __future__ import annotations

import difflib
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict


class Span(BaseModel):
    """A region of source text: 1-based line and column, end column exclusive."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    line: int = 1
    col: int = 1
    end_line: int = 1
    end_col: int = 2


def first_line(span: Span) -> Span:
    """The first line of a span (a statement's span runs on to the next line), for a caret that fits."""
    if span.end_line == span.line:
        return span
    return span.model_copy(update={"end_line": span.line, "end_col": span.col + 1})


class Source(BaseModel):
    """A source text and the name it is reported under."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    text: str

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


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
    """The network is well formed but PyTorch would reject it."""


class UsageError(Exception):
    """A mistake in how cnndsl was called (not in the .cnn source): a missing file, a bad -D."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest choice, or None."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None
