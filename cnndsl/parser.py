"""Text -> syntax tree. Lark (LALR, positions) does the parsing; every Lark failure becomes a Diagnostic."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
import sys
import threading
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedInput, VisitError
from lark.indenter import Indenter

from . import ast, limits
from .errors import ParseError, Source, Span
from .syntax_errors import diagnostic, syntax_error


class _IndentError(Exception):
    def __init__(self, token: Token, message: str, hint: str | None = None):
        self.token, self.message, self.hint = token, message, hint


class CnnIndenter(Indenter):
    """Python-style indentation; a line ending in `|` continues on the next line."""

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "CALL"]
    CLOSE_PAREN_types = ["RPAR"]
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


_GRAMMAR_NAME = "cnndsl.lark"


def _grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "grammar" / _GRAMMAR_NAME, here.parent / "grammar" / _GRAMMAR_NAME):
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
    grammar = _grammar_path().read_text(encoding="utf-8")
    cache = _cache_file(grammar)
    parser = Lark(
        grammar,
        parser="lalr",
        postlex=CnnIndenter(),
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


def _span(meta_or_token) -> Span:
    m = meta_or_token
    return Span.model_construct(line=m.line, col=m.column, end_line=m.end_line, end_col=m.end_column)


def _parts(children):
    """Split a call's children into (call arguments, layer args node, `as` name)."""
    *rest, args, name = children
    return tuple(c for c in rest if c is not None and not isinstance(c, Token)), args, name


