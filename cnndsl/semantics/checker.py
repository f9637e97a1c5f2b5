"""AST -> checked network: the network's parameters, its input, its blocks (with imports) and its init rules.
The walk over the layers is cnndsl.semantics.scope's. Semantic errors are collected (capped) and raised together."""

from __future__ import annotations

import keyword
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import errors as _errors
from .. import limits
from ..errors import (
    QUOTE_WIDTH,
    CheckError,
    ParseError,
    Source,
    Span,
    did_you_mean,
    first_line,
    listing,
    quote,
)
from ..ir import values
from ..ir.network import CheckedNetwork, InitRule, NetworkParam
from ..ir.values import Val, tuple_name, value
from ..names import identifier_problem
from ..ops import REGISTRY
from ..syntax import ast
from . import inplace, pins
from .inits import arguments, init_call, rank_problem
from .resolve import (
    FAILED,
    ChosenWord,
    LocatedError,
    Word,
    evaluate,
    kind_mismatch,
    kind_of,
    shown,
)
from .externs import declaration_problems
from .memo import CallMemo
from .scope import Program, Scope

SMOKE_SIZES = (32, 64, 128, 224, 512)
_NORMS = ("bn", "gn", "instnorm")

if TYPE_CHECKING:
    from ..errors import Diagnostic  # pydantic, made on first use


