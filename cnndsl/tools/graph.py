"""Checked network -> a picture: Graphviz DOT text, and SVG through Graphviz's `dot` (`cnndsl graph`).

Layers are nodes and tensors are edges, labelled with their shapes without the batch (`64×56×56`). Merges
(`add`, `cat`, `mul`, `split`) and joins (`cat(e1)`) are nodes of their own with one edge per branch; an
identity branch is an edge straight from the merge's input. Named groups are clusters; a block call is one
node, or with `expand` a cluster of its layers. Named values and pooling indices are edges from where they
were made. The text depends only on the network, so the same network always gives the same bytes, and no
user text reaches it unquoted. Never imports torch."""

from __future__ import annotations

import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from ..errors import UsageError
from ..ir.network import (
    CallStep,
    CheckedLayer,
    CheckedNetwork,
    GroupStep,
    JoinStep,
    LayerStep,
    MergeStep,
    OutputStep,
    Shape,
    Step,
    StepVisitor,
    UseStep,
    ValueStep,
)
from ..ir.values import value
from ..ops.catalog import fact

_HEADER = (
    'rankdir=TB; fontname="Helvetica"; fontsize=11; nodesep=0.3; ranksep=0.35; labeljust=l;',
    'node [fontname="Helvetica", fontsize=10, margin="0.12,0.04", height=0.3, penwidth=0.8];',
    'edge [fontname="Helvetica", fontsize=9, fontcolor="#444444", color="#666666", arrowsize=0.6];',
)
_NODE = {  # node kind -> its look (the kind is also the node's SVG class)
    "layer": 'shape=box, style="rounded,filled", fillcolor="#dbe8f6"',
    "block": 'shape=box3d, style=filled, fillcolor="#e6dcf5"',
    "merge": 'shape=ellipse, style=filled, fillcolor="#fbe1bd"',
    "split": 'shape=ellipse, style=filled, fillcolor="#fbe1bd"',
    "io": 'shape=oval, style=filled, fillcolor="#e4e4e4"',
}
_CLUSTER = {  # cluster kind -> its look
    "group": 'style="rounded,dashed"; color="#888888"',
    "repeat": 'style="rounded,bold"; color="#c98a2b"',
    "block": 'style="rounded,filled"; color="#b9a6dc"; fillcolor="#f6f2fc"',
}
def quote(text: str) -> str:
    """`text` as a DOT string: double-quoted, with backslashes, quotes and line breaks escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def shape_text(shape: Shape) -> str:
    """A shape without the batch, as an edge label: `64×56×56`; `?` for what is unknown."""
    if shape is None:
        return "?"
    return "×".join("?" if d is None else str(value(d)) for d in shape)


def _literal(v) -> str:
    """An argument as the language writes it: `3x5` for a tuple, `false` for False."""
    if isinstance(v, tuple):
        return "x".join(_literal(x) for x in v)
    v = value(v)
    return str(v).lower() if isinstance(v, bool) else str(v)


def op_text(layer: CheckedLayer) -> str:
    """The op and its main arguments, short, as its op's label says (cnndsl/ops/facts.py, Label):
    `conv 64 k7 s2 p3`, `maxpool 3 s2`, `linear 1000`."""
    return fact(layer, "label")


def call_text(block: str, call_args) -> str:
    """A block call as written: `BasicBlock(128, stride=2)`."""
    args = ", ".join(_literal(v) if k is None else f"{k}={_literal(v)}" for k, v in call_args)
    return f"{block}({args})"


class Tensor(NamedTuple):
    """A tensor being drawn: the node that made it, its shape, and its name where it is a named value."""

    node: str
    shape: Shape
    name: Optional[str] = None


@dataclass
class _Dot(StepVisitor):
    """The DOT text being written: nodes in their clusters, edges after them all (an edge written inside a
    cluster would pull its nodes into that cluster)."""

    net: CheckedNetwork
    expand: bool
    lines: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    depth: int = 1
    counts: dict[str, int] = field(default_factory=dict)
    values: dict[str, Tensor] = field(default_factory=dict)  # named values in the module being drawn
    indices: dict[str, str] = field(default_factory=dict)  # pooling indices variable -> the pool's node

    def new_id(self, stem: str) -> str:
        self.counts[stem] = self.counts.get(stem, 0) + 1
        return f"{stem}{self.counts[stem]}"

    def line(self, text: str) -> None:
        self.lines.append("    " * self.depth + text)

    def node(self, label: str, kind: str) -> str:
        node = self.new_id("n")
        self.line(f'{node} [label={quote(label)}, class="{kind}", {_NODE[kind]}];')
        return node

    def edge(self, src: Tensor, dst: str, **attrs: str) -> None:
        label = shape_text(src.shape) if src.name is None else f"{src.name}: {shape_text(src.shape)}"
        extra = "".join(f", {k}={v}" for k, v in attrs.items())
        self.edges.append(f"{src.node} -> {dst} [label={quote(label)}{extra}];")

    def link(self, src: Tensor, label: str, kind: str, shape: Shape) -> Tensor:
        """A node fed by `src`, and the tensor it makes."""
        node = self.node(label, kind)
        self.edge(src, node)
        return Tensor(node, shape)

    @contextmanager
    def cluster(self, label: str, kind: str):
        self.line(f"subgraph {quote(self.new_id('cluster_'))} {{")
        self.depth += 1
        self.line(f"label={quote(label)}; {_CLUSTER[kind]};")
        yield
        self.depth -= 1
        self.line("}")

    @contextmanager
    def scope(self):
        """A block's body: its named values and indices are its own."""
        saved = self.values, self.indices
        self.values, self.indices = {}, {}
        yield
        self.values, self.indices = saved

    # -- steps ------------------------------------------------------------------------------------

    def steps(self, steps: tuple[Step, ...], cur: Tensor, prefix: str) -> Tensor:
        """Draw steps reading `cur`; `prefix` is the state_dict path of the module they are in. Unless `expand`,
        a run of copies (the same layers or block calls on the same shapes, one after another) is drawn once,
        with its count: `layer1.1 … layer1.2` `Bottleneck(64) ×2`."""
        if self.expand:
            return self.flow(steps, cur, prefix)
        for i, period, count in _runs(self.net, steps, cur.shape):
            if count == 1:
                cur = self.flow(steps[i:i + 1], cur, prefix)
            else:
                cur = self.folded(steps[i:i + period], steps[i + period * (count - 1):i + period * count], count, cur, prefix)
        return cur

    def folded(self, first: tuple[Step, ...], last: tuple[Step, ...], count: int, cur: Tensor, prefix: str) -> Tensor:
        """`count` copies of `first` drawn once: one node for a single layer or call, else a cluster."""
        if len(first) == 1 and isinstance(first[0], (LayerStep, CallStep)):
            step, end = first[0], last[0]
            text = op_text(step.layer) if isinstance(step, LayerStep) else \
                call_text(self.net.instances[step.instance].block, step.call_args)
            kind = "layer" if isinstance(step, LayerStep) else "block"
            return self.link(cur, f"{prefix}{step.name} … {prefix}{end.name}\n{text} ×{count}", kind, step.output_shape)
        names = [step.name for step in (*first, *last) if step.declares]
        span = f"{prefix}{names[0]} … {prefix}{names[-1]} " if names else ""
        with self.cluster(f"{span}×{count}", "repeat"):
            return self.flow(first, cur, prefix)

    def visit_value(self, step: ValueStep, cur: Tensor, prefix: str) -> Tensor:
        cur = self.values[step.name] = cur._replace(name=step.name)
        return cur

    def visit_use(self, step: UseStep, cur: Tensor, prefix: str) -> Tensor:
        return self.values[step.name]

    def visit_output(self, step: OutputStep, cur: Tensor, prefix: str) -> Tensor:
        return cur  # to_dot draws the outputs

    def visit_group(self, step: GroupStep, cur: Tensor, prefix: str) -> Tensor:
        with self.cluster(prefix + step.name, "group"):
            return self.steps(step.children, cur, f"{prefix}{step.name}.")

    def visit_layer(self, step: LayerStep, cur: Tensor, prefix: str) -> Tensor:
        out = self.link(cur, f"{step.layer.name}\n{op_text(step.layer)}", "layer", step.output_shape)
        if step.indices is not None:
            self.indices[step.indices] = out.node
        if step.unpool in self.indices:
            self.edges.append(f'{self.indices[step.unpool]} -> {out.node} [label="indices", style=dashed];')
        if step.layer.forward in ("interpolate", "crop", "pad_to") and step.layer.args[0] in self.values:  # `like=e1`
            self.edges.append(f'{self.values[step.layer.args[0]].node} -> {out.node} [label="size", style=dashed];')
        return out

    def visit_call(self, step: CallStep, cur: Tensor, prefix: str) -> Tensor:
        instance = self.net.instances[step.instance]
        path, called = prefix + step.name, call_text(instance.block, step.call_args)
        inputs = [self.values[v] if v else cur for v in step.inputs] or [cur]  # a block's named inputs
        if not self.expand:
            out = self.link(inputs[0], f"{path}\n{called}", "block", step.output_shape)
            for extra in inputs[1:]:
                self.edge(extra, out.node)
        else:
            with self.cluster(f"{path}: {called}", "block"), self.scope():
                for name, tensor in zip(instance.inputs, inputs):
                    self.values[name] = tensor._replace(name=name)
                out = self.steps(instance.steps, inputs[0], path + ".")
                returned = next((s.values for s in instance.steps if isinstance(s, OutputStep)), ())
                results = [self.values[v] for v in returned]
        if step.outputs:  # `a, b = Two()`: each output a value of the caller
            for i, name in enumerate(step.outputs):
                self.values[name] = (results[i] if self.expand else out)._replace(name=name)
            return self.values[step.outputs[-1]]
        return out

    def visit_merge(self, step: MergeStep, cur: Tensor, prefix: str) -> Tensor:
        """A merge node fed by each branch; an identity branch (or a conditional one that did not hold) is
        an edge from the input. Where the merge's own condition did not hold, only its first branch runs."""
        if not step.active:
            return self.branch(step.branches[0], cur, prefix)
        if step.merge == "split":
            channels = None if cur.shape is None or cur.shape[0] is None else value(cur.shape[0]) // step.parts
            part = None if cur.shape is None else (channels, *cur.shape[1:])
            cur = self.link(cur, f"split {step.parts}", "split", part)
        results = [self.branch(branch, cur, prefix) for branch in step.branches]
        node = self.node("cat" if step.merge == "split" else step.merge, "merge")
        for result in results:
            self.edge(result, node)
        return Tensor(node, step.output_shape)

    def branch(self, branch, cur: Tensor, prefix: str) -> Tensor:
        if branch.identity or not branch.active:
            return cur
        return self.steps(branch.steps, cur, prefix)

    def visit_join(self, step: JoinStep, cur: Tensor, prefix: str) -> Tensor:
        """`cat(e1)`: a merge node fed by the flowing tensor and by each named value."""
        node = self.node(step.merge, "merge")
        for src in (cur, *(self.values[name] for name in step.values)):
            self.edge(src, node)
        return Tensor(node, step.output_shape)


