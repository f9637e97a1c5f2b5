"""Tensor functions and methods of a traced forward, each as the language's form: a layer, a merge of tensors,
nothing (x.contiguous()), or a size read for a later function (x.size(0), x.shape[2:]). The shapes that
ShapeProp recorded decide the reshapes: x.view(x.size(0), -1) is `flatten` because of what it made."""

from __future__ import annotations

import math
import operator
from typing import Any

from .layers import ACTIVATIONS, layer

# positional parameters of the functions read here, after the input
_PARAMS = {
    "max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "adaptive_avg_pool": ("output_size",),
    "adaptive_max_pool": ("output_size", "return_indices"),
    "interpolate": ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"),
    "upsample": ("size", "scale_factor", "mode", "align_corners"),
    "pad": ("pad", "mode", "value"),
    "dropout": ("p", "training", "inplace"),
    "leaky_relu": ("negative_slope", "inplace"),
    "elu": ("alpha", "inplace"),
    "gelu": ("approximate",),
    "softmax": ("dim", "_stacklevel", "dtype"),
    "log_softmax": ("dim", "_stacklevel", "dtype"),
    "flatten": ("start_dim", "end_dim"),
    "cat": ("dim",),
    "mean": ("dim", "keepdim"),
    "chunk": ("chunks", "dim"),
    "add": ("other", "alpha"),
    "mul": ("other",),
}
_PASS = {"contiguous", "clone", "detach"}


class Unsupported(Exception):
    """This call has no form in the language; the message says why."""


def _named(kind: str, args: tuple, kwargs: dict) -> dict:
    names = _PARAMS.get(kind, ())
    if len(args) > len(names):
        raise Unsupported(f"more arguments than cnndsl reads ({len(args)})")
    found = dict(zip(names, args))
    found.update(kwargs)
    return found


def _base(name: str) -> tuple[str, int | None]:
    """`max_pool2d` -> ("max_pool", 2); `relu_` -> ("relu_", None)."""
    for rank in ("1d", "2d", "3d"):
        if name.endswith(rank):
            return name[:-2], int(rank[0])
    return name, None


