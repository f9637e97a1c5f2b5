"""What can be checked of a block that nothing calls (a file of blocks only, a library; a block no network uses):
its ops, the blocks it calls and its layers' options exist. Its shapes and values need a call, which gives them;
so does every other check (cnndsl.semantics.scope), which these never contradict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Source, did_you_mean, first_line
from ..ops import REGISTRY
from ..syntax import ast
from .merges import JOINS
from .resolve import LocatedError, unknown_option

if TYPE_CHECKING:
    from ..errors import Diagnostic


def check_uncalled(blocks: dict[str, tuple], called: set[str], source: Source) -> list[Diagnostic]:
    """Diagnostics for the blocks defined in `source` that no checked network called."""
    from .checker import _diagnostic

    found: list[Diagnostic] = []
    for name, (block, src) in blocks.items():
        if name in called or src.name != source.name or not isinstance(block, ast.Block):
            continue
        words = {p.name for p in block.params} | _values(block.body)  # a parameter may hold an op (`act=relu`)
        for error in _walk(block.body, words, blocks):
            found.append(_diagnostic(src, error.message, error.span, error.hint))
    return found


def _values(statements) -> set[str]:
    """The names a body gives values: `e1 = ...`, `a, b = ...`, `input high, low`, taps in its groups."""
    names: set[str] = set()
    for s in statements:
        if isinstance(s, ast.Assign):
            names |= set(s.names)
        elif isinstance(s, ast.Input):
            names |= {e.id for e in (s.value, *s.more) if isinstance(e, ast.Name)}
        elif isinstance(s, ast.Labeled) and s.body:
            names |= _values(s.body)
    return names


def _walk(statements, words: set[str], blocks: dict):
    for s in statements:
        if isinstance(s, (ast.Line, ast.Assign)):
            yield from _pipeline(s.pipeline, words, blocks)
        elif isinstance(s, ast.Labeled):
            if s.pipeline is not None:
                yield from _pipeline(s.pipeline, words, blocks)
            yield from _walk(s.body or (), words, blocks)


def _pipeline(p: ast.Pipeline, words: set[str], blocks: dict):
    for stage in p.stages:
        if isinstance(stage, ast.Group):
            yield from _pipeline(stage.pipeline, words, blocks)
        elif isinstance(stage, ast.Call) and stage.callee not in blocks and stage.callee not in JOINS:
            if stage.callee not in REGISTRY:  # (an op called like a block is reported where the block is called)
                yield LocatedError(f"unknown block `{stage.callee}`", first_line(stage.span),
                                   did_you_mean(stage.callee, [*blocks, *JOINS]) or "define it with `block Name(...):` or import it")
        elif isinstance(stage, ast.Layer) and stage.op not in words and stage.op not in blocks:
            spec = REGISTRY.get(stage.op)
            if spec is None:
                yield LocatedError(f"unknown op `{stage.op}`", stage.op_span,
                                   did_you_mean(stage.op, [*REGISTRY, *blocks, *words]) or "see the op catalog in docs/LANGUAGE.md")
                continue
            for arg in stage.args:
                if isinstance(arg, ast.Keyword) and arg.key != "init" and spec.option(arg.key) is None:
                    yield unknown_option(spec, stage.op, arg)
