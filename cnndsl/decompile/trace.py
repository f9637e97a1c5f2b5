"""Tracing: each module that is not a catalog layer or a container (a `Unit`: the model itself and every instance of
a user's class) is traced on its own with torch.fx, its catalog layers and user submodules as leaves, and its nodes
are read into `TNode`s with the shapes ShapeProp records on the inputs a real forward passed it."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from .functions import MERGE_OPS, Unsupported, classify
from .layers import catalog_class, function_name, layer, module_table
from .nodes import Call, DecompileError, Layer
from .record import Recorder, _has_state, _last_user_frame, _tensor_meta, _where


def input_name(name: str, k: int) -> str:
    """A block's input, named as its forward names it (`skip`), unless that name is no plain identifier."""
    import keyword

    from ..names import PARAMETER_RESERVED

    ok = name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_") and name not in PARAMETER_RESERVED \
        and name not in ("in", "input", "output", "same", "shape")
    return name if ok else f"input{k + 1}"


HELPERS = ("_pad_to", "_center_crop")  # functions of generated code: `pad like=e`, `crop like=e`


@contextlib.contextmanager
def _helpers_as_leaves(forward):
    """cnndsl's own `_pad_to` and `_center_crop` (generated code) recorded as calls, not traced into (torch.fx's
    autowrap skips names that start with `_`): each wrapped as torch.fx.wrap would, while the forward is traced."""
    scope = getattr(forward, "__globals__", {})
    saved = {h: scope[h] for h in HELPERS if callable(scope.get(h))}
    try:
        from torch.fx._symbolic_trace import _create_wrapped_func
    except ImportError:  # a torch without it traces into them, and reports what it cannot follow
        saved = {}
    try:
        for h, fn in saved.items():
            scope[h] = _create_wrapped_func(fn)
        yield
    finally:
        scope.update(saved)


@dataclass
class TNode:
    id: int
    kind: str  # input | layer | call | merge | pass | output
    inputs: list[int]  # the tensors it reads, in order
    stages: list = field(default_factory=list)  # layer: its Layers; call: [Call]
    merge: str | None = None
    path: str | None = None  # the module it calls, relative to the unit ("features.3")
    shape: tuple | None = None
    where: str | None = None
    like: int | None = None  # upsample to the size of this node's tensor


@dataclass
class Unit:
    module: Any
    path: str  # its path in the model ("" for the model)
    cls: str
    in_shapes: list[tuple]
    nodes: list[TNode] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    output_keys: list[str] | None = None
    input_keys: list[tuple] = field(default_factory=list)  # per input: (its argument's position, its key or None)


def _flat(values) -> list:
    """The tensors of a forward's arguments, lists and dicts of tensors opened in order."""
    found = []
    for v in values:
        found.extend(v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else [v])
    return found


def _tensors_only(a) -> bool:
    """A tensor (a traced one), or a list, tuple or dict of them."""
    if isinstance(a, dict):
        return all(_tensors_only(v) for v in a.values())
    if isinstance(a, (list, tuple)):
        return all(_tensors_only(v) for v in a)
    return hasattr(a, "node")


def _structured(module, inputs: tuple) -> tuple[dict, list[tuple]]:
    """torch.fx's concrete_args for the arguments that are lists or dicts of tensors (DenseNet's layers take a list,
    FPN a dict): one placeholder per tensor; and, per placeholder, its argument's position and key."""
    import inspect

    from torch import fx

    try:
        names = [p for p in inspect.signature(module.forward).parameters]
    except (TypeError, ValueError):
        names = []
    concrete, keys = {}, []
    for i, a in enumerate(inputs):
        if isinstance(a, dict) and i < len(names):
            concrete[names[i]] = {k: fx.PH for k in a}
            keys += [(i, k) for k in a]
        elif isinstance(a, (list, tuple)) and i < len(names):
            concrete[names[i]] = type(a)(fx.PH for _ in a)
            keys += [(i, k) for k in range(len(a))]
        else:
            keys.append((i, None))
    return concrete, keys