class _Checker:
    def __init__(self, source: Source, net: ast.Network, params: dict[str, Any], input_shape: tuple[int, ...] | None,
                 blocks: dict[str, tuple[ast.Block, Source]]):
        self.source, self.net = source, net
        self.prog = Program(blocks=blocks)
        self.env: dict[str, Val] = {}
        self.param_values: list[NetworkParam] = []
        self.input_override = input_shape
        self.input: tuple | None = None
        self.declared = False  # an `input` statement was seen
        self.rules: list[ast.Init] = []
        self.scope: Scope | None = None
        self._params(params)

    def error(self, message: str, span: Span, hint: str | None = None) -> None:
        self.prog.error(message, span, self.source, hint)

    def report(self, e: LocatedError) -> None:
        self.prog.report(e, self.source)

    def warn(self, message: str, span: Span, hint: str | None = None) -> None:
        self.prog.warn(message, span, self.source, hint)

    # -- parameters and input ---------------------------------------------------------------------

    def _params(self, given: dict[str, Any]) -> None:
        declared = {p.name for p in self.net.params}
        head = first_line(self.net.span)
        for name in given:
            if name not in declared:
                hint = did_you_mean(name, declared) or (
                    f"its parameters are: {listing(sorted(declared))}" if declared else "it declares none: write `network Name(p=1):`"
                )
                self.error(f"network `{self.net.name}` has no parameter `{name}`", head, hint)
        position = {p.name: i for i, p in enumerate(self.net.params)}
        for index, p in enumerate(self.net.params):
            problem = identifier_problem(p.name, "parameter")
            if problem or p.name in self.env:
                self.error(problem or f"parameter `{p.name}` is declared twice", p.span)
                continue
            self.env[p.name] = FAILED  # until its value is known to be good
            try:
                if p.name in given:
                    raw = given[p.name]
                elif p.default is not None:
                    raw = evaluate(p.default, self.env)
                else:
                    self.error(f"parameter `{p.name}` has no default and no value was given", p.span,
                               f"give it a default (`{p.name}=...`) or a value with -D {p.name}=...")
                    continue
            except LocatedError as e:
                later = [n for n in e.names if position.get(n, -1) > index]
                if e.reported and e.names == (p.name,):  # failed only in that it is not defined yet: nothing was said
                    self.error(f"`{p.name}` uses itself in its default", e.span, "a default can use only the parameters before it")
                elif later:
                    self._declared_after(later[0], p.name, e.span)
                else:
                    self.report(e)
                continue
            if p.name in given and p.default is not None:  # the default says what kind of value the parameter takes
                try:
                    default = evaluate(p.default, self.env)
                except LocatedError:
                    default = None  # reported with the value it stood for, if it matters
                mismatch = kind_mismatch(kind_of(default), raw)
                if mismatch:
                    self.error(f"parameter `{p.name}` {mismatch}", p.span)
                    continue
            bound = self._bind(p, raw, given, position, index)
            if bound is not None:
                self.env[p.name], plain_value = bound
                self.param_values.append(NetworkParam.make(name=p.name, value=plain_value))

    def _bind(self, p: ast.Param, raw: Any, given: dict, position: dict, index: int) -> tuple[Any, Any] | None:
        """A parameter's value as the check sees it (a Val, a tuple of Vals, or a ChosenWord) and as the generated
        signature shows it; None after an error."""
        if isinstance(raw, (tuple, list)) and not isinstance(raw, str):
            items = []
            for x in raw:
                n = self._number(p, x, given, position, index, what="an item of a tuple")
                if n is None:
                    return None
                items.append(n)
            found = limits.problem("expression", len(items) + 1, f"the tuple `{p.name}`") if items else \
                ("a tuple parameter needs at least one item", None)
            if found:
                self.error(found[0], p.span, found[1])
                return None
            return tuple_name(p.name, tuple(Val(x) for x in items)), tuple(items)
        v = raw.v if isinstance(raw, Val) else raw
        if isinstance(v, Word) and p.name not in given and position.get(v, -1) > index:
            self._declared_after(v, p.name, p.default.span)
            return None
        if isinstance(v, str) and v.isascii() and v.isidentifier() and not keyword.iskeyword(v) and (
                p.name in given or isinstance(v, Word)):
            return ChosenWord(v, p.name), str(v)
        n = self._number(p, raw, given, position, index)
        return None if n is None else (Val(n, p.name), n)

    def _number(self, p: ast.Param, raw: Any, given: dict, position: dict, index: int, what: str = "") -> Any:
        """A number or true/false for parameter `p` (given, or its default evaluated), plain; None after an error."""
        v = raw.v if isinstance(raw, Val) else raw
        if isinstance(v, Word) or not isinstance(v, (int, float, bool)):
            if p.name in given:
                found = _given_kind(v)
            elif isinstance(p.default, ast.Name) and position.get(v, -1) > index:
                self._declared_after(v, p.name, p.default.span)
                return None
            else:
                found = shown(p.default, raw)
            self.error(f"parameter `{p.name}` must be a number, true/false, a word or a tuple of numbers, found {found}"
                       if not what else f"parameter `{p.name}`: {what} must be a number or true/false, found {found}", p.span)
            return None
        if type(v) not in (bool, int, float):  # a subclass (its __repr__ would reach the generated code): the plain number
            v = int(v) if isinstance(v, int) else float(v)
        found = limits.problem("integer", abs(v), f"the value of `{p.name}`") if type(v) is int else None
        if found:
            self.error(found[0], p.span, found[1])
            return None
        return v

    def _declared_after(self, name: str, user: str, span: Span) -> None:
        self.error(f"`{name}` is declared after `{user}`: a default can use only the parameters before it", span,
                   "reorder the parameters")

    def _statement(self, stmt) -> bool:
        """The network's own statements (input, init); False for everything the scope walks."""
        if isinstance(stmt, ast.Init):
            self.rules.append(stmt)
            return True
        if not isinstance(stmt, ast.Input):
            return False
        if self.scope.steps or self.declared:
            self.error("`input` must come once, before the first layer" if self.scope.steps else "`input` is declared twice", first_line(stmt.span))
            return True
        self.declared = True
        try:
            x = evaluate(stmt.value, self.env)
        except LocatedError as e:
            self.report(e)
            return True
        dims = x if isinstance(x, tuple) else (x,)
        if not 1 <= len(dims) <= 4 or not all(isinstance(d, Val) and type(d.v) is int and d.v >= 1 for d in dims):
            self.error(
                "`input` must be features, or channels and 1 to 3 spatial sizes, all positive integers, such as 100 or 3x32x32",
                stmt.value.span,
                "write F for a flat input (N, F), CxL for 1-d, CxHxW for 2-d or CxDxHxW for 3-d networks",
            )
            return True
        for axis, d in enumerate(dims):
            found = limits.problem("channels" if axis == 0 else "spatial", d.v, "the input's channels" if axis == 0 else "an input size")
            if found:
                self.error(found[0], stmt.value.span, found[1])
                return True
        if self.input_override is None:
            self.input = tuple(dims)
            self.scope.shape = self.input
        elif len(self.input_override) != len(dims):
            spatial = lambda n: "a flat input" if n == 1 else f"{n - 1} spatial dimension{'s' if n > 2 else ''}"
            given = "x".join(str(d) for d in self.input_override)
            self.prog.warn(f"the input size given, {given}, has {spatial(len(self.input_override))} where this `input` has "
                           f"{spatial(len(dims))}: the network is checked as a {_kind(len(self.input_override))} network",
                           stmt.value.span, self.source, "give as many sizes as `input` has, e.g. "
                           + "x".join(str(d.v) for d in dims))
        return True

    # -- the walk ---------------------------------------------------------------------------------

    def run(self) -> CheckedNetwork:
        if self.input_override is not None:
            self.input = tuple(Val(d) for d in self.input_override)
        self.scope = scope = Scope(self.prog, self.source, self.env, self.input if self.input is not None else (),
                                   on_statement=self._statement)
        scope.body(self.net.body)
        for stmt, op, source in self.prog.defaults_seen.values():
            if not any(id(arg) in self.prog.defaults_used for arg in stmt.args):
                self.prog.warn(f"`defaults {op}` applies to no layer", stmt.op_span, source,
                               f"no `{op}` below it (here, in its groups or the blocks they call) takes its options, or a later "
                               f"`defaults {op}` replaces them first")
        if not self.prog.layers and not self.prog.errors:
            self.error(f"network `{self.net.name}` has no layers", first_line(self.net.span), "add a pipeline such as `conv 16 k3 | relu`")
        rules = self._init_rules()
        found = limits.problem("params", sum(layer.params or 0 for layer in self.prog.layers), "the network's parameters")
        if found and not self.prog.errors:
            self.error(found[0], first_line(self.net.span), found[1])
        if self.prog.errors:
            raise CheckError(self.prog.errors)
        sources = {self.source.name: self.source, **{src.name: src for _, src in self.prog.blocks.values()}}
        steps, instances, layers, warnings = inplace.apply(tuple(scope.steps), tuple(self.prog.instances), self.prog.layers,
                                                           self.source.name, sources)
        for w in warnings:
            self.prog.add_warning(w)
        outputs = scope.output_shapes or (scope.shape,)
        rank = scope.start_rank if self.input is None else len(self.input) - 1
        example = tuple(value(d) for d in self.input) if self.input is not None else (scope.first_in or 3, *(SMOKE_SIZES[0],) * rank)
        return CheckedNetwork.make(
            name=self.net.name,
            file=self.source.name,
            params=tuple(self.param_values),
            input_shape=None if self.input is None else tuple(value(d) for d in self.input),
            example_shape=example,
            layers=tuple(layers),
            steps=steps,
            instances=instances,
            outputs=tuple(None if s is None else tuple(value(d) for d in s) for s in outputs),
            output_keys=scope.output_keys,
            init_rules=rules,
            warnings=tuple(self.prog.warnings),
        )

    # -- init rules -------------------------------------------------------------------------------

    def _init_rules(self) -> tuple[InitRule, ...]:
        out: list[InitRule] = []
        for stmt in self.rules:
            spec = REGISTRY.get(stmt.op)
            if spec is None:
                self.error(f"unknown op `{stmt.op}` in `init`", stmt.op_span, did_you_mean(stmt.op, REGISTRY))
                continue
            layers = [layer for layer in self.prog.layers if layer.op == spec.name]
            if not any(o.name == "bias" for o in spec.all_options) and spec.name not in (*_NORMS, "ln", "prelu"):
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
                    self.report(e)
                    continue
                # a layer without parameters (a norm with affine=false) has neither weight nor bias to set
                targets = tuple(layer.name for layer in layers
                                if layer.params != 0 and (rule.key == "weight" or layer.has_bias or layer.op in _NORMS))
                if layers and not targets:
                    self.warn(f"this `init` rule for the {rule.key} matches no layer: no `{stmt.op}` here has a {rule.key}",
                              rule.key_span)
                if targets and self._fits(call, rule.key, targets, rule.value.span, self.source):
                    out.append(InitRule.make(target=rule.key, call=call, layers=targets))
        for name, rule, source in self.prog.layer_inits:
            try:
                call = init_call(rule.value, self.env if source is self.source else {})
            except LocatedError as e:
                self.prog.report(e, source)
                continue
            if self._fits(call, "weight", (name,), rule.value.span, source):
                out.append(InitRule.make(target="weight", call=call, layers=(name,)))
        return tuple(out)

    def _fits(self, call, target: str, names: tuple[str, ...], span: Span, source: Source) -> bool:
        """Whether `call` can initialise `target` of every named layer; an error when it cannot."""
        for name in names:
            layer = next(layer for layer in self.prog.layers if layer.name == name)
            if layer.lazy:
                self.prog.error(f"cannot initialise `{name}`: its size is unknown until the first forward (nn.LazyLinear)", span, source,
                                "declare the network's `input` so that the layer's size is known")
                return False
            rank = 1 if target == "bias" else len(layer.input_shape) + 1 if layer.op in ("conv", "convt", "dwconv", "deform") else 2 if layer.op == "linear" else 1
            problem = rank_problem(call, rank)
            if problem is None and call.name == "dirac" and target == "weight" and layer.output_shape[0] % arguments(call)["groups"]:
                problem = f"`dirac` needs the output channels divisible by groups={arguments(call)['groups']}"
                rank = f"{layer.output_shape[0]} channels"
            if problem:
                self.prog.error(f"{problem}, but the {target} of `{name}` has {rank}", span, source)
                return False
        return True