def _integer(text: str, line: int, col: int) -> int:
    """An integer literal, refused beyond the `integer` limit (Python will not even convert 4300 digits)."""
    digits = text.lstrip("0") or "0"
    n = int(digits) if len(digits) <= 4000 else 1 << int(len(digits) * 3.33)
    found = limits.problem("integer", n, "this number")
    if found:
        at = Token("INT", text)
        at.line, at.column = line, col
        raise _IndentError(at, *found)
    return n


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> ast nodes, bottom up."""

    # expressions
    def int(self, meta, c):
        return ast.Num.model_construct(value=_integer(str(c[0]), meta.line, meta.column), span=_span(meta))

    def float(self, meta, c):
        return ast.Num.model_construct(value=float(c[0]), span=_span(meta))

    def dims(self, meta, c):
        items = []
        col = meta.column
        for part in str(c[0]).split("x"):
            items.append(ast.Num.model_construct(value=_integer(part, meta.line, col), span=Span(line=meta.line, col=col, end_line=meta.line, end_col=col + len(part))))
            col += len(part) + 1
        return ast.Tuple.model_construct(items=tuple(items), span=_span(meta))

    def name(self, meta, c):
        return ast.Name.model_construct(id=str(c[0]), span=_span(meta))

    def string(self, meta, c):
        return ast.Str.model_construct(value=str(c[0])[1:-1], span=_span(meta))

    def tuple(self, meta, c):
        return ast.Tuple.model_construct(items=tuple(x for x in c if x is not None), span=_span(meta))

    def binop(self, meta, c):
        return ast.BinOp.model_construct(op=str(c[1]), left=c[0], right=c[2], span=_span(meta))

    def neg(self, meta, c):
        return ast.Neg.model_construct(operand=c[1], span=_span(meta))

    def compare(self, meta, c):
        return ast.Compare.model_construct(op=str(c[1]), left=c[0], right=c[2], span=_span(meta))

    def or_(self, meta, c):
        return ast.BoolOp.model_construct(op="or", left=c[0], right=c[1], span=_span(meta))

    def and_(self, meta, c):
        return ast.BoolOp.model_construct(op="and", left=c[0], right=c[1], span=_span(meta))

    def not_(self, meta, c):
        return ast.Not.model_construct(operand=c[0], span=_span(meta))

    def init_call(self, meta, c):
        args = tuple(x for x in c[1:] if x is not None)
        return ast.InitCall.model_construct(name=str(c[0])[:-1], args=args, span=_span(meta))

    # arguments
    def keyword(self, meta, c):
        return ast.Keyword.model_construct(key=str(c[0]), key_span=_span(c[0]), value=c[1], span=_span(meta))

    def channels(self, meta, c):
        return ast.Channels.model_construct(in_=c[0], out=c[1], span=_span(meta))

    def positional(self, meta, c):
        return ast.Positional.model_construct(value=c[0], span=_span(meta))

    positional_full = positional

    def args(self, meta, c):
        return tuple(c)

    # pipelines
    def layer(self, meta, c):
        op, args, name = c
        return ast.Layer.model_construct(op=str(op), op_span=_span(op), args=args or (), name=name and str(name), span=_span(meta))

    def call(self, meta, c):
        call_args, args, name = _parts(c[1:])
        return ast.Call.model_construct(
            callee=str(c[0])[:-1], call_args=call_args, args=args or (), name=name and str(name), span=_span(meta)
        )

    def group(self, meta, c):
        pipeline, args, name = c
        return ast.Group.model_construct(pipeline=pipeline, args=args or (), name=name and str(name), span=_span(meta))

    def pipeline(self, meta, c):
        return ast.Pipeline.model_construct(stages=tuple(x for x in c if not isinstance(x, Token)), span=_span(meta))

    # statements
    def input_stmt(self, meta, c):
        return ast.Input.model_construct(value=c[0], span=_span(meta))

    def init_stmt(self, meta, c):
        return ast.Init.model_construct(op=str(c[0]), op_span=_span(c[0]), rules=tuple(c[1:]), span=_span(meta))

    def output_stmt(self, meta, c):
        return ast.Output.model_construct(names=tuple(str(x) for x in c), span=_span(meta))

    def assign(self, meta, c):
        return ast.Assign.model_construct(name=str(c[0]), pipeline=c[1], span=_span(meta))

    def labeled(self, meta, c, condition=None):
        label, args, *rest = c
        common = dict(label=str(label), label_span=_span(label), args=args or (), condition=condition, span=_span(meta))
        if len(rest) == 1 and isinstance(rest[0], ast.Pipeline):
            return ast.Labeled.model_construct(pipeline=rest[0], body=(), **common)
        return ast.Labeled.model_construct(pipeline=None, body=tuple(rest), **common)

    def labeled_if(self, meta, c):
        """`add if cond:` or `split 2 if cond:`, parsed as a pipeline: it must be one unnamed layer."""
        pipeline, condition, *rest = c
        head = pipeline.stages[0]
        if len(pipeline.stages) != 1 or not isinstance(head, ast.Layer) or head.name is not None:
            at = Token("_IF", "if")
            at.line, at.column = condition.span.line, condition.span.col
            raise _IndentError(at, "a condition before `:` belongs to a merge, as in `add if cond:`",
                               "a branch's condition goes at the end of its line, without `:`")
        label = Token("NAME", head.op)
        label.line, label.column, label.end_line, label.end_column = (head.op_span.line, head.op_span.col,
                                                                      head.op_span.end_line, head.op_span.end_col)
        return self.labeled(meta, [label, head.args or None, *rest], condition=condition)

    def line(self, meta, c):
        return ast.Line.model_construct(pipeline=c[0], condition=c[1], span=_span(meta))

    # files
    def param(self, meta, c):
        return ast.Param.model_construct(name=str(c[0]), default=c[1], span=_span(meta))

    def params(self, meta, c):
        return tuple(x for x in c if x is not None)

    def network(self, meta, c):
        return ast.Network.model_construct(name=str(c[0]), params=c[1] or (), body=tuple(c[2:]), span=_span(meta))

    def block(self, meta, c):
        return ast.Block.model_construct(name=str(c[0]), params=c[1] or (), body=tuple(c[2:]), span=_span(meta))

    def import_stmt(self, meta, c):
        return ast.Import.model_construct(path=str(c[0])[1:-1], span=_span(meta))

    def start(self, meta, c):
        return list(c)


MAX_DEPTH = limits.LIMITS["nesting"].default  # the default; limits.get("nesting") is the one in force


def _check_depth(source: Source, tree) -> None:
    """The transformer and the checker recurse; a deeper tree (`1+1+...+1`) would end in RecursionError."""
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


def parse_tree(source: Source) -> list:
    """Parse a source into a list of top-level items (ast nodes)."""
    text = source.text
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = lark_parser().parse(text)
        _check_depth(source, tree)
        return _ToAst().transform(tree)
    except _IndentError as e:
        t = e.token
        raise ParseError([diagnostic(source, t.line, t.column, 1, e.message, e.hint)]) from None
    except UnexpectedInput as e:
        if isinstance(getattr(e, "__context__", None), _IndentError):
            t = e.__context__.token
            raise ParseError([diagnostic(source, t.line, t.column, 1, e.__context__.message, e.__context__.hint)]) from None
        raise ParseError([syntax_error(source, e, lark_parser().terminals)]) from None
    except VisitError as e:
        if isinstance(e.orig_exc, _IndentError):  # a located mistake the transformer found (labeled_if)
            t = e.orig_exc.token
            raise ParseError([diagnostic(source, t.line, t.column, 1, e.orig_exc.message, e.orig_exc.hint)]) from None
        raise e.orig_exc from None  # pragma: no cover - nothing else is raised by the transformer


def network_name_from_file(name: str) -> str:
    """`my-net.cnn` -> `MyNet`: the class name of a bare pipeline file's network."""
    if name.startswith("<"):
        return "Net"
    import builtins

    from .names import MODULE_NAMES, identifier_problem

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
    networks, blocks, imports, bare = [], [], [], []
    for item in items:
        {ast.Network: networks, ast.Block: blocks, ast.Import: imports}.get(type(item), bare).append(item)
    if bare:
        if networks:
            first = bare[0]
            raise ParseError([diagnostic(
                source, first.span.line, first.span.col, 1,
                "layers at the top level of a file that also defines networks",
                "indent these lines under a `network Name:` line, or move the networks to another file",
            )])
        span = bare[0].span.model_copy(update={"end_line": bare[-1].span.end_line, "end_col": bare[-1].span.end_col})
        networks.append(ast.Network.model_construct(name=network_name_from_file(source.name), body=tuple(bare), implicit=True, span=span))
    return ast.File.model_construct(name=source.name, networks=tuple(networks), blocks=tuple(blocks), imports=tuple(imports))
