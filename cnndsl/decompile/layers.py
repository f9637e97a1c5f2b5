"""Leaf modules and tensor functions of PyTorch, each as one op of the catalog (cnndsl/ops/): which op, and the
options that differ from the op's defaults. None where the catalog has no op for it."""

from __future__ import annotations

import operator
from typing import Any

from ..ops import REGISTRY
from .nodes import Layer


def _square(v: Any) -> Any:
    """(3, 3) -> 3: the language's `k3`; a tuple whose items differ stays a tuple."""
    if isinstance(v, (tuple, list)):
        v = tuple(v)
        return v[0] if v and all(x == v[0] for x in v) else v
    return v


def layer(op: str, **values: Any) -> Layer:
    """A layer of `op` with the values that are not the op's defaults."""
    spec = REGISTRY[op]
    defaults = {o.name: o.default for o in spec.all_options}
    opts = {}
    for key, v in values.items():
        v = _square(v)
        if isinstance(v, float) and v.is_integer() and isinstance(defaults.get(key), int) and not isinstance(defaults.get(key), bool):
            v = int(v)
        if key in defaults and v == defaults[key] and type(v) is type(defaults[key]):
            continue
        if key in defaults and defaults[key] is not None and isinstance(v, (int, float)) and not isinstance(v, bool) \
                and not isinstance(defaults[key], bool) and v == defaults[key]:
            continue
        opts[key] = v
    return Layer(op=op, opts=opts)


def _conv(m) -> Layer:
    transposed = type(m).__name__.startswith("ConvTranspose")
    common = {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding, "dilation": m.dilation,
              "bias": m.bias is not None, "padding_mode": m.padding_mode}
    if transposed:
        return layer("convt", out=m.out_channels, output_padding=m.output_padding, groups=m.groups, **common)
    if m.groups > 1 and m.groups == m.in_channels and m.out_channels % m.in_channels == 0:
        kw = {} if m.out_channels == m.in_channels else {"out": m.out_channels}
        return layer("dwconv", **kw, **common)
    return layer("conv", out=m.out_channels, groups=m.groups, **common)


def _bn(m) -> Layer | None:
    if m.momentum is None:
        return None
    return layer("bn", eps=m.eps, momentum=m.momentum, affine=m.affine, track_running_stats=m.track_running_stats)


def _pool(m, op: str) -> Layer | None:
    if getattr(m, "return_indices", False):
        return None
    kw = {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding, "ceil_mode": m.ceil_mode}
    if op == "maxpool":
        kw["dilation"] = m.dilation
    else:
        kw.update(count_include_pad=m.count_include_pad, divisor_override=m.divisor_override)
    if _square(kw["stride"]) == _square(kw["kernel_size"]):
        kw["stride"] = None
    return layer(op, **kw)


def _adaptive(m, op: str) -> Layer | None:
    if getattr(m, "return_indices", False):
        return None
    size = _square(m.output_size)
    if size is None or (isinstance(size, tuple) and None in size):
        return None
    return layer("gap") if size == 1 and op == "adaptiveavgpool" else layer(op, output_size=size)


def _pad(m, mode: str) -> Layer:
    padding = tuple(m.padding)
    return layer("pad", padding=padding[0] if len(set(padding)) == 1 else padding, mode=mode,
                 value=float(getattr(m, "value", 0)) if mode == "constant" else 0)


def _upsample(m) -> Layer | None:
    if m.size is not None and m.scale_factor is not None:
        return None
    return layer("upsample", scale_factor=_square(m.scale_factor), size=_square(m.size), mode=m.mode,
                 align_corners=m.align_corners, recompute_scale_factor=m.recompute_scale_factor)


def _plain(op: str):
    return lambda m: layer(op)


def _dropout(op: str):
    return lambda m: layer(op, p=float(m.p), inplace=m.inplace)


def _padder(mode: str):
    return lambda m: _pad(m, mode)


def _inplace(op: str):
    return lambda m: layer(op, inplace=bool(getattr(m, "inplace", False)))


def _torchvision_ops() -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        from torchvision.ops import FrozenBatchNorm2d, StochasticDepth
    except ImportError:  # torchvision is optional
        return found
    found["FrozenBatchNorm2d"] = (FrozenBatchNorm2d, lambda m: layer("frozenbn", eps=m.eps))
    try:
        from torchvision.models.convnext import LayerNorm2d

        found["LayerNorm2d"] = (LayerNorm2d, _ln2d)
    except ImportError:
        pass
    found["StochasticDepth"] = (StochasticDepth, lambda m: layer("droppath", p=m.p) if m.mode == "row" else None)
    return found


def _ln2d(m):
    return layer("ln2d", eps=m.eps, elementwise_affine=m.elementwise_affine,
                 bias=m.bias is not None or not m.elementwise_affine) if len(m.normalized_shape) == 1 else None


# the classes a generated file defines for ops that torch lacks (cnndsl/backend/pytorch/helpers.py), by name
GENERATED = {"cnndsl:LayerNorm2d": _ln2d, "cnndsl:FrozenBatchNorm2d": lambda m: layer("frozenbn", eps=m.eps)}


