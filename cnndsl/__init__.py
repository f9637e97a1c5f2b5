"""cnndsl: a small language for convolutional networks, compiled to readable PyTorch.

The stages are verbs: `parse` (text -> syntax tree), `check` (-> checked network, every shape inferred),
`compile` (-> Python source) and `load` (-> nn.Module). Each takes a path or the source text itself.
Nothing but `load` imports torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

import contextlib
import gc
import os
import threading
from pathlib import Path
from typing import Any, Union

from . import ast, limits
from .errors import CheckError, CnnDslError, Diagnostic, ParseError, Source, UsageError
from .network import CheckedLayer, CheckedNetwork

__all__ = [
    "parse", "check", "compile", "load", "read_source",
    "CnnDslError", "ParseError", "CheckError", "UsageError", "Diagnostic", "CheckedNetwork", "CheckedLayer",
]

SourceLike = Union[str, os.PathLike]


def read_source(src: SourceLike) -> Source:
    """A Source from a path (a PathLike, or a one-line str ending in `.cnn`) or from source text."""
    if isinstance(src, Source):
        return src
    if isinstance(src, os.PathLike) or (isinstance(src, str) and "\n" not in src and (src.strip().endswith(".cnn") or _is_file(src))):
        path = Path(src)
        try:
            size = path.stat().st_size
            with path.open("rb") as f:  # never more than the limit allows: /dev/zero has no size
                data = f.read(limits.get("file_bytes") + 1) if _size_problem(size) is None else b""
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
        found = _size_problem(max(size, len(data)))
        if found:
            raise CnnDslError([Diagnostic(message=found[0], hint=found[1], file=str(path))])
        if b"\x00" in data:
            raise CnnDslError([Diagnostic(message="this is not a text file (it contains NUL bytes)", file=str(path))])
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise CnnDslError([Diagnostic(message=f"this is not UTF-8 text (byte {e.start} cannot be decoded)", file=str(path))]) from None
        return Source(name=str(path), text=text)
    if not isinstance(src, str):
        raise TypeError(f"expected a path or source text, got {type(src).__name__}")
    found = _size_problem(len(src.encode("utf-8", "surrogatepass")) if len(src) * 4 > limits.get("file_bytes") else len(src))
    if found:
        raise CnnDslError([Diagnostic(message=found[0], hint=found[1], file="<string>")])
    return Source(name="<string>", text=src)


def _size_problem(size: int) -> tuple[str, str] | None:
    return limits.problem("file_bytes", size, "the source's size")


@contextlib.contextmanager
def _no_recursion_error(source: Source):
    """The limits keep the recursive walks shallow; should one be raised beyond what Python's stack allows, the
    user still gets a diagnostic, not a traceback."""
    try:
        yield
    except RecursionError:
        names = ", ".join(limits.LIMITS[n].env for n in ("nesting", "call_depth"))
        raise CnnDslError([Diagnostic(
            message="this file nests too deeply for the compiler (Python's recursion limit was reached)",
            file=source.name, hint=f"nest less, or lower the limits {names}",
        )]) from None


_gc_lock = threading.Lock()
_gc_pauses = 0  # compiles now running, in every thread
_gc_was_enabled = False  # before the first of them began


@contextlib.contextmanager
def _no_gc():
    """Python's cycle collector paused while compiling: it only rescans the tree being built (a quarter of
    the time on large networks). The collector is process-wide and compiles overlap across threads: it is
    enabled again when the last of them ends, whatever happens, and only if it was before the first began."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).is_file()
    except (OSError, ValueError):
        return False


def parse(src: SourceLike) -> ast.File:
    """The syntax tree of a file (its networks, blocks and imports)."""
    from .parser import parse as _parse

    source = read_source(src)
    with _no_recursion_error(source):
        return _parse(source)


def _input_shape(input: Any) -> tuple[int, ...] | None:
    from .checker import parse_shape_text

    if input is None:
        return None
    try:
        if isinstance(input, str):
            return parse_shape_text(input)
        dims = tuple(int(d) for d in input)
        if not 2 <= len(dims) <= 4 or min(dims) < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"input must be channels and 1 to 3 spatial sizes such as 3x32x32, got {input!r}") from None
    for axis, d in enumerate(dims):
        found = limits.problem("channels" if axis == 0 else "spatial", d, "the input's channels" if axis == 0 else "an input size")
        if found:
            raise UsageError(f"{found[0]}; {found[1]}")
    return dims


def check(src: SourceLike, *, network: str | None = None, input: Any = None, **params: Any) -> CheckedNetwork:
    """The checked network: per-layer name, op, output shape and parameter count; `.output_shape`."""
    from .checker import check_network, collect_blocks, pick_network
    from .parser import parse as _parse

    source = read_source(src)
    with _no_gc(), _no_recursion_error(source):  # the compile path allocates many small objects and frees none of them in cycles
        file = _parse(source)
        blocks = collect_blocks(source, file, read_source)
        net = pick_network(source, file, network)
        return check_network(source, net, params, _input_shape(input), blocks)


def compile(src: SourceLike, *, network: str | None = None, input: Any = None, **params: Any) -> str:  # noqa: A001
    """The generated Python source of a network."""
    from .codegen import generate

    net = check(src, network=network, input=input, **params)
    with _no_recursion_error(Source(name=net.file, text="")):
        return generate(net)


def load(src: SourceLike, *, device: Any = None, network: str | None = None, input: Any = None, **params: Any):
    """An nn.Module instance of the network, on `device` (CUDA when available)."""
    from .codegen import generate
    from .loader import instantiate

    net = check(src, network=network, input=input, **params)
    return instantiate(generate(net), net.name, device)