_MOST_PERIOD = 8  # the longest run of steps that is looked for as a repeated unit


def _runs(net: CheckedNetwork, steps: tuple[Step, ...], shape: Shape) -> list[tuple[int, int, int]]:
    """The steps as runs (start, period, count): copies of `period` steps that agree in their ops, arguments and
    shapes (the input's included) drawn once, chosen to draw the fewest nodes; where two choices draw as many,
    the one whose copies start with a layer that has weights or a block (VGG's `conv | bn | relu` x3, not
    `bn | relu | conv`)."""
    keys, at = [], shape
    for step in steps:
        keys.append(_key(net, step, at))
        at = step.output_shape
    n = len(keys)
    best: list[tuple[float, list]] = [(0.0, [])] * (n + 1)  # from i to the end: (cost, runs)
    for i in range(n - 1, -1, -1):
        cost, runs = best[i + 1]
        choice = (cost + 1, [(i, 1, 1), *runs])
        for period in range(1, min(_MOST_PERIOD, (n - i) // 2) + 1):
            unit = keys[i:i + period]
            if any(k is None for k in unit):
                break
            count = 1
            while keys[i + count * period:i + (count + 1) * period] == unit:
                count += 1
                cost, runs = best[i + count * period]
                weighted = unit[0][0] != "layer" or unit[0][1]
                total = cost + period + (0 if weighted else 0.01)
                if total < choice[0]:
                    choice = (total, [(i, period, count), *runs])
        best[i] = choice
    return best[0][1]


def _key(net: CheckedNetwork, step: Step, shape: Shape):
    """What two copies of a step share: its kind, op and arguments (a call's block and arguments), and its input
    and output shapes; None for a step that cannot be folded (named values, calls with several inputs or outputs)."""
    shapes = (shape_text(shape), shape_text(step.output_shape))
    if isinstance(step, LayerStep) and step.indices is None and step.unpool is None and step.layer.forward == "call":
        return ("layer", bool(step.layer.params), op_text(step.layer), *shapes)
    if isinstance(step, CallStep) and not step.inputs and not step.outputs:
        return ("call", call_text(net.instances[step.instance].block, step.call_args), *shapes)
    if isinstance(step, GroupStep):
        return ("group", _keys(net, step.children, shape), *shapes)
    if isinstance(step, MergeStep):
        branches = tuple((b.identity, b.active, b.condition is not None, _keys(net, b.steps, shape)) for b in step.branches)
        return ("merge", step.merge, step.parts, step.active, branches, *shapes)
    return None


def _keys(net: CheckedNetwork, steps: tuple[Step, ...], shape: Shape):
    keys = []
    for step in steps:
        key = _key(net, step, shape)
        if key is None:
            return object()  # never equal: a part that cannot be compared is never folded
        keys.append(key)
        shape = step.output_shape
    return tuple(keys)


def to_dot(net: CheckedNetwork, expand: bool = False) -> str:
    """The network as Graphviz DOT text; `expand` draws the layers inside each block call."""
    dot = _Dot(net, expand)
    start = Tensor(dot.node("input", "io"), net.input_shape)
    end = dot.steps(net.steps, start, "")
    names = next((step.values for step in net.steps if isinstance(step, OutputStep)), ())
    results = [(f"output {name}", dot.values[name]) for name in names] or [("output", end)]
    for label, result in results:
        dot.edge(result, dot.node(label, "io"))
    header = ["    " + line for line in _HEADER]
    return "\n".join([f"digraph {quote(net.name)} {{", *header, *dot.lines, *("    " + e for e in dot.edges), "}", ""])


def render_svg(dot: str) -> str:
    """SVG from DOT text, through Graphviz's `dot -Tsvg`; a UsageError when it is missing or fails."""
    return render(dot, "svg").decode("utf-8")


def render(dot: str, fmt: str) -> bytes:
    """A picture in Graphviz's format `fmt` (svg, png) from DOT text; a UsageError when `dot` is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        raise UsageError("drawing SVG needs Graphviz's `dot`, which is not installed: install Graphviz "
                         "(`apt-get install graphviz`, `brew install graphviz`), or write DOT with `-o net.dot`")
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True)
    except OSError as e:
        raise UsageError(f"cannot run Graphviz's dot ({exe}): {e.strerror or e}") from None
    if proc.returncode != 0:
        problem = next(iter(proc.stderr.decode("utf-8", "replace").strip().splitlines()), f"exit status {proc.returncode}")
        raise UsageError(f"Graphviz's dot failed: {problem}")
    return proc.stdout
