"""Limits on what a source may ask for, so that an absurd size is a clear diagnostic instead of a hang or an
exhausted memory. Each limit has a default, an environment variable that overrides it, and a Python API:

    cnndsl.limits.set_limit("channels", 1 << 22)      # until changed again (None restores the default)
    with cnndsl.limits.override(repeat=5000): ...      # for a block of code

| name | default | environment variable | what |
| --- | --- | --- | --- |
| file_bytes | 10 MiB | CNNDSL_MAX_FILE_BYTES | the size of a source file (or text) |
| nesting | 200 | CNNDSL_MAX_NESTING | nesting of parentheses, expressions and indented statements |
| call_depth | 100 | CNNDSL_MAX_CALL_DEPTH | block calls inside block calls |
| repeat | 1,000 | CNNDSL_MAX_REPEAT | the count of one repetition `xN` |
| layers | 10,000 | CNNDSL_MAX_LAYERS | layers in a network, after repetitions and block calls |
| channels | 1,048,576 | CNNDSL_MAX_CHANNELS | channels or features of a layer |
| kernel | 4,096 | CNNDSL_MAX_KERNEL | a kernel size, per dimension |
| spatial | 16,777,216 | CNNDSL_MAX_SPATIAL | a spatial size (length, height, width, depth) |
| params | 10,000,000,000 | CNNDSL_MAX_PARAMS | the parameters of a network |
| integer | 2**63 - 1 | CNNDSL_MAX_INTEGER | the magnitude of any integer, written or computed |
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Limit:
    name: str
    default: int
    env: str
    unit: str  # what the number counts, for messages: "channels", "bytes", ...


LIMITS: dict[str, Limit] = {
    lim.name: lim
    for lim in (
        Limit("file_bytes", 10 << 20, "CNNDSL_MAX_FILE_BYTES", "bytes"),
        Limit("nesting", 200, "CNNDSL_MAX_NESTING", "levels"),
        Limit("call_depth", 100, "CNNDSL_MAX_CALL_DEPTH", "nested block calls"),
        Limit("repeat", 1000, "CNNDSL_MAX_REPEAT", "copies"),
        Limit("layers", 10_000, "CNNDSL_MAX_LAYERS", "layers"),
        Limit("channels", 1 << 20, "CNNDSL_MAX_CHANNELS", "channels"),
        Limit("kernel", 4096, "CNNDSL_MAX_KERNEL", "per dimension"),
        Limit("spatial", 1 << 24, "CNNDSL_MAX_SPATIAL", "per dimension"),
        Limit("params", 10_000_000_000, "CNNDSL_MAX_PARAMS", "parameters"),
        Limit("integer", (1 << 63) - 1, "CNNDSL_MAX_INTEGER", ""),
    )
}

_overrides: dict[str, int] = {}


def get(name: str) -> int:
    """The limit in force: set_limit's value, else the environment variable's, else the default."""
    lim = LIMITS[name]
    if name in _overrides:
        return _overrides[name]
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


def set_limit(name: str, value: int | None) -> None:
    """Override a limit for this process (None goes back to the environment variable or the default)."""
    if name not in LIMITS:
        raise KeyError(f"no limit named {name!r}; the limits are: {', '.join(LIMITS)}")
    if value is None:
        _overrides.pop(name, None)
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"a limit must be a positive integer, got {value!r}")
    else:
        _overrides[name] = value


@contextlib.contextmanager
def override(**values: int) -> Iterator[None]:
    """Limits changed for the duration of a `with` block."""
    saved = {name: _overrides.get(name) for name in values}
    try:
        for name, value in values.items():
            set_limit(name, value)
        yield
    finally:
        for name, value in saved.items():
            set_limit(name, value)


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