def module_table() -> dict[type, Any]:
    """Each catalog module class of torch (and torchvision.ops) -> a function of the instance, giving its Layer or
    None where this instance's options have no form in the language."""
    from torch import nn

    t: dict[type, Any] = {}
    for c in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
        t[c] = _conv
    for c in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        t[c] = _bn
    for c in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
        t[c] = lambda m: layer("instnorm", eps=m.eps, momentum=m.momentum, affine=m.affine, track_running_stats=m.track_running_stats)
    t[nn.GroupNorm] = lambda m: layer("gn", num_groups=m.num_groups, eps=m.eps, affine=m.affine)
    t[nn.LayerNorm] = lambda m: layer("ln", normalized_shape=_square(m.normalized_shape) if len(m.normalized_shape) > 1 else m.normalized_shape[0],
                                      eps=m.eps, elementwise_affine=m.elementwise_affine, bias=m.bias is not None or not m.elementwise_affine)
    t[nn.Linear] = lambda m: layer("linear", out=m.out_features, bias=m.bias is not None)
    for c in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
        t[c] = lambda m: _pool(m, "maxpool")
    for c in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d):
        t[c] = lambda m: _pool(m, "avgpool")
    for c in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d):
        t[c] = lambda m: _adaptive(m, "adaptiveavgpool")
    for c in (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d):
        t[c] = lambda m: _adaptive(m, "adaptivemaxpool")
    for c in (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d):
        t[c] = lambda m: layer("lppool", norm_type=float(m.norm_type), kernel_size=m.kernel_size,
                               stride=None if _square(m.stride) == _square(m.kernel_size) else m.stride, ceil_mode=m.ceil_mode)
    for name, op in (("ReLU", "relu"), ("ReLU6", "relu6"), ("SELU", "selu"), ("SiLU", "silu"), ("Mish", "mish"),
                     ("Hardswish", "hardswish"), ("Hardsigmoid", "hardsigmoid")):
        t[getattr(nn, name)] = _inplace(op)
    for name, op in (("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Softsign", "softsign"), ("Tanhshrink", "tanhshrink"),
                     ("Identity", "identity")):
        t[getattr(nn, name)] = _plain(op)
    t[nn.LeakyReLU] = lambda m: layer("leakyrelu", negative_slope=float(m.negative_slope), inplace=m.inplace)
    t[nn.ELU] = lambda m: layer("elu", alpha=float(m.alpha), inplace=m.inplace)
    t[nn.RReLU] = lambda m: layer("rrelu", lower=float(m.lower), upper=float(m.upper), inplace=m.inplace)
    t[nn.GELU] = lambda m: layer("gelu", approximate=m.approximate)
    t[nn.PReLU] = lambda m: layer("prelu", num_parameters=m.num_parameters if m.num_parameters != 1 else None,
                                  init=float(m.init)) if m.weight.numel() == m.num_parameters else None
    t[nn.Softmax] = lambda m: layer("softmax", dim=m.dim) if m.dim is not None else None
    t[nn.LogSoftmax] = lambda m: layer("logsoftmax", dim=m.dim) if m.dim is not None else None
    for name, op in (("Dropout", "dropout"), ("Dropout1d", "dropout1d"), ("Dropout2d", "dropout2d"), ("Dropout3d", "dropout3d")):
        t[getattr(nn, name)] = _dropout(op)
    t[nn.Flatten] = lambda m: layer("flatten", start_dim=m.start_dim, end_dim=m.end_dim) if m.start_dim != 0 else None
    t[nn.Unflatten] = lambda m: layer("unflatten", unflattened_size=tuple(m.unflattened_size), dim=m.dim) if isinstance(m.dim, int) else None
    t[nn.Upsample] = _upsample
    t[nn.PixelShuffle] = lambda m: layer("pixelshuffle", upscale_factor=m.upscale_factor)
    t[nn.PixelUnshuffle] = lambda m: layer("pixelunshuffle", upscale_factor=m.downscale_factor)
    t[nn.ChannelShuffle] = lambda m: layer("shuffle", groups=m.groups)
    for rank in ("1d", "2d", "3d"):
        for prefix, mode in (("ZeroPad", "constant"), ("ConstantPad", "constant"), ("ReflectionPad", "reflect"),
                             ("ReplicationPad", "replicate"), ("CircularPad", "circular")):
            cls = getattr(nn, prefix + rank, None)
            if cls is not None:
                t[cls] = _padder(mode)
    for cls, fn in _torchvision_ops().values():
        t[cls] = fn
    t.update(GENERATED)
    return t


def catalog_class(module, table: dict[type, Any]):
    """The catalog class this module is: its own class, or a base whose forward it does not override; for a
    class that a cnndsl-generated file defines for an op torch lacks (its LayerNorm2d, FrozenBatchNorm2d), the
    name under which the table holds it."""
    generated = f"cnndsl:{type(module).__name__}"
    if type(module).__module__.startswith("cnndsl_generated_") and generated in table:
        return generated
    for cls in type(module).__mro__:
        if cls in table:
            return cls if type(module).forward is cls.forward else None
    return None


# -- tensor functions -------------------------------------------------------------------------------------

# activations called as functions or methods: F.relu(x), torch.relu(x), x.relu(), x.sigmoid() ...
ACTIVATIONS = {"relu": "relu", "relu_": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "silu": "silu",
               "gelu": "gelu", "hardswish": "hardswish", "hardsigmoid": "hardsigmoid", "mish": "mish", "selu": "selu",
               "elu": "elu", "leaky_relu": "leakyrelu", "softsign": "softsign", "tanhshrink": "tanhshrink"}
MERGES = {operator.add: "add", operator.iadd: "add", operator.mul: "mul", operator.imul: "mul"}


def function_name(target: Any) -> str:
    """`torch.cat`, `F.relu`, `operator.add`, a method's name: the name a report shows."""
    if isinstance(target, str):
        return f".{target}()"
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    if module.startswith("torch.nn.functional"):
        return f"F.{name}"
    if module in ("_operator", "operator"):
        return {"add": "+", "iadd": "+=", "mul": "*", "imul": "*=", "sub": "-", "truediv": "/", "getitem": "[]"}.get(name, name)
    return f"torch.{name}" if module.startswith("torch") or module == "" else f"{module}.{name}"