def _given_kind(v: object) -> str:
    """A value given to check(a=...) that is not a number, in words: a string's start, else its type. Never the
    value's repr, which an arbitrary object writes as it likes (as long, or as misleading, as it wants)."""
    if type(v) is str:
        return f"a string {quote(v)}"
    if v is None:
        return "nothing (None)"
    name = type(v).__name__
    return f"a value of type `{name if len(name) <= QUOTE_WIDTH else name[:QUOTE_WIDTH - 3] + '...'}`"


def check_network(source: Source, net: ast.Network, params: dict[str, Any] | None = None,
                  input_shape: tuple[int, ...] | None = None, blocks: dict | None = None, *,
                  memo: CallMemo | Literal[False] | None = None) -> CheckedNetwork:
    """Check one network of a parsed file with the given parameters and input size. A block call whose walk
    this check has made already (the same block, values and input) is replayed (cnndsl.semantics.memo);
    `memo` (the language server's) lends the walks kept from the file's previous check too; False walks every
    call (tests/test_memo.py compares)."""
    blocks = blocks or {}
    if net.name in blocks and isinstance(blocks[net.name][0], ast.Block):  # two classes of that name in the generated file
        block, src = blocks[net.name]
        at, where = (first_line(block.span), src) if net.implicit else (first_line(net.span), source)
        raise CheckError([_diagnostic(where, f"the network and a block are both named `{net.name}`", at,
                                      "rename one of them" if not net.implicit else "rename the block or the file (the network is named after it)")])
    checker = _Checker(source, net, dict(params or {}), input_shape, blocks)
    checker.prog.memo = CallMemo() if memo is None else None if memo is False else memo
    token = values.work_budget.set(checker.prog.work)  # expression arithmetic is work too
    try:
        with limits.held(), pins.recording() as pinned:  # this check's own pins, whatever runs around it
            checked = checker.run()
    except CheckError as e:
        e.layers = tuple(checker.prog.layers)  # the layers, steps and block instances checked before the errors,
        e.steps = tuple(checker.scope.steps) if checker.scope is not None else ()  # and the warnings so far:
        e.instances = tuple(checker.prog.instances)  # the language server shows them beside the errors
        e.warnings = tuple(checker.prog.warnings)
        raise
    finally:
        values.work_budget.reset(token)
    checked = checked.model_copy(update={"pinned": pins.pinned_params(checked, pinned)})
    if checked.input_shape is None:
        # pick an input size for the smoke run that the network accepts
        for size in SMOKE_SIZES:
            shape = (checked.example_shape[0], *(size,) * (len(checked.example_shape) - 1))
            try:
                _Checker(source, net, dict(params or {}), shape, blocks).run()
            except CheckError:
                continue
            return checked.model_copy(update={"example_shape": shape})
    return checked


