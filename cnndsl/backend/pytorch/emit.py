"""Steps -> the body of a generated class: `__init__` declarations and `forward` lines.

A conditional part of a block (a branch under `if`) is rendered into a *slot*: a marker line in the class
text and, where the branch was active in the instance being rendered, the lines that replace it. Instances
of one block whose texts agree (slots filled by any of them) share one class.

The names a class gives (its condition flags, and the locals of its `__init__` that name a repeated
expression) are the class's, not an instance's: `Uses` gathers what each instance prints, and `plan` decides
the names from all the instances of a class together (a slot filled only by some of them included), before
any is rendered, so that every instance renders to the class's text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...ir.network import (
    CallStep,
    CheckedLayer,
    GroupStep,
    JoinStep,
    LayerStep,
    MergeStep,
    OutputStep,
    Step,
    StepVisitor,
    UseStep,
    ValueStep,
)
from ...ir.values import Val
from ...names import BUILTINS, PARAMETER_RESERVED, RESERVED, Namespace
from ...ops.common import fmt_shape
from .pyexpr import expr_code, val_code, whole_tuple
from .pyfmt import Call, Writer, lit

FORWARD_GLOBALS = ("self", "torch", "nn", *BUILTINS)  # what a forward reads besides its own variables
ORDERED_DICT = "OrderedDict"  # among a body's helpers: the file imports it from collections (no text of its own)


def layer_expr(layer: CheckedLayer, lit=lit) -> Call:
    """The constructor call of a layer's module (`lit` prints each argument)."""
    return Call(layer.module, [lit(a) for a in layer.args] + [f"{k}={lit(v)}" for k, v in layer.kwargs])


# -- the class's names: condition flags and the `__init__`'s locals ------------------------------------

CHANNELS = 0  # the role of a value that is a channel count (a layer's or block's input or output channels)
_SIMPLE = re.compile(r"-?[A-Za-z_][A-Za-z0-9_]*")  # a name (or its negation): printed as it is, never named


def flag_stem(step: MergeStep) -> str:
    """The attribute that remembers a merge's condition: `use_res_connect` (torchvision's) for an `add` that
    adds the block's input back (an unconditional identity branch), else `use_<merge>`."""
    if step.merge == "add" and any(b.identity and b.condition is None for b in step.branches):
        return "use_res_connect"
    return f"use_{step.merge}"


class Uses(StepVisitor):
    """What one instance's `__init__` prints, walked in the order Body renders it (slots numbered as
    Body.slot numbers them): the attributes, the condition flags (their stems), and each value that prints as a
    compound expression with its role (CHANNELS, the keyword it is passed as, or None). Each flag and value
    carries an order (text order across the class, whichever instance filled a slot) and its slot (None:
    outside every slot, printed by every instance)."""

    def __init__(self, steps):
        self.steps = steps
        self.flags: list[tuple[tuple[int, int], int | None, str, str]] = []  # (order, slot, flag, stem)
        self.values: list[tuple[tuple[int, int], int | None, str, object]] = []  # (order, slot, text, role)
        self.slots: set[int] = set()  # the slots this instance fills
        self._pos = self._sub = self._count = 0
        self._slot: tuple[int, int] | None = None  # (slot, its order) while inside one
        self.of(steps)

    def of(self, steps) -> None:
        methods = self._methods
        for step in steps:
            methods[step.kind](self, step)

    def _order(self) -> tuple[int, int]:
        if self._slot is None:
            self._pos += 1
            return (self._pos, 0)
        self._sub += 1
        return (self._slot[1], self._sub)

    def _where(self) -> int | None:
        return None if self._slot is None else self._slot[0]

    def _value(self, x, role, channels) -> None:
        """A value as printed: where it is a compound expression, its text and role (`channels`: the channel
        counts of the step, a function of it, for a positional argument that may be one)."""
        if isinstance(x, Val):
            if x.e is not None and x.printed() is not None:  # (the common case, a number, stops at `x.e`)
                text = val_code(x)
                if not _SIMPLE.fullmatch(text):
                    role = CHANNELS if channels is not None and x.v in channels() else role
                    self.values.append((self._order(), self._where(), text, role))
        elif isinstance(x, tuple):
            for item in x:
                self._value(item, role, channels)

    def visit_layer(self, step: LayerStep) -> None:
        layer = step.layer
        for a in layer.args:  # positional: a channel count where it is one (a conv's, a norm's, a linear's)
            if type(a) is not Val or a.e is not None:  # (a number, the common case, goes no further)
                self._value(a, None, lambda: {s[0] for s in (layer.input_shape, layer.output_shape) if s})
        for k, v in layer.kwargs:
            if type(v) is not Val or v.e is not None:
                self._value(v, k, None)

    def visit_call(self, step: CallStep) -> None:
        x = step.in_channels
        channels = lambda: {x.v if isinstance(x, Val) else x, step.output_shape[0] if step.output_shape else None}
        self._value(x, CHANNELS, None)
        for k, v in step.call_args:
            self._value(v, k, channels)

    def visit_group(self, step: GroupStep) -> None:
        self.of(step.children)

    def visit_value(self, step) -> None:
        pass

    visit_use = visit_join = visit_output = visit_value

    def visit_merge(self, step: MergeStep) -> None:
        if step.condition is not None:
            self.flags.append((self._order(), None, step.name, flag_stem(step)))
        for i, branch in enumerate(step.branches):
            if branch.identity and branch.condition is None:
                continue
            if branch.condition is None and not (step.condition is not None and i > 0):
                self.of(branch.steps)
                continue
            key = self._count  # a slot (as Body.slot numbers them), in the text order whether filled or not
            self._count += 1
            start = self._order()[0]
            if not branch.active or branch.identity:
                continue
            self.slots.add(key)
            self._slot, self._sub = (key, start), 0
            if branch.flag is not None:
                self.flags.append((self._order(), key, branch.flag, "use_branch"))
            self.of(branch.steps)
            self._slot = None