def _leading_cat(unit: Unit) -> bool:
    """Whether a unit that takes a list of tensors first concatenates all of them, in order, and reads them nowhere
    else (DenseNet's `_DenseLayer`): then it becomes a unit of one input, the concatenation, and its callers
    concatenate (`_Reader._call_module`). Done once per unit; True after."""
    if getattr(unit, "cat_input", False):
        return True
    ins = [n for n in unit.nodes if n.kind == "input"]
    if len(ins) < 2 or len({j for j, _ in unit.input_keys}) != 1 or not all(isinstance(k, int) for _, k in unit.input_keys):
        return False
    ids = [n.id for n in ins]
    readers = [n for n in unit.nodes if set(n.inputs) & set(ids) or n.like in ids]
    if len(readers) != 1 or readers[0].kind != "merge" or readers[0].merge != "cat" or readers[0].inputs != ids \
            or set(ids) & set(unit.outputs):
        return False
    cat = readers[0]
    for n in ins:
        n.kind = "dead"
    cat.kind, cat.inputs, cat.merge, cat.path = "input", [], None, ins[0].path
    unit.in_shapes, unit.input_keys, unit.cat_input = [cat.shape], [(0, None)], True
    return True


def _is_container(m) -> bool:
    from torch import nn

    if isinstance(m, (nn.ModuleList, nn.ModuleDict)):
        return type(m).forward is nn.Module.forward  # a subclass with a forward of its own is a user's module
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


