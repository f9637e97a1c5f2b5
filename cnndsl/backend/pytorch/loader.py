"""Generated source -> live nn.Module: executes the text as a named module, registered with linecache so
that tracebacks and `inspect` show the generated lines. The only place in cnndsl that touches torch.

The module is synthetic (`cnndsl_generated_<Class>_<digest>`, in sys.modules only where it was made), so its
classes are given a reducer: a pickled instance carries the generated text, and unpickling runs it again
(`_rebuild`) wherever cnndsl is installed; the text itself stays plain PyTorch."""

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
        reduce_ex = _reducer(text, class_name, name)
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                value.__reduce_ex__ = reduce_ex
        sys.modules[name] = module
        return module


def _reducer(text: str, class_name: str, module_name: str):
    def __reduce_ex__(self, protocol):
        """Pickle as nn.Module does (its state, tensors and all, through the pickler in use: torch.save's
        storages, multiprocessing's shared memory), but rebuilt from the generated text, not by the module's name."""
        reduced = object.__reduce_ex__(self, max(protocol, 2))  # (copyreg.__newobj__, (cls,), state, ...)
        cls = type(self)
        if cls.__module__ != module_name:  # a subclass defined elsewhere pickles by its own name
            return reduced
        return (_rebuild, (text, class_name, cls.__qualname__), *reduced[2:])

    return __reduce_ex__


def _rebuild(text: str, class_name: str, qualname: str):
    """An instance of a generated class, not initialised: the unpickler sets its state (nn.Module.__setstate__)."""
    cls = module_from_source(text, class_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls.__new__(cls)


def instantiate(text: str, class_name: str, device=None):
    """Run the generated file's `build(device)`; the parameters are already its defaults."""
    return module_from_source(text, class_name).build(device)
