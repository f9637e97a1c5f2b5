"""`cnndsl.decompile`: a PyTorch CNN back to a short, structured `.cnn` (docs/DECOMPILE.md).

The model is traced with torch.fx (cnndsl/decompile/trace.py), each forward's graph becomes pipelines, groups,
merges and named values (structure.py), the instances of each user class one block generic in what differs
between them (generalize.py, blocks.py), and the whole is written as `cnndsl fmt` writes it (emit.py). Only this
package (and load/export) imports torch, and only when called."""

from __future__ import annotations

from typing import Any

from .nodes import DecompileError

__all__ = ["DecompileError", "decompile"]

HEADER = """\
# {name}: decompiled from {source} by cnndsl {version}
#   {command}
# The architecture and the module names (so the state_dict keys) are the original's; the initialisation is not
# recovered (the layers start as PyTorch initialises them).
"""


def _shape(input: Any) -> tuple[int, ...]:
    from .. import _input_shape

    shape = _input_shape(input)
    if shape is None:
        raise DecompileError("decompiling needs the input's size (`input=(3, 224, 224)`, `--input 3x224x224`)")
    return shape


def decompile(module: Any, input: Any = (3, 224, 224), network: str | None = None, *, source: str | None = None,
              command: str | None = None) -> str:
    """The `.cnn` source of an nn.Module, formatted as `cnndsl fmt` formats it. `input`: the input's size without
    the batch. `network`: the network's name (default: the class's). Raises DecompileError, with the module's path,
    class, source line and why, for what the language cannot express."""
    import torch

    from .. import __version__, check
    from ..tools.fmt import format_source
    from .blocks import Blocks
    from .emit import block_text, hoist, network_text
    from .trace import Decompose

    shape = _shape(input)
    name = network or type(module).__name__
    if not name.isidentifier():
        raise DecompileError(f"the network's name {name!r} is no identifier", hint="pass `network=` (`--network NAME`)")
    was_training = module.training
    module.eval()
    try:
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(2, *shape, generator=generator)
        dec = Decompose(module, (example,))
        blocks = Blocks(dec)
    finally:
        module.train(was_training)
    defaults = hoist([b for _, _, b in blocks.defined] + [blocks.root])
    parts = [e.text() for e in dec.externals.values()]
    parts += [block_text(n, params, b) for n, params, b in blocks.defined]
    parts.append(network_text(name, shape, blocks.root, dec.root, defaults))
    cls = type(module)
    header = HEADER.format(name=name, source=source or f"{cls.__module__}.{cls.__qualname__}", version=__version__,
                           command=command or f"cnndsl.decompile({cls.__qualname__}(...), input={shape})")
    text = format_source(header + "\n" + "\n\n".join(parts) + "\n")
    try:
        check(text)
    except Exception as e:  # noqa: BLE001 - a file the checker refuses is a mistake of the decompiler, never the user's
        raise DecompileError(f"the decompiled file does not check, a bug of cnndsl's decompiler:\n{e}\n--- the file:\n{text}") from None
    return text


class _CallablePackage(__import__("types").ModuleType):
    """Importing this package sets `cnndsl.decompile` to it, over the function of that name in cnndsl/__init__.py:
    calling the package calls the function, so `cnndsl.decompile(model)` works before and after the import."""

    def __call__(self, module: Any, input: Any = (3, 224, 224), network: str | None = None, **kw: Any) -> str:
        return decompile(module, input=input, network=network, **kw)


__import__("sys").modules[__name__].__class__ = _CallablePackage