def classify(name: str, args: tuple, kwargs: dict, shapes: list, out_shape: Any, is_tensor: list[bool]) -> tuple:
    """What one call is: ("layer", [Layer, ...]) applied to its first tensor, ("merge", kind) of its tensors,
    ("pass",) its first tensor unchanged, ("meta",) a size for another call; Unsupported otherwise. `args` holds the
    call's arguments after the tensors have been taken out where they stood (a tensor is the string "<tensor>")."""
    base, _rank = _base(name)
    tensors = sum(is_tensor)
    if name in _PASS:
        return ("pass",)
    if name in ("size", "dim") or name == "getattr" or name == "getitem_meta":
        return ("meta",)
    if base in ("add", "iadd", "mul", "imul") and tensors == 2 and len(args) + len(kwargs) <= 1:
        if kwargs.get("alpha", 1) != 1:
            raise Unsupported("a sum with `alpha` has no form in the language")
        if shapes[0] != shapes[1]:
            if base.endswith("mul"):
                return ("merge", "mul")
            raise Unsupported(f"adding tensors of different shapes {shapes[0]} and {shapes[1]} (broadcasting) has no form in the language")
        return ("merge", "add" if "add" in base else "mul")
    if base in ("add", "iadd", "mul", "imul", "sub", "isub", "truediv", "itruediv", "sub_", "div", "pow"):
        raise Unsupported("arithmetic with a number (a constant or a scale) has no form in the language; only sums and "
                          "products of two tensors (`add:`, `mul:`) have")
    if base == "cat":
        dim = _named("cat", args, kwargs).get("dim", 0)
        rank = len(out_shape)
        if dim not in (1, 1 - rank):
            raise Unsupported(f"concatenation along dimension {dim}: the language concatenates channels (dimension 1) only")
        return ("pass",) if tensors == 1 else ("merge", "cat")  # torch.cat([x], 1) is x
    if tensors != 1:
        raise Unsupported(f"a function of {tensors} tensors")
    inplace = name.endswith("_") and not name.endswith("__")
    act = ACTIVATIONS.get(base) or ACTIVATIONS.get(base.rstrip("_"))
    if act:
        opts = _named(base.rstrip("_"), args, kwargs) if base.rstrip("_") in _PARAMS else dict(zip(("inplace",), args), **kwargs)
        if opts.get("inplace") or inplace:
            opts["inplace"] = True
        opts = {k: v for k, v in opts.items() if k in {"inplace", "negative_slope", "alpha", "approximate"}}
        if act in ("sigmoid", "tanh", "softsign", "tanhshrink", "gelu"):
            opts.pop("inplace", None)
        return ("layer", [layer(act, **opts)])
    if base in ("softmax", "log_softmax"):
        opts = _named(base, args, kwargs)
        if opts.get("dim") is None or opts.get("dtype") is not None:
            raise Unsupported("softmax without an explicit `dim`, or with a dtype")
        return ("layer", [layer("softmax" if base == "softmax" else "logsoftmax", dim=opts["dim"])])
    if base in ("dropout", "feature_dropout"):
        opts = _named("dropout", args, kwargs)
        op = "dropout" if _rank is None else f"dropout{_rank}d"
        return ("layer", [layer(op, p=float(opts.get("p", 0.5)), inplace=bool(opts.get("inplace", False)))])
    if base in ("max_pool", "avg_pool"):
        opts = _named(base, args, kwargs)
        if opts.pop("return_indices", False):
            raise Unsupported("a max pool that returns its indices (write the network with `unpool`)")
        if opts.get("stride") in (None, [], ()):
            opts["stride"] = None
        return ("layer", [layer("maxpool" if base == "max_pool" else "avgpool", **opts)])
    if base in ("adaptive_avg_pool", "adaptive_max_pool"):
        opts = _named(base, args, kwargs)
        if opts.pop("return_indices", False):
            raise Unsupported("an adaptive max pool that returns its indices")
        size = opts["output_size"]
        size = size[0] if isinstance(size, (tuple, list)) and len(set(size)) == 1 else size
        if base == "adaptive_avg_pool" and size == 1:
            return ("layer", [layer("gap")])
        return ("layer", [layer("adaptiveavgpool" if "avg" in base else "adaptivemaxpool", output_size=size)])
    if base in ("interpolate", "upsample"):
        opts = _named(base, args, kwargs)
        if opts.get("antialias"):
            raise Unsupported("interpolation with antialias")
        like = opts.pop("size", None) if opts.get("size") == "<like>" else None
        lay = layer("upsample", **{k: v for k, v in opts.items() if k != "antialias"})
        if like is not None:
            lay.like = "<like>"
        return ("layer", [lay])
    if name in ("_pad_to", "_center_crop"):  # cnndsl's own helpers, to another value's size
        opts = dict(zip(("size", "mode", "value"), args), **kwargs)
        lay = layer("pad", mode=opts.get("mode", "constant"), value=float(opts.get("value", 0.0))) if name == "_pad_to" \
            else layer("crop")
        lay.like = "<like>"
        return ("layer", [lay])
    if base == "pad":
        opts = _named("pad", args, kwargs)
        padding = tuple(opts["pad"])
        return ("layer", [layer("pad", padding=padding[0] if len(set(padding)) == 1 else padding,
                                mode=opts.get("mode", "constant"), value=float(opts.get("value") or 0))])
    if base in ("transpose", "swapaxes") and len(args) + len(kwargs) == 2:
        d0, d1 = (list(args) + list(kwargs.values()))[:2]
        rank = len(shapes[0])
        dims = list(range(rank))
        dims[d0 % rank], dims[d1 % rank] = dims[d1 % rank], dims[d0 % rank]
        if 0 in (d0 % rank, d1 % rank):
            raise Unsupported("a transpose that moves the batch dimension")
        return ("layer", [layer("permute", dims=tuple(dims))])
    if base == "permute":
        dims = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
        if not all(isinstance(d, int) for d in dims):
            raise Unsupported("a permutation that is not written with numbers")
        return ("layer", [layer("permute", dims=tuple(d % len(shapes[0]) for d in dims))])
    if base in ("flatten", "view", "reshape"):
        return ("layer", [_reshape(shapes[0], out_shape, name, args, kwargs)])
    if base == "mean":
        opts = _named("mean", args, kwargs)
        dims = opts.get("dim")
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        rank = len(shapes[0])
        spatial = {d % rank for d in dims if isinstance(d, int)}
        if rank >= 3 and spatial == set(range(2, rank)) and opts.get("dtype") is None:
            return ("layer", [layer("gap")] + ([] if opts.get("keepdim") else [layer("flatten")]))
        raise Unsupported(f"a mean over dimensions {dims}: the language averages over all spatial dimensions only (`gap`)")
    raise Unsupported("the catalog has no op for it")


def _reshape(shape: tuple, out: tuple, name: str, args: tuple, kwargs: dict):
    """flatten, view, reshape: which `flatten` or `unflatten` gives this output shape."""
    if len(out) < 1 or out[0] != shape[0]:
        raise Unsupported(f"a reshape from {shape} to {out} that changes the batch dimension")
    if tuple(out) == tuple(shape):
        return layer("identity")
    if len(out) < len(shape):  # a flatten of some dimensions: find which
        for start in range(1, len(shape)):
            end = start + len(shape) - len(out)
            if end < len(shape) and tuple(shape[:start]) + (math.prod(shape[start:end + 1]),) + tuple(shape[end + 1:]) == tuple(out):
                return layer("flatten", start_dim=start, end_dim=end - len(shape) if end != len(shape) - 1 else -1)
    if len(out) > len(shape):
        for dim in range(1, len(shape)):
            extra = len(out) - len(shape)
            if tuple(out[:dim]) == tuple(shape[:dim]) and tuple(out[dim + extra + 1:]) == tuple(shape[dim + 1:]):
                return layer("unflatten", unflattened_size=tuple(out[dim:dim + extra + 1]), dim=dim)
    raise Unsupported(f"a reshape from {shape} to {out} that is neither a flatten nor an unflatten")


MERGE_OPS = {operator.add: "add", operator.iadd: "iadd", operator.mul: "mul", operator.imul: "imul",
             operator.sub: "sub", operator.truediv: "truediv", operator.isub: "isub", operator.itruediv: "itruediv"}
