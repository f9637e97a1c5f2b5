"""What the checked networks say about a place in the file: the layers written there, the block calls, the
shapes of named values. Shared by hovers and inlay hints."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..errors import Span
from ..ops.common import fmt_shape
from .analysis import Analysis, NetworkResult, same_file, span_contains

if TYPE_CHECKING:
    from ..ir.network import CheckedLayer


def layers_at(a: Analysis, line: int, col: int) -> list[tuple[CheckedLayer, NetworkResult]]:
    """The checked layers written at (line, col), the innermost place first; a block's layer once per call."""
    found = []
    for net in a.all_networks():
        for layer in net.layers:
            if same_file(layer.file or a.name, a.name) and span_contains(layer.span, line, col):
                found.append((layer, net))
    found.sort(key=lambda x: _size(x[0].span))
    if found:
        inner = found[0][0].span
        found = [x for x in found if x[0].span == inner]
    return found


def _size(span: Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_col - span.col if span.end_line == span.line else 10**6)


def steps(items) -> Iterator:
    for step in items:
        yield step
        for inner in step.nested():
            yield from steps(inner)


def calls_at(a: Analysis, span: Span) -> list[tuple[object, NetworkResult]]:
    """The checked calls of a block written at `span` (the call node's), each with its network."""
    found = []
    for net in a.all_networks():
        sequences = [net.steps] + [i.steps for i in net.instances if same_file(i.file, a.name)]
        for seq in sequences:
            for step in steps(seq):
                if step.kind == "call" and step.span == span:
                    found.append((step, net))
    return found


def value_shapes(a: Analysis, name: str, scope, kind: str = "value") -> list[str]:
    """The shapes a named value (or, with kind="group", a named group) takes, once per call of its block, as
    `(N, 64, 56, 56)`."""
    from ..syntax import ast

    shapes: list[str] = []
    for net in a.all_networks():
        if isinstance(scope, ast.Network):
            sequences = [net.steps] if net.node is scope else []
        else:
            sequences = [i.steps for i in net.instances if i.block == getattr(scope, "name", None) and same_file(i.file, a.name)]
        for seq in sequences:
            for step in steps(seq):
                if step.kind == kind and step.name == name:
                    shapes.append(fmt_shape(step.output_shape))
    return shapes


def distinct(items: list[str], most: int = 4) -> str:
    """`a`, or `a | b | c`, or `a | b | ... (7 shapes)`: each once, in order."""
    unique = list(dict.fromkeys(items))
    if len(unique) <= most:
        return " | ".join(unique)
    return " | ".join(unique[:most]) + f" | ... ({len(unique)} shapes)"