class Decompose:
    """Traces the model and every unit below it; `units` in the order they were found (the model first)."""

    def __init__(self, model, example):
        self.table = module_table()
        self.recorder = Recorder(model, example)
        self.names = {id(m): name for name, m in model.named_modules()}
        self.units: dict[int, Unit] = {}
        self.externals: dict[tuple, Any] = {}  # (path, args) -> External
        for name, m in model.named_modules():
            own = any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))
            if own and id(m) not in self.recorder.calls:
                self._never_called(model, name)
        self.root = self.unit(model, "")

    def _never_called(self, model, name: str) -> None:
        """The report for weights the eval forward never reaches: the outermost module not called (`aux1`, not
        `aux1.conv.conv`), and the line of its parent's class that calls it (under `if self.training`)."""
        import inspect

        parts = name.split(".")
        k = next(k for k in range(1, len(parts) + 1) if id(model.get_submodule(".".join(parts[:k]))) not in self.recorder.calls)
        top, parent = ".".join(parts[:k]), model.get_submodule(".".join(parts[:k - 1]))
        m = model.get_submodule(top)
        where = None
        try:
            lines, start = inspect.getsourcelines(type(parent))  # its forward, or a method the forward calls
            file = inspect.getsourcefile(type(parent))
            hit = next((i for i, line in enumerate(lines) if f"self.{parts[k - 1]}(" in line), None)
            if hit is not None and file:
                where = f"{file}:{start + hit}: `{lines[hit].strip()}`"
        except (OSError, TypeError):
            pass
        raise DecompileError("it has weights, but the forward in eval mode never calls it (a branch that runs only in "
                             "training, such as an auxiliary classifier), so no eval network can hold them",
                             path=top, cls=f"{type(m).__module__}.{type(m).__qualname__}", where=where,
                             hint="build the model without that branch (torchvision's GoogLeNet and Inception3: "
                                  "`aux_logits=False`) and decompile that; its other weights load the same")

    def is_leaf(self, m) -> bool:
        return not _is_container(m)

    def unit(self, module, path: str) -> Unit:
        key = id(module)
        if key in self.units:
            return self.units[key]
        import torch
        from torch import fx
        from torch.fx.passes.shape_prop import ShapeProp

        cls = f"{type(module).__module__}.{type(module).__qualname__}"
        if key not in self.recorder.inputs:
            raise DecompileError("the forward never calls it, so the language cannot place it", path=path, cls=cls)
        inputs = self.recorder.inputs[key]
        decompose = self

        class Tracer(fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return decompose.is_leaf(m)

            def call_module(self, m, forward, args, kwargs):
                values = list(args) + list(kwargs.values())
                if catalog_class(m, decompose.table) is None and not type(m).__module__.startswith("torch.nn") and \
                        any(isinstance(a, (list, tuple, dict)) for a in values):
                    if not _has_state(m):
                        return forward(*args, **kwargs)  # a module without weights that takes lists (FPN's extra block): inlined
                    if not all(_tensors_only(a) for a in values):
                        raise DecompileError("it has weights and is called with lists that hold more than tensors (names, "
                                             "numbers), so it is neither a block (which takes tensors) nor a part of its "
                                             "caller", path=decompose.names.get(id(m)),
                                             cls=f"{type(m).__module__}.{type(m).__qualname__}", where=_last_user_frame(None))
                return super().call_module(m, forward, args, kwargs)

        tracer = Tracer()
        tracer.record_stack_traces = True
        concrete, keys = _structured(module, inputs)
        try:
            with _helpers_as_leaves(type(module).forward):
                graph = tracer.trace(module, concrete_args=concrete or None)
        except DecompileError:
            raise
        except Exception as e:  # noqa: BLE001 - control flow on tensor values, Python the tracer cannot follow
            raise DecompileError(f"torch.fx cannot trace its forward ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                                 path=path, cls=cls, where=_last_user_frame(e),
                                 hint="the language describes forwards whose structure does not depend on the tensors' values") from None
        gm = fx.GraphModule(module, graph)
        before = set(self.units)
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(*inputs)
        except Exception as e:  # noqa: BLE001
            raise DecompileError(f"its traced forward does not run ({type(e).__name__}: {e})", path=path, cls=cls) from None
        shapes = [tuple(a.shape) for a in _flat(inputs) if hasattr(a, "shape")]
        unit = Unit(module=module, path=path, cls=cls, in_shapes=shapes, input_keys=keys)
        self.units[key] = unit
        try:
            _Reader(self, unit, gm).read()
        except DecompileError:
            for k in set(self.units) - before:  # the units found below it are not called after all
                del self.units[k]
            raise
        return unit

    def external(self, module, error: DecompileError):
        """The external-module declaration for a module that cannot be described, or the report, with why not."""
        from .external import declare

        found, why = declare(module, self.recorder.inputs.get(id(module), ()), self.recorder.outputs.get(id(module)))
        if found is None:
            path = self.names.get(id(module), "")
            who = "it" if path == (error.path or "") else f"`{path}` ({type(module).__qualname__}), which holds it,"
            error.hint = (error.hint + "; " if error.hint else "") + f"nor can {who} be declared as an external module: {why}"
            error.args = (error.render(),)
            raise error
        where = error.where.rsplit(os.sep, 1)[-1] if error.where else None  # no folder of this machine in the file
        found.why = (f"{where}: " if where else "") + error.message
        key = (found.path, tuple(sorted(found.args.items())), found.rule)
        if key not in self.externals:
            taken = {e.name for e in self.externals.values()}
            base, n = found.name, 2
            while found.name in taken:
                found.name, n = f"{base}_{n}", n + 1
            self.externals[key] = found
        return self.externals[key]


class _Reader:
    """One unit's fx graph as TNodes."""

    def __init__(self, dec: Decompose, unit: Unit, gm):
        self.dec, self.unit, self.gm = dec, unit, gm
        self.ids: dict[Any, int] = {}  # fx node -> TNode id (its tensor)
        self.meta: dict[Any, Any] = {}  # fx node -> what a size read holds: ("shape", tensor node, slice) ...
        self.multi: dict[Any, tuple] = {}  # a call of a unit that returns several tensors -> (keys, their ids)

    def fail(self, message: str, node=None, path: str | None = None, cls: str | None = None, hint: str | None = None):
        full = ".".join(p for p in (self.unit.path, path) if p) if path else self.unit.path
        raise DecompileError(message, path=full or None, cls=cls or self.unit.cls, where=_where(node) if node is not None else None,
                             hint=hint)

    def add(self, kind: str, inputs: list[int], node, **kw) -> TNode:
        meta = _tensor_meta(node)
        t = TNode(id=len(self.unit.nodes), kind=kind, inputs=inputs, shape=tuple(meta.shape) if meta else None,
                  where=_where(node), **kw)
        self.unit.nodes.append(t)
        self.ids[node] = t.id
        return t

    def read(self) -> None:
        for node in self.gm.graph.nodes:
            getattr(self, f"_{node.op}")(node)
        self._shuffles()
        self._cats()

    def _cats(self) -> None:
        """A concatenation that starts with all the tensors of an earlier one continues from it (torch.cat is
        associative): DenseNet's cat(x, n1, n2) is cat(cat(x, n1), n2), so each layer's input is a `cat:` merge."""
        made: dict[tuple, int] = {}
        for n in self.unit.nodes:
            if n.kind != "merge" or n.merge != "cat":
                continue
            own = tuple(n.inputs)
            for k in range(len(own) - 1, 1, -1):
                if own[:k] in made:
                    n.inputs = [made[own[:k]]] + list(own[k:])
                    break
            made.setdefault(own, n.id)

    def _shuffles(self) -> None:
        """unflatten (g, C/g) | permute 0 2 1 ... | flatten 1..2, ShuffleNet's channel_shuffle, is `shuffle g`."""
        nodes = self.unit.nodes
        readers: dict[int, int] = {}
        for n in nodes:
            for x in n.inputs + ([n.like] if n.like is not None else []):
                readers[x] = readers.get(x, 0) + 1
        for x in self.unit.outputs:
            readers[x] = readers.get(x, 0) + 1
        for c in nodes:
            if c.kind != "layer" or len(c.stages) != 1 or c.stages[0].op != "flatten" or len(c.inputs) != 1:
                continue
            b = nodes[c.inputs[0]]
            if b.kind != "layer" or len(b.stages) != 1 or b.stages[0].op != "permute" or readers.get(b.id) != 1:
                continue
            a = nodes[b.inputs[0]]
            if a.kind != "layer" or len(a.stages) != 1 or a.stages[0].op != "unflatten" or readers.get(a.id) != 1:
                continue
            sizes, dims = a.stages[0].opts.get("unflattened_size"), b.stages[0].opts.get("dims")
            rank = len(c.shape or ())
            if a.stages[0].opts.get("dim", 1) == 1 and isinstance(sizes, tuple) and len(sizes) == 2 and \
                    dims == (0, 2, 1) + tuple(range(3, rank + 1)) and set(c.stages[0].opts) == {"end_dim"} and \
                    c.stages[0].opts["end_dim"] in (2, 2 - (rank + 1)):
                c.stages = [layer("shuffle", groups=sizes[0])]
                c.inputs = list(a.inputs)
                a.kind = b.kind = "dead"

    def _placeholder(self, node) -> None:
        k = len([n for n in self.unit.nodes if n.kind == "input"])
        key = self.unit.input_keys[k][1] if k < len(self.unit.input_keys) else None
        name = key if isinstance(key, str) and input_name(key, k) == key else str(node.target)  # a dict's key: `low`
        self.add("input", [], node, path=input_name(name, k))

    def _get_attr(self, node) -> None:
        self.meta[node] = ("param", str(node.target))  # a learned scale (`layerscale`) where a product reads it

    def _param_used(self, node, target: str) -> None:
        self.fail(f"its forward reads the tensor `{target}` directly (a parameter or buffer used outside a layer)",
                  node, hint="the language holds weights only inside its layers (a product with a per-channel "
                             "parameter is `layerscale`); move it into a module of the catalog")

    def _layerscale(self, node, name: str) -> bool:
        """`self.gamma * x` or `x * self.gamma` with gamma of shape (C, 1, 1) or (C,): `layerscale ... as gamma`."""
        import operator

        import torch

        if not (name in ("mul", "imul") or node.target in (operator.mul, torch.mul)) or len(node.args) != 2 or node.kwargs:
            return False
        params = [a for a in node.args if hasattr(a, "op") and self.meta.get(a, ("",))[0] == "param"]
        tensors = [a for a in node.args if hasattr(a, "op") and a not in self.meta]
        if len(params) != 1 or len(tensors) != 1 or tensors[0] not in self.ids:
            return False
        target = self.meta[params[0]][1]
        value = self.gm.get_parameter(target) if target in dict(self.gm.named_parameters()) else None
        shape = self.unit.nodes[self.ids[tensors[0]]].shape
        if value is None or shape is None:
            return False
        channels = shape[1]
        if tuple(value.shape) == (channels,) + (1,) * (len(shape) - 2):
            dim = 1
        elif tuple(value.shape) == (shape[-1],):
            dim = -1
        else:
            return False
        lay = layer("layerscale", init=float(f"{float(value.detach().flatten()[0]):.7g}"), dim=dim)  # float32, shortest
        lay.stateful = True
        self.add("layer", [self.ids[tensors[0]]], node, stages=[lay], path=target)
        return True

    def _call_module(self, node) -> None:
        path = str(node.target)
        sub = self.gm.get_submodule(path)
        cls = f"{type(sub).__module__}.{type(sub).__qualname__}"
        if self._pooling(node, sub, path):
            return
        if node.kwargs or not all(hasattr(a, "op") or self._tensors(a) for a in node.args):
            self.fail("it is called with arguments besides tensors (and lists or dicts of tensors)", node, path, cls)
        calls = self.dec.recorder.calls.get(id(sub), 0)
        if calls > 1 and _has_state(sub):
            self.fail(f"it is called {calls} times, so its weights are shared between places, which the language "
                      "cannot express (each layer of a .cnn has its own weights)", node, path, cls)
        found = catalog_class(sub, self.dec.table)
        if found is not None:
            if len(node.args) != 1 or not hasattr(node.args[0], "op") or node.args[0] not in self.ids:
                self.fail("a layer of the catalog called on several tensors, or on a list", node, path, cls)
            inputs = [self.ids[node.args[0]]]
            lay = self.dec.table[found](sub)
            if lay is None:
                self.fail("its options have no form in the language", node, path, cls)
            if len(inputs) != 1:
                self.fail("a layer of the catalog called on several tensors", node, path, cls)
            lay.stateful = _has_state(sub)
            self.add("layer", inputs, node, stages=[lay], path=path)
            return
        full = ".".join(p for p in (self.unit.path, path) if p)
        if not node.args:
            self.fail("it is called on no tensor", node, path, cls)
        try:
            inner = self.dec.unit(sub, full)
        except DecompileError as e:
            if len(node.args) != 1 or node.args[0] not in self.ids:
                raise
            declared = self.dec.external(sub, e)
            call = Call(block=declared.name, stateful=_has_state(sub), external=True)
            call.params = []
            self.add("call", [self.ids[node.args[0]]], node, stages=[call], path=path)
            return
        inputs = self._arguments(node, inner, path, cls)
        if _leading_cat(inner) and len(inputs) > 1:  # the callee's concatenation of its list, done here instead
            joined = TNode(id=len(self.unit.nodes), kind="merge", inputs=inputs, merge="cat",
                           shape=inner.in_shapes[0], where=_where(node))
            self.unit.nodes.append(joined)
            inputs = [joined.id]
        call = Call(block=inner.cls, instance=inner, stateful=_has_state(sub))
        call.inputs = [n.path for n in inner.nodes if n.kind == "input"]  # `Up(skip=x4)`: the others by name
        t = self.add("call", inputs, node, stages=[call], path=path)
        if inner.output_keys is not None or len(inner.outputs) > 1:  # `a, b = Body()`: one value per output
            picks = [t.id]
            if len(inner.outputs) > 1:
                picks = []
                for k, o in enumerate(inner.outputs):
                    pick = TNode(id=len(self.unit.nodes), kind="pick", inputs=[t.id], merge=str(k),
                                 shape=inner.nodes[o].shape, where=t.where)
                    self.unit.nodes.append(pick)
                    picks.append(pick.id)
            keys = inner.output_keys if inner.output_keys is not None else list(range(len(inner.outputs)))
            self.multi[node] = (keys, picks)

    def _tensors(self, a) -> bool:
        """A list, tuple or dict of this forward's tensors (an argument a unit takes opened, one input per tensor)."""
        items = a.values() if isinstance(a, dict) else a if isinstance(a, (list, tuple)) else None
        return items is not None and len(items) > 0 and all(hasattr(x, "op") and x in self.ids for x in items)

    def _arguments(self, node, inner: Unit, path: str, cls: str) -> list[int]:
        """The tensors a call passes, in the order of the callee's inputs: a list's items, a dict's values by key,
        and the outputs of a call of several outputs by their keys (`self.fpn(self.body(x))`)."""
        found: list[int] = []
        for i, a in enumerate(node.args):
            keys = [k for j, k in inner.input_keys if j == i]
            if hasattr(a, "op") and a in self.multi and keys != [None]:
                given, picks = self.multi[a]
                if sorted(map(str, given)) != sorted(map(str, keys)):
                    self.fail(f"it is passed the outputs {given} of a call, but takes {keys}", node, path, cls)
                found += [picks[[str(g) for g in given].index(str(k))] for k in keys]
            elif hasattr(a, "op") and a in self.ids and keys == [None]:
                found.append(self.ids[a])
            elif isinstance(a, dict) and list(a) == keys:
                found += [self.ids[a[k]] for k in keys]
            elif isinstance(a, (list, tuple)) and list(range(len(a))) == keys:
                found += [self.ids[x] for x in a]
            else:
                self.fail("it is called with an argument that is not a tensor of this forward (nor a list or dict of "
                          "them)", node, path, cls)
        if not found:
            self.fail("it is called on no tensor", node, path, cls)
        return found

    def _pooling(self, node, sub, path: str) -> bool:
        """A max pool that returns its indices (`maxpool 2 as pool1`) and the unpool that reads them (`unpool pool1`)."""
        from torch import nn

        cls = f"{type(sub).__module__}.{type(sub).__qualname__}"
        if isinstance(sub, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) and sub.return_indices:
            sub.return_indices = False
            try:
                lay = self.dec.table[type(sub)](sub)
            finally:
                sub.return_indices = True
            if lay is None or len(node.args) != 1 or node.kwargs or "." in path:
                self.fail("a max pool with indices is written `maxpool ... as name` outside a named group", node, path, cls)
            lay.name, lay.indices = path, True
            x = self.ids[node.args[0]]
            t = TNode(id=len(self.unit.nodes), kind="layer", inputs=[x], stages=[lay], path=path, where=_where(node))
            self.unit.nodes.append(t)
            self.meta[node] = ("pooled", t.id, path, self.unit.nodes[x].shape)
            return True
        if isinstance(sub, (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d)):
            args = list(node.args) + [node.kwargs.get(k) for k in ("indices", "output_size") if k in node.kwargs]
            indices = self.meta.get(args[1]) if len(args) > 1 and hasattr(args[1], "op") else None
            if indices is None or indices[0] != "indices":
                self.fail("an unpool whose indices are not those of a max pool of this forward", node, path, cls)
            meta = _tensor_meta(node)
            if meta is None or tuple(meta.shape[2:]) != tuple(indices[2][2:]):
                self.fail("an unpool to another size than its max pool's input", node, path, cls)
            lay = Layer(op="unpool", opts={}, name=None)
            lay.pool = indices[1]
            self.add("layer", [self.ids[args[0]]], node, stages=[lay])
            return True
        return False

    def _call_function(self, node) -> None:
        name = MERGE_OPS.get(node.target) and MERGE_OPS[node.target]
        if name is None:
            name = getattr(node.target, "__name__", str(node.target))
        self._call(node, name, node.target)

    def _call_method(self, node) -> None:
        self._call(node, str(node.target), str(node.target))

    def _call(self, node, name: str, target) -> None:
        import operator

        if self._layerscale(node, name):
            return
        for a in list(node.args) + list(node.kwargs.values()):
            if hasattr(a, "op") and self.meta.get(a, ("",))[0] == "param":
                self._param_used(node, self.meta[a][1])
        if target is getattr or name == "getattr":  # x.shape
            self.meta[node] = ("attr", node.args[0], node.args[1])
            return
        if target is operator.getitem:
            base = node.args[0]
            if base in self.meta and self.meta[base][0] == "pooled":  # x, indices = self.pool1(x)
                _, pool, name, shape = self.meta[base]
                if node.args[1] == 0:
                    self.ids[node] = pool
                    meta = _tensor_meta(node)
                    self.unit.nodes[pool].shape = tuple(meta.shape) if meta is not None else None
                    return
                self.meta[node] = ("indices", name, shape)
                return
            if base in self.meta and self.meta[base][0] == "chunk":  # one part of torch.chunk
                parts, index = self.meta[base][1], node.args[1]
                if isinstance(index, int) and -parts <= index < parts:
                    self.add("part", [self.ids[base]], node, merge=str(index % parts))
                    return
            if base in self.meta:
                self.meta[node] = ("item", base, node.args[1])
                return
            if base in self.multi and node.args[1] in self.multi[base][0]:  # features["out"], `a, b = self.body(x)`
                keys, picks = self.multi[base]
                self.ids[node] = picks[keys.index(node.args[1])]
                return
            self.fail("it indexes a tensor or a tuple of tensors, which the language cannot express", node)
        if name in ("size", "dim"):
            self.meta[node] = ("size", node.args[0], node.args[1:])
            return
        nodes = [a for a in list(node.args) + list(node.kwargs.values()) if hasattr(a, "op")]
        if _tensor_meta(node) is None and nodes and all(a in self.meta for a in nodes):
            self.meta[node] = ("calc",)  # arithmetic on sizes (`num_channels // groups`), for a later view
            return
        if name == "chunk" and node.args and hasattr(node.args[0], "op") and node.args[0] in self.ids:
            found = dict(zip(("chunks", "dim"), node.args[1:]), **node.kwargs)
            x = self.unit.nodes[self.ids[node.args[0]]]
            rank = len(x.shape or ())
            if found.get("dim", 0) in (1, 1 - rank) and isinstance(found.get("chunks"), int) and \
                    x.shape[1] % found["chunks"] == 0:
                t = TNode(id=len(self.unit.nodes), kind="chunk", inputs=[x.id], where=_where(node), merge=str(found["chunks"]))
                self.unit.nodes.append(t)
                self.ids[node] = t.id
                self.meta[node] = ("chunk", found["chunks"])
                return
            self.fail("torch.chunk other than into equal parts of the channels (`split N:`)", node)
        flat, is_tensor, like = [], [], None
        args = list(node.args)
        if name == "cat":
            seq = args[0]
            if not isinstance(seq, (list, tuple)) or not all(hasattr(a, "op") for a in seq):
                self.fail("torch.cat of something else than a list of tensors", node)
            flat, is_tensor, args = list(seq), [True] * len(seq), args[1:]
        else:
            rest = []
            for a in args:
                if hasattr(a, "op") and a not in self.meta:
                    flat.append(a)
                    is_tensor.append(True)
                elif hasattr(a, "op"):
                    rest.append("<meta>")
                else:
                    rest.append(a)
            args = rest
        kwargs = dict(node.kwargs)
        if name in HELPERS and len(node.args) >= 2:  # _pad_to(x, e.shape[2:], mode, value)
            like = self._like(node.args[1], node)
            args = ["<like>", *args[1:]] if args and args[0] == "<meta>" else args
        size = kwargs.get("size")
        if name == "interpolate" and hasattr(size, "op"):
            like = self._like(size, node)
            kwargs["size"] = "<like>"
        if any(a == "<meta>" for a in args) and name not in ("view", "reshape"):
            self.fail(f"`{function_name(target)}` with a size read from a tensor", node)
        for n in flat:
            if n not in self.ids:
                self.fail(f"`{function_name(target)}` of a value that is not a tensor of this forward", node)
        shapes = [self.unit.nodes[self.ids[n]].shape for n in flat]
        meta = _tensor_meta(node)
        if meta is None:
            self.fail(f"`{function_name(target)}` does not return one tensor", node)
        try:
            kind = classify(name, tuple(args), kwargs, shapes, tuple(meta.shape), is_tensor)
        except Unsupported as e:
            self.fail(f"`{function_name(target)}`: {e}", node)
        inputs = [self.ids[n] for n in flat]
        if kind[0] == "pass":
            self.ids[node] = inputs[0]
        elif kind[0] == "merge":
            self.add("merge", inputs, node, merge=kind[1])
        else:
            self.add("layer", inputs, node, stages=kind[1], like=self.ids.get(like) if like is not None else None)

    def _like(self, size, node):
        """`size=e1.shape[2:]` or `e1.size()[2:]`: the tensor e1."""
        found = self.meta.get(size)
        rank = len(_tensor_meta(node).shape) if _tensor_meta(node) is not None else 4
        if found and found[0] == "item" and found[2] in (slice(2, None, None), slice(2 - rank, None, None)):
            base = self.meta.get(found[1])
            if base and ((base[0] == "attr" and base[2] == "shape") or (base[0] == "size" and not base[2])):
                return base[1]
        self.fail("F.interpolate to a size that is not another tensor's spatial size (`e.shape[2:]`)", node)

    def _output(self, node) -> None:
        out = node.args[0]
        spec = getattr(getattr(self.gm.graph._codegen, "pytree_info", None), "out_spec", None)
        if spec is not None and isinstance(out, (list, tuple)) and isinstance(spec.context, list) and \
                len(spec.context) == len(out) and issubclass(spec.type, dict):  # traced with opened inputs: a flat list
            out = dict(zip(spec.context, out))
        if hasattr(out, "op") and out in self.multi:  # `return self.fpn(x)`: the call's outputs, with their keys
            keys, picks = self.multi[out]
            if isinstance(keys[0], str):
                self.unit.output_keys = list(keys)
            self.unit.outputs = list(picks)
            return
        if isinstance(out, dict):
            self.unit.output_keys = [str(k) for k in out]
            if not all(k.replace("_", "").replace("-", "").isalnum() for k in self.unit.output_keys):
                self.fail("its forward returns a dict whose keys are not plain words", node)
            out = list(out.values())
        elif not isinstance(out, (list, tuple)):
            out = [out]
        for o in out:
            if not hasattr(o, "op") or o not in self.ids:
                self.fail("its forward returns something besides tensors", node)
        self.unit.outputs = [self.ids[o] for o in out]
