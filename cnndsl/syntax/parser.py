"""Text -> syntax tree. Lark (LALR, positions) does the parsing; every Lark failure becomes a Diagnostic."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import operator
import os
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .. import limits
from ..errors import ParseError, Source, Span
from . import ast
from .ast import Node

if TYPE_CHECKING:
    from lark import Lark

# Lark is imported only to build the parse tables (once: they are cached, see _tables) and to report a syntax
# error (its own parser then reruns on the text, for its diagnostics): a valid file parses without it.


class _Tok(str):
    """A token as the callbacks see it: its text, its terminal's name and where it is (Lark's Token has the
    same attributes; both reach the callbacks, which take either)."""

    __slots__ = ("column", "end_column", "end_line", "line", "type")


def _tok(type_: str, value: str, line: int, column: int, end_line: int, end_column: int) -> _Tok:
    t = _Tok(value)
    t.type, t.line, t.column, t.end_line, t.end_column = type_, line, column, end_line, end_column
    return t


class _IndentError(Exception):
    def __init__(self, token, message: str, hint: str | None = None):
        self.token, self.message, self.hint = token, message, hint


_indenter_lock = threading.Lock()


def __getattr__(name: str):
    if name == "CnnIndenter":  # a subclass of Lark's Indenter: defined when first asked for (it imports Lark)
        return _indenter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# the tokens that open and close brackets, inside which line breaks are free (the indenter's, and the tables')
_OPEN_BRACKETS = ("LPAR", "CALL", "REPEAT", "LSQB", "PATH_CALL")
_CLOSE_BRACKETS = ("RPAR", "RSQB")


def _indenter_class() -> type:
    with _indenter_lock:
        if "CnnIndenter" not in globals():
            globals()["CnnIndenter"] = _define_indenter()
        return globals()["CnnIndenter"]


def _define_indenter() -> type:
    from lark import Token
    from lark.indenter import Indenter

    class CnnIndenter(Indenter):
        """Python-style indentation; a line ending in `|` continues on the next line."""

        NL_type = "_NL"
        OPEN_PAREN_types = list(_OPEN_BRACKETS)
        CLOSE_PAREN_types = list(_CLOSE_BRACKETS)
        INDENT_type = "_INDENT"
        DEDENT_type = "_DEDENT"
        tab_len = 8

        def handle_NL(self, token):
            if self.paren_level > 0:
                return
            yield token
            indent_str = token.rsplit("\n", 1)[1]
            indent = indent_str.count(" ") + indent_str.count("\t") * self.tab_len
            if indent > self.indent_level[-1]:
                self.indent_level.append(indent)
                yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
            else:
                closed = None
                while indent < self.indent_level[-1]:
                    closed = self.indent_level.pop()
                    yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
                if indent != self.indent_level[-1]:
                    at = Token("_NL", indent_str)
                    at.line, at.column = token.end_line, indent + 1
                    at.end_line, at.end_column = token.end_line, indent + 2
                    raise _IndentError(
                        at,
                        f"this line is indented to column {indent + 1}, which matches no enclosing block",
                        f"indent it to column {closed + 1} to continue the block above, or to column {self.indent_level[-1] + 1} to end it",
                    )

        def process(self, stream):
            # One Lark parser serves every parse, in every thread, and calls this on its one post-lexer; the
            # indentation state (paren_level, indent_level) must belong to this parse, so a fresh indenter keeps it.
            return Indenter.process(type(self)(), self._join_continued_lines(stream))

        @staticmethod
        def _join_continued_lines(stream):
            previous = None
            for token in stream:
                if token.type == "_NL" and previous == "PIPE":
                    continue
                previous = token.type
                yield token

    CnnIndenter.__module__ = __name__
    return CnnIndenter


_GRAMMAR_NAME = "cnndsl.lark"


def _grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "grammar" / _GRAMMAR_NAME, here.parent.parent / "grammar" / _GRAMMAR_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{_GRAMMAR_NAME} is missing from the cnndsl installation")


_parser_lock = threading.Lock()


def lark_parser() -> Lark:
    """The LALR parser of the grammar, with the indentation post-lexer: built once per process, by the first
    thread that asks, and shared (a parse keeps its state in its own objects, the indenter's included; Lark
    builds each lexer's scanner on its first use, and two threads that both do build equal ones)."""
    with _parser_lock:
        return _build_lark_parser()


@functools.lru_cache(maxsize=1)
def _build_lark_parser() -> Lark:
    from lark import Lark

    grammar = _grammar_path().read_text(encoding="utf-8")
    cache = _cache_file(grammar)
    parser = Lark(
        grammar,
        parser="lalr",
        postlex=_indenter_class()(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=cache or False,
    )
    if cache:
        with contextlib.suppress(OSError):
            os.chmod(cache, 0o600)  # Lark writes it with the umask's mode
    return parser


# The parser's cache. Lark's `cache=True` unpickles `$TMPDIR/.lark_cache_<user>_<hash>_<py>.tmp` (before it even
# compares the hash), so anyone who can write the temporary folder could run code in every cnndsl process. A
# cache is code: it is only read from a folder of this user's own that no one else can write,
# $XDG_CACHE_HOME/cnndsl or ~/.cache/cnndsl (created 0700), and from a plain file there of this user's own that no
# one else can write; anything else means no cache. Without one, building the tables costs 75-130 ms more per
# process (measured: 73 ms best, 97-130 ms median, against 7-12 ms read from the cache).
def _cache_file(grammar: str) -> str | None:
    """The path of the parser's cache file, or None (no cache) where it cannot be private."""
    folder = _cache_folder()
    if folder is None:
        return None
    from lark import __version__ as lark_version

    key = hashlib.sha256(f"{grammar}\0{lark_version}\0{sys.version_info[:2]}".encode("utf-8")).hexdigest()[:24]
    path = folder / f"parser-{key}.lark"
    try:
        found = path.lstat()
    except FileNotFoundError:
        return str(path)  # Lark writes it
    except OSError:
        return None
    return str(path) if _private(found, stat.S_ISREG) else None


def _cache_folder() -> Path | None:
    if not hasattr(os, "geteuid"):
        return None  # no owners to compare (Windows): no cache
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        parent = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = parent / "cnndsl"
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        return folder if _private(folder.lstat(), stat.S_ISDIR) else None
    except (OSError, RuntimeError):  # RuntimeError: no home folder
        return None


def _private(found: os.stat_result, is_kind) -> bool:
    """Of this kind (lstat: a symbolic link is not), this user's own, and no one else may write to it."""
    return is_kind(found.st_mode) and found.st_uid == os.geteuid() and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


# -- the syntax tree, built while Lark parses ----------------------------------------------------------
#
# Lark's LALR parser calls a callback at each reduction with the values of the rule's symbols; by default
# these build Lark's own tree (with positions), which a Transformer then walked again to make the ast nodes:
# two trees and two passes. Here the callbacks make the ast nodes themselves, during the one parse, and
# compute what Lark's `propagate_positions` would have given each node (Lark refuses `v_args(meta=True)` for a
# transformer inside the parser, and its positions are only kept on its own Tree objects):
#
#   * a node starts where the first of its rule's symbols starts, and ends where the last one ends, counting
#     the tokens that the tree leaves out (`network`, `(`, the line break that ends a statement), and the
#     parentheses around an expression (`(c + 1)` is the BinOp c + 1, but an argument written so starts at
#     its `(`). These are Lark's "container" positions;
#   * rules whose names start with `_` (and the `*`/`+` lists Lark makes) are inlined into their parent: they
#     yield a _Seq, the values and the positions they cover, which the parent splices in;
#   * `?rule`s with one child pass it through unchanged (a parenthesised expression through a _Seq that
#     records its parentheses);
#   * `[optional]` parts missing from the text are None (Lark's maybe_placeholders);
#   * each node records its height in the tree Lark would have built (`_h`), so that the nesting limit is
#     checked as before without walking a tree; a parse taller than the limit is parsed again into Lark's tree
#     to report the node the earlier check named.
#
# The callbacks keep no state between calls: one table serves every parse in every thread (it is given to
# each parse's own ParseConf, as Lark's InteractiveParser.accepts does with its own).


class _Seq:
    """Values spliced into the parent rule: an inlined rule's, or one parenthesised expression, with the
    positions they cover and their height (an inlined rule adds no level to the tree)."""

    __slots__ = ("items", "line", "col", "end_line", "end_col", "_h")

    def __init__(self, items, line, col, end_line, end_col, h):
        self.items, self.line, self.col, self.end_line, self.end_col, self._h = items, line, col, end_line, end_col, h


class _Tup(_Seq):
    """The value of a rule that is a level of the tree but not a node (`args`, `params`, `start`): kept as a
    whole by the parent, which takes `items`."""

    __slots__ = ()


def _start(raw):
    """(line, column) where the first positioned value of a reduction starts, or None."""
    for v in raw:
        if v is None:
            continue
        if isinstance(v, str):  # a Token
            return v.line, v.column
        if isinstance(v, _Seq):
            if v.line is None:
                continue
            return v.line, v.col
        s = v.span
        return s.line, s.col
    return None


def _end(raw):
    """(end line, end column) where the last positioned value of a reduction ends, or None."""
    for v in reversed(raw):
        if v is None:
            continue
        if isinstance(v, str):
            return v.end_line, v.end_column
        if isinstance(v, _Seq):
            if v.line is None:
                continue
            return v.end_line, v.end_col
        s = v.span
        return s.end_line, s.end_col
    return None


class _Plan:
    """How a rule's values become its children, as Lark's ChildFilter takes them (with maybe_placeholders):
    `keep` (index, Nones before it) for each kept symbol, `after` the Nones after the last one; `inner` the
    indices of the rule's nonterminals (nodes, _Seqs, or None), whose heights the rule's value adds to."""

    __slots__ = ("keep", "after", "inner", "plain", "splices", "whole")

    def __init__(self, rule):
        expansion = rule.expansion
        empty = rule.options.empty_indices
        if empty:  # Nones to insert before each symbol and after the last: Lark's reading of empty_indices
            nones = [len(x) for x in "".join(str(int(b)) for b in empty).split("0")]
        else:
            nones = [0] * (len(expansion) + 1)
        keep, pending = [], 0
        for i, sym in enumerate(expansion):
            pending += nones[i]
            if rule.options.keep_all_tokens or not (sym.is_term and sym.filter_out):
                keep.append((i, pending))
                pending = 0
        self.keep = tuple(keep)
        self.after = pending + nones[len(expansion)]
        self.inner = tuple(i for i, sym in enumerate(expansion) if not sym.is_term)
        # no placeholders: the children are the kept values, once no _Seq among them needs splicing
        self.plain = tuple(i for i, _ in keep) if not self.after and not any(n for _, n in keep) else None
        self.splices = tuple(i for i, _ in keep if i in self.inner)  # where a _Seq may be
        self.whole = self.plain == tuple(range(len(expansion)))  # every value is a child, in order

    def children(self, raw) -> list:
        plain = self.plain
        if plain is not None:
            for i in self.splices:
                if raw[i].__class__ is _Seq:
                    break
            else:
                return raw if self.whole else [raw[i] for i in plain]  # raw: a fresh list, the parser's own
        c = []
        for i, nones in self.keep:
            if nones:
                c += [None] * nones
            v = raw[i]
            if v.__class__ is _Seq:
                c += v.items
            else:
                c.append(v)
        if self.after:
            c += [None] * self.after
        return c

    def height(self, raw) -> int:
        h = 0
        for i in self.inner:
            v = raw[i]
            if v is not None and v._h > h:
                h = v._h
        return h


def _node_callback(build, plan: _Plan):
    """A rule that makes a node: its children, its span and its height."""
    children, height = plan.children, _fast_height(plan)

    def callback(raw):
        first, last = raw[0], raw[-1]
        if first.__class__ is _Tok or isinstance(first, str):  # a token (ours, or Lark's on the path that reports errors)
            line, col = first.line, first.column
        elif isinstance(first, Node):
            line, col = first.span.line, first.span.col
        elif isinstance(first, _Seq) and first.line is not None:
            line, col = first.line, first.col
        else:
            line, col = _start(raw)
        if last.__class__ is _Tok or isinstance(last, str):
            end_line, end_col = last.end_line, last.end_column
        elif isinstance(last, Node):
            end_line, end_col = last.span.end_line, last.span.end_col
        elif isinstance(last, _Seq) and last.line is not None:
            end_line, end_col = last.end_line, last.end_col
        else:
            end_line, end_col = _end(raw)
        node = build(children(raw), Span(line, col, end_line, end_col))
        node._h = height(raw) + 1
        return node

    return callback


def _fast_height(plan: _Plan):
    """plan.height, or a cheaper function that gives the same for a rule with at most one nonterminal."""
    if not plan.inner:
        return _zero
    if len(plan.inner) == 1:
        i = plan.inner[0]

        def height(raw):
            v = raw[i]
            return 0 if v is None else v._h

        return height
    return plan.height


def _zero(raw):
    return 0


def _single_callback(build, terminal: bool):
    """A rule of one symbol that makes a node from it (a name, a number, a positional argument): the fast case
    of _node_callback. `build(child, span)`; a node's span is its child's, whose Span it shares."""
    if terminal:
        def callback(raw):
            t = raw[0]
            node = build(t, Span(t.line, t.column, t.end_line, t.end_column))
            node._h = 1
            return node
    else:
        def callback(raw):
            v = raw[0]
            if v.__class__ is _Seq:  # a parenthesised expression: the span covers the parentheses
                if len(v.items) != 1:
                    raise AssertionError(f"cnndsl.syntax.parser: one value expected, got {len(v.items)}")
                span = Span(v.line, v.col, v.end_line, v.end_col)
                v = v.items[0]
            else:
                span = v.span
            node = build(v, span)
            node._h = v._h + 1
            return node

    return callback


def _level_callback(build, plan: _Plan):
    """A rule that is a level of the tree without a node of its own (`args`, `params`, `start`)."""
    children, height = plan.children, plan.height

    def callback(raw):
        start, end = _start(raw) or (None, None), _end(raw) or (None, None)
        return _Tup(build(children(raw)), *start, *end, height(raw) + 1)

    return callback


def _seq_callback(plan: _Plan):
    """An inlined rule (`_suite`, a `*` or `+` list): its values go into the parent. A list grows at its end:
    the _Seq of the list so far is extended in place (LALR uses each value once)."""
    children, height = plan.children, plan.height
    grows = bool(plan.keep) and plan.keep[0] == (0, 0) and 0 in plan.inner
    rest, after = plan.keep[1:], plan.after

    def callback(raw):
        first = raw[0]
        if grows and first.__class__ is _Seq:
            items = first.items
            for i, nones in rest:
                if nones:
                    items += [None] * nones
                v = raw[i]
                if v.__class__ is _Seq:
                    items += v.items
                else:
                    items.append(v)
            if after:
                items += [None] * after
            last = raw[-1]
            if isinstance(last, str):
                first.end_line, first.end_col = last.end_line, last.end_column
            elif isinstance(last, Node):
                first.end_line, first.end_col = last.span.end_line, last.span.end_col
            else:
                end = _end(raw)
                if end is not None:
                    first.end_line, first.end_col = end
            h = height(raw)
            if h > first._h:
                first._h = h
            return first
        start, end = _start(raw) or (None, None), _end(raw) or (None, None)
        return _Seq(children(raw), *start, *end, height(raw))

    return callback


def _paren_callback(raw):
    """`?atom: "(" expr ")"`: the expression, with the parentheses' positions for its parent."""
    inner = raw[1]
    items = inner.items if type(inner) is _Seq else [inner]
    first, last = raw[0], raw[-1]
    return _Seq(items, first.line, first.column, last.end_line, last.end_column, inner._h)


def _token_span(t) -> Span:
    return Span(t.line, t.column, t.end_line, t.end_column)


def _items(value) -> tuple:
    """An optional `args`/`params` child as a tuple."""
    return () if value is None else tuple(value.items) if isinstance(value, _Seq) else value


class _ParseState:
    """What the callbacks of one parse share: the `integer` limit in force (read once: a limit is looked up in
    the environment, which costs more than the rest of a number's node), and the first mistake they found.
    Lark's tree was complete before the transformer found such a mistake, so a syntax error anywhere, or a
    nesting too deep, was reported first: the mistake waits for the end of the parse, to keep that order."""

    __slots__ = ("integer_limit", "error")

    def __init__(self, integer_limit: int):
        self.integer_limit = integer_limit
        self.error: _IndentError | None = None


_parse_state: contextvars.ContextVar[_ParseState | None] = contextvars.ContextVar("cnndsl_parse_state", default=None)


def _mistake(error: _IndentError) -> None:
    """A located mistake found while building the tree: kept for the end of the parse (the first one)."""
    state = _parse_state.get()
    if state is None:
        raise error
    if state.error is None:
        state.error = error


def _integer(text: str, line: int, col: int) -> int:
    """An integer literal, refused beyond the `integer` limit (Python will not even convert 4300 digits)."""
    digits = text.lstrip("0") or "0"
    n = int(digits) if len(digits) <= 4000 else 1 << int(len(digits) * 3.33)
    state = _parse_state.get()
    if n <= (state.integer_limit if state is not None else limits.get("integer")):
        return n
    found = limits.problem("integer", n, "this number")
    if found:
        at = _tok("INT", text, line, col, line, col + len(text))
        _mistake(_IndentError(at, *found))
    return n


def _dims(t, s):
    items = []
    col = s.col
    for part in str(t).split("x"):
        items.append(ast.Num(_integer(part, s.line, col), Span(s.line, col, s.line, col + len(part))))
        col += len(part) + 1
    return ast.Tuple(tuple(items), s)


def _call(c, s):
    *rest, args, name = c[1:]
    call_args = tuple(x for x in rest if x is not None and not isinstance(x, str))
    return ast.Call(str(c[0])[:-1], call_args, _items(args), name and name.text, s)


def _module_def(c, s):
    """`module Name(params) = package.module.Class(args) -> rule`."""
    name, params, path, *rest, rule = c
    args = tuple(x for x in rest if x is not None and not isinstance(x, str))
    path_span = Span(path.line, path.column, path.end_line, path.end_column - 1)  # without its `(`
    return ast.ModuleDecl(str(name), _items(params), str(path)[:-1], path_span, args, rule, s)


def _labeled(label: str, label_span: Span, args: tuple, rest: list, condition, s: Span) -> ast.Labeled:
    if len(rest) == 1 and isinstance(rest[0], ast.Pipeline):
        return ast.Labeled(label, label_span, args, condition, rest[0], (), s)
    return ast.Labeled(label, label_span, args, condition, None, tuple(rest), s)


def _labeled_if(c, s):
    """`add if cond:` or `split 2 if cond:`, parsed as a pipeline: it must be one unnamed layer."""
    pipeline, condition, *rest = c
    head = pipeline.stages[0]
    if len(pipeline.stages) != 1 or not isinstance(head, ast.Layer) or head.name is not None:
        at = _tok("_IF", "if", condition.span.line, condition.span.col, condition.span.line, condition.span.col + 2)
        _mistake(_IndentError(at, "a condition before `:` belongs to a merge, as in `add if cond:`",
                              "a branch's condition goes at the end of its line, without `:`"))
        return ast.Labeled("add", condition.span, (), condition, None, tuple(rest), s)  # not used: the parse fails
    return _labeled(head.op, head.op_span, head.args, rest, condition, s)


_SINGLE = {  # rule (or alias) of one symbol -> build(child, span): a node
    "int": lambda t, s: ast.Num(_integer(str(t), s.line, s.col), s),
    "float": lambda t, s: ast.Num(float(t), s),
    "dims": _dims,
    "name": lambda t, s: ast.Name(str(t), s),
    "string": lambda t, s: ast.Str(str(t)[1:-1], s),
    "positional": ast.Positional,
    "positional_full": ast.Positional,
}

_BUILDERS = {  # rule (or alias) -> build(children, span): a node
    # expressions
    "tuple": lambda c, s: ast.Tuple(tuple(x for x in c if x is not None), s),
    "binop": lambda c, s: ast.BinOp(str(c[1]), c[0], c[2], s),
    "neg": lambda c, s: ast.Neg(c[1], s),
    "compare": lambda c, s: ast.Compare(str(c[1]), c[0], c[2], s),
    "or_": lambda c, s: ast.BoolOp("or", c[0], c[1], s),
    "and_": lambda c, s: ast.BoolOp("and", c[0], c[1], s),
    "not_": lambda c, s: ast.Not(c[0], s),
    "init_call": lambda c, s: ast.InitCall(str(c[0])[:-1], tuple(x for x in c[1:] if x is not None), s),
    "index": lambda c, s: ast.Index(c[0], c[1], s),
    "ifexp": lambda c, s: ast.IfExp(c[1], c[0], c[2], s),
    "repeat": lambda c, s: ast.Repeat(c[1], c[2] and str(c[2]), s),
    # arguments
    "keyword": lambda c, s: ast.Keyword(str(c[0]), _token_span(c[0]), c[1], s),
    "channels": lambda c, s: ast.Channels(c[0], c[1], s),
    # pipelines
    "alias": lambda c, s: ast.Alias(str(c[0]).strip('"') if len(c) == 1 else f"{c[0]}[{c[1]}]", s),
    "layer": lambda c, s: ast.Layer(str(c[0]), _token_span(c[0]), _items(c[1]), c[2] and c[2].text, s),
    "call": _call,
    "group": lambda c, s: ast.Group(c[0], _items(c[1]), c[2] and c[2].text, False, s),
    "splice": lambda c, s: ast.Group(c[1], _items(c[2]), None, True, s),
    "pipeline": lambda c, s: ast.Pipeline(tuple(x for x in c if not isinstance(x, str)), s),
    # statements
    "input_stmt": lambda c, s: ast.Input(c[0], s, tuple(c[1:])),
    "init_stmt": lambda c, s: ast.Init(str(c[0]), _token_span(c[0]), tuple(c[1:]), s),
    "defaults_stmt": lambda c, s: ast.Defaults(str(c[0]), _token_span(c[0]), _items(c[1]), s),
    "output_stmt": lambda c, s: ast.Output(tuple(i.name for i in c), s, tuple(i.key for i in c)),
    "out_item": lambda c, s: ast.OutputItem(str(c[0]), None if c[1] is None else str(c[1]).strip('"'), s),
    "assign": lambda c, s: ast.Assign(str(c[0]), c[-1], s, tuple(str(x) for x in c[1:-1])),
    "labeled": lambda c, s: _labeled(str(c[0]), _token_span(c[0]), _items(c[1]), c[2:], None, s),
    "labeled_if": _labeled_if,
    "line": lambda c, s: ast.Line(c[0], c[1], s),
    # files
    "param": lambda c, s: ast.Param(str(c[0]), c[1], s),
    "network": lambda c, s: ast.Network(str(c[0]), _items(c[1]), tuple(c[2:]), False, s),
    "block": lambda c, s: ast.Block(str(c[0]), _items(c[1]), tuple(c[2:]), s),
    "import_stmt": lambda c, s: ast.Import(str(c[0])[1:-1], s),
    "module_def": _module_def,
}

_LEVELS = {  # rule -> build(children): the items of a level without a node
    "args": tuple,
    "params": lambda c: tuple(x for x in c if x is not None),
    "start": list,
}


_first = operator.itemgetter(0)


def _callbacks_for(rules) -> dict:
    """The callback of every rule of the grammar (a rule the tables above do not know is a mistake here)."""
    first = _first
    out = {}
    for rule in rules:
        name = rule.alias or rule.options.template_source or rule.origin.name
        plan = _Plan(rule)
        if name in _SINGLE and len(rule.expansion) == 1 and plan.keep == ((0, 0),) and not plan.after:
            out[rule] = _single_callback(_SINGLE[name], rule.expansion[0].is_term)
        elif name in _BUILDERS:
            out[rule] = _node_callback(_BUILDERS[name], plan)
        elif name in _LEVELS:
            out[rule] = _level_callback(_LEVELS[name], plan)
        elif len(rule.expansion) == 1 and len(plan.keep) == 1 and not plan.after and (
                rule.options.expand1 or name.startswith("_")):
            out[rule] = first  # `?rule: x` or `_rule: x`: the child itself (Lark returns it, or splices its one child)
        elif rule.options.expand1 and not plan.after and [s.name for s in rule.expansion][::2] == ["LPAR", "RPAR"]:
            out[rule] = _paren_callback  # `?atom: "(" expr ")"`
        elif name.startswith("_"):
            out[rule] = _seq_callback(plan)
        else:
            raise AssertionError(f"cnndsl.syntax.parser: no callback for the rule {rule}")
    return out


@functools.lru_cache(maxsize=1)
def _build_callbacks() -> dict:
    return _callbacks_for(_build_lark_parser().rules)


def _ast_parser() -> tuple[Lark, dict]:
    with _parser_lock:
        return _build_lark_parser(), _build_callbacks()


def _check_depth(source: Source, tree) -> None:
    """The checker recurses; a deeper tree (`1+1+...+1`) would end in RecursionError. `tree` is Lark's."""
    from lark import Tree

    from .syntax_errors import diagnostic

    max_depth = limits.get("nesting")
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            meta = node.meta
            env = limits.LIMITS["nesting"].env
            raise ParseError([diagnostic(
                source, meta.line, meta.column, 1,
                f"this expression is nested too deeply (more than {max_depth} levels; the limit is {env})",
                f"simplify it, or compute part of it as a network parameter (or raise {env})",
            )])
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


# -- the parse of a valid file, without Lark --------------------------------------------------------------
#
# Lark's LALR loop, contextual lexer and Indenter post-lexer are generators and method calls per token; most
# of a parse was spent in them. A valid file is parsed here instead, by one loop over the same tables: the
# LALR parse table, the terminals each parser state's lexer accepts and how it retypes keywords, which Lark
# computed from the grammar (`_extract_tables`, kept in the private cache folder as plain data, so that a
# valid file is parsed without importing Lark at all). The loop does what Lark does, in the same order:
#
#   * the contextual lexer: at each position, the first terminal (in Lark's order: priority, longest
#     possible match, longest pattern, name) that the current state's lexer has and that matches. One regular
#     expression of all terminals finds the first in that order that matches; when its terminal is one the
#     state's lexer has, the state's lexer would have found it too (its terminals are a subset, in the same
#     order), else that lexer's own expression (compiled on first use) decides;
#   * the state's keyword retyping (a NAME that is `input` where `input` is expected), its ignored
#     terminals, Lark's line and column counting;
#   * the post-lexer: a line break after `|` dropped, no line breaks inside parentheses, _INDENT and _DEDENT
#     tokens with the positions of the line break they come from, the _DEDENTs and $END at the end;
#   * the LALR shifts and reductions, the same callbacks at each reduction.
#
# Anything else, a character no terminal matches, a token the state does not expect, a wrong indentation,
# stops it: the text is parsed again by Lark's own parser, whose errors become the diagnostics, exactly as
# before (a file with a mistake pays for Lark once; the text is never half-parsed in two ways).

_TABLES_FORMAT = 2  # bump when _extract_tables or the loop's reading of the tables changes


class _Fallback(Exception):
    """The fast parse met something it leaves to Lark (a syntax or indentation error)."""


class _Sym:
    __slots__ = ("filter_out", "is_term", "name")

    def __init__(self, name, is_term, filter_out):
        self.name, self.is_term, self.filter_out = name, is_term, filter_out


class _RuleOptions:
    __slots__ = ("empty_indices", "expand1", "keep_all_tokens", "template_source")

    def __init__(self, expand1, keep_all_tokens, empty_indices, template_source):
        self.expand1, self.keep_all_tokens = expand1, keep_all_tokens
        self.empty_indices, self.template_source = empty_indices, template_source


class _Rule:
    """What _callbacks_for reads of a Lark rule, rebuilt from the tables."""

    __slots__ = ("alias", "expansion", "options", "origin")

    def __init__(self, origin, alias, options, expansion):
        self.origin, self.alias, self.options = _Sym(origin, False, False), alias, _RuleOptions(*options)
        self.expansion = [_Sym(*sym) for sym in expansion]

    def __str__(self):
        return f"<{self.origin.name} : {' '.join(x.name for x in self.expansion)}>"


def _extract_tables(lark) -> dict | None:
    """Lark's parse table and contextual lexer as plain data (dicts, lists, strings, numbers), or None where
    they use something the loop does not do (regular expression flags, lexer callbacks of our own)."""
    from lark.lexer import UnlessCallback
    from lark.parsers.lalr_analysis import Shift

    frontend = lark.parser
    contextual = frontend.lexer.lexer
    table = frontend.parser._parse_table
    if frontend.lexer.postlexer is None or lark.lexer_conf.g_regex_flags or lark.lexer_conf.callbacks:
        return None
    terminals = contextual.root_lexer.terminals
    if any(t.pattern.flags for t in terminals):
        return None
    ignore = sorted(contextual.root_lexer.ignore_types)
    newline = sorted(contextual.root_lexer.newline_types)
    rules: list = []
    rule_index: dict = {}
    states: list = []
    state_ids = sorted(table.states)
    if state_ids != list(range(len(state_ids))):
        return None
    for st in state_ids:
        actions = {}
        for sym, (action, arg) in table.states[st].items():
            if action is Shift:
                actions[_plain(sym)] = int(arg)
            else:
                if id(arg) not in rule_index:
                    rule_index[id(arg)] = len(rules)
                    o = arg.options
                    rules.append((_plain(arg.origin.name), _plain(arg.alias),
                                  (bool(o.expand1), bool(o.keep_all_tokens), tuple(bool(b) for b in o.empty_indices),
                                   _plain(o.template_source)),
                                  tuple((_plain(x.name), bool(x.is_term), bool(getattr(x, "filter_out", False))) for x in arg.expansion)))
                actions[_plain(sym)] = ~rule_index[id(arg)]
        states.append(actions)
    lexers: list = []
    lexer_index: dict = {}
    state_lexer = []
    for st in state_ids:
        lexer = contextual.lexers[st]
        if id(lexer) not in lexer_index:
            scanner = lexer.scanner  # builds it, and lexer.callback
            unless = {}
            for type_, callback in lexer.callback.items():
                if type(callback) is not UnlessCallback or type_ in lexer.ignore_types:
                    return None
                words = callback.scanner.terminals
                if any(t.pattern.type != "str" or t.pattern.flags for t in words):
                    return None
                unless[_plain(type_)] = {_plain(t.pattern.value): _plain(t.name) for t in words}
            lexer_index[id(lexer)] = len(lexers)
            lexers.append((sorted(_plain(t.name) for t in scanner.terminals), [_plain(m.pattern) for m in scanner._mres], unless))
        state_lexer.append(lexer_index[id(lexer)])
    # Spaces and tabs (an ignored terminal) may be skipped in the same match as the token after them, where no
    # other terminal can start with one: any state's lexer would only skip them on its way to that token.
    import re

    blank = [t.name for t in terminals if t.name in contextual.root_lexer.ignore_types and t.pattern.to_regexp() == "[\t \x0c]+"]
    others = [t.pattern.to_regexp() for t in terminals if t.name not in blank]
    starts = [c + x for c in "\t \x0c" for x in ("", " ", "a", "1", "#", "\n", "(", '"', "-", "\\")]
    blank_first = bool(blank) and not any(re.match(regexp, text) for regexp in others for text in starts)
    return {
        "format": _TABLES_FORMAT,
        "blank": blank_first,
        "terminals": [(_plain(t.name), _plain(t.pattern.to_regexp())) for t in terminals],
        "ignore": [_plain(x) for x in ignore], "newline": [_plain(x) for x in newline],
        "lexers": lexers, "state_lexer": state_lexer,
        "states": states, "rules": rules,
        "start": int(table.start_states["start"]), "end": int(table.end_states["start"]),
        "paren": ([_plain(x) for x in frontend.lexer.postlexer.OPEN_PAREN_types],
                  [_plain(x) for x in frontend.lexer.postlexer.CLOSE_PAREN_types]),
    }


def _plain(value):
    """A str as itself, not a subclass (Lark's names may be its Tokens; marshal takes only plain data)."""
    return None if value is None else str.__str__(value) if isinstance(value, str) else value


def _lark_stamp() -> bytes:
    """What names the installed Lark (its __init__.py holds its version), found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("lark")
        return Path(spec.origin).read_bytes() if spec and spec.origin else b""
    except (OSError, ImportError, ValueError):
        return b""


def _tables_file(grammar: str) -> Path | None:
    """Where the tables are cached: beside Lark's cache, in the private folder (None: nowhere)."""
    folder = _cache_folder()
    if folder is None:
        return None
    brackets = f"{_OPEN_BRACKETS}\0{_CLOSE_BRACKETS}"  # the indenter's, which the tables hold too
    h = hashlib.sha256(f"{grammar}\0{sys.version_info[:2]}\0{_TABLES_FORMAT}\0{brackets}\0".encode())
    h.update(_lark_stamp())
    return folder / f"tables-{h.hexdigest()[:24]}.marshal"


def _read_tables(path: Path) -> dict | None:
    """The cached tables, if the file is a plain file of this user's own that no one else can write, and holds
    them (marshal: data only, nothing in it runs)."""
    import marshal

    try:
        with open(path, "rb") as f:
            found = os.fstat(f.fileno())
            if not _private(found, stat.S_ISREG) or not _private(path.lstat(), stat.S_ISREG):
                return None
            data = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("format") != _TABLES_FORMAT:
        return None
    return data


def _write_tables(path: Path, data: dict) -> None:
    import marshal
    import tempfile

    try:
        content = marshal.dumps(data)
    except ValueError:  # not plain data: not cached
        return
    with contextlib.suppress(OSError):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tables-")  # created 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class _Tables:
    """The tables of one process, ready for the loop: per state, its actions, its lexer's terminals, keyword
    retyping and (compiled on first use) expression."""

    def __init__(self, data: dict):
        import re

        self.re = re
        self.start, self.end = data["start"], data["end"]
        self.ignore = frozenset(data["ignore"])
        self.newline = frozenset(data["newline"])
        self.open_paren, self.close_paren = (frozenset(x) for x in data["paren"])
        alternatives = "|".join(f"(?P<{name}>{regexp})" for name, regexp in data["terminals"])
        if data["blank"]:  # spaces and tabs are skipped in the same match as the token after them
            alternatives = f"[\t \x0c]*+(?:{alternatives})"
        self.first = re.compile(alternatives).match
        lexers = data["lexers"]
        self.lexer_patterns = [patterns for _, patterns, _ in lexers]
        allowed = [frozenset(names) for names, _, _ in lexers]
        unless = [u for _, _, u in lexers]
        self.state_lexer = data["state_lexer"]
        self.allowed = [allowed[i] for i in self.state_lexer]
        self.unless = [unless[i] for i in self.state_lexer]
        self._matchers: dict = {}
        rules = [_Rule(*r) for r in data["rules"]]
        callbacks = _callbacks_for(rules)
        # a rule of one symbol whose value is that symbol's (`?rule: x`, `_rule: x`): no callback, the loop
        # only changes the state
        reductions = [(len(r.expansion), None if callbacks[r] is _first and len(r.expansion) == 1 else callbacks[r], r.origin.name)
                      for r in rules]
        # per state, each symbol's action: the next state (a shift, or the goto after a reduction), or the
        # reduction (size, callback, the rule's nonterminal)
        self.states = [{sym: act if act >= 0 else reductions[~act] for sym, act in actions.items()} for actions in data["states"]]

    def state_match(self, state: int):
        """The `match` of the expression of this state's lexer (Lark's, compiled on first use)."""
        i = self.state_lexer[state]
        found = self._matchers.get(i)
        if found is None:
            patterns = [self.re.compile(p) for p in self.lexer_patterns[i]]

            def found(text, pos, patterns=patterns):
                for mre in patterns:
                    m = mre.match(text, pos)
                    if m:
                        return m
                return None

            self._matchers[i] = found  # two threads may both compile it: equal results, either kept
        return found


@functools.lru_cache(maxsize=1)
def _load_tables() -> _Tables | None:
    grammar = _grammar_path().read_text(encoding="utf-8")
    path = _tables_file(grammar)
    data = _read_tables(path) if path is not None else None
    if data is None:
        data = _extract_tables(_build_lark_parser())
        if data is None:
            return None
        if path is not None:
            _write_tables(path, data)
    try:
        return _Tables(data)
    except (KeyError, TypeError, ValueError, IndexError):  # a cache of another shape: Lark's own tables
        data = _extract_tables(_build_lark_parser())
        return _Tables(data) if data is not None else None


def _tables() -> _Tables | None:
    with _parser_lock:
        return _load_tables()


def _fast_parse(text: str, tables: _Tables):
    """The root value of a parse of `text` (see above); _Fallback where Lark must parse it."""
    states, end_state = tables.states, tables.end
    allowed, unless, first_match = tables.allowed, tables.unless, tables.first
    ignore, newline, open_paren, close_paren = tables.ignore, tables.newline, tables.open_paren, tables.close_paren
    state_stack = [tables.start]
    value_stack: list = []

    def feed(tok, typ, states=states, state_stack=state_stack, value_stack=value_stack, end_state=end_state):
        """Shift `tok` (of terminal `typ`) after the reductions it causes; the root value once $END completes
        the parse, else None. A terminal the state has no action for: _Fallback."""
        try:
            actions = states[state_stack[-1]]
            while True:
                act = actions[typ]
                if act.__class__ is int:
                    state_stack.append(act)
                    value_stack.append(tok)
                    return None
                size, callback, origin = act
                if callback is None:  # a rule of one symbol that keeps its value: only the state changes
                    goto = states[state_stack[-2]][origin]
                    state_stack[-1] = goto
                else:
                    if size:
                        values = value_stack[-size:]
                        del state_stack[-size:]
                        del value_stack[-size:]
                    else:
                        values = []
                    value_stack.append(callback(values))
                    goto = states[state_stack[-1]][origin]
                    state_stack.append(goto)
                if goto == end_state:
                    return value_stack[-1]
                actions = states[goto]
        except (KeyError, IndexError, TypeError):  # no action (a syntax error); TypeError: tables of another shape
            raise _Fallback from None

    pos, end = 0, len(text)
    line, line_start = 1, 0
    paren, indents = 0, [0]
    previous = None  # the type of the last token that was not a dropped line break
    last = None  # the last token the post-lexer received
    fed = None  # the last token the parser received
    while pos < end:
        st = state_stack[-1]
        m = first_match(text, pos)
        if m is not None:
            typ = m.lastgroup
            pos = m.start(typ)  # after the spaces before it
        else:
            typ = None
        if typ not in allowed[st]:
            m = tables.state_match(st)(text, pos)
            if m is None:
                raise _Fallback
            typ = m.lastgroup
        value = m.group(typ)
        new_pos = m.end()
        if typ in ignore:
            if typ in newline:
                n = value.count("\n")
                if n:
                    line += n
                    line_start = pos + value.rindex("\n") + 1
            pos = new_pos
            continue
        t_line, t_col = line, pos - line_start + 1
        if typ in newline:
            n = value.count("\n")
            if n:
                line += n
                line_start = pos + value.rindex("\n") + 1
        pos = new_pos
        words = unless[st].get(typ)
        if words is not None:
            typ = words.get(value, typ)
        tok = _Tok(value)
        tok.type, tok.line, tok.column, tok.end_line, tok.end_column = typ, t_line, t_col, line, pos - line_start + 1
        if typ == "_NL":
            if previous == "PIPE":
                continue  # the pipeline continues on the next line
            previous = typ
            last = tok
            if paren > 0:
                continue
            if feed(tok, typ) is not None:
                raise _Fallback
            fed = tok
            indent_str = value.rsplit("\n", 1)[1]
            indent = indent_str.count(" ") + indent_str.count("\t") * 8
            if indent > indents[-1]:
                indents.append(indent)
                fed = _tok("_INDENT", indent_str, tok.line, tok.column, tok.end_line, tok.end_column)
                if feed(fed, "_INDENT") is not None:
                    raise _Fallback
            else:
                while indent < indents[-1]:
                    indents.pop()
                    fed = _tok("_DEDENT", indent_str, tok.line, tok.column, tok.end_line, tok.end_column)
                    if feed(fed, "_DEDENT") is not None:
                        raise _Fallback
                if indent != indents[-1]:
                    raise _Fallback  # Lark's path reports it
            continue
        previous = typ
        last = fed = tok
        if feed(tok, typ) is not None:
            raise _Fallback
        if typ in open_paren:
            paren += 1
        elif typ in close_paren:
            paren -= 1
            if paren < 0:
                raise _Fallback
    if last is None:
        raise _Fallback
    while len(indents) > 1:
        indents.pop()
        fed = _tok("_DEDENT", "", last.line, last.column, last.end_line, last.end_column)
        if feed(fed, "_DEDENT") is not None:
            raise _Fallback
    root = feed(_tok("$END", "", fed.line, fed.column, fed.end_line, fed.end_column), "$END")
    if root is None:
        raise _Fallback
    return root


def _lark_parse(text: str):
    """The root value of Lark's own parse of `text`, with the same callbacks: raises its errors."""
    lark, callbacks = _ast_parser()
    walk = lark.parse_interactive(text)
    walk.parser_state.parse_conf.callbacks = callbacks  # this parse's own configuration: the ast callbacks
    return walk.resume_parse()


def parse_tree(source: Source) -> list:
    """Parse a source into a list of top-level items (ast nodes)."""
    text = source.text
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    tables = _tables()
    state = _ParseState(limits.get("integer"))
    reset = _parse_state.set(state)
    try:
        try:
            if tables is None:
                raise _Fallback
            root = _fast_parse(text, tables)
        except _Fallback:
            state.error = None
            root = _lark_errors(source, text)
        if root._h > limits.get("nesting"):
            _check_depth(source, _build_lark_tree(text))  # Lark's tree, as before, to name the same place
        if state.error is not None:
            raise _indent_diagnostic(source, state.error)
        return root.items
    finally:
        _parse_state.reset(reset)


def _build_lark_tree(text: str):
    with _parser_lock:
        lark = _build_lark_parser()
    return lark.parse(text)


def _indent_diagnostic(source: Source, e: _IndentError) -> ParseError:
    from .syntax_errors import diagnostic

    t = e.token
    return ParseError([diagnostic(source, t.line, t.column, 1, e.message, e.hint)])


def _lark_errors(source: Source, text: str):
    """Lark's parse: its root value, or its failure as a diagnostic."""
    from lark.exceptions import UnexpectedInput

    from .syntax_errors import syntax_error

    try:
        return _lark_parse(text)
    except _IndentError as e:
        raise _indent_diagnostic(source, e) from None
    except UnexpectedInput as e:
        if isinstance(getattr(e, "__context__", None), _IndentError):
            raise _indent_diagnostic(source, e.__context__) from None
        raise ParseError([syntax_error(source, e, _build_lark_parser().terminals)]) from None


def network_name_from_file(name: str) -> str:
    """`my-net.cnn` -> `MyNet`: the class name of a bare pipeline file's network."""
    if name.startswith("<"):
        return "Net"
    import builtins

    from ..names import MODULE_NAMES, identifier_problem

    stem = Path(name).name.split(".")[0]
    parts = [p for p in "".join(c if c.isalnum() and c.isascii() else " " for c in stem).split() if p]
    ident = "".join(p[:1].upper() + p[1:] for p in parts) or "Net"
    ident = ident if ident[0].isalpha() else "Net" + ident
    # `none.cnn` would make `None`, `deform-conv.cnn` the generated `DeformConv`, `exception.cnn` a class that
    # hides a builtin: every file name gives a class name the checker accepts
    while identifier_problem(ident, "network") or hasattr(builtins, ident) or ident in MODULE_NAMES:
        ident += "Net"
    return ident


def parse(source: Source) -> ast.File:
    """Parse a whole file: its networks, blocks and imports; top-level layers form a network of their own."""
    items = parse_tree(source)
    networks, blocks, imports, modules, bare = [], [], [], [], []
    for item in items:
        {ast.Network: networks, ast.Block: blocks, ast.Import: imports, ast.ModuleDecl: modules}.get(type(item), bare).append(item)
    if bare:
        if networks:
            from .syntax_errors import diagnostic

            first = bare[0]
            raise ParseError([diagnostic(
                source, first.span.line, first.span.col, 1,
                "layers at the top level of a file that also defines networks",
                "indent these lines under a `network Name:` line, or move the networks to another file",
            )])
        span = Span(bare[0].span.line, bare[0].span.col, bare[-1].span.end_line, bare[-1].span.end_col)
        networks.append(ast.Network(network_name_from_file(source.name), (), tuple(bare), True, span))
    return ast.File(source.name, tuple(networks), tuple(blocks), tuple(imports), tuple(modules))
