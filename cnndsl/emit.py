"""Steps -> the body of a generated class: `__init__` declarations and `forward` lines.

A conditional part of a block (a branch under `if`) is rendered into a *slot*: a marker line in the class
text and, where the branch was active in the instance being rendered, the lines that replace it. Instances
of one block whose texts agree (slots filled by any of them) share one class."""

from __future__ import annotations

from dataclasses import dataclass, field

from .names import BUILTINS, Namespace
from .network import (CallStep, CheckedLayer, GroupStep, JoinStep, LayerStep, MergeStep, OutputStep, Step, StepVisitor, UseStep,
                      ValueStep)
from .ops.common import fmt_shape
from .pyexpr import expr_code
from .pyfmt import Call, Writer, lit


FORWARD_GLOBALS = ("self", "torch", "nn", *BUILTINS)  # what a forward reads besides its own variables


def layer_expr(layer: CheckedLayer) -> Call:
    """The constructor call of a layer's module."""
    return Call(layer.module, [lit(a) for a in layer.args] + [f"{k}={lit(v)}" for k, v in layer.kwargs])


class _ModuleExpr(StepVisitor):
    """The module a step declares, as an expression: a layer's constructor, a block's class, an nn.Sequential."""

    def __init__(self, body: "Body"):
        self.body = body

    def visit_layer(self, step: LayerStep) -> Call:
        layer = step.layer
        if layer.helper:
            self.body.helpers.add(layer.helper)
        self.body.imports.update(layer.imports)
        return layer_expr(layer)

    def visit_call(self, step: CallStep) -> Call:
        args = [lit(step.in_channels)] + [lit(v) if k is None else f"{k}={lit(v)}" for k, v in step.call_args]
        return Call(self.body.class_of[step.instance], args)

    def visit_group(self, step: GroupStep) -> Call:
        return Call("nn.Sequential", [self.visit(child) for child in step.children])


