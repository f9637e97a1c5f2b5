"""Lark's parse failures as diagnostics: what was expected, what was found, where, and a hint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lark import Token
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from ..errors import Source, Span

if TYPE_CHECKING:
    from ..errors import Diagnostic

_TOKEN_NAMES = {
    "NAME": "a name",
    "CALL": "a call such as `Name(`",
    "REPEAT": "a repetition such as `x(n)`",
    "SPLICE": "`*(` (stages spliced into a named group)",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "_ELSE": "`else`",
    "INT": "an integer",
    "FLOAT": "a number",
    "DIMS": "a size such as `3x32x32`",
    "STRING": "a quoted string",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "$END": "the end of the file",
    "PIPE": "`|`",
    "IN": "`in`",
    "COMP_OP": "a comparison",
    "MUL_OP": "`*` or `//`",
    "PLUS": "`+`",
    "MINUS": "`-`",
}


def _describe(terminal: str, terminals) -> str:
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    for t in terminals:
        if t.name == terminal and t.pattern.type == "str":
            return f"`{t.pattern.value}`"
    return terminal.lower().lstrip("_")


def _found(token: Token, terminals) -> str:
    if token.type in ("_NL", "_INDENT", "_DEDENT", "$END"):
        return _describe(token.type, terminals)
    return f"`{token}`"


_STATEMENT_STARTS = {"NETWORK", "BLOCK", "IMPORT", "INIT", "INPUT", "OUTPUT", "DEFAULTS"}


def _expected(names, terminals) -> str:
    names = set(names)
    summary = []
    if {"NAME", "CALL", "LPAR"} <= names:
        names -= {"NAME", "CALL", "LPAR", "SPLICE"} | _STATEMENT_STARTS
        summary.append("a layer")
    if {"INT", "FLOAT", "NAME"} <= names:
        names -= {"INT", "FLOAT", "DIMS", "STRING", "NAME", "LPAR", "MINUS", "IN", "_NOT", "NOT", "CALL"}
        summary.append("a value")
    shown = summary + sorted({_describe(n, terminals) for n in names if not n.startswith("__")})
    if not shown:
        return "something else"
    if len(shown) > 6:
        return ", ".join(shown[:6]) + " or another token"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def diagnostic(source: Source, line: int, col: int, width: int, message: str, hint: str | None = None) -> Diagnostic:
    """A one-line diagnostic at (line, col), `width` characters wide."""
    from ..errors import (
        Diagnostic,  # pydantic, imported only when there is something to report
    )

    span = Span(line=line, col=col, end_line=line, end_col=col + max(1, width))
    return Diagnostic(message=message, file=source.name, span=span, line_text=source.line_text(line), hint=hint)


def syntax_error(source: Source, e: UnexpectedInput, terminals) -> Diagnostic:
    """A Lark failure as a diagnostic that says what was expected and what was found, and where;
    `terminals` are the grammar's, for naming the punctuation the parser expected."""
    if isinstance(e, UnexpectedCharacters):
        char = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else ""
        hint = None
        if char in "\"'":
            hint = "strings are written in double quotes on one line"
        return diagnostic(source, e.line, e.column, 1, f"unexpected character {char!r}", hint)
    if isinstance(e, UnexpectedEOF):
        lines = source.text.splitlines() or [""]
        return diagnostic(source, len(lines), len(lines[-1]) + 1, 1, f"unexpected end of file; expected {_expected(e.expected, terminals)}")
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    line, col = tok.line or 1, tok.column or 1
    width = len(str(tok)) if tok.type not in ("_NL", "_INDENT", "_DEDENT", "$END") else 1
    if tok.type == "$END":
        lines = source.text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    elif tok.type == "_NL":
        # point just after the last thing on the line, where something was missing
        line = tok.line
        col = len(source.line_text(line).split("#")[0].rstrip()) + 1
    hint = None
    expected = e.accepts or e.expected
    message = f"expected {_expected(expected, terminals)}, found {_found(tok, terminals)}"
    if tok.type == "_INDENT":
        message = "unexpected indentation"
        hint = ("only the lines under a `network`, `block`, merge (`add:`, `cat:`, ...) or `name:` line are indented; "
                "did the line above miss its `:`? (a line that ends with `|` continues on the next)")
        line = tok.end_line or line
        col = len(str(tok).replace("\t", " " * 8)) + 1
        if _mixes_tabs(source.text, line):
            message = "a tab in the indentation, where the lines around it indent with spaces"
            hint = "indent with spaces only (a tab counts as 8 columns, so the line lands at another depth than it looks)"
    elif "_INDENT" in expected:
        message = f"expected an indented block, found {_found(tok, terminals)}"
        hint = "indent the lines of the body under the line that ends with `:`"
    elif tok.type == "MINUS" and "MINUS" not in expected:
        hint = "a negative number in a layer's arguments is written in parentheses, e.g. (-1)"
    elif tok.type == "_ELSE" and "_ELSE" not in expected:
        hint = "a value chosen by a condition is written in parentheses: `(a if c else b)`"
    elif tok.type == "COMMA" and "COMMA" not in expected:
        message = "a layer's arguments are separated by spaces, not commas"
        hint = "e.g. `conv 16 k3 p1`; commas separate a block call's arguments, inside its parentheses"
    elif tok.type == "RPAR" and "RPAR" not in expected and _unclosed_paren(source.text, line, col) is None:
        message = "a `)` that no `(` opened"
        hint = "remove it, or open the parenthesis where the group starts"
    elif tok.type == "_IF" and "_IF" not in expected and _unclosed_paren(source.text, line, col) is not None:
        message = "a condition (`if ...`) ends a whole line; it cannot stand inside parentheses"
        hint = "put it after the closing `)`: `(conv 16 k1 | bn) if use_bn`, or choose a value with `(a if c else b)`"
    if "RPAR" in expected and hint is None:
        opened = _unclosed_paren(source.text, line, col)
        if opened is not None:
            found = "the end of the file" if tok.type in ("_DEDENT", "$END") else _found(tok, terminals)  # no line breaks inside ( )
            message = f"expected `)` to close the `(` at line {opened[0]}, column {opened[1]}, found {found}"
    return diagnostic(source, line, col, width, message, hint)


def _mixes_tabs(text: str, line: int) -> bool:
    """Whether line `line` indents with a tab where another line of the file indents with spaces."""
    rows = text.splitlines()
    if not 0 < line <= len(rows):
        return False
    lead = rows[line - 1][: len(rows[line - 1]) - len(rows[line - 1].lstrip())]
    return "\t" in lead and any(r[:1] == " " for r in rows)


def _unclosed_paren(text: str, line: int, col: int) -> tuple[int, int] | None:
    """Where the innermost `(` still open at (line, col) was opened, skipping comments and strings."""
    stack: list[tuple[int, int]] = []
    for n, row in enumerate(text.splitlines()[:line], start=1):
        in_string = False
        for c, char in enumerate(row if n < line else row[: col - 1], start=1):
            if char == '"':
                in_string = not in_string
            elif in_string:
                continue
            elif char == "#":
                break
            elif char == "(":
                stack.append((n, c))
            elif char == ")" and stack:
                stack.pop()
    return stack[-1] if stack else None
