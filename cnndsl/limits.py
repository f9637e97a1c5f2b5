"""Limits on what a source may ask for, so that an absurd size is a clear diagnostic instead of a hang or an
exhausted memory. Each limit has a default, an environment variable that overrides it, and a Python API:

    cnndsl.limits.set_limit("channels", 1 << 22)      # the whole process, until changed again (None: the default)
    with cnndsl.limits.override(repeat=5000): ...      # a block of code, in this thread or asyncio task only

| name | default | environment variable | what |
| --- | --- | --- | --- |
| file_bytes | 256 KiB | CNNDSL_MAX_FILE_BYTES | the size of a source file (or text), and of a --params file |
| nesting | 200 | CNNDSL_MAX_NESTING | nesting of parentheses, expressions and indented statements |
| call_depth | 100 | CNNDSL_MAX_CALL_DEPTH | block calls inside block calls |
| repeat | 1,000 | CNNDSL_MAX_REPEAT | the count of one repetition `xN` |
| layers | 10,000 | CNNDSL_MAX_LAYERS | layers in a network, after repetitions and block calls |
| work | 500,000 | CNNDSL_MAX_WORK | syntax nodes a check walks: a block's at every call (+20), a repeated part's at every repetition |
| expression | 100 | CNNDSL_MAX_EXPRESSION | the nodes (names, numbers, operators) of one computed expression, as printed in generated code |
| channels | 1,048,576 | CNNDSL_MAX_CHANNELS | channels or features of a layer |
| kernel | 4,096 | CNNDSL_MAX_KERNEL | a kernel size, per dimension |
| spatial | 16,777,216 | CNNDSL_MAX_SPATIAL | a spatial size (length, height, width, depth) |
| params | 10,000,000,000 | CNNDSL_MAX_PARAMS | the parameters of a network |
| integer | 2**63 - 1 | CNNDSL_MAX_INTEGER | the magnitude of any integer, written or computed |
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterator, Mapping


@dataclass(frozen=True)
class Limit:
    name: str
    default: int
    env: str
    unit: str  # what the number counts, for messages: "channels", "bytes", ...


LIMITS: dict[str, Limit] = {
    lim.name: lim
    for lim in (
        Limit("file_bytes", 256 << 10, "CNNDSL_MAX_FILE_BYTES", "bytes"),
        Limit("nesting", 200, "CNNDSL_MAX_NESTING", "levels"),
        Limit("call_depth", 100, "CNNDSL_MAX_CALL_DEPTH", "nested block calls"),
        Limit("repeat", 1000, "CNNDSL_MAX_REPEAT", "copies"),
        Limit("layers", 10_000, "CNNDSL_MAX_LAYERS", "layers"),
        Limit("work", 500_000, "CNNDSL_MAX_WORK", "syntax nodes walked"),
        Limit("expression", 100, "CNNDSL_MAX_EXPRESSION", "nodes"),
        Limit("channels", 1 << 20, "CNNDSL_MAX_CHANNELS", "channels"),
        Limit("kernel", 4096, "CNNDSL_MAX_KERNEL", "per dimension"),
        Limit("spatial", 1 << 24, "CNNDSL_MAX_SPATIAL", "per dimension"),
        Limit("params", 10_000_000_000, "CNNDSL_MAX_PARAMS", "parameters"),
        Limit("integer", (1 << 63) - 1, "CNNDSL_MAX_INTEGER", ""),
    )
}

# Where a limit comes from, first match wins: an `override` in force in this context (this thread, this asyncio
# task), then `set_limit` (the whole process), then the environment variable, then the default. An override is
# a layer of its own, kept in an immutable tuple held by a ContextVar: another thread never sees it, and leaving
# an override removes its own layer, so that overrides left in any order (nested, or interleaved by hand) restore
# every limit.
_process: dict[str, int] = {}
_scoped: contextvars.ContextVar[tuple[tuple[object, Mapping[str, int]], ...]] = contextvars.ContextVar("cnndsl_limits", default=())


# A check reads limits tens of thousands of times (every channel count, every output size), and reading the
# environment each time was a tenth of its time. Inside `held()` the first read of each limit is remembered
# for the rest of the check: the limits in force when the check began, as the work Budget takes its own.
_held: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("cnndsl_limits_held", default=None)


def get(name: str) -> int:
    """The limit in force: override's value in this context, else set_limit's, else the environment variable's,
    else the default."""
    held = _held.get()
    if held is None:
        return _lookup(name)
    n = held.get(name)
    if n is None:
        n = held[name] = _lookup(name)
    return n


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Each limit read as it was at its first read, until the `with` block ends (in this context only)."""
    token = _held.set({})
    try:
        yield
    finally:
        _held.reset(token)


def _lookup(name: str) -> int:
    lim = LIMITS[name]
    for _, values in reversed(_scoped.get()):
        if name in values:
            return values[name]
    if name in _process:
        return _process[name]
    text = os.environ.get(lim.env)
    if text is None or not text.strip():
        return lim.default
    try:
        n = int(text.strip().replace("_", ""))
    except ValueError:
        n = 0
    if n < 1:
        from .errors import UsageError

        raise UsageError(f"{lim.env} must be a positive integer, got {text!r}")
    return n


def _valid(name: str, value: object) -> int:
    if name not in LIMITS:
        raise KeyError(f"no limit named {name!r}; the limits are: {', '.join(LIMITS)}")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"a limit must be a positive integer, got {value!r}")
    return value


