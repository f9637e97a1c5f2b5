"""The CLI's TARGET: `package.module:callable` or `path/to/model.py:ClassName`, called with `--arg key=value`
constructor arguments (Python literals). Every failure is a UsageError that says what went wrong, never a
traceback."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError


def arguments(items: list[str]) -> dict[str, Any]:
    """`num_classes=10`, `weights=None`, `layers=[2, 2]`: each value a Python literal (a bare word is a string)."""
    found: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(f"--arg takes KEY=VALUE with a Python identifier as KEY, got {item!r}")
        try:
            found[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            if not text.strip().replace("_", "").replace("-", "").isalnum():
                raise UsageError(f"--arg {key}: {text!r} is not a Python literal (a number, a string, a tuple, True, None ...)") from None
            found[key] = text.strip()
    return found


def load_target(target: str, kwargs: dict[str, Any]):
    """The nn.Module that TARGET builds with these keyword arguments."""
    import torch

    where, sep, name = target.rpartition(":")
    if not sep or not where or not name.replace(".", "_").isidentifier():
        raise UsageError(f"TARGET is package.module:callable or path/to/model.py:ClassName, got {target!r}")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"cannot read {where}: there is no such file")
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        try:
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"importing {where} raised {type(e).__name__}: {e}") from None
        finally:
            sys.path.remove(folder)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"cannot import {where}: {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{where} has no `{name}`")
        obj = getattr(obj, part)
    if isinstance(obj, torch.nn.Module):
        if kwargs:
            raise UsageError(f"{target} is a module instance, which takes no --arg")
        return obj
    if not callable(obj):
        raise UsageError(f"{target} is neither an nn.Module nor a callable that builds one")
    try:
        made = obj(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"{name}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised {type(e).__name__}: {e}") from None
    if not isinstance(made, torch.nn.Module):
        raise UsageError(f"{name}(...) returned a {type(made).__name__}, not an nn.Module")
    return made
