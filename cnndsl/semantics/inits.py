"""torch.nn.init's initialisers, as `init` rules and `init=` name them (without the trailing underscore)."""

from __future__ import annotations

from ..errors import did_you_mean
from ..ir.network import InitCallSpec
from ..ir.values import Val, value
from ..syntax import ast
from .resolve import LocatedError, Word, evaluate

NONLINEARITIES = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "sigmoid", "tanh", "relu", "leaky_relu", "selu",
)
_KAIMING = ("a", "mode", "nonlinearity")

# name -> its parameters after the tensor, in order
INITIALISERS: dict[str, tuple[str, ...]] = {
    "uniform": ("a", "b"),
    "normal": ("mean", "std"),
    "trunc_normal": ("mean", "std", "a", "b"),
    "constant": ("val",),
    "ones": (),
    "zeros": (),
    "eye": (),
    "dirac": ("groups",),
    "xavier_uniform": ("gain",),
    "xavier_normal": ("gain",),
    "kaiming_uniform": _KAIMING,
    "kaiming_normal": _KAIMING,
    "orthogonal": ("gain",),
    "sparse": ("sparsity", "std"),
}
_ENUMS = {"mode": ("fan_in", "fan_out"), "nonlinearity": NONLINEARITIES}


def init_call(expr: ast.Expr, env: dict[str, Val]) -> InitCallSpec:
    """`0` -> zeros, `1` -> ones, `0.5` -> constant(0.5), `xavier_normal`, `normal(0, 0.01)`."""
    if isinstance(expr, ast.InitCall):
        name, args = expr.name, expr.args
    else:
        x = evaluate(expr, env)
        if isinstance(x, Val) and not isinstance(x.v, bool):
            if x.v == 0 and not x.symbolic:
                return InitCallSpec.make(name="zeros")
            if x.v == 1 and not x.symbolic:
                return InitCallSpec.make(name="ones")
            return InitCallSpec.make(name="constant", args=(x,))
        if not isinstance(x, Word):
            raise LocatedError("an initialiser is a number or a torch.nn.init function such as `xavier_normal`", expr.span)
        name, args = str(x), ()
    params = INITIALISERS.get(name)
    if params is None:
        raise LocatedError(f"unknown initialiser `{name}`", expr.span, did_you_mean(name, INITIALISERS) or "initialisers: " + ", ".join(INITIALISERS))
    out_args, out_kwargs, seen = [], [], set()
    for i, arg in enumerate(args):
        if isinstance(arg, ast.Keyword):
            key = arg.key
            if key not in params:
                raise LocatedError(f"`{name}` has no argument `{key}`", arg.key_span, did_you_mean(key, params) or f"`{name}` takes: {', '.join(params) or 'nothing'}")
            target, value_expr = out_kwargs, arg.value
        else:
            if out_kwargs or i >= len(params):
                raise LocatedError(f"too many positional arguments for `{name}`", arg.span, f"`{name}` takes: {', '.join(params) or 'nothing'}")
            key, target, value_expr = params[i], out_args, arg.value
        if key in seen:
            raise LocatedError(f"`{key}` is given twice", arg.span)
        seen.add(key)
        x = evaluate(value_expr, env)
        if key in _ENUMS:
            if not (isinstance(x, Word) and x in _ENUMS[key]):
                raise LocatedError(f"`{key}` must be one of {', '.join(_ENUMS[key])}", value_expr.span, did_you_mean(str(x), _ENUMS[key]) if isinstance(x, Word) else None)
            x = str(x)
        elif not (isinstance(x, Val) and not isinstance(x.v, bool)):
            raise LocatedError(f"`{key}` must be a number", value_expr.span)
        target.append(x if target is out_args else (key, x))
    if name == "sparse" and "sparsity" not in seen:
        raise LocatedError("`sparse` needs its sparsity", expr.span, "e.g. sparse(0.1)")
    if name == "constant" and "val" not in seen:
        raise LocatedError("`constant` needs its value", expr.span, "e.g. constant(0.5), or just write the number")
    call = InitCallSpec.make(name=name, args=tuple(out_args), kwargs=tuple(out_kwargs))
    problem = _argument_problem(call)
    if problem:
        raise LocatedError(problem, expr.span)
    return call


_DEFAULTS = {"a": 0.0, "b": 1.0, "mean": 0.0, "std": 1.0, "gain": 1.0, "groups": 1, "sparsity": 0.0}


def arguments(call: InitCallSpec) -> dict:
    """An initialiser's arguments by name, PyTorch's defaults filled in (trunc_normal cuts at -2 and 2)."""
    named = dict(zip(INITIALISERS[call.name], (value(a) for a in call.args)))
    named.update((k, value(v)) for k, v in call.kwargs)
    defaults = {**_DEFAULTS, **({"a": -2.0, "b": 2.0} if call.name == "trunc_normal" else {}), **({"std": 0.01} if call.name == "sparse" else {})}
    return {**defaults, **named}


def _argument_problem(call: InitCallSpec) -> str | None:
    """What torch.nn.init would reject in these arguments (before it sees a tensor), or None."""
    a = arguments(call)
    if call.name in ("uniform", "trunc_normal") and a["a"] > a["b"]:
        return f"`{call.name}` needs a <= b, found a={a['a']} and b={a['b']}"
    if call.name in ("normal", "trunc_normal", "sparse") and a["std"] < 0:
        return f"`{call.name}` needs std >= 0, found {a['std']}"
    if call.name in ("xavier_uniform", "xavier_normal") and a["gain"] < 0:
        return f"`{call.name}` needs gain >= 0, found {a['gain']}"
    if call.name == "sparse" and not 0 <= a["sparsity"] <= 1:
        return f"`sparse` needs a sparsity between 0 and 1, found {a['sparsity']}"
    if call.name == "dirac" and (not isinstance(a["groups"], int) or a["groups"] < 1):
        return f"`dirac` needs groups >= 1, found {a['groups']}"
    return None

# what an initialiser needs of its tensor's rank (torch.nn.init raises otherwise): (at least, at most)
_RANKS = {
    "xavier_uniform": (2, None), "xavier_normal": (2, None), "kaiming_uniform": (2, None),
    "kaiming_normal": (2, None), "orthogonal": (2, None), "eye": (2, 2), "sparse": (2, 2), "dirac": (3, 5),
}


def rank_problem(call: InitCallSpec, rank: int) -> str | None:
    """Why `call` cannot initialise a tensor of `rank` dimensions, or None."""
    low, high = _RANKS.get(call.name, (0, None))
    if rank < low:
        return f"`{call.name}` needs a tensor of at least {low} dimensions"
    if high is not None and rank > high:
        return f"`{call.name}` needs a tensor of at most {high} dimensions"
    return None