def set_limit(name: str, value: int | None) -> None:
    """Set a limit for the whole process, every thread (None goes back to the environment variable or the
    default). An `override` in force still wins where it is in force."""
    if value is None:
        _valid(name, 1)
        _process.pop(name, None)
    else:
        _process[name] = _valid(name, value)


@contextlib.contextmanager
def override(**values: int) -> Iterator[None]:
    """Limits changed for the duration of a `with` block, in this context only (this thread, this asyncio task)."""
    layer = (object(), MappingProxyType({name: _valid(name, value) for name, value in values.items()}))
    _scoped.set((*_scoped.get(), layer))
    token = _held.set({} if _held.get() is not None else None)  # held values are stale inside
    try:
        yield
    finally:
        _held.reset(token)
        _scoped.set(tuple(entry for entry in _scoped.get() if entry is not layer))


def problem(name: str, found: int, what: str) -> tuple[str, str] | None:
    """(message, hint) when `found` exceeds the limit `name`; `what` says what was found ("`out`")."""
    limit = get(name)
    if found <= limit:
        return None
    lim = LIMITS[name]
    unit = f" {lim.unit}" if lim.unit else ""
    return (
        f"{what} ({_fmt(found)}) exceeds the limit of {limit:,}{unit} ({lim.env})",
        f"set the environment variable {lim.env} or call cnndsl.limits.set_limit({name!r}, N) to raise it",
    )


def _fmt(n: int) -> str:
    if n.bit_length() > 100:  # str() of a huge integer is slow, or refused beyond 4300 digits
        return f"about 10**{int(n.bit_length() * 0.30103)}"
    return f"{n:,}"


# -- the work of a check ------------------------------------------------------------------------------------
#
# A check walks the network's statements once, a block's body once per call (with that call's values) and a
# repeated part (`relu x8`, `(...) x4`) once per repetition. Calls and repetitions multiply: four levels of
# `B(c) x30` over a block of two identity branches are 810,000 walks of 215 bytes, and none of them makes a
# layer, so the `layers` limit never applies. The `work` limit bounds the product. Its unit is the syntax
# node (a layer, an argument, a number, a name, a branch, a statement ...), since the walk's time and memory
# grow with the nodes walked whatever kind they are: a block call costs the nodes of the block (its
# parameters and body) and CALL_UNITS more (measured: a call takes about as long as 20 nodes); a part
# repeated N times costs N - 1 times its nodes beyond the walk that contains it (in an inactive branch too,
# where only its names are taken). The network's own statements are not counted: the file's size bounds them.

CALL_UNITS = 20


class Budget:
    """The work of one check: what it has spent, against the `work` limit in force when it began."""

    def __init__(self) -> None:
        self.limit = get("work")
        self.spent = 0
        self._sizes: dict[int, tuple[object, int]] = {}

    def size(self, node: object) -> int:
        """The syntax nodes of `node`'s tree, itself included (remembered: the tree is frozen)."""
        known = self._sizes.get(id(node))
        if known is not None and known[0] is node:
            return known[1]
        from .syntax.ast import Node

        count, stack = 0, [node]
        while stack:
            x = stack.pop()
            if isinstance(x, Node):
                count += 1
                stack.extend(getattr(x, name) for name in type(x).model_fields if name != "span" and not name.endswith("_span"))
            elif isinstance(x, tuple):
                count += sum(1 for item in x if isinstance(item, str))
                stack.extend(item for item in x if not isinstance(item, str))
        self._sizes[id(node)] = (node, count)  # the node is kept: its id cannot be reused while remembered
        return count

    def charge(self, units: int) -> tuple[str, str] | None:
        """Spend `units`; (message, hint) once the spent work exceeds the limit, as problem() gives them."""
        self.spent += units
        if self.spent <= self.limit:
            return None
        lim = LIMITS["work"]
        return (
            f"checking this network exceeds the limit of {self.limit:,} syntax nodes walked ({lim.env}): every block"
            " call walks its block again, every repetition its part again",
            f"call blocks or repeat fewer times; set the environment variable {lim.env} or call"
            " cnndsl.limits.set_limit('work', N) to raise it",
        )


def charge(scope, node: object, times: int = 1, span=None) -> None:
    """Charge the check that `scope` (a cnndsl.semantics.scope.Scope) belongs to for walking `node` `times` more times (a
    block, ast.Block, costs CALL_UNITS more); past the `work` limit, raise its CheckError, located at `span`
    (else the node's first line) with the calls that lead there. The budget is `scope.prog.work`, a Budget."""
    if times < 1:
        return
    from .syntax.ast import Block

    budget = scope.prog.work
    spend(scope, times * (budget.size(node) + (CALL_UNITS if isinstance(node, Block) else 0)), span if span is not None else node.span)


def spend(scope, units: int, span) -> None:
    """Charge `units` of work (syntax nodes walked, or nodes of expressions a block call expands) to the check
    that `scope` belongs to; past the `work` limit, raise its CheckError at `span`'s first line."""
    found = scope.prog.work.charge(units)
    if found:
        from .errors import CheckError, first_line

        # raised past the error list, as the layers limit is: repeating it at every further call would take as long
        raise CheckError([*scope.prog.errors, scope.prog.diagnostic("error", found[0], first_line(span), scope.source, found[1])])
