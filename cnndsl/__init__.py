"""cnndsl: a small language for convolutional networks, compiled to readable PyTorch.

The stages are verbs: `parse` (text -> syntax tree), `check` (-> checked network, every shape inferred),
`compile` (-> Python source) and `load` (-> nn.Module). Each takes a path or the source text itself.
Nothing but `load` imports torch; `summary` gives the static summary (shapes, counts, memory).
"""

from __future__ import annotations

__version__ = "0.1.0"

import contextlib
import gc
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from . import limits
from .errors import CheckError, CnnDslError, ParseError, Source, UsageError
from .syntax import ast

if TYPE_CHECKING:
    from .errors import Diagnostic
    from .ir.network import CheckedLayer, CheckedNetwork

__all__ = [
    "parse", "check", "check_all", "compile", "load", "summary", "decompile", "read_source",
    "CnnDslError", "ParseError", "CheckError", "UsageError", "Diagnostic", "CheckedNetwork", "CheckedLayer",
]

SourceLike = Union[str, os.PathLike]

# Imported on first use (PEP 562): `import cnndsl`, `parse` and `fmt` need neither pydantic nor the ops.
_LAZY = {"Diagnostic": "errors", "CheckedNetwork": "network", "CheckedLayer": "network"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def reads_as_path(text: str) -> bool:
    """Whether a string given for a source is a path: one line ending in `.cnn`, or one word with a dot or a slash
    in it (`net.cn`, `models/net`: no program is written so, and a mistyped path then says the file is missing)."""
    word = text.strip()
    if "\n" in text or not word:
        return False
    return word.endswith(".cnn") or (not any(c.isspace() for c in word) and any(c in word for c in "./\\"))


def read_source(src: SourceLike) -> Source:
    """A Source from a path (a PathLike, a one-line str ending in `.cnn`, or one word with a dot or a slash in it,
    such as the mistyped `net.cn`) or from source text.

    A path must name a `.cnn` file, and so must the file it resolves to through symbolic links: any other file
    is refused (UsageError) before it is read, so that no diagnostic ever shows a line of it."""
    import errno
    import stat

    from . import files as _files

    if isinstance(src, Source):
        return src
    if isinstance(src, os.PathLike) or (isinstance(src, str) and reads_as_path(src)):
        path = Path(src)
        try:
            real = _files.real_path(path)
            if path.is_dir():  # what opening it would say
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            mode = path.stat().st_mode  # a missing file is reported as such, whatever its name
        except (OSError, ValueError) as e:  # a loop of symbolic links, a NUL byte
            raise UsageError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
        if not stat.S_ISREG(mode):  # a FIFO or a device: reading it may never end
            raise UsageError(f"cannot read {path}: it is not a regular file")
        if not path.name.endswith(".cnn") or not real.name.endswith(".cnn"):
            what = "its name does not end" if not path.name.endswith(".cnn") else "it is a symbolic link to a file whose name does not end"
            raise UsageError(f"cannot read {path}: {what} in .cnn, and only .cnn files are read as sources")
        try:
            size = path.stat().st_size
            with path.open("rb") as f:  # never more than the limit allows: /dev/zero has no size
                data = f.read(limits.get("file_bytes") + 1) if _size_problem(size) is None else b""
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
        found = _size_problem(max(size, len(data)))
        if found:
            raise _refused(found[0], found[1], str(path))
        if b"\x00" in data:
            raise _refused("this is not a text file (it contains NUL bytes)", None, str(path))
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise _refused(f"this is not UTF-8 text (byte {e.start} cannot be decoded)", None, str(path)) from None
        return Source(name=str(path), text=text)
    if not isinstance(src, str):
        raise TypeError(f"expected a path or source text, got {type(src).__name__}")
    found = _size_problem(len(src.encode("utf-8", "surrogatepass")) if len(src) * 4 > limits.get("file_bytes") else len(src))
    if found:
        raise _refused(found[0], found[1], "<string>")
    return Source(name="<string>", text=src)


def _refused(message: str, hint: str | None, file: str) -> CnnDslError:
    """A source that cannot be read as one: a diagnostic without a place."""
    from .errors import Diagnostic

    return CnnDslError([Diagnostic(message=message, hint=hint, file=file)])


def _import_root(root: Any) -> Path | None:
    """The real path of the folder that `import_root=` (`--import-root`) confines imports to; UsageError when it
    is not a folder."""
    from . import files as _files

    if root is None:
        return None
    try:
        real = _files.real_path(root)
        if real.is_dir():
            return real
        problem = "there is no such folder" if not real.exists() else "it is not a folder"
    except (OSError, TypeError, ValueError) as e:
        problem = getattr(e, "strerror", None) or str(e)
    raise UsageError(f"the import root {root}: {problem}")


def _size_problem(size: int) -> tuple[str, str] | None:
    return limits.problem("file_bytes", size, "the source's size")


@contextlib.contextmanager
def _no_recursion_error(source: Source):
    """The limits keep the recursive walks shallow; should one be raised beyond what Python's stack allows, the
    user still gets a diagnostic, not a traceback."""
    try:
        yield
    except RecursionError:
        from .errors import Diagnostic

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


def parse(src: SourceLike, *, import_root: str | os.PathLike | None = None) -> ast.File:
    """The syntax tree of a file (its networks, blocks and imports). It does not follow the imports, so
    `import_root` is only checked to be a folder, for every verb to take the same keywords."""
    from .syntax.parser import parse as _parse

    _import_root(import_root)
    source = read_source(src)
    with _no_recursion_error(source):
        return _parse(source)


def _input_shape(input: Any) -> tuple[int, ...] | None:
    """The one reader of an input shape given from outside (`input=`, `--input`): `3x32x32`, `3,32,32` or a
    sequence of integers; features (a flat input) or channels and 1 to 3 spatial sizes within the limits, else a
    UsageError."""
    import re

    from .errors import quote

    if input is None:
        return None
    try:
        text = input.strip().lower() if isinstance(input, str) else None
        if text is not None and not re.fullmatch(r"[0-9]{1,30}(?:[x,][0-9]{1,30})*", text):
            raise ValueError
        dims = tuple(int(d) for d in (text.replace(",", "x").split("x") if text is not None else input))
        if not 1 <= len(dims) <= 4 or min(dims) < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"input must be features, or channels and 1 to 3 spatial sizes, such as 100 or 3x32x32, got {quote(input)}") from None
    for axis, d in enumerate(dims):
        found = limits.problem("channels" if axis == 0 else "spatial", d, "the input's channels" if axis == 0 else "an input size")
        if found:
            raise UsageError(f"{found[0]}; {found[1]}")
    return dims


