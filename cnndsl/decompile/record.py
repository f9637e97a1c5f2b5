"""What one real forward shows: the inputs and outputs of every module (its first call) and how often each is
called; and where a traced node or an exception stands in the user's source (the last frame outside torch)."""

from __future__ import annotations

import os
import traceback
from typing import Any

_DECOMPILER = f"{os.sep}cnndsl{os.sep}decompile{os.sep}"  # its tracer's frames are no user's line


def _where(node) -> str | None:
    """`file.py:12: out += identity` from a node's stack trace: the last frame outside torch."""
    trace = node.meta.get("stack_trace") or ""
    lines = trace.strip().splitlines()
    found = None
    for i, line in enumerate(lines):
        line = line.strip()
        if line.startswith("File \"") and f"{os.sep}torch{os.sep}" not in line and _DECOMPILER not in line:
            try:
                path = line.split('"')[1]
                lineno = int(line.split("line ")[1].split(",")[0])
            except (IndexError, ValueError):
                continue
            code = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i + 1].strip().startswith("File ") else ""
            found = f"{path}:{lineno}" + (f": `{code}`" if code else "")
    return found


class Recorder:
    """The inputs each module receives in one real forward (its first call), and how often each is called."""

    def __init__(self, model, example):
        import torch

        self.inputs: dict[int, tuple] = {}
        self.outputs: dict[int, Any] = {}
        self.calls: dict[int, int] = {}
        hooks = []
        for m in model.modules():
            hooks.append(m.register_forward_pre_hook(self._hook))
            hooks.append(m.register_forward_hook(self._out))
        try:
            with torch.no_grad():
                self.output = model(*example)
        except Exception as e:  # noqa: BLE001 - the model refuses this input: the user's size, said as such
            from .nodes import DecompileError

            shape = "x".join(str(d) for d in example[0].shape[1:]) if example and hasattr(example[0], "shape") else "?"
            raise DecompileError(f"its forward fails on a random input of size {shape} ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})", where=_last_user_frame(e),
                                 cls=f"{type(model).__module__}.{type(model).__qualname__}",
                                 hint="give the input size the model takes (`input=(3, 224, 224)`, `--input 3x224x224`)") from None
        finally:
            for h in hooks:
                h.remove()

    def _out(self, module, args, output):
        self.outputs.setdefault(id(module), output.detach().clone() if hasattr(output, "detach") else None)

    def _hook(self, module, args):
        key = id(module)
        self.calls[key] = self.calls.get(key, 0) + 1
        if key not in self.inputs:  # lists and dicts copied too: DenseNet's block appends to the list it passed
            self.inputs[key] = tuple(_copy(a) for a in args)


def _copy(a: Any) -> Any:
    if hasattr(a, "detach"):
        return a.detach().clone()
    if isinstance(a, dict):
        return type(a)((k, _copy(v)) for k, v in a.items())
    if isinstance(a, (list, tuple)):
        return type(a)(_copy(v) for v in a)
    return a


def _has_state(m) -> bool:
    return any(True for _ in m.parameters()) or any(True for _ in m.buffers())


def _last_user_frame(e: BaseException | None) -> str | None:
    """The last frame outside torch and cnndsl of an exception's traceback, or (None) of the running stack."""
    frames = traceback.extract_tb(e.__traceback__) if e is not None else traceback.extract_stack()
    user = [f for f in frames if f"{os.sep}torch{os.sep}" not in f.filename and f"{os.sep}cnndsl{os.sep}" not in f.filename]
    if not user:
        return None
    f = user[-1]
    return f"{f.filename}:{f.lineno}" + (f": `{f.line.strip()}`" if f.line else "")


def _tensor_meta(n):
    meta = n.meta.get("tensor_meta")
    return meta if meta is not None and hasattr(meta, "shape") else None
