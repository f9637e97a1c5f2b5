"""Generated source -> live nn.Module: executes the text as a named module, registered with linecache so
that tracebacks and `inspect` show the generated lines. The only place in cnndsl that touches torch."""

from __future__ import annotations

import hashlib
import linecache
import sys
import threading
import types

_modules_lock = threading.RLock()  # one module per text: its check, execution and registration are one step


def module_from_source(text: str, class_name: str) -> types.ModuleType:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    name = f"cnndsl_generated_{class_name}_{digest}"
    with _modules_lock:
        if name in sys.modules:
            return sys.modules[name]
        filename = f"<cnndsl:{class_name}:{digest}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        exec(compile(text, filename, "exec"), module.__dict__)
        sys.modules[name] = module
        return module


def instantiate(text: str, class_name: str, device=None):
    """Run the generated file's `build(device)`; the parameters are already its defaults."""
    return module_from_source(text, class_name).build(device)