def _diagnostic(source: Source, message: str, span: Span, hint: str | None = None) -> Diagnostic:
    return _errors.Diagnostic(message=message, file=source.name, span=span, line_text=source.line_text(span.line), hint=hint)


def collect_blocks(source: Source, file: ast.File, read, *, import_root: str | os.PathLike | None = None,
                   files: list[Path] | None = None) -> dict[str, tuple[ast.Block, Source]]:
    """The blocks a file defines and imports (`import "blocks.cnn"`, relative to the importing file; for source
    text, to the import root, or to the working directory without one).

    Each file is read and parsed once, however many imports name it (a diamond, `x.cnn` beside `./x.cnn`, a
    hard link): the same file is the same (st_dev, st_ino). An import must name a `.cnn` file, and so must the
    file it resolves to; with `import_root`, it must resolve (symbolic links followed) inside that folder.
    `files`, when given, receives the real path of every file read (the importing file first, when it is one)."""
    from ..errors import CnnDslError
    from ..files import file_key
    from ..syntax.parser import parse

    root = Path(os.path.realpath(import_root)) if import_root is not None else None
    blocks: dict[str, tuple[ast.Block, Source]] = {}
    errors: list[Diagnostic] = []

    def add(block: ast.Block | ast.ModuleDecl, src: Source) -> None:
        what = "module" if isinstance(block, ast.ModuleDecl) else "block"
        problem = identifier_problem(block.name, what)
        if problem or block.name in REGISTRY or block.name in ("add", "cat", "mul", "split", "unpool"):
            errors.append(_diagnostic(src, problem or f"`{block.name}` is an op and cannot name a {what}", first_line(block.span)))
        elif block.name in blocks:
            other = blocks[block.name][1]
            where = f"{other.name}:{blocks[block.name][0].span.line}"
            errors.append(_diagnostic(src, f"the name `{block.name}` is defined twice (first at {where})"
                                      if isinstance(blocks[block.name][0], ast.ModuleDecl) or what == "module" else
                                      f"the block `{block.name}` is defined twice (first at {where})", first_line(block.span)))
        seen = set()
        for p in block.params:
            problem = identifier_problem(p.name, "parameter")
            if problem or p.name in seen:
                errors.append(_diagnostic(src, problem or f"parameter `{p.name}` is declared twice", p.span))
            seen.add(p.name)
        blocks.setdefault(block.name, (block, src))

    top = None if source.name.startswith("<") else file_key(source.name)
    if top is not None and files is not None:
        files.append(Path(os.path.realpath(source.name)))
    done: set = {top} if top is not None else set()  # every file met, parsed once
    active: set = set(done)  # the files whose imports are being read: meeting one again is a cycle
    ordered: list[tuple[Source, ast.File]] = []  # each file after the files it imports
    stack = [(source, file, iter(file.imports), top)]
    while stack:  # depth first, without recursion: a long chain of imports is not a deep Python stack
        src, tree, pending, key = stack[-1]
        imp = next(pending, None)
        if imp is None:
            stack.pop()
            active.discard(key)
            ordered.append((src, tree))
            continue
        found = _open_import(src, imp, root)
        if isinstance(found, _errors.Diagnostic):
            errors.append(found)
            continue
        shown, real, key = found
        if key in active:
            errors.append(_diagnostic(src, f"`import \"{imp.path}\"` makes a cycle of imports", _import_line(src, imp),
                                      "remove one of the imports"))
            continue
        if key in done:  # imported before: its blocks are already in
            continue
        done.add(key)
        try:
            imported = read(real).model_copy(update={"name": str(shown)})
        except Exception as e:  # an unreadable file, or one that is not UTF-8 text: located at the import
            problem = e.diagnostics[0].message if isinstance(e, CnnDslError) and e.diagnostics else getattr(e, "strerror", None) or e
            errors.append(_diagnostic(src, f"cannot import \"{imp.path}\": {problem}", _import_line(src, imp)))
            continue
        if files is not None:
            files.append(real)
        try:
            parsed = parse(imported)
        except ParseError as e:
            errors.extend(e.diagnostics)
            continue
        active.add(key)
        stack.append((imported, parsed, iter(parsed.imports), key))
    for src, tree in ordered:
        for block in (*tree.blocks, *tree.modules):
            add(block, src)
        for decl in tree.modules:
            errors.extend(declaration_problems(decl, src))
    if errors:
        raise CheckError(errors)
    return blocks


