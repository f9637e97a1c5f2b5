"""AST -> checked network: walks a network's layers, infers every channel count and shape, and applies
PyTorch's rules. Semantic errors are collected (capped) and raised together."""

from __future__ import annotations

import keyword
from typing import Any

from . import ast
from .errors import MAX_ERRORS, CheckError, Diagnostic, Source, Span, did_you_mean
from .inits import init_call, rank_problem
from .network import CheckedLayer, CheckedNetwork, InitRule, NetworkParam
from .ops import REGISTRY, Ctx, LayerError
from .ops.common import fmt_shape
from .resolve import LocatedError, Word, evaluate, resolve
from .values import Val, value

# attributes of nn.Module (and names the generated file uses) that a layer may not take
RESERVED = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train type xpu zero_grad training""".split()
)
GENERATED_NAMES = frozenset({"torch", "nn", "build", "self", "super", "x", "DeformConv", "DeformConv2d", "StochasticDepth", "device", "params"})
_COMPOSITION = "composition (blocks, branches, named groups and values) is not supported by this version yet"
SMOKE_SIZES = (32, 64, 128, 224, 512)


def identifier_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be used in generated code, or None."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"`{name}` is a Python keyword and cannot name a {what}"
    if name.startswith("_"):
        return f"a {what} name may not start with an underscore: `{name}`"
    if name in RESERVED:
        return f"`{name}` is an attribute of nn.Module and cannot name a {what}"
    if name in GENERATED_NAMES:
        return f"`{name}` is used by the generated code and cannot name a {what}"
    return None


def parse_shape_text(text: str) -> tuple[int, ...]:
    """`3x32x32` -> (3, 32, 32); ValueError when malformed."""
    parts = text.lower().replace(",", "x").split("x")
    dims = tuple(int(p) for p in parts)
    if not 2 <= len(dims) <= 4 or min(dims) < 1:
        raise ValueError(text)
    return dims


class _Checker:
    def __init__(self, source: Source, net: ast.Network, params: dict[str, Any], input_shape: tuple[int, ...] | None):
        self.source, self.net = source, net
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.layers: list[CheckedLayer] = []
        self.counters: dict[str, int] = {}
        self.names: set[str] = set()
        self.env: dict[str, Val] = {}
        self.param_values: list[NetworkParam] = []
        self.input_override = input_shape
        self.input: tuple | None = None
        self.declared = False  # an `input` statement was seen
        self.shape: tuple | None = None
        self.first_in: int | None = None
        self.layer_inits: list[tuple[str, ast.Keyword]] = []
        self.rules: list[ast.Init] = []
        self.values: set[str] = set()  # names assigned with `name = ...` (composition, not supported yet)
        self._params(params)

    # -- reporting --------------------------------------------------------------------------------

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(message=message, file=self.source.name, span=span, line_text=self.source.line_text(span.line), hint=hint))
        if len(self.errors) > MAX_ERRORS:
            raise CheckError(self.errors)

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.warnings.append(Diagnostic(severity="warning", message=message, file=self.source.name, span=span, line_text=self.source.line_text(span.line), hint=hint))

    # -- parameters and input ---------------------------------------------------------------------

    def _params(self, given: dict[str, Any]) -> None:
        declared = {p.name for p in self.net.params}
        for name in given:
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f"its parameters are: {', '.join(sorted(declared))}" if declared else "it declares none: write `network Name(p=1):`"
                )
                self.error(f"network `{self.net.name}` has no parameter `{name}`", self.net.span.model_copy(update={"end_line": self.net.span.line}), hint)
        for p in self.net.params:
            problem = identifier_problem(p.name, "parameter")
            if problem or p.name in self.env:
                self.error(problem or f"parameter `{p.name}` is declared twice", p.span)
                continue
            try:
                if p.name in given:
                    raw = given[p.name]
                elif p.default is not None:
                    raw = evaluate(p.default, self.env)
                else:
                    self.error(f"parameter `{p.name}` has no default and no value was given", p.span, f"give it a default (`{p.name}=...`) or a value with -D {p.name}=...")
                    continue
            except LocatedError as e:
                self.error(e.message, e.span, e.hint)
                continue
            v = raw.v if isinstance(raw, Val) else raw
            if isinstance(v, Word) or not isinstance(v, (int, float, bool)):
                self.error(f"parameter `{p.name}` must be a number or true/false, found {v!r}", p.span)
                continue
            self.env[p.name] = Val(v, p.name)
            self.param_values.append(NetworkParam(name=p.name, value=v))

    def _input(self, stmt: ast.Input) -> None:
        if self.layers or self.declared:
            self.error("`input` must come once, before the first layer" if self.layers else "`input` is declared twice", stmt.span)
            return
        self.declared = True
        try:
            x = evaluate(stmt.value, self.env)
        except LocatedError as e:
            return self.error(e.message, e.span, e.hint)
        dims = x if isinstance(x, tuple) else (x,)
        if not 2 <= len(dims) <= 4 or not all(isinstance(d, Val) and type(d.v) is int and d.v >= 1 for d in dims):
            self.error(
                "`input` must be channels and 1 to 3 spatial sizes, all positive integers, such as 3x32x32",
                stmt.value.span,
                "write CxL for 1-d, CxHxW for 2-d or CxDxHxW for 3-d networks",
            )
            return
        if self.input_override is None:
            self.input = tuple(dims)
            self.shape = self.input

    # -- walking ----------------------------------------------------------------------------------

    def run(self) -> CheckedNetwork:
        if self.input_override is not None:
            self.input = tuple(Val(d) for d in self.input_override)
            self.shape = self.input
        for stmt in self.net.body:
            self.statement(stmt)
        if not self.layers and not self.errors:
            self.error(f"network `{self.net.name}` has no layers", self.net.span.model_copy(update={"end_line": self.net.span.line}), "add a pipeline such as `conv 16 k3 | relu`")
        rules = self._init_rules()
        if self.errors:
            raise CheckError(self.errors)
        return CheckedNetwork(
            name=self.net.name,
            file=self.source.name,
            params=tuple(self.param_values),
            input_shape=None if self.input is None else tuple(value(d) for d in self.input),
            example_shape=self._example(),
            layers=tuple(self.layers),
            init_rules=rules,
            warnings=tuple(self.warnings),
        )

    def statement(self, stmt: ast.Statement) -> None:
        if isinstance(stmt, ast.Input):
            self._input(stmt)
        elif isinstance(stmt, ast.Init):
            self.rules.append(stmt)
        elif isinstance(stmt, ast.Line) and stmt.condition is None:
            self.pipeline(stmt.pipeline)
        else:
            if isinstance(stmt, ast.Assign):  # its later uses get the same error, not "unknown op"
                self.values.add(stmt.name)
            self.error(_COMPOSITION, stmt.span.model_copy(update={"end_line": stmt.span.line, "end_col": stmt.span.col + 1}))

    def pipeline(self, pipeline: ast.Pipeline) -> None:
        for stage in pipeline.stages:
            if isinstance(stage, ast.Layer):
                self.layer(stage)
            else:
                self.error(_COMPOSITION, stage.span)

    def _start_shape(self, layer: ast.Layer) -> None:
        """Without a declared input: unknown sizes, of the rank the first layer names (2-d by default)."""
        rank = int(layer.op[-2]) if layer.op[-2:] in ("1d", "2d", "3d") else 2
        self.shape = (None,) * (rank + 1)

    def layer(self, node: ast.Layer) -> None:
        spec = REGISTRY.get(node.op)
        if spec is None and node.op in self.values:
            self.error(_COMPOSITION, node.op_span)
            self.shape = None
            return
        if spec is None:
            hint = did_you_mean(node.op, REGISTRY) or "see the op catalog in docs/LANGUAGE.md"
            self.error(f"unknown op `{node.op}`", node.op_span, hint)
            self.shape = None
            return
        if self.input is None and not self.layers and self.shape is None and not self.errors:
            self._start_shape(node)
        ctx = Ctx(spec=spec, op=node.op, shape=self.shape)
        spans: dict[str, Span] = {}
        try:
            extra = resolve(ctx, node, self.env, spans)
            name = self._name(node, spec.kind or spec.name)
        except LocatedError as e:
            self.error(e.message, e.span, e.hint)
            self.shape = None
            return
        if self.shape is None:  # an earlier error left the shape unknown
            return
        try:
            result = spec.rule(ctx)
        except LayerError as e:
            self.error(e.message, spans.get(e.at, node.op_span) if e.at else node.op_span, e.hint)
            self.shape = None
            return
        if not self.layers and ctx["in"] is not None:
            self.first_in = value(ctx["in"])
        for message, hint in result.warnings:
            self.warn(message, node.op_span, hint)
        if "init" in extra:
            if not result.weights or result.params == 0:  # e.g. a norm with affine=false
                self.error(f"`{node.op}` has no weights to initialise", extra["init"].key_span)
            else:
                self.layer_inits.append((name, extra["init"]))
        self.layers.append(CheckedLayer(
            name=name,
            op=spec.name,
            module=result.module,
            args=result.args,
            kwargs=result.kwargs,
            forward=result.forward,
            input_shape=tuple(value(d) for d in self.shape),
            output_shape=tuple(value(d) for d in result.shape),
            params=result.params,
            lazy=result.lazy,
            helper=result.helper,
            imports=result.imports,
            weight_path="conv." if spec.name == "deform" else "",
            has_bias=bool(value(ctx["bias"])) if spec.option("bias") is not None and spec.option("bias").kind == "bool" else False,
            span=node.span,
        ))
        self.shape = result.shape

    def _name(self, node: ast.Layer, kind: str) -> str:
        if node.name is not None:
            problem = identifier_problem(node.name, "layer")
            if problem:
                raise LocatedError(problem, node.span, "choose another name after `as`")
            if node.name in self.names:
                raise LocatedError(f"the name `{node.name}` is already taken by another layer", node.span, "layer names must be unique")
            self.names.add(node.name)
            return node.name
        sep = "_" if kind[-1].isdigit() else ""  # relu6_1, not relu61
        n = self.counters.get(kind, 0)
        while True:
            n += 1
            if f"{kind}{sep}{n}" not in self.names:
                break
        self.counters[kind] = n
        self.names.add(f"{kind}{sep}{n}")
        return f"{kind}{sep}{n}"

    # -- init rules -------------------------------------------------------------------------------

    def _init_rules(self) -> tuple[InitRule, ...]:
        out: list[InitRule] = []
        for stmt in self.rules:
            spec = REGISTRY.get(stmt.op)
            if spec is None:
                self.error(f"unknown op `{stmt.op}` in `init`", stmt.op_span, did_you_mean(stmt.op, REGISTRY))
                continue
            layers = [layer for layer in self.layers if layer.op == spec.name]
            if not any(o.name == "bias" for o in spec.all_options) and spec.name not in ("bn", "gn", "ln", "instnorm", "prelu"):
                self.error(f"`{stmt.op}` has no weights to initialise", stmt.op_span)
                continue
            if not layers:
                self.warn(f"this `init` rule matches no layer: the network has no `{stmt.op}`", stmt.op_span)
            for rule in stmt.rules:
                if rule.key not in ("weight", "bias"):
                    self.error(f"an `init` rule sets `weight` or `bias`, found `{rule.key}`", rule.key_span, did_you_mean(rule.key, ("weight", "bias")))
                    continue
                try:
                    call = init_call(rule.value, self.env)
                except LocatedError as e:
                    self.error(e.message, e.span, e.hint)
                    continue
                # a layer without parameters (a norm with affine=false) has neither weight nor bias to set
                targets = tuple(layer.name for layer in layers
                                if layer.params != 0 and (rule.key == "weight" or layer.has_bias or layer.op in ("bn", "gn", "instnorm")))
                if targets and self._fits(call, rule.key, targets, rule.value.span):
                    out.append(InitRule(target=rule.key, call=call, layers=targets))
        for name, rule in self.layer_inits:
            try:
                call = init_call(rule.value, self.env)
            except LocatedError as e:
                self.error(e.message, e.span, e.hint)
                continue
            if self._fits(call, "weight", (name,), rule.value.span):
                out.append(InitRule(target="weight", call=call, layers=(name,)))
        return tuple(out)

    def _fits(self, call, target: str, names: tuple[str, ...], span: Span) -> bool:
        """Whether `call` can initialise `target` of every named layer; an error when it cannot."""
        for name in names:
            layer = next(layer for layer in self.layers if layer.name == name)
            if layer.lazy:
                self.error(f"cannot initialise `{name}`: its size is unknown until the first forward (nn.LazyLinear)", span,
                           "declare the network's `input` so that the layer's size is known")
                return False
            rank = 1 if target == "bias" else len(layer.input_shape) + 1 if layer.op in ("conv", "convt", "dwconv", "deform") else 2 if layer.op == "linear" else 1
            problem = rank_problem(call, rank)
            if problem:
                self.error(f"{problem}, but the {target} of `{name}` has {rank}", span)
                return False
        return True

    def _example(self) -> tuple[int, ...]:
        if self.input is not None:
            return tuple(value(d) for d in self.input)
        rank = len(self.layers[0].input_shape) - 1 if self.layers else 2
        return (self.first_in or 3, *(SMOKE_SIZES[0],) * rank)


def check_network(source: Source, net: ast.Network, params: dict[str, Any] | None = None, input_shape: tuple[int, ...] | None = None) -> CheckedNetwork:
    checked = _Checker(source, net, dict(params or {}), input_shape).run()
    if checked.input_shape is None:
        # pick an input size for the smoke run that the network accepts
        for size in SMOKE_SIZES:
            shape = (checked.example_shape[0], *(size,) * (len(checked.example_shape) - 1))
            try:
                _Checker(source, net, dict(params or {}), shape).run()
            except CheckError:
                continue
            return checked.model_copy(update={"example_shape": shape})
    return checked


def pick_network(source: Source, file: ast.File, name: str | None) -> ast.Network:
    errors = []
    for item in (*file.blocks, *file.imports):
        span = item.span.model_copy(update={"end_line": item.span.line, "end_col": item.span.col + 5})
        errors.append(Diagnostic(message=_COMPOSITION, file=source.name, span=span, line_text=source.line_text(span.line)))
    nets = {n.name: n for n in file.networks}
    for n in file.networks:
        problem = identifier_problem(n.name, "network")
        if problem:
            span = n.span.model_copy(update={"end_line": n.span.line})
            errors.append(Diagnostic(message=problem, file=source.name, span=span, line_text=source.line_text(span.line)))
    if errors:
        raise CheckError(errors)
    if not nets:
        raise CheckError([Diagnostic(message="the file defines no network", file=source.name, span=Span(),
                                     hint="write `network Name:` and an indented body, or a bare pipeline such as `conv 3->16 k3 | relu`")])
    if name is None:
        if len(nets) > 1:
            first = file.networks[1]
            raise CheckError([Diagnostic(
                message=f"the file defines {len(nets)} networks: {', '.join(nets)}; choose one",
                file=source.name, span=first.span.model_copy(update={"end_line": first.span.line}), line_text=source.line_text(first.span.line),
                hint="pass --network NAME (or network=NAME in Python)",
            )])
        return file.networks[0]
    if name not in nets:
        raise CheckError([Diagnostic(
            message=f"the file defines no network `{name}`", file=source.name, span=Span(),
            hint=did_you_mean(name, nets) or f"it defines: {', '.join(nets)}",
        )])
    return nets[name]
