"""`cnndsl fmt`: the canonical layout of .cnn source (docs/LANGUAGE.md, "Canonical layout").

The layout is computed from the parser's own tokens, with the indentation levels and the ends of statements
the parser sees; the text between two tokens is only whitespace, line breaks and comments, and the comments
are carried over. Tokens are written as the user spelled them, so the formatted file is the same network.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .. import parse
from ..errors import Source
from ..syntax.parser import lark_parser

INDENT = "    "
_OPENS = {"LPAR", "CALL", "REPEAT", "LSQB", "PATH_CALL"}  # a call token is the name and its "(", a repetition's is `x(`
_CLOSES = {"RPAR", "RSQB"}
_OPERAND_ENDS = {"NAME", "IN", "INT", "FLOAT", "DIMS", "STRING", "RPAR", "RSQB"}  # a "-" after these is binary
_DEFINITIONS = {"NETWORK", "BLOCK"}
_GLUE = {  # (no space before, no space after)
    "LPAR": (False, True), "CALL": (False, True), "PATH_CALL": (False, True), "REPEAT": (False, True), "RPAR": (True, False), "COMMA": (True, False),
    "LSQB": (True, True), "RSQB": (True, False), "SPLICE": (False, True),
    "COLON": (True, False), "PLUS": (True, True), "MUL_OP": (True, True),
}


@dataclass
class _Token:
    """A significant token, where the parser saw it."""

    type: str
    text: str
    start: int
    end: int
    level: int  # the indentation level of its statement
    depth: int  # brackets open before it
    starts_statement: bool
    glue: tuple[bool, bool] = (False, False)
    ends_statement: bool = False


@dataclass
class _Gap:
    """The text between two tokens: a comment after the first, line breaks, lines of their own."""

    broken: bool  # it holds a line break
    trailing: str | None = None  # a comment on the line of the token before
    column: int = 0  # that comment's column
    indent: int = 0  # the indentation of the next token's line
    lines: list[tuple[int, str]] = field(default_factory=list)  # (indentation width, comment or "" for a blank line)


def format_source(text: str, name: str = "<string>") -> str:
    """The canonical layout of a .cnn source; raises CnnDslError (ParseError) where the text does not parse."""
    parse(Source(name=name, text=text))  # the diagnostics `cnndsl build` gives
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")  # as the parser reads it
    if not text.endswith("\n"):
        text += "\n"
    return _Layout(text, _tokens(text)).render()


def _tokens(text: str) -> list[_Token]:
    """The tokens the parser receives, each with its statement's level, its bracket depth and its spacing."""
    tokens: list[_Token] = []
    level, depth, at_start = 0, 0, True
    for t in lark_parser().parse_interactive(text).iter_parse():
        if t.type in ("_INDENT", "_DEDENT"):
            level += 1 if t.type == "_INDENT" else -1
        elif t.type == "_NL":
            if tokens:
                tokens[-1].ends_statement = True
            at_start = True
        else:
            tok = _Token(t.type, str(t), t.start_pos, t.end_pos, level, depth, at_start)
            tok.glue = _glue(tok, tokens)
            depth += (t.type in _OPENS) - (t.type in _CLOSES)
            tokens.append(tok)
            at_start = False
    return tokens


def _glue(tok: _Token, before: list[_Token]) -> tuple[bool, bool]:
    """Whether a token is written without a space before it and after it."""
    prev = before[-1] if before else None
    declares = tok.depth == 0 and _head(before) == "MODULE"  # `module SE(r=4) = package.SE(in, in//r) -> same`
    if tok.text == "->":  # channels, `3->16` (an anonymous terminal: Lark names it); a module's shape rule is spaced
        return (False, False) if declares else (True, True)
    if tok.type == "EQUAL" and declares:
        return (False, False)
    if tok.type == "MINUS":  # binary arithmetic is tight (`c*2`, `c-1`); a unary minus binds to its operand
        return (True, True) if prev is not None and prev.type in _OPERAND_ENDS else (False, True)
    if tok.type == "EQUAL":  # `e1 = conv ...` and `a, b = Two()` assign; `k=3`, `c=16`, `stride=2` name a value
        return (False, False) if prev is not None and _assigns(before) else (True, True)
    if tok.type == "LPAR" and len(before) > 1 and before[-2].type in (*_DEFINITIONS, "MODULE"):  # `network Net(c=16):`
        return (True, True)
    return _GLUE.get(tok.type, (False, False))


def _assigns(before: list[_Token]) -> bool:
    """Whether the tokens since the statement began are names separated by commas (`e1`, `a, b`)."""
    for i, tok in enumerate(reversed(before)):
        if tok.type != ("NAME" if i % 2 == 0 else "COMMA"):
            return False
        if tok.starts_statement:
            return True
    return False


def _head(before: list[_Token]) -> str | None:
    """The type of the first token of the statement the next token is in."""
    for t in reversed(before):
        if t.starts_statement:
            return t.type
    return None


