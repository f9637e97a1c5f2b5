"""The walk over one module's statements — a network's body, a block's body, or a named group — that infers
shapes, names every module, and records the steps its forward takes. Blocks are checked once per call,
with the caller's values; their steps keep the block's parameters symbolic for the generated class."""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from typing import Any, Callable

from . import ast
from .errors import MAX_ERRORS, CheckError, Diagnostic, Source, Span, did_you_mean
from .names import identifier_problem, value_problem
from .network import BlockInstance, Branch, CheckedLayer, Step
from .ops import REGISTRY, Ctx, LayerError
from .ops.common import fmt_shape
from .resolve import LocatedError, Word, condition_code, evaluate, resolve, split_repeat
from .shapes import unpool_out
from .values import Val, as_val, substitute, value

MERGES = ("add", "cat", "mul", "split")
JOINS = ("add", "cat", "mul")
_AXES = {1: "channels"}


@dataclass
class Program:
    """What a whole check shares: the blocks in reach, the diagnostics, every layer and block instance."""

    blocks: dict[str, tuple[ast.Block, Source]]
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    layers: list[CheckedLayer] = field(default_factory=list)
    instances: list[BlockInstance] = field(default_factory=list)
    calls: list[tuple[str, Span, Source]] = field(default_factory=list)  # the block calls being checked
    layer_inits: list[tuple[str, ast.Keyword, Source]] = field(default_factory=list)

    def diagnostic(self, severity: str, message: str, span: Span, source: Source, hint: str | None) -> Diagnostic:
        notes = tuple(
            Diagnostic(message=f"in `{name}`, called here", file=src.name, span=at, line_text=src.line_text(at.line))
            for name, at, src in reversed(self.calls)
        )
        return Diagnostic(severity=severity, message=message, file=source.name, span=span,
                          line_text=source.line_text(span.line), hint=hint, notes=notes)

    def error(self, message: str, span: Span, source: Source, hint: str | None = None) -> None:
        if not message:  # a consequence of an error already reported
            return
        d = self.diagnostic("error", message, span, source, hint)
        if any(e.file == d.file and e.span == d.span and e.message == d.message for e in self.errors):
            return  # the same mistake inside a block called twice
        self.errors.append(d)
        if len(self.errors) > MAX_ERRORS:
            raise CheckError(self.errors)

    def warn(self, message: str, span: Span, source: Source, hint: str | None = None) -> None:
        d = self.diagnostic("warning", message, span, source, hint)
        if not any(w.span == d.span and w.message == d.message and w.file == d.file for w in self.warnings):
            self.warnings.append(d)


@dataclass
class _Value:
    shape: tuple
    span: Span
    used: bool = False