@dataclass
class Body(StepVisitor):
    """The text of one class body being rendered: `__init__` and `forward`, and the slots. Each step's
    `visit_<kind>` writes its lines and returns the variable that holds the tensor after it."""

    init: Writer
    forward: Writer
    class_of: dict[int, str]  # block instance -> its generated class
    comments: bool  # shape comments (the network's class)
    slots: dict[int, tuple[list[str], list[str]] | None] = field(default_factory=dict)
    helpers: set[str] = field(default_factory=set)
    imports: set[str] = field(default_factory=set)
    # the forward's variables: the tensor flowing through (`x`), temporaries, and the user's values, each
    # with a name of its own (a value named `x` or `branch1` is renamed, never confused with a temporary)
    ns: Namespace = field(default_factory=lambda: Namespace(FORWARD_GLOBALS))
    locals: dict[str, str] = field(default_factory=dict)
    main: str = ""

    def __post_init__(self):
        self.main = self.ns.claim("x")
        self._modules = _ModuleExpr(self)

    def temp(self, stem: str) -> str:
        return self.ns.fresh(stem)

    def local(self, name: str, kind: str = "value") -> str:
        """The variable that holds the user's value `name` (kind "value") or a pool's indices (kind "indices")."""
        key = f"{kind}:{name}"
        if key not in self.locals:
            self.locals[key] = self.ns.claim(name)
        return self.locals[key]

    def comment(self, step: Step) -> str:
        return f"  # {fmt_shape(step.output_shape)}" if self.comments and step.output_shape is not None else ""

    # -- __init__ ---------------------------------------------------------------------------------

    def expr(self, step: Step) -> Call | str:
        """The module a step declares, as an expression (for `self.x = ...` and nn.Sequential children)."""
        return self._modules.visit(step)

    def declare(self, w: Writer, step: LayerStep | CallStep | GroupStep) -> None:
        if isinstance(step, LayerStep) and step.layer.forward == "permute":
            return
        if isinstance(step, LayerStep) and step.layer.forward == "mul":
            shape, init = step.layer.args
            w.call(f"self.{step.name} = ", Call("nn.Parameter", [Call("torch.full", [lit(shape), lit(init)])]))
            return
        w.call(f"self.{step.name} = ", self.expr(step))

    # -- forward ----------------------------------------------------------------------------------

    def steps(self, steps: tuple[Step, ...], w_init: Writer, w_fwd: Writer, src: str, dst: str) -> str:
        """Render steps reading `src`; tensors land in `dst`. Returns the variable holding the result."""
        return self.flow(steps, src, w_init, w_fwd, dst)

    def visit_value(self, step: ValueStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        w_fwd.line(f"{self.local(step.name)} = {cur}")
        return cur

    def visit_use(self, step: UseStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        return self.local(step.name)

    def visit_output(self, step: OutputStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        return cur  # the class's `return` names the values

    def visit_join(self, step: JoinStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        operands = [cur, *(self.local(v) for v in step.values)]
        expr = {"cat": f"torch.cat([{', '.join(operands)}], dim=1)", "add": " + ".join(operands),
                "mul": " * ".join(operands)}[step.merge]
        w_fwd.line(f"{dst} = {expr}{self.comment(step)}")
        return dst

    def visit_layer(self, step: LayerStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        self.declare(w_init, step)
        layer = step.layer
        if layer.forward == "permute":
            call = f"{cur}.permute({', '.join(lit(d) for d in layer.args)})"
        elif layer.forward == "mul":
            call = f"{cur} * self.{step.name}"
        elif step.unpool is not None:
            extra = f", output_size={lit(step.output_size)}" if step.output_size else ""
            call = f"self.{step.name}({cur}, {self.local(step.unpool, 'indices')}{extra})"
        else:
            call = f"self.{step.name}({cur})"
        target = f"{dst}, {self.local(step.indices, 'indices')}" if step.indices else dst
        w_fwd.line(f"{target} = {call}{self.comment(step)}")
        return dst

    def visit_call(self, step: CallStep | GroupStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        self.declare(w_init, step)
        w_fwd.line(f"{dst} = self.{step.name}({cur}){self.comment(step)}")
        return dst

    visit_group = visit_call

    def visit_merge(self, step: MergeStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        return self.merge(step, w_init, w_fwd, cur, dst)

    def merge(self, step: MergeStep, w_init: Writer, w_fwd: Writer, src: str, dst: str) -> str:
        inputs = [src] * len(step.branches)
        claimed = []  # the merge's temporaries, free again once it is combined
        if step.merge == "split":
            inputs = claimed = [self.ns.claim(f"part{i + 1}") for i in range(len(step.branches))]
            w_fwd.line(f"{', '.join(inputs)} = torch.chunk({src}, {step.parts}, dim=1)")
        names = _branch_names(step)
        if step.condition is not None:
            w_init.line(f"self.{step.name} = {expr_code(step.condition)}")
        outs: list[str] = []
        for i, (branch, x) in enumerate(zip(step.branches, inputs)):
            if step.condition is not None and i == 1:
                w_fwd.line(f"if self.{step.name}:")
                w_fwd.level += 1
            if branch.identity and branch.condition is None:
                outs.append(x)
                continue
            out = self.ns.claim(names[i])
            claimed.append(out)
            # under `add if cond:` the later branches exist only when the merge is on (a slot, guarded by its flag)
            guard = f"self.{step.name}" if step.condition is not None and i > 0 else None
            if branch.condition is None and guard is None:
                out = self.steps(branch.steps, w_init, w_fwd, x, out)  # a branch that is a value (`e1`) is that value
            else:
                if branch.condition is not None:
                    w_fwd.line(f"{out} = {x}")
                self.slot(branch, w_init, w_fwd, x, out, guard)
            outs.append(out)
        combined = {"add": " + ".join(outs), "mul": " * ".join(outs)}.get(step.merge, f"torch.cat([{', '.join(outs)}], dim=1)")
        if step.condition is not None:
            w_fwd.line(f"{dst} = {combined}{self.comment(step)}")
            w_fwd.level -= 1
            if outs[0] != dst:  # (no `else: x = x` where the first branch is the identity)
                w_fwd.line("else:")
                with w_fwd.indent():
                    w_fwd.line(f"{dst} = {outs[0]}{self.comment(step)}")
        else:
            w_fwd.line(f"{dst} = {combined}{self.comment(step)}")
        self.ns.release(*claimed)
        return dst

    def slot(self, branch, w_init: Writer, w_fwd: Writer, x: str, out: str, guard: str | None = None) -> None:
        """A conditional branch: a marker in both texts, and its lines when it was active here.

        `guard` is the flag of a conditional merge (`add if cond:`) whose `if` the forward is already inside;
        where no instance filled such a slot, the forward keeps `out = x` so that the dead code stays valid."""
        key = len(self.slots)
        w_init.line(f"\x00slot{key}:0\x00")
        fallback = f":{out} = {x}" if guard is not None and branch.condition is None else ""
        w_fwd.line(f"\x00slot{key}:1{fallback}\x00")
        if not branch.active or branch.identity:
            self.slots[key] = None
            return
        init, fwd = Writer(w_init.level), Writer(w_fwd.level)
        if branch.condition is None:  # only the merge's flag: the forward is already inside `if guard:`
            init.line(f"if {guard}:")
            with init.indent():
                self.branch_steps(branch, init, fwd, x, out)
            self.slots[key] = (init.lines, fwd.lines)
            return
        attrs = [s.name for s in branch.steps if s.declares]
        for attr in attrs:
            init.line(f"self.{attr} = None")
        code = expr_code(branch.condition)
        cond = f"({code})" if " or " in code else code
        if branch.flag is not None:  # no module to test: the condition is kept in a flag
            init.line(f"self.{branch.flag} = {guard + ' and ' + cond if guard else code}")
            fwd.line(f"if self.{branch.flag}:")
            with fwd.indent():
                self.branch_steps(branch, init, fwd, x, out)
            self.slots[key] = (init.lines, fwd.lines)
            return
        init.line(f"if {guard} and {cond}:" if guard else f"if {code}:")
        fwd.line(f"if self.{attrs[0]} is not None:")
        with init.indent(), fwd.indent():
            self.branch_steps(branch, init, fwd, x, out)
        self.slots[key] = (init.lines, fwd.lines)

    def branch_steps(self, branch, w_init: Writer, w_fwd: Writer, x: str, out: str) -> None:
        """A conditional branch's steps, its result in `out` even where the branch is a value (`e1 if cond`)."""
        result = self.steps(branch.steps, w_init, w_fwd, x, out)
        if result != out:
            w_fwd.line(f"{out} = {result}")


def _branch_names(step: MergeStep) -> list[str | None]:
    """The temporaries of a merge's branches, as torchvision names them: `out` for the branch computed from the
    input (`out1`, `out2` where there are several), `identity` for one that is the input unless its condition
    holds (a downsampling shortcut); None for an identity branch, which needs none."""
    n = len(step.branches)
    shortcut = [b.condition is not None for b in step.branches]
    computed = [not (b.identity and b.condition is None) and not shortcut[i] for i, b in enumerate(step.branches)]
    names: list[str | None] = []
    for i in range(n):
        if shortcut[i]:
            names.append("identity" if sum(shortcut) == 1 else f"identity{sum(shortcut[:i + 1])}")
        elif computed[i]:
            names.append("out" if sum(computed) == 1 else f"out{sum(computed[:i + 1])}")
        else:
            names.append(None)
    return names


def fill(lines: list[str], slots: dict[int, tuple[list[str], list[str]] | None]) -> list[str]:
    """Lines with each slot marker replaced by its lines (or by nothing where no instance filled it)."""
    out = []
    for line in lines:
        marker = line.strip()
        if marker.startswith("\x00slot"):
            key, part, *fallback = marker[5:-1].split(":", 2)
            content = slots.get(int(key))
            if content is not None:
                out.extend(content[int(part)])
            elif fallback:
                out.append(line[: len(line) - len(line.lstrip())] + fallback[0])
            continue
        out.append(line)
    return out