def _import_line(source: Source, imp: ast.Import) -> Span:
    """The whole `import "..."` line, where every diagnostic about an import points."""
    at = first_line(imp.span)
    return at.model_copy(update={"end_col": at.col + len(source.line_text(at.line).strip())})


def _open_import(source: Source, imp: ast.Import, root: Path | None):
    """(the path as reported, its real path, its file key) for an import that may be read, or the diagnostic that
    says why not. Nothing here reads a file: what a refused path holds is never shown, and outside the import
    root not even whether it exists."""
    import errno
    import stat

    at = _import_line(source, imp)

    def refuse(problem: str, hint: str | None = None) -> Diagnostic:
        return _diagnostic(source, f"cannot import \"{imp.path}\": {problem}", at, hint)

    if not imp.path.endswith(".cnn"):
        return refuse("an import must name a .cnn file", 'import the blocks of another .cnn file, as in `import "blocks.cnn"`')
    if source.name.startswith("<"):  # source text: relative to the import root, or to the working directory
        base = root if root is not None else Path()
    else:
        base = Path(source.name).parent
    try:
        shown = Path(os.path.normpath(base / imp.path))  # reported relative to where the importing file's name is
        real = Path(os.path.realpath(shown))  # never raises: a loop of links is found by the stat below
    except (OSError, ValueError) as e:  # a NUL byte in the path
        return refuse(f"the path is not valid ({getattr(e, 'strerror', None) or e})")
    if root is not None and not real.is_relative_to(root):
        return refuse("it is outside the import root", "imports may only name files inside the folder given by "
                      "--import-root (import_root= in Python), after symbolic links are followed")
    if not real.name.endswith(".cnn"):
        return refuse("it is a symbolic link to a file whose name does not end in .cnn", "import the .cnn file itself")
    try:
        st = os.stat(shown)
    except FileNotFoundError:
        return refuse("there is no such file", "check the path" if os.path.isabs(imp.path) else
                      (f"the path is relative to the importing file's folder: it names {shown}" if not source.name.startswith("<") else
                       f"source text imports relative to the import root where one is given, else to the working directory: it names {shown}"))
    except OSError as e:
        if e.errno == errno.ELOOP:
            return refuse("a symbolic link in its path loops (too many levels of symbolic links)")
        return refuse(e.strerror or str(e))
    if not stat.S_ISREG(st.st_mode):
        return refuse("it is not a regular file" if not stat.S_ISDIR(st.st_mode) else "it is a folder, not a file")
    return shown, real, (st.st_dev, st.st_ino)


