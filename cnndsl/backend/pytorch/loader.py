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


# -- networks with external modules ----------------------------------------------------------------------------
#
# A module declared with `module Name(...) = package.module.Class(...) -> rule` is imported here, never while
# compiling: the checker trusted the declared rule, and the dry run below holds the real module to it. Every
# failure (no such module or class, a constructor or forward that raises, a shape other than the declared one) is
# a located diagnostic at the declaration.

_path_lock = threading.Lock()  # sys.path is the process's: one import with a folder prepended at a time


def load_checked(net, device=None, base=None):
    """The module of a checked network on `device`. Its external modules are imported first, a local one from the
    folder of the .cnn file that declares it (`base`, else the working directory, for source text); the module is
    then built, and a dry run on one input of the network's example shape (eval mode, no gradients, an RNG of its
    own) checks each external module's output against its declared shape."""
    from .codegen import generate

    text = generate(net)
    externals = [layer for layer in net.layers if layer.external is not None]
    if not externals:
        return instantiate(text, net.name, device)
    classes = {layer.external.path: _import_class(layer.external, base) for layer in externals}
    try:
        model = instantiate(text, net.name, device)
    except Exception as e:
        layer = _raised_in(e, externals, classes)
        if layer is None:
            raise
        raise _located(layer.external, f"`{layer.op}` could not be made ({_what(layer)}): {_error_text(e)}", "path",
                       "check the module's arguments in its declaration against its class's constructor") from None
    _dry_run(model, net, externals, classes)
    return model


def _import_class(ext, base):
    """The class an external module names, imported with the declaring file's folder first on sys.path."""
    import importlib
    import os

    import torch

    module_name, class_name = ext.path.rsplit(".", 1)
    folder = os.path.dirname(os.path.abspath(ext.file)) if not ext.file.startswith("<") else os.path.abspath(base or os.curdir)
    with _path_lock:
        sys.path.insert(0, folder)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            top = module_name.split(".")[0]
            if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
                raise _located(ext, f"cannot import `{ext.path}`: there is no module `{e.name}`", "path",
                               f"a module of your own is a file {top}.py (or a folder {top}/) beside the .cnn file"
                               f" ({folder}); else install the package that provides it") from None
            raise _located(ext, f"cannot import `{ext.path}`: importing `{module_name}` failed: {_error_text(e)}", "path") from None
        except Exception as e:  # the module's own code raised
            raise _located(ext, f"cannot import `{ext.path}`: importing `{module_name}` failed: {_error_text(e)}", "path") from None
        finally:
            if folder in sys.path:
                sys.path.remove(folder)
    found = getattr(module, class_name, None)
    if found is None:
        from ...errors import did_you_mean

        names = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, torch.nn.Module)]
        raise _located(ext, f"cannot import `{ext.path}`: the module `{module_name}` has no `{class_name}`", "path",
                       did_you_mean(class_name, names) or (f"its nn.Module classes are: {', '.join(sorted(names)[:10])}"
                                                           if names else "it defines no nn.Module class"))
    if not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        raise _located(ext, f"`{ext.path}` is not an nn.Module class", "path", "a module declaration names a subclass of torch.nn.Module")
    return found


def _raised_in(e: BaseException, externals, classes):
    """The external layer whose construction raised `e`: the class whose `__init__` is on the traceback, or the
    class called on the generated line where the traceback leaves the generated code."""
    import re

    tb, line = e.__traceback__, None
    while tb is not None:
        frame = tb.tb_frame
        me = frame.f_locals.get("self")
        for layer in externals:
            if isinstance(me, classes[layer.external.path]) and frame.f_code.co_name == "__init__":
                return layer
        if frame.f_code.co_filename.startswith("<cnndsl:"):
            line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    for layer in externals:
        if line is not None and re.search(rf"\b{re.escape(layer.module)}(_\d+)?\(", line):
            return layer
    return None


class _Mismatch(Exception):
    def __init__(self, layer, found: str):
        self.layer, self.found = layer, found


def _dry_run(model, net, externals, classes) -> None:
    """Run the model once and hold each external module's output to its declared shape."""
    import torch

    from ...ops.common import fmt_shape

    running: list = []

    def pre(layer):
        def hook(module, args):
            running.append(layer)
        return hook

    def post(layer):
        def hook(module, args, output):
            running.pop()
            if not isinstance(output, torch.Tensor):
                raise _Mismatch(layer, f"a {type(output).__name__}, not a tensor")
            found = tuple(output.shape[1:])
            want = layer.output_shape
            if len(found) != len(want) or any(w is not None and w != f for w, f in zip(want, found)):
                raise _Mismatch(layer, fmt_shape(found))
        return hook

    handles = []
    for layer in externals:
        try:
            sub = model.get_submodule(layer.name)
        except AttributeError:  # not made for these parameters (a branch whose condition is false)
            continue
        handles += [sub.register_forward_pre_hook(pre(layer)), sub.register_forward_hook(post(layer))]
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(2, *net.example_shape, generator=torch.Generator().manual_seed(0)).to(device)
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    except _Mismatch as m:
        layer = m.layer
        raise _located(layer.external, f"`{layer.op}` ({_what(layer)}) was declared to {_declared(layer)}, but returns "
                       f"{m.found}", "rule", "correct the shape rule after `->` (or the module's arguments)") from None
    except Exception as e:
        if not running:
            raise
        layer = running[-1]
        raise _located(layer.external, f"`{layer.op}` ({_what(layer)}) failed on an input of shape "
                       f"{fmt_shape(layer.input_shape)}: {_error_text(e)}", "path") from None
    finally:
        for h in handles:
            h.remove()
        model.train(training)


def _declared(layer) -> str:
    from ...ops.common import fmt_shape

    shape = fmt_shape(layer.output_shape)
    rule = layer.external.rule
    if rule == "same":
        return f"keep the shape {shape}"
    if rule == "channels":
        return f"give {layer.output_shape[0]} channels, {shape}"
    return f"return {shape}"


def _what(layer) -> str:
    return f"layer `{layer.name}`, {layer.external.path}"


def _error_text(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300] + '...' if len(text) > 300 else text}"


def _located(ext, message: str, where: str, hint: str | None = None):
    """A CheckError at the declaration: its import path (`where` = "path") or its shape rule ("rule")."""
    from ...errors import CheckError, Diagnostic

    span, line = (ext.path_span, ext.path_line) if where == "path" else (ext.rule_span, ext.rule_line)
    return CheckError([Diagnostic(message=message, file=ext.file, span=span, line_text=line, hint=hint)])