@dataclass
class Plan:
    """The names of one generated class: `flags` maps the checker's attribute for a condition to the one the
    code prints; `locals` maps a repeated expression (as printed) to the `__init__` local that names it, and
    `defs` lists those locals' definitions `(local, expression)` in the order of their first use. `ns` is the
    class's namespace (its parameters, attributes, the module's classes, and these names), for more."""

    flags: dict[str, str] = field(default_factory=dict)
    locals: dict[str, str] = field(default_factory=dict)
    defs: list[tuple[str, str]] = field(default_factory=list)
    ns: Namespace | None = None


def plan(uses: list[Uses], params, outer: set[str]) -> Plan:
    """The names of a class whose instances printed `uses` (the first one's order): one namespace holds the
    class's parameters, the names its `__init__` reads (`self`, `torch`, `nn`, builtins, the module's classes in
    `outer`), its attributes (nn.Module's too) and what it gives here, so that no two can clash.

    Flags: each condition's stem (`flag_stem`, `use_branch`), numbered by the namespace only where it is taken
    (`use_res_connect`, `use_res_connect_2`). Locals: an expression printed twice or more, at least once
    outside every slot (so that computing it first, unconditionally, computes nothing the class would not),
    is named once: `hidden_dim` where it is a channel count (torchvision's name for a block's inner width), the
    keyword it is always passed as (`padding`), else `value`; where several expressions share a stem, each is
    numbered in the order of first use (`hidden_dim1`, `hidden_dim2`)."""
    first = uses[0]
    flags = [f for f in first.flags if f[1] is None]
    values = [v for v in first.values if v[1] is None]
    filled: set[int] = set()
    for u in uses:  # each slot's contents from the first instance that filled it (any other agrees)
        new = u.slots - filled
        if new:
            filled |= new
            flags += [f for f in u.flags if f[1] in new]
            values += [v for v in u.values if v[1] in new]
    result = Plan()
    if not flags and len(values) < 2:
        return result
    attrs: set[str] = set()
    for u in uses:
        _attributes(u.steps, attrs)
    ns = result.ns = Namespace(PARAMETER_RESERVED | RESERVED | attrs | set(params), outer)
    flags.sort()
    for _, _, flag, stem in flags:
        if flag not in result.flags:
            result.flags[flag] = ns.claim(stem)
    seen: dict[str, list] = {}  # expression -> [first order, count, roles, printed outside every slot]
    for order, slot, text, role in sorted(values):
        entry = seen.setdefault(text, [order, 0, set(), False])
        entry[1] += 1
        entry[2].add(role)
        entry[3] = entry[3] or slot is None
    named = [(entry[0], text, _stem(entry[2])) for text, entry in seen.items() if entry[1] >= 2 and entry[3]]
    stems: dict[str, int] = {}
    for _, _, stem in named:
        stems[stem] = stems.get(stem, 0) + 1
    for _, text, stem in sorted(named):
        local = ns.claim(stem) if stems[stem] == 1 else ns.fresh(stem)
        result.locals[text] = local
        result.defs.append((local, text))
    return result


