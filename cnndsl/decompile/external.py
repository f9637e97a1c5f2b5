"""The escape hatch: a module the language cannot describe is declared as an external module (docs/LANGUAGE.md,
"Your own modules"), `module Name = package.module.Class(args) -> rule`, where its class can be imported by name and
its constructor's arguments read back from the instance's attributes of the same names. The declaration is tried
before it is used: the class rebuilt with those arguments must have the instance's state_dict (names and shapes) and
give the output shape the instance gave, else the original report stands."""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass
from typing import Any


@dataclass
class External:
    name: str  # the declaration's name in the file
    path: str  # package.module.Class
    args: dict[str, Any]
    rule: str  # `same`, a channel count, or a shape tuple
    why: str = ""  # what the language could not describe in it

    def text(self) -> str:
        from .emit import value

        args = ", ".join(f"{k}={value(v)}" for k, v in self.args.items())
        return (f"# {self.name}: {self.path}, declared as an external module (cnndsl imports it) because decompiling\n"
                f"# cannot describe it: {self.why}\n"
                f"module {self.name} = {self.path}({args}) -> {self.rule}")


def _literal(v: Any) -> bool:
    if isinstance(v, (bool, int, float)):
        return math.isfinite(v)
    if isinstance(v, str):
        return v.replace("_", "").replace("-", "").isalnum()
    if isinstance(v, (tuple, list)):
        return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    return False


def _public_path(cls: type) -> str | None:
    """Where the class can be imported from: `torch.nn.Hardtanh` rather than torch.nn.modules.activation's."""
    module = cls.__module__
    if "<locals>" in cls.__qualname__ or module == "__main__" or "." in cls.__qualname__:
        return None
    parts = module.split(".")
    for k in range(1, len(parts) + 1):
        try:
            if getattr(importlib.import_module(".".join(parts[:k])), cls.__name__, None) is cls:
                return ".".join(parts[:k] + [cls.__name__])
        except Exception:  # noqa: BLE001, S112 - a package whose import fails is no candidate
            continue
    return None


def declare(module, inputs: tuple, output: Any) -> tuple[External | None, str]:
    """The declaration of this instance, or None and why not."""
    import torch

    cls = type(module)
    path = _public_path(cls)
    if path is None:
        return None, "its class cannot be imported by name (defined in __main__ or inside a function)"
    if len(inputs) != 1 or not isinstance(output, torch.Tensor):
        return None, "it takes or returns something other than one tensor"
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return None, "its constructor has no signature to read"
    args: dict[str, Any] = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if hasattr(module, p.name) and _literal(getattr(module, p.name)):
            v = getattr(module, p.name)
            if p.default is inspect.Parameter.empty or not (v == p.default and type(v) is type(p.default)):
                args[p.name] = tuple(v) if isinstance(v, list) else v
        elif p.default is inspect.Parameter.empty:
            return None, f"its constructor's argument `{p.name}` cannot be read back from the instance"
    try:
        rebuilt = cls(**args).eval()
        theirs = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        if {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} != theirs:
            return None, "its class rebuilt from the arguments read back has another state_dict"
        with torch.no_grad():
            if tuple(rebuilt(*inputs).shape) != tuple(output.shape):
                return None, "its class rebuilt from the arguments read back gives another output shape"
    except Exception as e:  # noqa: BLE001 - any failure means the declaration would be wrong
        return None, f"its class rebuilt from the arguments read back fails ({type(e).__name__}: {e})"
    x = inputs[0]
    if tuple(output.shape) == tuple(x.shape):
        rule = "same"
    elif output.dim() == x.dim() and tuple(output.shape[2:]) == tuple(x.shape[2:]) and output.dim() > 2:
        rule = str(output.shape[1])
    else:
        rule = "(" + ", ".join(str(d) for d in output.shape[1:]) + ("," if output.dim() == 2 else "") + ")"
    return External(name=cls.__name__.lstrip("_") or "Module", path=path, args=args, rule=rule), ""
