"""Inlay hints: the shape each line's last layer (or block call) produces, at the end of the line's code."""

from __future__ import annotations

from ..ops.common import fmt_shape
from .analysis import Analysis, same_file
from .facts import distinct, steps

SHAPES_SHOWN = 1  # a block's line called with different shapes shows this many, then how many there are


def shape_hints(a: Analysis, first: int, last: int) -> list[tuple[int, int, str]]:
    """(line, column after the code, label) for each line from `first` to `last` (1-based) where a layer or
    block call ends; the label is the output shape, `(N, 64, 56, 56)`, each distinct shape once."""
    ends: dict[int, tuple[int, list[str]]] = {}  # line -> (end column of the last thing on it, its shapes)

    def seen(span, shape) -> None:
        if span is None or span.line != span.end_line or not first <= span.line <= last:
            return
        col, shapes = ends.get(span.line, (0, []))
        if span.end_col > col:
            ends[span.line] = (span.end_col, [fmt_shape(shape)])
        elif span.end_col == col:
            shapes.append(fmt_shape(shape))

    for net in a.all_networks():
        for layer in net.layers:
            if same_file(layer.file or a.name, a.name):
                seen(layer.span, layer.output_shape)
        for seq in [net.steps] + [i.steps for i in net.instances if same_file(i.file, a.name)]:
            for step in steps(seq):
                if step.kind == "call":
                    seen(step.span, step.output_shape)
    out = []
    for line in sorted(ends):
        col, shapes = ends[line]
        out.append((line, _code_end(a.source.line_text(line)), distinct(shapes, SHAPES_SHOWN)))
    return out


def _code_end(text: str) -> int:
    """The 1-based column just after the last character of code on a line (before a comment)."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            text = text[:i]
            break
    return len(text.rstrip()) + 1