def _attributes(steps, into: set[str]) -> None:
    """The attributes steps declare (a group's children are numbered, not attributes)."""
    for step in steps:
        if isinstance(step, (LayerStep, CallStep, GroupStep)):
            into.add(step.name)
        elif isinstance(step, MergeStep):  # its flags are named by the plan, around these
            for branch in step.branches:
                _attributes(branch.steps, into)


def _stem(roles: set) -> str:
    if CHANNELS in roles:
        return "hidden_dim"
    (role,) = roles if len(roles) == 1 else (None,)
    return role if isinstance(role, str) else "value"




class _ModuleExpr(StepVisitor):
    """The module a step declares, as an expression: a layer's constructor, a block's class, an nn.Sequential."""

    def __init__(self, body: "Body"):
        self.body = body

    def visit_layer(self, step: LayerStep) -> Call:
        layer = step.layer
        if layer.helper:
            self.body.helpers.add(layer.helper)
        self.body.imports.update(layer.imports)
        if layer.external is not None:  # the imported class, by the name the module gives it
            return layer_expr(layer.model_copy(update={"module": self.body.aliases[layer.external.path]}), self.body.lit)
        return layer_expr(layer, self.body.lit)

    def visit_call(self, step: CallStep) -> Call:
        lit = self.body.lit
        args = [lit(step.in_channels)] + [lit(v) if k is None else f"{k}={lit(v)}" for k, v in step.call_args]
        return Call(self.body.class_of[step.instance], args)

    def visit_group(self, step: GroupStep) -> Call:
        stages = [child for child in step.children if child.declares]  # (not its taps)
        children = [self.visit(child) for child in stages]
        if all(child.name == str(i) for i, child in enumerate(stages)):
            return Call("nn.Sequential", children)
        self.body.helpers.add(ORDERED_DICT)  # named stages (`conv0`, `"block1-0"`), as torchvision's OrderedDict
        pairs = [Call("", [lit(child.name), expr], collection=True) for child, expr in zip(stages, children)]
        return Call("nn.Sequential", [Call("OrderedDict", [Call("", pairs, "[", "]", collection=True)])])