class Scope:
    """One module being checked. `sequential` scopes are named groups: their children are numbered."""

    def __init__(self, prog: Program, source: Source, env: dict[str, Val], shape: tuple | None, *,
                 path: str = "", access: str = "self", sequential: bool = False,
                 on_statement: Callable[[ast.Statement], bool] | None = None):
        self.prog, self.source, self.env, self.shape = prog, source, env, shape
        self.path, self.access, self.sequential = path, access, sequential
        self.on_statement = on_statement  # the network's own statements (input, init)
        self.steps: list[Step] = []
        self.counters: dict[str, int] = {}
        self.names: set[str] = set()
        self.auto_names: set[str] = set()
        self.values: dict[str, _Value] = {}
        self.pools: dict[str, dict] = {}  # named max pools that an unpool reads
        self.unpooled: set[str] = set()
        self.outputs: tuple[str, ...] = ()
        self.first_in: int | None = None
        self.start_rank: int = 2

    # -- reporting --------------------------------------------------------------------------------

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.prog.error(message, span, self.source, hint)

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.prog.warn(message, span, self.source, hint)

    def fail(self, e: LocatedError) -> None:
        self.error(e.message, e.span, e.hint)
        self.shape = None

    # -- statements -------------------------------------------------------------------------------

    def body(self, statements: tuple) -> None:
        self.unpooled |= _unpool_targets(statements)
        self.later = {s.name: s.span.line for s in statements if isinstance(s, ast.Assign)}  # values, to say "used before"
        for stmt in statements:
            try:
                self.statement(stmt)
            except LocatedError as e:
                self.fail(e)
        self._discarded(statements)
        for name, v in self.values.items():
            if not v.used and name not in self.outputs:
                self.warn(f"the value `{name}` is never used by name", v.span,
                          f"merge it with cat({name}) or add({name}), or drop `{name} =` (the next line continues from it anyway)")

    def _discarded(self, statements: tuple) -> None:
        """Warn about a line whose result nothing reads: the next line starts again from a value, or is `output`."""
        values = {s.name for s in statements if isinstance(s, ast.Assign)}
        body = [s for s in statements if not isinstance(s, (ast.Input, ast.Init))]
        has_output = any(isinstance(s, ast.Output) for s in body)
        for i, stmt in enumerate(body):
            if not isinstance(stmt, (ast.Line, ast.Labeled)) or (isinstance(stmt, ast.Line) and stmt.condition is not None):
                continue
            nxt = body[i + 1] if i + 1 < len(body) else None
            first = nxt.pipeline.stages[0] if isinstance(nxt, (ast.Assign, ast.Line)) else None
            if isinstance(first, ast.Layer) and first.op in values and not first.args and first.name is None:
                hint = f"the next line starts again from `{first.op}`: name this result (`y = ...`) and use it, or remove the line"
            elif isinstance(nxt, ast.Output) or (nxt is None and has_output):
                hint = "`output` returns only the values it names: name this result (`y = ...`) and add it to `output`"
            else:
                continue
            at = _head(stmt.span)
            at = at.model_copy(update={"end_col": at.col + len(self.source.line_text(at.line).split("#")[0].strip())})
            self.warn("the result of this line is never used", at, hint)

    def statement(self, stmt) -> None:
        if self.on_statement is not None and self.on_statement(stmt):
            return
        if isinstance(stmt, (ast.Input, ast.Init)):
            what = "input" if isinstance(stmt, ast.Input) else "init"
            raise LocatedError(f"`{what}` belongs to a network, not to a block or group", _head(stmt.span))
        if isinstance(stmt, ast.Line):
            if stmt.condition is not None:
                raise LocatedError("a condition (`if`) belongs to a branch of a merge", stmt.condition.span,
                                   "put the line under `add:`, `cat:`, `mul:` or `split N:`")
            self.pipeline(stmt.pipeline)
        elif isinstance(stmt, ast.Assign):
            self.assign(stmt)
        elif isinstance(stmt, ast.Labeled):
            if stmt.label in MERGES and stmt.pipeline is None:
                self.merge(stmt)
            else:
                self.labeled_group(stmt)
        elif isinstance(stmt, ast.Output):
            self.output(stmt)

    def assign(self, stmt: ast.Assign) -> None:
        self._no_values_here(stmt.span)
        problem = value_problem(stmt.name)
        if problem or stmt.name in self.values:
            raise LocatedError(problem or f"the value `{stmt.name}` is already defined", _head(stmt.span),
                               "choose another name" if problem else "each named value is defined once")
        self.pipeline(stmt.pipeline)
        # after an error the value still exists (shape unknown), so that its uses report nothing more
        name_span = _head(stmt.span).model_copy(update={"end_col": stmt.span.col + len(stmt.name)})
        self.values[stmt.name] = _Value(self.shape, name_span, used=self.shape is None)
        if self.shape is not None:
            self.steps.append(Step(kind="value", name=stmt.name, output_shape=_plain(self.shape)))

    def output(self, stmt: ast.Output) -> None:
        if self.on_statement is None:
            raise LocatedError("`output` belongs to a network", _head(stmt.span), "a block has one output: its last tensor")
        shapes = []
        for name in stmt.names:
            if name not in self.values:
                raise LocatedError(f"`output` names `{name}`, which is not a named value", stmt.span,
                                   did_you_mean(name, self.values) or "define it first: `name = pipeline`")
            self.values[name].used = True
            shapes.append(self.values[name].shape)
        self.outputs = stmt.names
        self.steps.append(Step(kind="output", values=stmt.names))
        self.output_shapes = tuple(shapes)

    def _before(self, name: str) -> str:
        return f"the value `{name}` is used before it is defined (on line {self.later[name]})"

    def _no_values_here(self, span: Span) -> None:
        if self.sequential:
            raise LocatedError("named values belong to a network or block, not to a named group", _head(span))

    # -- pipelines --------------------------------------------------------------------------------

    def pipeline(self, pipeline: ast.Pipeline) -> None:
        stages = pipeline.stages
        first = stages[0]
        if isinstance(first, ast.Layer) and first.op not in self.values and first.op in getattr(self, "later", {}):
            raise LocatedError(self._before(first.op), first.op_span, "move the line that defines it above this one")
        if isinstance(first, ast.Layer) and first.op in self.values and not first.args and first.name is None:
            v = self.values[first.op]
            v.used = True
            self.shape = v.shape
            self.steps.append(Step(kind="use", name=first.op, output_shape=_plain(v.shape)))
            stages = stages[1:]
        for stage in stages:
            try:
                self.stage(stage)
            except LocatedError as e:
                self.fail(e)

    def stage(self, node) -> None:
        if isinstance(node, ast.Layer):
            args, count, _ = split_repeat(node.args)
            if node.op in self.values:
                raise LocatedError(f"the value `{node.op}` can only start a pipeline", node.op_span,
                                   f"merge it here with cat({node.op}), add({node.op}) or mul({node.op})")
            if node.op in self.prog.blocks:
                raise LocatedError(f"`{node.op}` is a block: call it with parentheses", node.op_span, f"write `{node.op}(...)`")
            if node.op == "unpool":
                return self.unpool(node)
            layer = node.model_copy(update={"args": args})
            for i in range(count):
                if count > 1 and node.name is not None:
                    raise LocatedError("a repeated layer cannot take one name", node.span, "name a group instead: `(...) x2 as name`")
                self.layer(layer)
        elif isinstance(node, ast.Call):
            args, count, _ = split_repeat(node.args)
            if node.callee in JOINS:
                return self.join(node)
            if node.callee in self.prog.blocks:
                if args:
                    _no_repeat_expression(args)
                    raise LocatedError(f"a block call takes its arguments in parentheses", args[0].span)
                for _ in range(count):
                    if count > 1 and node.name is not None:
                        raise LocatedError("a repeated block cannot take one name", node.span, "name a group instead: `layer1: Block(...) x2`")
                    self.call(node)
                return
            if node.callee in REGISTRY:
                raise LocatedError(f"`{node.callee}` is an op, not a block: write its arguments after a space",
                                   _head(node.span), f"e.g. `{node.callee} 16`, not `{node.callee}(16)`")
            raise LocatedError(f"unknown block `{node.callee}`", _head(node.span),
                               did_you_mean(node.callee, [*self.prog.blocks, *JOINS]) or "define it with `block Name(...):` or import it")
        else:
            self.group(node)

    # -- layers -----------------------------------------------------------------------------------

    def layer(self, node: ast.Layer) -> None:
        spec = REGISTRY.get(node.op)
        if spec is None:
            hint = did_you_mean(node.op, [*REGISTRY, *self.prog.blocks, *self.values]) or "see the op catalog in docs/LANGUAGE.md"
            self.shape = None
            raise LocatedError(f"unknown op `{node.op}`", node.op_span, hint)
        if node.name is not None and node.name in self.unpooled:
            # known by name even where its shape is not, so that its unpool adds no error; another op is the
            # unpool's mistake, reported there
            self.pools[node.name] = None if spec.name == "maxpool" else node.op
        if self.shape == ():  # the first layer of a network without an input: its rank decides
            self.start_rank = int(node.op[-2]) if node.op[-2:] in ("1d", "2d", "3d") else 2
            self.shape = (None,) * (self.start_rank + 1)
        ctx = Ctx(spec=spec, op=node.op, shape=self.shape)
        spans: dict[str, Span] = {}
        extra = resolve(ctx, node, self.env, spans)
        attr = self.child_name(node.name, spec.kind or spec.name, node.span)
        if self.shape is None:  # an earlier error left the shape unknown
            return
        try:
            result = spec.rule(ctx)
        except LayerError as e:
            self.shape = None
            raise LocatedError(e.message, spans.get(e.at, node.op_span) if e.at else node.op_span, e.hint) from None
        if self.first_in is None and ctx["in"] is not None:
            self.first_in = value(ctx["in"])
        for message, hint in result.warnings:
            self.warn(message, node.op_span, hint)
        kwargs, indices = result.kwargs, None
        if attr in self.unpooled and spec.name == "maxpool":
            kwargs = kwargs + (("return_indices", Val(True)),)
            indices = f"{attr}_indices"
            self.pools[attr] = {"ctx": ctx, "input": self.shape, "output": result.shape, "indices": indices}
        if result.forward != "call" and self.sequential:
            raise LocatedError(f"`{node.op}` is not a module, so it cannot be inside a named group", node.op_span,
                               "move it out of the group, or into a block")
        layer = CheckedLayer(
            name=self.path + attr, attr=attr, access=self.child_access(attr), op=spec.name, module=result.module,
            args=result.args, kwargs=kwargs, forward=result.forward,
            input_shape=_plain(self.shape), output_shape=_plain(result.shape), params=result.params,
            lazy=result.lazy, helper=result.helper, imports=result.imports,
            weight_path="conv." if spec.name == "deform" else "",
            has_bias=bool(value(ctx["bias"])) if spec.option("bias") is not None and spec.option("bias").kind == "bool" else False,
            span=node.span,
        )
        if "init" in extra:
            if not result.weights or result.params == 0:  # e.g. a norm with affine=false
                self.error(f"`{node.op}` has no weights to initialise", extra["init"].key_span)
            else:
                self.prog.layer_inits.append((layer.name, extra["init"], self.source))
        self.prog.layers.append(layer)
        self.steps.append(Step(kind="layer", name=attr, layer=layer, indices=indices, output_shape=layer.output_shape))
        self.shape = result.shape

    def unpool(self, node: ast.Layer) -> None:
        args = [a for a in node.args]
        if len(args) != 1 or not isinstance(args[0], ast.Positional) or not isinstance(args[0].value, ast.Name):
            raise LocatedError("`unpool` takes the name of a max pool", node.span, "e.g. `maxpool 2 as pool1` ... `unpool pool1`")
        target = args[0].value.id
        pool = self.pools.get(target)
        if isinstance(pool, str):
            raise LocatedError(f"`unpool` needs a max pool, but `{target}` is a `{pool}`", args[0].span,
                               "unpool undoes a named max pool: `maxpool 2 as pool1` ... `unpool pool1`")
        if pool is None and target in self.pools:  # the pool's shape is unknown after an error already reported
            self.child_name(node.name, "unpool", node.span)
            self.shape = None
            return
        if pool is None:
            names = [s.name for s in self.steps if s.kind == "layer" and s.layer.op == "maxpool"]
            raise LocatedError(f"`unpool` names `{target}`, which is no max pool before it in this {'block' if self.path else 'network'}",
                               args[0].span, did_you_mean(target, names) or "name the pool with `maxpool 2 as pool1`")
        attr = self.child_name(node.name, "unpool", node.span)
        if self.shape is None:
            return
        if self.sequential:
            raise LocatedError("`unpool` reads indices, so it cannot be inside a named group", node.op_span)
        if any(a is not None and b is not None and value(a) != value(b) for a, b in zip(self.shape, pool["output"])) or len(self.shape) != len(pool["output"]):
            raise LocatedError(f"`unpool {target}` expects the shape {target} produced, {fmt_shape(pool['output'])}, but found {fmt_shape(self.shape)}", node.span)
        ctx: Ctx = pool["ctx"]
        n = ctx.rank
        k = ctx.per_dim("kernel_size", n)
        s = ctx.per_dim("stride", n) if ctx["stride"] is not None else k
        p = ctx.per_dim("padding", n)
        spatial = pool["input"][1:]
        default = tuple(unpool_out(self.shape[1 + j], k[j], s[j], p[j]) for j in range(n))
        output_size = None
        if any(d is not None and t is not None and value(d) != value(t) for d, t in zip(default, spatial)):
            output_size = tuple(value(t) for t in spatial)
        module_kwargs = tuple((key, ctx[key]) for key in ("stride", "padding") if key in ctx.given)
        layer = CheckedLayer(
            name=self.path + attr, attr=attr, access=self.child_access(attr), op="unpool", module=f"nn.MaxUnpool{n}d",
            args=(ctx["kernel_size"],), kwargs=module_kwargs, input_shape=_plain(self.shape),
            output_shape=_plain((self.shape[0], *spatial)), params=0, span=node.span,
        )
        self.prog.layers.append(layer)
        self.steps.append(Step(kind="layer", name=attr, layer=layer, unpool=pool["indices"], output_size=output_size,
                               output_shape=layer.output_shape))
        self.shape = (self.shape[0], *spatial)

    # -- names ------------------------------------------------------------------------------------

    def child_name(self, name: str | None, kind: str, span: Span) -> str:
        if self.sequential:
            if name is not None:
                raise LocatedError("the stages of a named group are numbered; they take no names", span,
                                   "drop `as ...`, or move the stage out of the group")
            attr = str(self.counters.get("#", 0))
            self.counters["#"] = int(attr) + 1
            return attr
        if name is not None:
            problem = identifier_problem(name, "layer")
            if problem:
                raise LocatedError(problem, span, "choose another name after `as`")
            if name in self.names:
                auto = name in self.auto_names
                raise LocatedError(f"the name `{name}` is already taken in this {'block' if self.path else 'network'}"
                                   + (" (an earlier layer was named so automatically)" if auto else ""), span,
                                   "name that layer too, or choose another name" if auto else "names must be unique")
            self.names.add(name)
            return name
        sep = "_" if kind[-1].isdigit() else ""  # relu6_1, not relu61
        n = self.counters.get(kind, 0)
        while f"{kind}{sep}{n + 1}" in self.names:
            n += 1
        n += 1
        self.counters[kind] = n
        self.names.add(f"{kind}{sep}{n}")
        self.auto_names.add(f"{kind}{sep}{n}")
        return f"{kind}{sep}{n}"

    def child_access(self, attr: str) -> str:
        return f"{self.access}[{attr}]" if self.sequential else f"{self.access}.{attr}"

    def skip(self, pipeline: ast.Pipeline) -> None:
        """An inactive branch: its layers still take their names, so that names do not depend on conditions."""
        for stage in pipeline.stages:
            if isinstance(stage, ast.Layer) and stage.name is None and stage.op in REGISTRY:
                spec = REGISTRY[stage.op]
                _, count, _ = split_repeat(stage.args)
                for _ in range(count):
                    self.child_name(None, spec.kind or spec.name, stage.span)
            elif isinstance(stage, ast.Layer) and stage.name is not None:
                self.names.add(stage.name)
            elif isinstance(stage, ast.Group) and stage.name is None and not self.sequential:
                self.skip(stage.pipeline)
            elif isinstance(stage, (ast.Call, ast.Group)) and stage.name is not None:
                self.names.add(stage.name)
            elif isinstance(stage, ast.Call) and stage.callee in self.prog.blocks:
                self.child_name(None, stage.callee.lower(), stage.span)

    # -- groups and blocks ------------------------------------------------------------------------

    def group(self, node: ast.Group) -> None:
        args, count, _ = split_repeat(node.args)
        if args:
            _no_repeat_expression(args)
            raise LocatedError("a group takes only a repetition (`x2`) and a name (`as name`)", args[0].span)
        if node.name is None and not self.sequential:
            for _ in range(count):  # an unnamed group is no scope of its own
                self.pipeline(node.pipeline)
            return
        if node.name is not None and count > 1 and self.sequential:
            raise LocatedError("the stages of a named group are numbered; they take no names", node.span)
        if node.name is not None and count > 1:
            # (stages) x2 as name: one group holding the repeated stages
            inner = ast.Pipeline.model_construct(stages=tuple(st for _ in range(count) for st in node.pipeline.stages), span=node.pipeline.span)
            return self.sequential_group(node.name, node.span, lambda g: g.pipeline(inner))
        for _ in range(count):
            self.sequential_group(node.name, node.span, lambda g: g.pipeline(node.pipeline))

    def labeled_group(self, stmt: ast.Labeled) -> None:
        if stmt.label in MERGES:
            raise LocatedError(f"`{stmt.label}:` takes its branches on the indented lines below it", stmt.label_span,
                               "one branch per line")
        if stmt.args or stmt.condition is not None:
            raise LocatedError(f"a named group takes no arguments; did you mean a merge (add, cat, mul, split)?", stmt.label_span,
                               did_you_mean(stmt.label, MERGES))
        if self.sequential:
            raise LocatedError("a named group inside a named group: use parentheses for a nested, numbered group", stmt.label_span)
        if stmt.pipeline is not None:
            self.sequential_group(stmt.label, stmt.label_span, lambda g: g.pipeline(stmt.pipeline))
        else:
            self.sequential_group(stmt.label, stmt.label_span, lambda g: g.body(stmt.body))

    def sequential_group(self, name: str | None, span: Span, fill: Callable[["Scope"], None]) -> None:
        attr = self.child_name(name, "sequential", span)
        group = Scope(self.prog, self.source, self.env, self.shape, path=f"{self.path}{attr}.",
                      access=self.child_access(attr), sequential=True)
        group.unpooled = set()
        fill(group)
        if not group.steps and group.shape is not None:
            raise LocatedError(f"the group `{attr}` is empty", span)
        self.shape = group.shape
        self.first_in = self.first_in if self.first_in is not None else group.first_in
        self.steps.append(Step(kind="group", name=attr, children=tuple(group.steps), output_shape=_plain(self.shape)))

    def call(self, node: ast.Call) -> None:
        block, source = self.prog.blocks[node.callee]
        attr = self.child_name(node.name, node.callee.lower(), node.span)
        if node.callee in (name for name, _, _ in self.prog.calls):
            raise LocatedError(f"the block `{node.callee}` calls itself", _head(node.span), "blocks cannot be recursive")
        given = self._call_args(node, block)  # checked even after an earlier error, like a layer's own arguments
        if self.shape is None:
            return
        if len(self.shape) < 1 or self.shape[0] is None:
            raise LocatedError(f"cannot infer the input channels of `{node.callee}`", _head(node.span), "declare the network's `input`")
        c_in = self.shape[0]
        env: dict[str, Val] = {"in": Val(value(c_in), "in_channels")}
        params, defaults = [], []
        for p in block.params:
            # the signature comes from the definition, the same for every call: a default that uses `in` or the
            # parameters before it is an expression (`mid=None`, computed in __init__), any other a constant
            try:
                default = None if p.default is None else evaluate(p.default, env)
            except LocatedError as e:  # a mistake in the block's definition: reported in its file, with this call
                self.prog.calls.append((node.callee, _head(node.span), self.source))
                self.prog.error(e.message, e.span, source, "a default may use `in` and the parameters before it")
                self.prog.calls.pop()
                self.shape = None
                return
            if isinstance(default, Val) and default.symbolic:
                defaults.append((p.name, default.code()))
                params.append((p.name, None))
            else:
                params.append((p.name, value(default)))
            v = given[p.name][1] if p.name in given else default
            raw = v.v if isinstance(v, Val) else v
            if isinstance(v, Word) or isinstance(v, tuple):
                raise LocatedError(f"`{p.name}` of `{node.callee}` must be a number or true/false, found {v}", node.span)
            env[p.name] = Val(raw, p.name)
        inner_shape = (env["in"], *(None if d is None else Val(value(d)) for d in self.shape[1:]))
        sub = Scope(self.prog, source, env, inner_shape, path=f"{self.path}{attr}.", access=self.child_access(attr))
        self.prog.calls.append((node.callee, _head(node.span), self.source))
        try:
            sub.body(block.body)
        finally:
            self.prog.calls.pop()
        if sub.shape is None:
            self.shape = None
            return
        index = len(self.prog.instances)
        self.prog.instances.append(BlockInstance(block=node.callee, file=source.name, params=tuple(params),
                                                 defaults=tuple(defaults), steps=tuple(sub.steps)))
        mapping = {"in_channels": as_val(c_in)}
        call_args = []
        for p in block.params:
            if p.name in given:
                keyword, v = given[p.name]
                mapping[p.name] = as_val(v)
                call_args.append((keyword, v))
            else:
                mapping[p.name] = Val(value(env[p.name]))
        self.shape = tuple(substitute(d, mapping) for d in sub.shape)
        if self.first_in is None:
            self.first_in = value(c_in)
        self.steps.append(Step(kind="call", name=attr, instance=index, call_args=tuple(call_args), in_channels=c_in,
                               output_shape=_plain(self.shape)))

    def _call_args(self, node: ast.Call, block: ast.Block) -> dict[str, tuple[str | None, Any]]:
        names = [p.name for p in block.params]
        given: dict[str, tuple[str | None, Any]] = {}
        positional = 0
        for arg in node.call_args:
            if isinstance(arg, ast.Keyword):
                if arg.key not in names:
                    raise LocatedError(f"`{node.callee}` has no parameter `{arg.key}`", arg.key_span,
                                       did_you_mean(arg.key, names) or f"its parameters are: {', '.join(names) or 'none'}")
                key, keyword = arg.key, arg.key
            elif isinstance(arg, ast.Positional):
                if given and any(k is not None for k, _ in given.values()):
                    raise LocatedError("a positional argument after a keyword argument", arg.span)
                if positional >= len(names):
                    raise LocatedError(f"too many arguments: `{node.callee}` takes {len(names)}", arg.span,
                                       f"its parameters are: {', '.join(names) or 'none'}")
                key, keyword = names[positional], None
                positional += 1
            else:
                raise LocatedError("a block call takes values, not channels", arg.span)
            if key in given:
                raise LocatedError(f"`{key}` is given twice", arg.span)
            v = evaluate(arg.value, self.env)
            if isinstance(v, Word):
                raise LocatedError(f"unknown name `{v}`", arg.value.span, did_you_mean(v, self.env))
            given[key] = (keyword, v)
        for p in block.params:
            if p.name not in given and p.default is None:
                raise LocatedError(f"`{node.callee}` needs a value for `{p.name}`", _head(node.span),
                                   f"e.g. `{node.callee}({', '.join(names)})`")
        return given

    # -- merges -----------------------------------------------------------------------------------

    def merge(self, stmt: ast.Labeled) -> None:
        kind, head = stmt.label, stmt.label_span
        if self.sequential:
            raise LocatedError(f"a merge (`{kind}:`) cannot be inside a named group", head, "put it in a block, and call the block")
        parts = 0
        if kind == "split":
            if len(stmt.args) != 1 or not isinstance(stmt.args[0], ast.Positional):
                raise LocatedError("`split` needs the number of parts, e.g. `split 2:`", head)
            n = evaluate(stmt.args[0].value, self.env)
            if not (isinstance(n, Val) and type(n.v) is int and n.v >= 1):
                raise LocatedError("`split` needs a positive number of parts", stmt.args[0].span)
            parts = n.v
        elif stmt.args:
            raise LocatedError(f"`{kind}:` takes no arguments", stmt.args[0].span)
        lines = [s for s in stmt.body]
        for s in lines:
            if not isinstance(s, ast.Line):
                raise LocatedError(f"the body of `{kind}:` holds branches, one pipeline per line", _head(s.span))
        if kind == "split" and len(lines) != parts:
            raise LocatedError(f"`split {parts}:` needs {parts} branches, found {len(lines)}", head)
        if kind != "split" and len(lines) < 2:
            raise LocatedError(f"`{kind}:` needs at least two branches, one per line", head)
        enabled, cond_code, flag = True, None, None
        if stmt.condition is not None:
            if kind == "split":
                raise LocatedError("`split` takes no condition: without the merge its branches would see only part of the channels",
                                   stmt.condition.span, "put the condition on a branch, or call a block conditionally")
            enabled = _truth(evaluate(stmt.condition, self.env), stmt.condition.span)
            cond_code = condition_code(stmt.condition, self.env)
            if _constant(cond_code):  # no parameter in it: decided here, and the class needs no `if`
                cond_code = None
            else:
                flag = self.child_name(None, f"use_{kind}", head)  # the module's attribute that remembers it
        start = self.shape
        if start is None:
            return
        branch_in = start
        if kind == "split":
            c = start[0]
            if c is not None and value(c) % parts:
                raise LocatedError(f"`split {parts}` needs channels divisible by {parts}, found {value(c)} in {fmt_shape(start)}", head)
            branch_in = (None if c is None else c // parts, *start[1:])
        branches: list[Branch] = []
        outputs: list[tuple[int, tuple]] = []
        saved = self.steps
        for i, line in enumerate(lines):
            active = enabled or i == 0
            code = None
            if line.condition is not None:
                if kind == "mul":
                    raise LocatedError("a branch of `mul` takes no condition: a false branch would be the identity and square the input",
                                       line.condition.span, "make the whole merge conditional: `mul if condition:`")
                active = active and _truth(evaluate(line.condition, self.env), line.condition.span)
                code = condition_code(line.condition, self.env)
                if _constant(code):
                    code = None
                    if not active:  # decided here: the branch is the identity
                        self.skip(line.pipeline)
                        branches.append(Branch(identity=True, active=True))
                        if enabled or i == 0:
                            outputs.append((i, branch_in))
                        continue
            if _is_identity(line.pipeline):
                branches.append(Branch(identity=True, condition=code, active=active))
                if enabled or i == 0:
                    outputs.append((i, branch_in))
                continue
            if not active:
                self.skip(line.pipeline)
                branches.append(Branch(condition=code, active=False))
                if line.condition is not None and (enabled or i == 0):
                    outputs.append((i, branch_in))  # a false condition makes the branch the identity
                continue
            self.steps, self.shape = [], branch_in
            try:
                self.pipeline(line.pipeline)
            finally:
                branch_steps, self.steps = self.steps, saved
            if self.shape is None:
                return
            branch_flag = None
            if code is not None and not any(_declares(s) for s in branch_steps):
                branch_flag = self.child_name(None, "use_branch", line.span)  # no module to test for None in forward
            branches.append(Branch(steps=tuple(branch_steps), condition=code, active=True, flag=branch_flag))
            outputs.append((i, self.shape))
        self.shape = self._combine(kind if enabled else "first", outputs, lines, head)
        if not enabled and cond_code is None:  # a merge switched off here for good: only its first branch
            first = branches[0]
            if not first.identity:
                self.steps.extend(first.steps)
            return
        self.steps.append(Step(kind="merge", name=flag, merge=kind, parts=parts, branches=tuple(branches), condition=cond_code,
                               active=enabled, output_shape=_plain(self.shape)))

    def _combine(self, kind: str, outputs: list[tuple[int, tuple]], lines, head: Span) -> tuple:
        (i0, first), rest = outputs[0], outputs[1:]
        if kind == "first" or not rest:
            return first
        if kind in ("add", "mul"):
            shape = list(first)
            for i, other in rest:
                if len(other) != len(first):
                    raise self._mismatch(kind, i0, first, i, other, None, lines[i])
                for axis, (a, b) in enumerate(zip(first, other)):
                    if a is None or b is None or value(a) == value(b):
                        continue
                    if kind == "mul" and (value(a) == 1 or value(b) == 1):
                        shape[axis] = a if value(b) == 1 else b
                        continue
                    raise self._mismatch(kind, i0, first, i, other, axis, lines[i])
            return tuple(shape)
        total = first[0]
        for i, other in rest:  # cat and split: all but the channels must match
            if len(other) != len(first):
                raise self._mismatch("cat", i0, first, i, other, None, lines[i])
            for axis in range(1, len(first)):
                a, b = first[axis], other[axis]
                if a is not None and b is not None and value(a) != value(b):
                    raise self._mismatch(kind, i0, first, i, other, axis, lines[i])
            total = None if total is None or other[0] is None else total + other[0]
        return (total, *first[1:])

    def _mismatch(self, kind, i, a, j, b, axis, line) -> LocatedError:
        need = {"add": "the same shape", "mul": "shapes that broadcast", "cat": "the same shape but for the channels",
                "split": "the same shape but for the channels"}[kind]
        where = (f": they differ in axis {axis + 1} ({_axis_name(axis + 1, len(a) + 1)})" if axis is not None
                 else f": they have different ranks")
        return LocatedError(
            f"`{kind}` needs branches of {need}, but branch {i + 1} gives {fmt_shape(a)} and branch {j + 1} gives {fmt_shape(b)}{where}",
            line.pipeline.span,
            "make the shapes agree, e.g. with a stride or a 1x1 conv on one side" if kind != "mul" else None,
        )

    def join(self, node: ast.Call) -> None:
        kind = node.callee
        if node.args or node.name is not None:
            raise LocatedError(f"`{kind}(...)` takes only the names of values", _head(node.span))
        if self.sequential:
            raise LocatedError(f"`{kind}(...)` cannot be inside a named group", _head(node.span))
        names = []
        for arg in node.call_args:
            if not (isinstance(arg, ast.Positional) and isinstance(arg.value, ast.Name)):
                raise LocatedError(f"`{kind}(...)` takes the names of values, e.g. {kind}(e1)", arg.span)
            name = arg.value.id
            if name not in self.values and name in getattr(self, "later", {}):
                raise LocatedError(self._before(name), arg.span, "move the line that defines it above this one")
            if name not in self.values:
                raise LocatedError(f"`{name}` is not a named value (or is used before it is defined)", arg.span,
                                   did_you_mean(name, self.values) or f"define it first: `{name} = pipeline`")
            self.values[name].used = True
            names.append(name)
        if not names:
            raise LocatedError(f"`{kind}()` needs at least one value", _head(node.span))
        if self.shape is None:
            return
        outputs = [(0, self.shape)] + [(i + 1, self.values[n].shape) for i, n in enumerate(names)]
        try:
            self.shape = self._combine(kind, outputs, [_LineLike(node)] * len(outputs), node.span)
        except LocatedError as e:  # say "the pipeline" and the values' names rather than branch numbers
            e.message = e.message.replace("branch 1 ", "the pipeline ")
            for i, n in enumerate(names):
                e.message = e.message.replace(f"branch {i + 2} ", f"`{n}` ")
            raise
        self.steps.append(Step(kind="join", merge=kind, values=tuple(names), output_shape=_plain(self.shape)))


@dataclass
class _LineLike:
    """Lets an inline merge report through the same path as a merge's branch."""

    node: Any

    @property
    def pipeline(self):
        return self.node


def _declares(step: Step) -> bool:
    """Whether a step declares a module (or parameter) of its own."""
    return step.kind in ("call", "group") or (step.kind == "layer" and step.layer.forward in ("call", "mul"))


def _no_repeat_expression(args) -> None:
    """`x n` or `x 2` where `x2` was meant: say that a repetition is a number written in the source."""
    first = args[0]
    if isinstance(first, ast.Positional) and isinstance(first.value, ast.Name) and first.value.id == "x" and len(args) > 1:
        raise LocatedError("a repetition is `x` and a number in one word, such as `x2`", first.span.model_copy(
            update={"end_line": args[1].span.end_line, "end_col": args[1].span.end_col}),
            "the count cannot be a parameter or an expression: repeat where the number is known")


def _constant(code: str) -> bool:
    """Whether a condition's Python names no parameter (it is decided at compile time)."""
    return re.search(r"\b(?!(?:True|False|and|or|not)\b)[A-Za-z_]\w*", code) is None


def _truth(x, span: Span) -> bool:
    if isinstance(x, Val):
        return bool(x.v)
    raise LocatedError("a condition must be true or false", span)


def _is_identity(p: ast.Pipeline) -> bool:
    return len(p.stages) == 1 and isinstance(p.stages[0], ast.Layer) and p.stages[0].op == "identity" and not p.stages[0].args and p.stages[0].name is None


def _axis_name(axis: int, rank: int) -> str:
    if axis == 1:
        return "channels"
    names = {3: ("length",), 4: ("height", "width"), 5: ("depth", "height", "width")}.get(rank)
    return names[axis - 2] if names and axis - 2 < len(names) else f"dimension {axis}"


def _plain(shape):
    return None if shape is None else tuple(value(d) for d in shape)


def _head(span: Span) -> Span:
    """The first line of a span (a statement's span runs to the next line)."""
    if span.end_line == span.line:
        return span
    return span.model_copy(update={"end_line": span.line, "end_col": span.col + 1})


def _unpool_targets(statements) -> set[str]:
    """The names that `unpool NAME` reads in these statements (their max pools must return indices)."""
    out: set[str] = set()

    def pipeline(p):
        for st in p.stages:
            if isinstance(st, ast.Layer) and st.op == "unpool":
                for a in st.args:
                    if isinstance(a, ast.Positional) and isinstance(a.value, ast.Name):
                        out.add(a.value.id)
            elif isinstance(st, ast.Group):
                pipeline(st.pipeline)

    for s in statements:
        if isinstance(s, (ast.Line, ast.Assign)):
            pipeline(s.pipeline)
        elif isinstance(s, ast.Labeled):
            if s.pipeline is not None:
                pipeline(s.pipeline)
            out |= _unpool_targets(s.body)
    return out