def check(src: SourceLike, *, network: str | None = None, input: Any = None, import_root: str | os.PathLike | None = None,
          **params: Any) -> CheckedNetwork:
    """The checked network: per-layer name, op, output shape and parameter count; `.output_shape`.
    `import_root`: a folder that every import must resolve into (symbolic links followed). The network is
    validated whole (its fields and invariants: CheckedNetwork.validated) before it is returned."""
    return _check_with_files(src, network, input, import_root, params).validated()


def check_all(src: SourceLike, *, input: Any = None, import_root: str | os.PathLike | None = None,
              **params: Any) -> list[CheckedNetwork]:
    """Every network of a file, checked (none for a file of blocks only, a library), and the file's blocks that
    none of them calls, for what can be checked without a call (their ops, the blocks they call, their options).
    Raises CheckError with the diagnostics of them all."""
    return [net.validated() for net in _check_all_with_files(src, input, import_root, params)]


def _check_all_with_files(src: SourceLike, input: Any, import_root: Any, params: dict[str, Any],
                          files: list[Path] | None = None) -> list[CheckedNetwork]:
    """`check_all`; `files` receives the real path of every file read."""
    from .semantics.checker import check_network, pick_network
    from .semantics.library import check_uncalled

    def every(source: Source, file, blocks) -> list[CheckedNetwork]:
        nets, errors, warnings, called = [], [], [], set()
        for name in dict.fromkeys(n.name for n in file.networks):
            try:
                net = check_network(source, pick_network(source, file, name), params, _input_shape(input), blocks)
            except CheckError as e:
                errors += e.diagnostics
                warnings += getattr(e, "warnings", ())  # (given before its errors)
                called |= set(blocks)  # (a failed network's calls are unknown: no block is reported as uncalled)
                continue
            nets.append(net)
            called |= {inst.block for inst in net.instances}
        errors += check_uncalled(blocks, called, source)
        warnings += [w for net in nets for w in net.warnings]
        if errors:  # (a file-wide mistake, such as a network defined twice, is said once)
            error = CheckError(list({(d.file, d.span, d.message): d for d in errors}.values()))
            error.warnings = tuple(warnings)
            raise error
        return nets

    return _with_file(src, import_root, files, every)