@dataclass
class Body(StepVisitor):
    """The text of one class body being rendered: `__init__` and `forward`, and the slots. Each step's
    `visit_<kind>` writes its lines and returns the variable that holds the tensor after it."""

    init: Writer
    forward: Writer
    class_of: dict[int, str]  # block instance -> its generated class
    comments: bool  # shape comments (the network's class)
    plan: Plan = field(default_factory=Plan)  # the class's flags and named expressions
    slots: dict[int, tuple[list[str], list[str]] | None] = field(default_factory=dict)
    helpers: set[str] = field(default_factory=set)
    imports: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)  # an external module's path -> its class's name here
    # the forward's variables: the tensor flowing through (`x`), temporaries, and the user's values, each
    # with a name of its own (a value named `x` or `branch1` is renamed, never confused with a temporary)
    ns: Namespace = field(default_factory=lambda: Namespace(FORWARD_GLOBALS))
    locals: dict[str, str] = field(default_factory=dict)
    main: str = ""
    lists: dict[str, dict[int, Call]] = field(default_factory=dict)  # `as inner_blocks[3]`: each list's entries

    def __post_init__(self):
        self.main = self.ns.claim("x")
        self._modules = _ModuleExpr(self)
        self.lit = self._named_lit if self.plan.locals else lit

    def _named_lit(self, x) -> str:
        """A value as printed in `__init__`: a repeated expression as its local (plan.locals)."""
        if isinstance(x, Val) and x.symbolic:
            return val_code(x, self.plan.locals)
        if isinstance(x, tuple):
            return whole_tuple(x) or "(" + ", ".join(self._named_lit(i) for i in x) + ("," if len(x) == 1 else "") + ")"
        return lit(x)

    def flag(self, name: str) -> str:
        """The attribute printed for the checker's condition flag `name`."""
        return self.plan.flags.get(name, name)

    def temp(self, stem: str) -> str:
        return self.ns.fresh(stem)

    def local(self, name: str, kind: str = "value") -> str:
        """The variable that holds the user's value `name` (kind "value") or the indices of the max pool `name`
        (kind "indices": `pool1_indices`)."""
        key = f"{kind}:{name}"
        if key not in self.locals:
            self.locals[key] = self.ns.claim(name if kind == "value" else f"{name}_indices")
        return self.locals[key]

    def comment(self, step: Step) -> str:
        return f"  # {fmt_shape(step.output_shape)}" if self.comments and step.output_shape is not None else ""

    # -- __init__ ---------------------------------------------------------------------------------

    def expr(self, step: Step) -> Call | str:
        """The module a step declares, as an expression (for `self.x = ...` and nn.Sequential children)."""
        return self._modules.visit(step)

    def declare(self, w: Writer, step: LayerStep | CallStep | GroupStep) -> None:
        if isinstance(step, LayerStep) and step.layer.module is None:  # permute, interpolate, crop: no module
            if step.layer.helper:
                self.helpers.add(step.layer.helper)
            return
        if isinstance(step, LayerStep) and step.layer.forward == "mul":
            shape, init = step.layer.args
            w.call(f"self.{step.name} = ", Call("nn.Parameter", [Call("torch.full", [self.lit(shape), self.lit(init)])]))
            return
        base, dot, index = step.name.partition(".")
        if dot:  # `as inner_blocks[3]`: an entry of an nn.ModuleList, declared whole where its first entry is
            if base not in self.lists:
                self.lists[base] = {}
                w.line(f"\x00list:{base}\x00")
            self.lists[base][int(index)] = self.expr(step)
        elif not step.name.isidentifier():  # `as "block1-0"`
            w.call("", Call("self.add_module", [lit(step.name), self.expr(step)]))
        else:
            w.call(f"self.{step.name} = ", self.expr(step))

    def finish(self, lines: list[str]) -> list[str]:
        """`__init__` lines with each list's marker replaced by the list: `self.inner_blocks = nn.ModuleList()`
        and its entries appended in order, as torchvision's FeaturePyramidNetwork builds its lists."""
        out = []
        for line in lines:
            marker = line.strip()
            if not marker.startswith("\x00list:"):
                out.append(line)
                continue
            base = marker[len("\x00list:"):-1]
            w = Writer((len(line) - len(line.lstrip())) // 4)
            w.line(f"self.{base} = nn.ModuleList()")
            for i in sorted(self.lists[base]):
                w.call("", Call(f"self.{base}.append", [self.lists[base][i]]))
            out.extend(w.lines)
        return out

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
        elif layer.forward == "interpolate":  # to a value's size, read when it runs
            extra = "".join(f", {k}={lit(v)}" for k, v in layer.kwargs)
            call = f"nn.functional.interpolate({cur}, size={self.local(layer.args[0])}.shape[2:]{extra})"
        elif layer.forward == "pad_to":
            extra = "".join(f", {k}={lit(v)}" for k, v in layer.kwargs)
            call = f"_pad_to({cur}, {self.local(layer.args[0])}.shape[2:]{extra})"
        elif layer.forward == "crop":
            (target,) = layer.args
            size = f"[{', '.join(lit(v) for v in target)}]" if isinstance(target, tuple) else f"{self.local(target)}.shape[2:]"
            call = f"_center_crop({cur}, {size})"
        elif layer.forward == "mul":
            call = f"{cur} * {attr_code(step.name)}"
        elif step.unpool is not None:
            extra = f", output_size={lit(step.output_size)}" if step.output_size else ""
            call = f"{attr_code(step.name)}({cur}, {self.local(step.unpool, 'indices')}{extra})"
        else:
            call = f"{attr_code(step.name)}({cur})"
        target = f"{dst}, {self.local(step.indices, 'indices')}" if step.indices else dst
        w_fwd.line(f"{target} = {call}{self.comment(step)}")
        return dst

    def visit_call(self, step: CallStep | GroupStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        self.declare(w_init, step)
        inputs = getattr(step, "inputs", ())
        args = ", ".join(self.local(v) if v else cur for v in inputs) if inputs else cur
        outputs = getattr(step, "outputs", ())
        target = ", ".join(self.local(v) for v in outputs) if outputs else dst
        w_fwd.line(f"{target} = {attr_code(step.name)}({args}){self.comment(step) if not outputs else ''}")
        return self.local(outputs[-1]) if outputs else dst

    def visit_group(self, step: GroupStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        if not _tapped(step):
            return self.visit_call(step, cur, w_init, w_fwd, dst)
        self.declare(w_init, step)
        return self.stepwise(step, attr_code(step.name), cur, w_fwd, dst)

    def stepwise(self, step: GroupStep, module: str, cur: str, w_fwd: Writer, dst: str) -> str:
        """A group with taps (`c3 = ...` on a line of it): its stages called one by one, `self.body[2](x)`, so that
        the values between them can be kept, as torchvision's IntermediateLayerGetter runs a backbone."""
        for child in step.children:
            if isinstance(child, ValueStep):
                cur = self.visit_value(child, cur, None, w_fwd, dst)
                continue
            path = attr_code(child.name, module)
            if isinstance(child, GroupStep) and _tapped(child):
                cur = self.stepwise(child, path, cur, w_fwd, dst)
                continue
            w_fwd.line(f"{dst} = {path}({cur}){self.comment(child)}")
            cur = dst
        return cur

    def visit_merge(self, step: MergeStep, cur: str, w_init: Writer, w_fwd: Writer, dst: str) -> str:
        return self.merge(step, w_init, w_fwd, cur, dst)

    def merge(self, step: MergeStep, w_init: Writer, w_fwd: Writer, src: str, dst: str) -> str:
        inputs = [src] * len(step.branches)
        claimed = []  # the merge's temporaries, free again once it is combined
        if step.merge == "split":
            inputs = claimed = [self.ns.claim(f"part{i + 1}") for i in range(len(step.branches))]
            w_fwd.line(f"{', '.join(inputs)} = torch.chunk({src}, {step.parts}, dim=1)")
        names = _branch_names(step)
        flag = None if step.condition is None else self.flag(step.name)
        if flag is not None:
            w_init.line(f"self.{flag} = {expr_code(step.condition, self.plan.locals)}")
        outs: list[str] = []
        for i, (branch, x) in enumerate(zip(step.branches, inputs)):
            if step.condition is not None and i == 1:
                w_fwd.line(f"if self.{flag}:")
                w_fwd.level += 1
            if branch.identity and branch.condition is None:
                outs.append(x)
                continue
            out = self.ns.claim(names[i])
            claimed.append(out)
            # under `add if cond:` the later branches exist only when the merge is on (a slot, guarded by its flag)
            guard = f"self.{flag}" if flag is not None and i > 0 else None
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
        code = expr_code(branch.condition, self.plan.locals)
        cond = f"({code})" if " or " in code else code
        if branch.flag is not None:  # no module to test: the condition is kept in a flag
            flag = self.flag(branch.flag)
            init.line(f"self.{flag} = {guard + ' and ' + cond if guard else code}")
            fwd.line(f"if self.{flag}:")
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


def _tapped(step: GroupStep) -> bool:
    return any(isinstance(c, ValueStep) or (isinstance(c, GroupStep) and _tapped(c)) for c in step.children)


def attr_code(name: str, owner: str = "self") -> str:
    """How a forward reaches a child of `owner`: `self.conv1`, `self.inner_blocks[3]` (a list's entry,
    "inner_blocks.3"), `self.body[2]` (a stage of a group), or `getattr(self, "block1-0")` (a key that is no
    identifier)."""
    base, dot, index = name.partition(".")
    if dot:
        return f"{owner}.{base}[{index}]"
    if name.isdigit() and owner != "self":  # a stage of a group; a block's own module keyed "1" is an attribute
        return f"{owner}[{name}]"
    return f"{owner}.{name}" if name.isidentifier() else f"getattr({owner}, {lit(name)})"


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