def _gap(text: str, start: int, end: int, line_start: bool) -> _Gap:
    """Read the text between two tokens (from the start of a line when `line_start`)."""
    segments = text[start:end].split("\n")
    gap = _Gap(broken=len(segments) > 1 or line_start, indent=_width(segments[-1]))
    if not line_start:
        first = segments.pop(0)
        if "#" in first:
            at = start + first.index("#")
            gap.trailing = first[first.index("#"):].rstrip()
            gap.column = len(text[text.rfind("\n", 0, at) + 1:at].expandtabs(8))
    for segment in segments[:-1]:  # the last segment is the next token's indentation
        comment = segment[segment.index("#"):].rstrip() if "#" in segment else ""
        gap.lines.append((_width(segment), comment))
    return gap


def _width(line: str) -> int:
    """The indentation of a line as the parser measures it (a tab counts 8)."""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    return indent.count(" ") + 8 * indent.count("\t")


class _Layout:
    """Writes the tokens line by line: the user's line breaks, canonical indentation and spacing."""

    def __init__(self, text: str, tokens: list[_Token]):
        self.text, self.tokens = text, tokens
        self.columns = [0]  # the original indentation of each open level (where a comment before a dedent goes)
        self.out: list[str] = []

    def render(self) -> str:
        """The formatted text: each token after the gap before it, a new line where the gap breaks the line."""
        line, prev = "", None
        for tok in [*self.tokens, None]:
            gap = _gap(self.text, prev.end if prev else 0, tok.start if tok else len(self.text), prev is None)
            if prev is not None and not gap.broken:
                line += ("" if prev.glue[1] or tok.glue[0] else " ") + tok.text
            else:
                if prev is not None:
                    self.out.append(_with_comment(line + self._backslash(prev, tok), gap))
                self.out.extend(self._between(prev, tok, gap))
                if tok is not None:
                    line = self._indentation(tok, gap) + tok.text
            prev = tok
        return "".join(f"{line}\n" for line in self.out)

    @staticmethod
    def _backslash(prev: _Token, tok: _Token | None) -> str:
        """A line break inside a statement needs a backslash outside brackets, unless the line ends with `|`."""
        return " \\" if tok is not None and not prev.ends_statement and tok.depth == 0 and prev.type != "PIPE" else ""

    def _indentation(self, tok: _Token, gap: _Gap) -> str:
        """4 spaces a level; a continuation line 4 more per open bracket (at least 4), a `)` line as its `(`."""
        if tok.starts_statement:
            self.columns[tok.level:] = [gap.indent]
            return INDENT * tok.level
        extra = tok.depth - 1 if tok.type in _CLOSES else max(tok.depth, 1)
        return INDENT * (tok.level + extra)

    def _between(self, prev: _Token | None, tok: _Token | None, gap: _Gap) -> list[str]:
        """The comment and blank lines between two lines of code."""
        if prev is not None and not prev.ends_statement:  # inside a statement: comments as the next line, no blanks
            pad = INDENT * (tok.level + max(tok.depth, 1))
            return [pad + comment for _, comment in gap.lines if comment]
        level = tok.level if tok else 0
        inner = prev.level if prev else 0
        lines = []
        for width, comment in gap.lines:
            while inner > level and width < self.columns[inner]:  # before a dedent: in the block it is indented into
                inner -= 1
            lines.append(INDENT * max(inner, level) + comment if comment else "")
        return _blank_lines(lines, prev, tok)


def _blank_lines(lines: list[str], prev: _Token | None, tok: _Token | None) -> list[str]:
    """At most one blank line in a row; none at the start or end of the file or of a body; one above a network
    or block that follows another top-level item (above the comments right over it)."""
    if tok is not None and tok.type in _DEFINITIONS and tok.level == 0 and prev is not None:
        attached = len(lines)
        while attached and lines[attached - 1].startswith("#"):
            attached -= 1
        lines.insert(attached, "")
    opens_body = prev is None or (prev.type == "COLON" and prev.ends_statement)
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]) or (not kept and not opens_body):
            kept.append(line)
    while tok is None and kept and not kept[-1]:
        kept.pop()
    return kept


def _with_comment(code: str, gap: _Gap) -> str:
    """A line of code and its trailing comment, which keeps its column where at least two spaces remain."""
    if gap.trailing is None:
        return code
    return code.ljust(max(len(code) + 2, gap.column)) + gap.trailing


def unified_diff(path: str, before: str, after: str) -> str:
    """A unified diff that `patch -p0` applies (line ends shown as they are; a missing final newline marked)."""

    def lines(text: str) -> list[str]:
        *full, last = text.split("\n")
        return [line + "\n" for line in full] + ([last] if last else [])

    hunks = difflib.unified_diff(lines(before), lines(after), path, path)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in hunks)