def _check_with_files(src: SourceLike, network: str | None, input: Any, import_root: Any, params: dict[str, Any],
           files: list[Path] | None = None) -> CheckedNetwork:
    """`check`; `files` receives the real path of every file read (the CLI refuses to write over them)."""
    from .semantics.checker import check_network, pick_network

    return _with_file(src, import_root, files, lambda source, file, blocks: check_network(
        source, pick_network(source, file, network), params, _input_shape(input), blocks))


def _with_file(src: SourceLike, import_root: Any, files: list[Path] | None, work):
    """`work(source, file, blocks)` on the parsed source and the blocks it defines and imports."""
    from .semantics.checker import collect_blocks
    from .syntax.parser import parse as _parse

    root = _import_root(import_root)
    source = read_source(src)
    with _no_gc(), _no_recursion_error(source):  # the compile path allocates many small objects and frees none of them in cycles
        file = _parse(source)
        blocks = collect_blocks(source, file, read_source, import_root=root, files=files)
        return work(source, file, blocks)


def summary(src: SourceLike, *, network: str | None = None, input: Any = None, import_root: str | os.PathLike | None = None,
            batch: int = 1, dtype: str = "float32", device: str = "cuda", depth: int | None = None, **params: Any):
    """The static summary of a network (cnndsl.tools.summary.Summary, a pydantic model: `.layers`, the totals,
    `.model_dump()`): per layer its shape, parameters, mult-adds, receptive field and memory, the memory for
    `batch` samples of `dtype` in a training step on `device`; `depth` folds the deeper rows into their block or
    group. No torch, no forward pass."""
    from .tools.summary import summarize

    net = check(src, network=network, input=input, import_root=import_root, **params)
    return summarize(net, batch=batch, dtype=dtype, device=device, depth=depth)


def compile(src: SourceLike, *, network: str | None = None, input: Any = None,  # noqa: A001
            import_root: str | os.PathLike | None = None, **params: Any) -> str:
    """The generated Python source of a network."""
    from .backend.pytorch.codegen import generate

    net = _check_with_files(src, network, input, import_root, params)  # code, not the network, reaches the user
    with _no_recursion_error(Source(name=net.file, text="")):
        return generate(net)


def load(src: SourceLike, *, device: Any = None, network: str | None = None, input: Any = None,
         import_root: str | os.PathLike | None = None, **params: Any):
    """An nn.Module instance of the network, on `device` (CUDA when available). External modules (`module`
    declarations) are imported from the declaring file's folder (from `import_root`, else the working directory,
    for source text), and each one's declared output shape is checked on a dry run (docs/LANGUAGE.md)."""
    from .backend.pytorch.loader import load_checked

    net = check(src, network=network, input=input, import_root=import_root, **params)
    return load_checked(net, device, _import_root(import_root))


def decompile(module: Any, input: Any = (3, 224, 224), network: str | None = None, **kw: Any) -> str:
    """The `.cnn` source of a PyTorch module (cnndsl/decompile, docs/DECOMPILE.md): its blocks, groups, merges and
    repetitions recovered, its module names kept so that the result loads the module's state_dict strictly. Imports
    torch. Raises cnndsl.decompile.DecompileError where the language cannot express the module."""
    from .decompile import decompile as _decompile

    return _decompile(module, input=input, network=network, **kw)