def pick_network(source: Source, file: ast.File, name: str | None) -> ast.Network:
    errors = []
    nets: dict[str, ast.Network] = {}
    for n in file.networks:
        problem = identifier_problem(n.name, "network")
        if problem or n.name in nets:
            errors.append(_diagnostic(source, problem or f"the network `{n.name}` is defined twice", first_line(n.span),
                                      None if problem else f"its first definition is on line {nets[n.name].span.line}"))
        nets.setdefault(n.name, n)
    if errors:
        raise CheckError(errors)
    if not nets:
        raise CheckError([_errors.Diagnostic(message="the file defines no network", file=source.name, span=Span(),
                                     hint="write `network Name:` and an indented body, or a bare pipeline such as `conv 3->16 k3 | relu`")])
    if name is None:
        if len(nets) > 1:
            second = file.networks[1]
            raise CheckError([_diagnostic(source, f"the file defines {len(nets)} networks: {listing(nets)}; choose one",
                                          first_line(second.span), "pass --network NAME (or network=NAME in Python)")])
        return file.networks[0]
    if name not in nets:
        raise CheckError([_errors.Diagnostic(
            message=f"the file defines no network `{name}`", file=source.name, span=Span(),
            hint=did_you_mean(name, nets) or f"it defines: {listing(nets)}",
        )])
    return nets[name]


def _kind(rank: int) -> str:
    """A network's kind by its input's number of dimensions (without the batch): flat, 1-d, 2-d, 3-d."""
    return "flat" if rank == 1 else f"{rank - 1}-d"
