"""The walk over one module's statements — a network's body, a block's body, or a named group — that infers
shapes, names every module, and records the steps its forward takes. Blocks are checked once per call,
with the caller's values; their steps keep the block's parameters symbolic for the generated class."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .. import errors as _errors
from .. import limits
from ..errors import MAX_ERRORS, CheckError, Source, Span, did_you_mean, first_line
from ..ir.network import (
    BlockInstance,
    CheckedLayer,
    GroupStep,
    LayerStep,
    OutputStep,
    Step,
    UseStep,
    ValueStep,
)
from ..ir.values import Val, plain, value
from ..names import identifier_problem, value_problem
from ..ops import REGISTRY, Ctx, LayerError
from ..ops.base import written_rank
from ..ops.common import fmt_shape
from ..ops.tensor import as_stage
from ..syntax import ast
from .calls import call as block_call
from .externs import call as external_call
from .memo import CallMemo, blocks_key, limits_key
from .merges import JOINS, MERGES, join, merge
from .pins import DECIDED, pin
from .resolve import (
    FAILED,
    ChosenWord,
    LocatedError,
    chosen,
    condition_deps,
    evaluate,
    resolve,
    split_repeat,
    truth,
    unknown_option,
    word_option,
)
from .shapes import pool_stray_index, unpool_out

if TYPE_CHECKING:
    from ..errors import Diagnostic  # pydantic, made on first use


@dataclass
class Program:
    """What a whole check shares: the blocks in reach, the diagnostics, every layer and block instance."""

    blocks: dict[str, tuple[ast.Block | ast.ModuleDecl, Source]]  # blocks and external modules, by name
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    layers: list[CheckedLayer] = field(default_factory=list)
    instances: list[BlockInstance] = field(default_factory=list)
    calls: list[tuple[str, Span, Source]] = field(default_factory=list)  # the block calls being checked
    work: limits.Budget = field(default_factory=limits.Budget)  # the work of this check, against the `work` limit
    layer_inits: list[tuple[str, ast.Keyword, Source]] = field(default_factory=list)
    warned: set[tuple[str, Span, str]] = field(default_factory=set)  # (file, span, message) of each warning
    defaults_seen: dict[int, tuple[ast.Defaults, str, Source]] = field(default_factory=dict)  # id(stmt) -> its op
    defaults_used: set[int] = field(default_factory=set)  # id() of each `defaults` option a layer was given
    memo: CallMemo | None = None  # block calls' walks kept from the file's last check (the language server's)
    reports: int = 0  # the diagnostics attempted (a walk that attempted none can be kept in the memo)
    _memo_base: tuple | None = None

    def memo_base(self) -> tuple:
        """What every kept walk of this check read: the blocks in reach (text and place) and the limits."""
        if self._memo_base is None:
            self._memo_base = (blocks_key(self.blocks), limits_key())
        return self._memo_base

    def diagnostic(self, severity: str, message: str, span: Span, source: Source, hint: str | None) -> Diagnostic:
        notes = tuple(
            _errors.Diagnostic(message=f"in `{name}`, called here", file=src.name, span=at, line_text=src.line_text(at.line))
            for name, at, src in reversed(self.calls)
        )
        return _errors.Diagnostic(severity=severity, message=message, file=source.name, span=span,
                          line_text=source.line_text(span.line), hint=hint, notes=notes)

    def error(self, message: str, span: Span, source: Source, hint: str | None = None) -> None:
        self.reports += 1
        d = self.diagnostic("error", message, span, source, hint)
        if any(e.file == d.file and e.span == d.span and e.message == d.message for e in self.errors):
            return  # the same mistake inside a block called twice
        self.errors.append(d)
        if len(self.errors) > MAX_ERRORS:
            raise CheckError(self.errors)

    def report(self, e: LocatedError, source: Source, hint: str | None = None) -> None:
        """A LocatedError as an error (with `hint` instead of its own if given), unless it is a consequence of one
        reported already."""
        self.reports += 1
        if not e.reported:
            self.error(e.message, e.span, source, e.hint if hint is None else hint)

    def warn(self, message: str, span: Span, source: Source, hint: str | None = None) -> None:
        self.reports += 1
        if (source.name, span, message) not in self.warned:
            self.add_warning(self.diagnostic("warning", message, span, source, hint))

    def add_warning(self, d: Diagnostic) -> None:
        """A warning, once per file, place and message (a layer in a block called three times is one line of the
        source; the first call's notes say where it was called from)."""
        self.reports += 1
        key = (d.file, d.span, d.message)
        if key not in self.warned:
            self.warned.add(key)
            self.warnings.append(d)


@dataclass
class _Value:
    shape: tuple
    span: Span
    used: bool = False


class Scope:
    """One module being checked (a network's body, a block's body for one call, or a named group) and the state
    its walk threads through the statements: every field is here. The walk is this class for statements,
    pipelines, layers and groups, and two plain modules over a Scope for the rest: cnndsl.semantics.calls (block calls)
    and cnndsl.semantics.merges (merges and joins). `sequential` scopes are named groups: their children are numbered."""

    def __init__(self, prog: Program, source: Source, env: dict[str, Val], shape: tuple | None, *,
                 path: str = "", access: tuple = (), sequential: bool = False,
                 on_statement: Callable[[ast.Statement], bool] | None = None, defaults: dict | None = None):
        # where the module is, and what it sees
        self.prog, self.source, self.env = prog, source, env  # the whole check; this file; names in scope
        self.path, self.access, self.sequential = path, access, sequential  # state_dict prefix; attribute path
        self.on_statement = on_statement  # the network's own statements (input, init)
        # what flows: the shape after the last statement (None: unknown after an error), and the steps so far
        self.shape = shape
        self.steps: list[Step] = []
        self.first_in: int | None = None  # the channels of the first layer's input
        self.start_rank: int = 2  # the spatial rank of a network without `input`, from its first layer
        # names: the module's attributes, numbered stems (conv1, conv2 ...), and its named values
        self.counters: dict[str, int] = {}
        self.names: set[str] = set()
        self.auto_names: set[str] = set()
        self.values: dict[str, _Value] = {}
        self.later: dict[str, int] = {}  # values defined further down (line), to say "used before it is defined"
        self.pools: dict[str, dict | str | None] = {}  # named pools that an unpool reads: what each is
        self.maxpools: list[str] = []  # the attributes of the max pools so far, for an unpool's hint
        self.unpooled: set[str] = set()  # the names that an unpool reads
        self.outputs: tuple[str, ...] = ()  # `output a, b`: the values the module returns
        self.output_keys: tuple[str, ...] = ()  # `output p2 as "0", pool`: the dict's keys (empty: a tuple)
        self.output_shapes: tuple = ()
        self.lists: dict[str, dict[int, Span]] = {}  # `as inner_blocks[3]`: each list's entries and where they are
        self.inputs: tuple[str, ...] = ()  # a block's named inputs (`input high, low`), bound by its call
        self.returned: tuple | None = None  # the shapes a call of a block with several outputs gave, to unpack
        self.conditions = 0  # the conditions kept so far (condition_key)
        self.permuted = False  # a permute ran: a `linear` on a 4-d tensor may be meant (ConvNeXt's, channels last)
        self.decided: set[str] = set()  # a block's parameters that decided its optional lines (cnndsl.semantics.calls)
        # the `defaults` in force, by op and option: (argument, the names it was written with); a group and a
        # called block start with their caller's, and their own stay theirs
        self.defaults: dict[str, dict[str, tuple]] = dict(defaults or {})

    # -- reporting --------------------------------------------------------------------------------

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.prog.error(message, span, self.source, hint)

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.prog.warn(message, span, self.source, hint)

    def fail(self, e: LocatedError) -> None:
        self.prog.report(e, self.source)
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
        try:
            self.check_lists()
        except LocatedError as e:
            self.fail(e)
        self._discarded(statements)
        if self.sequential:  # a group's taps are its enclosing module's values, checked for use there
            return
        restarts = _restarting(statements)
        for name, v in self.values.items():
            if not v.used and name not in self.outputs:
                if name in restarts:
                    hint = f"the next line starts again from `{restarts[name]}`, so nothing reads `{name}`: merge it with cat({name}) or add({name}), or remove it"
                else:
                    hint = f"merge it with cat({name}) or add({name}), or drop `{name} =` (the next line continues from it)"
                self.warn(f"the value `{name}` is never used by name", v.span, hint)

    def _discarded(self, statements: tuple) -> None:
        """Warn about a line whose result nothing reads: the next line starts again from a value, or is `output`."""
        values = {s.name for s in statements if isinstance(s, ast.Assign)}
        body = [s for s in statements if not isinstance(s, (ast.Input, ast.Init))]
        has_output = any(isinstance(s, ast.Output) for s in body)
        for i, stmt in enumerate(body):
            if not isinstance(stmt, (ast.Line, ast.Labeled)) or (isinstance(stmt, ast.Line) and not self._there(stmt)):
                continue
            nxt = body[i + 1] if i + 1 < len(body) else None
            first = nxt.pipeline.stages[0] if isinstance(nxt, (ast.Assign, ast.Line)) else None
            if isinstance(first, ast.Layer) and first.op in values and not first.args and first.name is None:
                hint = f"the next line starts again from `{first.op}`: name this result (`y = ...`) and use it, or remove the line"
            elif isinstance(nxt, ast.Output) or (nxt is None and has_output):
                hint = "`output` returns only the values it names: name this result (`y = ...`) and add it to `output`"
            else:
                continue
            at = first_line(stmt.span)
            at = at.model_copy(update={"end_col": at.col + len(self.source.line_text(at.line).split("#")[0].strip())})
            self.warn("the result of this line is never used", at, hint)

    def _there(self, stmt: ast.Line) -> bool:
        """Whether a line is in the network: an optional line (`... if aux_logits`) where its condition holds."""
        if stmt.condition is None:
            return True
        try:
            return truth(stmt.condition, evaluate(stmt.condition, self.env), self.env)
        except LocatedError:  # (reported where the line was checked)
            return False

    def statement(self, stmt) -> None:
        if self.on_statement is not None and self.on_statement(stmt):
            return
        if isinstance(stmt, ast.Input) and self.inputs:  # a block's `input high, low`: bound by its call
            return
        if isinstance(stmt, ast.Input) and not self.sequential:
            raise LocatedError("a block's `input` is its first line", first_line(stmt.span), "`input high, low` names its inputs, in order")
        if isinstance(stmt, (ast.Input, ast.Init)):
            what = "input" if isinstance(stmt, ast.Input) else "init"
            raise LocatedError(f"`{what}` belongs to a network, not to a block or group", first_line(stmt.span))
        if isinstance(stmt, ast.Line):
            if stmt.condition is not None and not self.present(stmt):
                return
            self.pipeline(stmt.pipeline)
        elif isinstance(stmt, ast.Assign):
            self.assign(stmt)
        elif isinstance(stmt, ast.Labeled):
            if stmt.label in MERGES and stmt.pipeline is None:
                merge(self, stmt)
            else:
                self.labeled_group(stmt)
        elif isinstance(stmt, ast.Output):
            self.output(stmt)
        elif isinstance(stmt, ast.Defaults):
            self.set_defaults(stmt)

    def set_defaults(self, stmt: ast.Defaults) -> None:
        """`defaults bn eps=0.001 momentum=0.01`: options every later `bn` here (in groups and the blocks it calls
        too) takes where it gives none of its own; checked here as the op's options."""
        op = self.chosen_op(ast.Layer(stmt.op, stmt.op_span, (), None, stmt.span)).op  # `defaults act inplace`
        spec = REGISTRY.get(op)
        if spec is None and op in self.prog.blocks:
            kind = "a module" if isinstance(self.prog.blocks[op][0], ast.ModuleDecl) else "a block"
            raise LocatedError(f"`defaults` sets the options of an op, and `{op}` is {kind}", stmt.op_span,
                               "give its arguments where it is called, or a default to its parameter in its definition")
        if spec is None:
            raise LocatedError(f"unknown op `{op}`", stmt.op_span, did_you_mean(op, REGISTRY) or "see the op catalog in docs/LANGUAGE.md")
        for arg in stmt.args:
            flag = isinstance(arg, ast.Positional) and isinstance(arg.value, ast.Name) and arg.value.id not in self.env \
                and word_option(spec, arg.value.id, arg.span) is not None
            if not (flag or isinstance(arg, ast.Keyword)):  # a value by position would fill the layer's own slot
                if isinstance(arg, ast.Positional) and isinstance(arg.value, ast.Name) and arg.value.id not in self.env:
                    of = f" (the value of `{stmt.op}`)" if op != stmt.op else ""
                    raise LocatedError(f"`{op}`{of} has no option `{arg.value.id}`", arg.span,
                                       did_you_mean(arg.value.id, [f for o in spec.all_options for f, _ in o.flags]))
                raise LocatedError("`defaults` takes options by name (`eps=0.001`) or flags (`nobias`)", arg.span)
            if isinstance(arg, ast.Keyword) and arg.key == "init":
                raise LocatedError("an initialiser is no default option: write an `init` rule", arg.span, f"e.g. `init {op} weight=...`")
        trial = Ctx(spec=spec, op=op, shape=None)
        resolve(trial, ast.Layer(op, stmt.op_span, stmt.args, None, stmt.span), self.env, {})  # its mistakes, here
        self.prog.defaults_seen.setdefault(id(stmt), (stmt, op, self.source))
        env = dict(self.env)
        own = {(spec.option(arg.key) if isinstance(arg, ast.Keyword) else word_option(spec, arg.value.id, arg.span)[0]).name: (arg, env)
               for arg in stmt.args}
        self.defaults[spec.name] = {**self.defaults.get(spec.name, {}), **own}  # a later default of an option replaces it

    def present(self, stmt: ast.Line) -> bool:
        """Whether an optional line (`bn if use_bn`, outside a merge) is there: decided here, the parameters its
        condition reads pinned. An absent line in a named group takes no number (the stages present are numbered
        0, 1, ... as torchvision's conditional `layers.append` numbers them); elsewhere its layers keep their names,
        so that the names of the others do not depend on the condition."""
        x = evaluate(stmt.condition, self.env)
        there = truth(stmt.condition, x, self.env)
        pin(condition_deps(stmt.condition, self.env), reason=DECIDED)
        if isinstance(x, Val) and x.e is not None:  # a block's parameters that decide it: its code has no use for them
            self.decided |= {s.name for s in x.e.syms() if s.kind == "local" and s.name != "in_channels"}
        if not there and not self.sequential:
            self.skip(stmt.pipeline, named=False)
        return there

    def assign(self, stmt: ast.Assign) -> None:
        if self.sequential and len(stmt.names) > 1:
            raise LocatedError("a stage of a named group gives one value", first_line(stmt.span),
                               "call a block with several outputs outside the group")
        for name in stmt.names:
            problem = value_problem(name)
            if problem or name in self.values or stmt.names.count(name) > 1:
                raise LocatedError(problem or f"the value `{name}` is already defined", first_line(stmt.span),
                                   "choose another name" if problem else "each named value is defined once")
        self.returned = None
        self.pipeline(stmt.pipeline)
        returned, self.returned = self.returned, None
        name_span = first_line(stmt.span).model_copy(update={"end_col": stmt.span.col + len(stmt.name)})
        if returned is None and len(stmt.names) > 1 and self.shape is not None:  # (after an error: said already)
            raise LocatedError(f"{len(stmt.names)} names, but this line gives one value", name_span,
                               "name several values only where a block call with several outputs (`output a, b`) ends the line")
        if returned is not None and len(returned) != len(stmt.names) and self.shape is not None:
            raise LocatedError(f"the block gives {len(returned)} values, but {len(stmt.names)} "
                               f"name{'s are' if len(stmt.names) != 1 else ' is'} given", name_span,
                               f"name each: `{', '.join(f'v{i + 1}' for i in range(len(returned)))} = ...`")
        # after an error the value still exists (shape unknown), so that its uses report nothing more
        if returned is not None and self.shape is not None:
            for name, shape in zip(stmt.names, returned):
                self.values[name] = _Value(shape, name_span, used=False)
            self.steps[-1] = self.steps[-1].model_copy(update={"outputs": stmt.names})
            return
        for name in stmt.names:
            self.values[name] = _Value(self.shape, name_span, used=self.shape is None)
        if self.shape is not None:
            self.steps.append(ValueStep.make(name=stmt.name, output_shape=plain(self.shape)))

    def bind_input(self, name: str, shape: tuple, span: Span, used: bool) -> None:
        """A block's named input, as a value of its body (`input high, low`; the first one flows in)."""
        self.values[name] = _Value(shape, span, used=used)

    def output(self, stmt: ast.Output) -> None:
        if self.sequential:
            raise LocatedError("`output` belongs to a network or block, not to a named group", first_line(stmt.span))
        if self.outputs:
            raise LocatedError("a second `output`", first_line(stmt.span), "one `output` line names every value returned")
        keys = tuple(k if k is not None else n for n, k in zip(stmt.names, stmt.keys))
        if any(k is not None for k in stmt.keys):
            if self.on_statement is None:
                raise LocatedError("a block returns its values in order; keys (`as`) belong to a network's `output`",
                                   first_line(stmt.span), "the caller names them: `a, b = Block(...)`")
            twice = next((k for k in keys if keys.count(k) > 1), None)
            if twice is not None:
                raise LocatedError(f"the key `{twice}` is given twice", first_line(stmt.span), "each output has its own key")
            self.output_keys = keys
        shapes = []
        for name in stmt.names:
            if name not in self.values:
                raise LocatedError(f"`output` names `{name}`, which is not a named value", stmt.span,
                                   did_you_mean(name, self.values) or "define it first: `name = pipeline`")
            self.values[name].used = True
            shapes.append(self.values[name].shape)
        self.outputs = stmt.names
        self.steps.append(OutputStep.make(values=stmt.names, keys=self.output_keys, span=first_line(stmt.span)))
        self.output_shapes = tuple(shapes)

    def used_before(self, name: str) -> str:
        return f"the value `{name}` is used before it is defined (on line {self.later[name]})"

    # -- pipelines --------------------------------------------------------------------------------

    def pipeline(self, pipeline: ast.Pipeline) -> None:
        stages = pipeline.stages
        first = stages[0]
        if isinstance(first, ast.Layer) and first.op not in self.values and first.op in self.later:
            raise LocatedError(self.used_before(first.op), first.op_span, "move the line that defines it above this one")
        if isinstance(first, ast.Layer) and first.op in self.values and not first.args and first.name is None:
            if self.sequential:
                raise LocatedError(f"the stages of a named group run one after another, so a line in it cannot start again from `{first.op}`",
                                   first.op_span, f"a value named in a group (a tap) is read after the group: `{first.op}` there")
            v = self.values[first.op]
            v.used = True
            self.shape = v.shape
            self.steps.append(UseStep.make(name=first.op, output_shape=plain(v.shape)))
            stages = stages[1:]
        for stage in stages:
            self.returned = None  # several outputs only where the call ends the line
            try:
                self.stage(stage)
            except LocatedError as e:
                self.fail(e)

    def chosen_op(self, node: ast.Layer) -> ast.Layer:
        """A layer whose op is a parameter holding a word (`act` with `act=relu`): that op, the parameter pinned."""
        word = self.env.get(node.op)
        if word is FAILED:  # a parameter whose value was refused: that error is the one to fix
            raise LocatedError(f"`{node.op}` is a parameter whose definition failed", node.op_span, reported=True)
        if not isinstance(word, ChosenWord):
            return node
        if word not in REGISTRY:
            hint = did_you_mean(word, REGISTRY) or "see the op catalog in docs/LANGUAGE.md"
            raise LocatedError(f"`{node.op}` is `{word}`, which is no op", node.op_span, hint)
        chosen(word)
        return node.model_copy(update={"op": str(word)})

    def chosen_block(self, node: ast.Call) -> ast.Call:
        """A call whose callee is a parameter holding a word (`block(64)` with `block=Bottleneck`): a call of that
        block, the parameter pinned."""
        word = self.env.get(node.callee)
        if word is FAILED:
            raise LocatedError(f"`{node.callee}` is a parameter whose definition failed", first_line(node.span), reported=True)
        if not isinstance(word, ChosenWord):
            return node
        if word not in self.prog.blocks:
            hint = did_you_mean(word, self.prog.blocks) or "define it with `block Name(...):` or import it"
            raise LocatedError(f"`{node.callee}` is `{word}`, which is no block", first_line(node.span), hint)
        chosen(word)
        return node.model_copy(update={"callee": str(word)})

    def stage(self, node) -> None:
        if isinstance(node, ast.Layer):
            node = self.chosen_op(node)
            args, count, _, index = split_repeat(node.args, self.env)
            if node.op in self.values:
                raise LocatedError(f"the value `{node.op}` can only start a pipeline", node.op_span,
                                   f"merge it here with cat({node.op}), add({node.op}) or mul({node.op})")
            if node.op in self.prog.blocks:
                spaced = node.args and isinstance(node.args[0], ast.Positional) and node.args[0].span.col > node.op_span.end_col
                kind = "a module" if isinstance(self.prog.blocks[node.op][0], ast.ModuleDecl) else "a block"
                raise LocatedError(f"`{node.op}` is {kind}: call it with parentheses", node.op_span,
                                   f"write `{node.op}(...)` with no space before `(`" if spaced else f"write `{node.op}(...)`")
            if node.op == "unpool":
                return self.unpool(node)
            if "x" not in self.env:
                _no_repeat_expression(args)
            layer = node if len(args) == len(node.args) else node.model_copy(update={"args": args})
            limits.charge(self, node, count - 1)
            if count > 1 and node.name is not None:
                raise LocatedError("a repeated layer cannot take one name", node.span, "name a group instead: `(...) x2 as name`")
            for _ in self.copies(count, index):
                self.layer(layer)
        elif isinstance(node, ast.Call):
            node = self.chosen_block(node)
            args, count, _, index = split_repeat(node.args, self.env)
            if node.callee in JOINS:
                return join(self, node)
            if node.callee in self.prog.blocks:
                if args:
                    _no_repeat_expression(args)
                    raise LocatedError("a block call takes its arguments in parentheses", args[0].span)
                if count > 1 and node.name is not None:
                    raise LocatedError("a repeated block cannot take one name", node.span, "name a group instead: `layer1: Block(...) x2`")
                run = external_call if isinstance(self.prog.blocks[node.callee][0], ast.ModuleDecl) else block_call
                for _ in self.copies(count, index):
                    run(self, node)
                return
            if node.callee in REGISTRY:
                spec = REGISTRY[node.callee]
                if not node.call_args:
                    raise LocatedError(f"`{node.callee}` is an op, not a block: write it without parentheses", first_line(node.span),
                                       f"`{node.callee}`" + (f", or with its arguments after a space: `{node.callee} {_example_args(spec)}`"
                                                             if spec.positional else " alone: it takes no arguments"))
                raise LocatedError(f"`{node.callee}` is an op, not a block: write its arguments after a space",
                                   first_line(node.span), f"e.g. `{node.callee} {_example_args(spec)}`, not `{node.callee}(...)`"
                                   if spec.positional else f"`{node.callee}` takes no positional arguments: `{node.callee}`")
            raise LocatedError(f"unknown block `{node.callee}`", first_line(node.span),
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
            self.start_rank = written_rank(node.op) or 2
            self.shape = (None,) * (self.start_rank + 1)
        ctx = Ctx(spec=spec, op=node.op, shape=self.shape)
        spans: dict[str, Span] = {}
        given = self.defaults.get(spec.name)
        if given:
            self.prog.defaults_used.update(id(arg) for arg, _ in given.values())
        try:
            extra = resolve(ctx, node, self.env, spans, given.values() if given else ())
        except LocatedError as e:  # every option the op lacks, not only the first (`kernal_size=3 paddin=1`)
            if len(e.names) == 1 and e.names[0] in self.values and e.message.endswith("is not defined here"):
                e = LocatedError(f"`{e.names[0]}` is a named value, a tensor, and a layer's arguments are numbers", e.span,
                                 "they compute with numbers, parameters, `in`, a repetition's index and the functions min, max, "
                                 "int, round, floor, ceil, sqrt, make_divisible; a tensor's size is read with `like=`"
                                 f" (`upsample like={e.names[0]}`)")
            unknown = [a for a in node.args if isinstance(a, ast.Keyword) and a.key != "init" and spec.option(a.key) is None]
            shape = self.shape
            self.fail(e)
            if unknown and unknown[0].key_span == e.span:
                for arg in unknown[1:]:
                    self.prog.report(unknown_option(spec, node.op, arg), self.source)
            if spec.same_shape:  # (an activation, dropout, a norm): its output has its input's shape, so
                self.shape = shape  # the lines after it are still checked (`bn 16`)
            return
        _within_limits(ctx, spans, node.op_span)
        if spec.reads_values:
            self.read_values(ctx, spans)
        attr = self.child_name(node.name, spec.kind or spec.name, node.span)
        if self.shape is None:  # an earlier error left the shape unknown
            if spec.same_shape:  # its options are still checked where they do not need the shape (`dropout 1.5`)
                try:
                    spec.rule(Ctx(spec=spec, op=node.op, shape=(None, None, None), opts=ctx.opts, given=ctx.given))
                except LayerError as e:
                    if e.at in spans:
                        raise LocatedError(e.message, spans[e.at], e.hint) from None
                except (TypeError, ValueError, IndexError, KeyError):  # a rule that needs the shape: nothing to say without it
                    pass
            return
        try:
            result = spec.rule(ctx)
        except LayerError as e:
            error = LocatedError(e.message, spans.get(e.at, node.op_span) if e.at else node.op_span, e.hint)
            if spec.same_shape:  # (an activation, dropout, a norm): its output has its input's shape, so
                self.prog.report(error, self.source)  # the lines after it are still checked (`dropout 1.5`)
                return
            self.shape = None
            raise error from None
        _shape_within_limits(result.shape, node.op_span)
        if self.first_in is None and ctx["in"] is not None:
            self.first_in = value(ctx["in"])
        for message, hint in result.warnings:
            self.warn(message, node.op_span, hint)
        if spec.name == "permute":
            self.permuted = True
        elif spec.name == "linear" and len(self.shape) >= 3 and not self.permuted:  # conv | linear: the classic slip
            self.warn(f"`{node.op}` acts on the last dimension only: on {fmt_shape(self.shape)} it maps each row of "
                      f"{value(self.shape[-1]) if self.shape[-1] is not None else 'its'} values, and keeps the other axes",
                      node.op_span, f"flatten first to use the whole map (`flatten | {node.op} ...`), or pool it (`gap | flatten`)")
        kwargs, indices = result.kwargs, None
        if attr in self.unpooled and spec.name == "maxpool":
            kwargs = kwargs + (("return_indices", Val(True)),)
            indices = attr  # the pool whose indices are kept: the backend names their variable
            self.pools[attr] = {"ctx": ctx, "input": self.shape, "output": result.shape, "indices": indices}
        if result.forward != "call" and self.sequential:
            result = as_stage(result)  # (an op that reads a value was refused by read_values)
            if result is None:
                raise LocatedError(f"`{node.op}` is not a module, so it cannot be a stage of a named group", node.op_span)
        layer = CheckedLayer.make(
            name=self.path + attr, attr=attr, access=self.child_access(attr), op=spec.name, module=result.module,
            args=result.args, kwargs=kwargs, forward=result.forward,
            input_shape=plain(self.shape), output_shape=plain(result.shape), params=result.params,
            lazy=result.lazy, helper=result.helper, imports=result.imports,
            weight_path="conv." if spec.name == "deform" else "",
            has_bias=_has_bias(ctx),
            span=node.span, file=self.source.name,
        )
        if "init" in extra:
            if not result.weights or result.params == 0:  # e.g. a norm with affine=false
                self.error(f"`{node.op}` has no weights to initialise", extra["init"].key_span)
            else:
                self.prog.layer_inits.append((layer.name, extra["init"], self.source))
        self.prog.layers.append(layer)
        found = limits.problem("layers", len(self.prog.layers), "the number of layers")
        if found:  # raised past the error list: repeating this error for every layer would take as long
            raise CheckError([*self.prog.errors, self.prog.diagnostic("error", *found[:1], node.span, self.source, found[1])])
        self.steps.append(LayerStep.make(name=attr, layer=layer, indices=indices, output_shape=layer.output_shape))
        if spec.name == "maxpool":
            self.maxpools.append(attr)
        self.shape = result.shape

    def read_values(self, ctx: Ctx, spans: dict[str, Span]) -> None:
        """The named values a layer's options read (`upsample like=e1`): their shapes for its rule, each marked used."""
        for opt in ctx.spec.all_options:
            name = ctx[opt.name] if opt.kind == "value" else None
            if name is None:
                continue
            if self.sequential:
                raise LocatedError(f"`{ctx.op}` reads the value `{name}`, so it cannot be a stage of a named group, whose stages"
                                   " take one tensor", spans[opt.name], "put it after the group: a tap (`c3 = ...`) in the group keeps what it needs")
            if name not in self.values and name in self.later:
                raise LocatedError(self.used_before(name), spans[opt.name], "move the line that defines it above this one")
            if name in self.values:
                self.values[name].used = True
                ctx.values[name] = self.values[name].shape

    def unpool(self, node: ast.Layer) -> None:
        args = [a for a in node.args]
        if len(args) != 1 or not isinstance(args[0], ast.Positional) or not isinstance(args[0].value, ast.Name):
            raise LocatedError("`unpool` takes the name of a max pool", node.span, "e.g. `maxpool 2 as pool1` ... `unpool pool1`")
        target = args[0].value.id
        if self.sequential:
            raise LocatedError("`unpool` reads indices, so it cannot be a stage of a named group", node.op_span,
                               "move it out of the group, or into a block")
        pool = self.pools.get(target)
        if isinstance(pool, str):
            raise LocatedError(f"`unpool` needs a max pool, but `{target}` is {'an' if pool[0] in 'aeiou' else 'a'} `{pool}`", args[0].span,
                               "unpool undoes a named max pool: `maxpool 2 as pool1` ... `unpool pool1`")
        if pool is None and target in self.pools:  # the pool's shape is unknown after an error already reported
            self.child_name(node.name, "unpool", node.span)
            self.shape = None
            return
        if pool is None:
            raise LocatedError(f"`unpool` names `{target}`, which is no max pool before it in this {'block' if self.path else 'network'}",
                               args[0].span, did_you_mean(target, self.maxpools) or "name the pool with `maxpool 2 as pool1`")
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
        for j, (dflt, want) in enumerate(zip(default, spatial)):
            if dflt is not None and want is not None and not value(dflt) - value(s[j]) < value(want) < value(dflt) + value(s[j]):
                raise LocatedError(f"`unpool {target}` cannot restore size {value(want)} in spatial dimension {j + 1}: MaxUnpool"
                                   f" with kernel {value(k[j])}, stride {value(s[j])} and padding {value(p[j])} gives sizes"
                                   f" strictly between {value(dflt) - value(s[j])} and {value(dflt) + value(s[j])}", node.span,
                                   "a dilated pool covers more input than its kernel: use dilation 1 before an unpool")
        if pool_stray_index(spatial, k, s, p, ctx.per_dim("dilation", n), self.shape[1:]):
            raise LocatedError(f"`unpool {target}` cannot undo `{target}`: a window of the dilated pool holds no input element,"
                               " so its index lies outside the input", node.span, "use less padding or dilation in the pool")
        output_size = None
        if any(d is not None and t is not None and value(d) != value(t) for d, t in zip(default, spatial)):
            output_size = tuple(value(t) for t in spatial)
        module_kwargs = tuple((key, ctx[key]) for key in ("stride", "padding") if key in ctx.given)
        layer = CheckedLayer.make(
            name=self.path + attr, attr=attr, access=self.child_access(attr), op="unpool", module=f"nn.MaxUnpool{n}d",
            args=(ctx["kernel_size"],), kwargs=module_kwargs, input_shape=plain(self.shape),
            output_shape=plain((self.shape[0], *spatial)), params=0, span=node.span, file=self.source.name,
        )
        self.prog.layers.append(layer)
        found = limits.problem("layers", len(self.prog.layers), "the number of layers")
        if found:  # raised past the error list: repeating this error for every layer would take as long
            raise CheckError([*self.prog.errors, self.prog.diagnostic("error", *found[:1], node.span, self.source, found[1])])
        self.steps.append(LayerStep.make(name=attr, layer=layer, unpool=pool["indices"], output_size=output_size,
                               output_shape=layer.output_shape))
        self.shape = (self.shape[0], *spatial)

    # -- names ------------------------------------------------------------------------------------

    def child_name(self, name: str | None, kind: str, span: Span) -> str:
        """The attribute of a child: its name, a list entry (`inner_blocks[3]` is "inner_blocks.3", the state_dict's
        path), or the next automatic name; in a named group, its position or the name it was given."""
        entry = _LIST_ENTRY.fullmatch(name) if name is not None else None
        if self.sequential:
            position = str(self.counters.get("#", 0))
            self.counters["#"] = int(position) + 1
            if name is None:
                return position
            if entry:
                raise LocatedError("a stage of a named group takes a name, not a list entry", span,
                                   "name it (`as conv0`), or move it out of the group")
            _key_problem(name, span)
            if name in self.names:
                raise LocatedError(f"the name `{name}` is already taken in this group", span, "names must be unique")
            self.names.add(name)
            return name
        if entry:
            base, index = entry.group(1), int(entry.group(2))
            self.list_entry(base, index, span)
            return f"{base}.{index}"
        if name is not None:
            _key_problem(name, span)
            problem = identifier_problem(name, "layer") if name.isidentifier() else None
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

    def copies(self, count: int, index: str | None):
        """Each copy of a repeated part, with its index bound to `index` (a plain number: the code writes each
        copy) while it is checked."""
        for i in range(count):
            if index is not None:
                self.env[index] = Val(i)
            try:
                yield i
            finally:
                if index is not None:
                    del self.env[index]

    def condition_key(self) -> str:
        """A key for a condition the module keeps (a conditional merge or branch): the backend names its attribute
        (`use_res_connect`, cnndsl.backend.pytorch.emit), around the layers' names; no identifier, so it takes no user's name."""
        self.conditions += 1
        return f"<condition {self.conditions}>"

    def list_entry(self, base: str, index: int, span: Span) -> None:
        """`as inner_blocks[3]`: an entry of the nn.ModuleList `inner_blocks`, each index once (checked whole at the
        end of the body: 0, 1, ... without a gap)."""
        problem = identifier_problem(base, "layer")
        if problem:
            raise LocatedError(problem, span, "choose another name after `as`")
        entries = self.lists.get(base)
        if entries is None:
            if base in self.names:
                raise LocatedError(f"the name `{base}` is already taken in this {'block' if self.path else 'network'}", span,
                                   "a list's name is its own: choose another")
            self.names.add(base)
            entries = self.lists[base] = {}
        if index in entries:
            raise LocatedError(f"`{base}[{index}]` is given twice", span, "each entry of a list once")
        entries[index] = span

    def check_lists(self) -> None:
        """Each list's entries are 0, 1, ... without a gap, as an nn.ModuleList numbers them."""
        for base, entries in self.lists.items():
            missing = sorted(set(range(max(entries) + 1)) - set(entries))
            if missing:
                first = entries[min(entries)]
                raise LocatedError(f"the list `{base}` has entries {', '.join(map(str, sorted(entries)))}: "
                                   f"`{base}[{missing[0]}]` is missing", first, "an nn.ModuleList numbers its entries 0, 1, ...")

    def child_access(self, attr: str) -> tuple[str | int, ...]:
        """The path to a child: an attribute, a list's entry (`inner_blocks.3`: ("inner_blocks", 3)), or a position
        inside a named group (an nn.Sequential), where a named child is its attribute."""
        if self.sequential:
            return (*self.access, int(attr) if attr.isdigit() else attr)
        base, dot, index = attr.partition(".")
        return (*self.access, base, int(index)) if dot else (*self.access, attr)

    def skip(self, pipeline: ast.Pipeline, named: bool = True) -> None:
        """An inactive branch: its layers still take their names, so that names do not depend on conditions;
        with `named` false (an absent optional line), only the names given automatically: a name written out may
        be another line's, the one present (`(Basic(64) x2) as layer1 if small` and the same `layer1` for large)."""
        for stage in pipeline.stages:
            if isinstance(stage, ast.Layer):
                stage = self.chosen_op(stage)
            elif isinstance(stage, ast.Call):
                stage = self.chosen_block(stage)
            if isinstance(stage, ast.Layer) and stage.name is None and stage.op in REGISTRY:
                spec = REGISTRY[stage.op]
                _, count, _, _ = split_repeat(stage.args, self.env)
                limits.charge(self, stage, count - 1)
                for _ in range(count):
                    self.child_name(None, spec.kind or spec.name, stage.span)
            elif isinstance(stage, ast.Layer) and stage.name is not None:
                if named:
                    self.names.add(stage.name)
            elif isinstance(stage, ast.Group) and stage.name is None and (stage.splice or not self.sequential):
                self.skip(stage.pipeline, named)
            elif isinstance(stage, (ast.Call, ast.Group)) and stage.name is not None:
                if named:
                    self.names.add(stage.name)
            elif isinstance(stage, ast.Call) and stage.callee in self.prog.blocks:
                self.child_name(None, stage.callee.lower(), stage.span)

    # -- groups and blocks ------------------------------------------------------------------------

    def group(self, node: ast.Group) -> None:
        args, count, _, index = split_repeat(node.args, self.env)
        if args:
            _no_repeat_expression(args)
            raise LocatedError("a group takes only a repetition (`x2`) and a name (`as name`)", args[0].span)
        limits.charge(self, node, count - 1)
        if node.name is None and (node.splice or not self.sequential):
            named = next((st for st in node.pipeline.stages if getattr(st, "name", None) is not None), None)
            if count > 1 and named is not None and not self.sequential:  # every copy would take the one name
                raise LocatedError(f"a part repeated {count} times names a layer `{named.name}`: each copy would take that "
                                   "one name", first_line(named.span), f"drop `as {named.name}` (copies are named one by one, "
                                   "as automatic names are), or name a group that holds the copies: `g: (...) x2`")
            for _ in self.copies(count, index):  # an unnamed group (or a splice) is no scope of its own
                self.pipeline(node.pipeline)
            return
        if node.name is not None and count > 1 and self.sequential:
            raise LocatedError("the stages of a named group are numbered; they take no names", node.span)
        if node.name is not None and count != 1:
            # (stages) x2 as name: one group holding the repeated stages
            def fill(g: Scope) -> None:
                for _ in g.copies(count, index):
                    g.pipeline(node.pipeline)

            return self.sequential_group(node.name, node.span, fill)
        for _ in self.copies(count, index):
            self.sequential_group(node.name, node.span, lambda g: g.pipeline(node.pipeline))

    def labeled_group(self, stmt: ast.Labeled) -> None:
        if stmt.label in MERGES:
            raise LocatedError(f"`{stmt.label}:` takes its branches on the indented lines below it", stmt.label_span,
                               "one branch per line")
        if stmt.args or stmt.condition is not None:
            head = stmt.args[0] if stmt.args else None
            if isinstance(head, ast.Positional) and isinstance(head.value, ast.Name) and stmt.condition is None and (
                    stmt.label in _DEFINITION_WORDS or did_you_mean(stmt.label, ("network", "block"))):
                raise LocatedError(f"`{stmt.label} {head.value.id}:` defines nothing: a network starts with `network`, a block "
                                   "with `block`", stmt.label_span, f"`network {head.value.id}:`, or `block {head.value.id}(...):`")
            raise LocatedError("a named group takes no arguments; did you mean a merge (add, cat, mul, split)?", stmt.label_span,
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
                      access=self.child_access(attr), sequential=True, defaults=self.defaults)
        group.unpooled = set()
        group.permuted = self.permuted
        fill(group)  # a group may hold no stage (`x(0)`, absent lines): an empty nn.Sequential, the identity
        for name, v in group.values.items():  # its taps (`c3 = ...` on a line of the group): values here
            if name in self.values:  # (the flow goes on: the group's output is known)
                self.error(f"the value `{name}` is already defined", v.span, "each named value is defined once")
                continue
            self.values[name] = v
        self.shape = group.shape
        self.permuted = self.permuted or group.permuted
        self.first_in = self.first_in if self.first_in is not None else group.first_in
        self.steps.append(GroupStep.make(name=attr, children=tuple(group.steps), output_shape=plain(self.shape)))


_CHANNEL_OPTIONS = ("in", "out", "num_parameters")
_DEFINITION_WORDS = ("model", "net", "class", "def", "layer", "sequential", "graph", "arch", "architecture")


def _example_args(spec) -> str:
    """Its first positional option, as a call of the op writes it: `16` for channels, `0.5` for a probability."""
    opt = spec.option(spec.positional[0])
    default = opt.default if opt is not None else None
    if spec.channels or default is None:
        return "16" if spec.channels or opt is None or opt.kind in ("int", "channels") else "2"
    return str(default).lower() if isinstance(default, bool) else str(default)


def _has_bias(ctx: Ctx) -> bool:
    bias = ctx.spec.option("bias")
    return bias is not None and bias.kind == "bool" and bool(value(ctx["bias"]))


def _within_limits(ctx: Ctx, spans: dict[str, Span], at: Span) -> None:
    """Channel counts and kernel sizes as written, against cnndsl.limits, before any rule multiplies them."""
    for key in (*_CHANNEL_OPTIONS, "kernel_size"):
        x = ctx.opts.get(key)
        if x is None:
            continue
        name = "kernel" if key == "kernel_size" else "channels"
        most = limits.get(name)
        for n in value(x) if isinstance(x, tuple) else (x.v if isinstance(x, Val) else x,):
            if type(n) is int and n > most:
                found = limits.problem(name, n, f"`{key}`")
                raise LocatedError(found[0], spans.get(key, at), found[1])


def _shape_within_limits(shape, at: Span) -> None:
    """A layer's output: its channels (for rank > 1) and spatial sizes, against cnndsl.limits."""
    dims = value(shape) if isinstance(shape, tuple) else ()
    channels, spatial = limits.get("channels"), limits.get("spatial")
    for axis, n in enumerate(dims):
        if type(n) is not int or (axis == 0 and len(dims) == 1) or n <= (channels if axis == 0 else spatial):
            continue  # unknown, or the features after flatten (the next linear's own size is checked), or within
        found = limits.problem("channels" if axis == 0 else "spatial", n, "the output's channels" if axis == 0 else f"the output's size in dimension {axis}")
        if found:
            raise LocatedError(found[0], at, found[1])


_LIST_ENTRY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[([0-9]+)\]")
_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def _key_problem(name: str, span: Span) -> None:
    """A quoted key (`as "block1-0"`) must be one that nn.Module.add_module accepts and a state_dict can hold."""
    if not _KEY.fullmatch(name):
        raise LocatedError(f"`{name}` cannot be a module's key", span,
                           "a key is letters, digits, `_` and `-` (`as \"block1-0\"`); torch refuses an empty key and one with a dot")


def _no_repeat_expression(args) -> None:
    """`x n` or `x 2` where `x2` or `x(n)` was meant (a word `x` followed by another argument)."""
    for first, second in zip(args, args[1:]):
        if not (isinstance(first, ast.Positional) and isinstance(first.value, ast.Name) and first.value.id == "x"):
            continue
        written = second.value if isinstance(second, ast.Positional) else None
        count = written.id if isinstance(written, ast.Name) else str(written.value) if isinstance(written, ast.Num) else "n"
        raise LocatedError("a repetition is `x` and a number in one word, such as `x2`, or `x(n)` for a count that is "
                           "a parameter or an expression", first.span.model_copy(
                               update={"end_line": second.span.end_line, "end_col": second.span.end_col}),
                           f"write `x{count}`" if count.isdigit() else f"write `x({count})`")


def _restarting(statements) -> dict[str, str]:
    """For each value whose next statement starts again from another value: that value's name."""
    values = {s.name for s in statements if isinstance(s, ast.Assign)}
    out = {}
    for stmt, nxt in zip(statements, statements[1:]):
        if isinstance(stmt, ast.Assign) and isinstance(nxt, (ast.Assign, ast.Line)):
            first = nxt.pipeline.stages[0]
            if isinstance(first, ast.Layer) and first.op in values and first.op != stmt.name and not first.args:
                out[stmt.name] = first.op
    return out


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
