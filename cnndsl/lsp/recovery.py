"""Parsing with recovery: a syntax error does not hide the rest of the file.

The parser stops at its first error. The editor wants the errors after it too, and the shapes: each error's
line is blanked out (its statement, and the indented body of a `name:` header) and the text parsed again, so
that the rest of the file is checked as written. Line numbers never move, so every later diagnostic, hover and
inlay hint is placed where it belongs. Each round blanks at least one more line; a file that never parses
gives its syntax errors alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CnnDslError, Source
from ..syntax import ast

ROUNDS = 8  # syntax errors reported per file at most: each further round costs a parse


@dataclass
class Parsed:
    file: ast.File | None  # None when no recovery made the text parse
    text: str  # the text that parsed: the source with the broken lines blanked
    errors: list = field(default_factory=list)  # the syntax diagnostics, each on the source as written
    blanked: set[int] = field(default_factory=set)  # 1-based numbers of the lines blanked


def parse_recovering(source: Source) -> Parsed:
    """The syntax tree of `source`, parsed again without each broken line until it parses (ROUNDS at most)."""
    from ..syntax.parser import parse

    lines = source.text.split("\n")
    parsed = Parsed(None, source.text)
    for _ in range(ROUNDS):
        text = "\n".join(lines)
        try:
            parsed.file = parse(Source(source.name, text))
            parsed.text = text
            return parsed
        except RecursionError:
            return parsed
        except CnnDslError as e:
            errors = [d.model_copy(update={"line_text": source.line_text(d.span.line)}) for d in e.diagnostics]
            parsed.errors.extend(errors)
            line = errors[0].span.line if errors else 0
            if not _blank(lines, line, parsed.blanked):
                return parsed
    return parsed


def _blank(lines: list[str], line: int, blanked: set[int]) -> bool:
    """Blank line `line` (1-based) and what belongs with it; False when nothing was left to blank there."""
    index = line - 1
    if not 0 <= index < len(lines) or not lines[index].strip():
        # the error is at the end of the text, or on an empty line after a statement left open: blank that one
        index = _last_code_line(lines, min(index, len(lines)) - 1)
        if index is None:
            return False
    start = index
    while start > 0 and _continues(lines[start - 1]):  # a pipeline continued from the lines above: all of it
        start -= 1
    end = index + 1
    if _code(lines[index]).endswith(":") or _code(lines[index]).endswith("|"):  # its body, or its continuation
        indent = _indent(lines[start])
        while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
            end += 1
    changed = False
    for i in range(start, end):
        if _code(lines[i]):
            lines[i] = " " * len(lines[i])
            blanked.add(i + 1)
            changed = True
    return changed


def _last_code_line(lines: list[str], index: int) -> int | None:
    while index >= 0:
        if _code(lines[index]):
            return index
        index -= 1
    return None


def _code(line: str) -> str:
    """A line without its comment and the spaces around it."""
    at = line.find("#")
    if at >= 0 and '"' not in line[:at]:
        line = line[:at]
    return line.strip()


def _continues(line: str) -> bool:
    return _code(line).endswith("|")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
