"""Names: which identifiers a user may write, and the one allocator (`Namespace`) that gives every generated
identifier — classes, the forward's variables, temporaries — a name no user name can take.

A user may name a network, a block or a value anything Python allows: the generated code renames its own
classes and variables around them (`B_2`, `x_2`, `out_2`). What stays reserved is what the generated module
cannot rename without changing its API: a layer's name is its attribute and `state_dict` key, so it may not be
an attribute of nn.Module; a parameter's name is a keyword of the generated `__init__`, so it may not be
`self`, the module's imports (`torch`, `nn`), a block's `in_channels`, `build`'s `device`, or a builtin the
generated code calls (`super`, `isinstance`, `float`, ...).
"""

from __future__ import annotations

import keyword
import re

# attributes of nn.Module (and of modules generally) that a layer may not shadow
RESERVED = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train type xpu zero_grad training""".split()
)
# Python's builtins that generated code calls
BUILTINS = frozenset({"super", "isinstance", "float", "int", "tuple", "print", "min", "max", "abs", "round", "len"})
# names of the generated __init__'s signature, and the module globals and builtins its body reads
PARAMETER_RESERVED = frozenset({"self", "torch", "nn", "in_channels", "device"}) | BUILTINS
# the names the generated module defines or reads at its top level, besides the classes
MODULE_NAMES = frozenset({
    "torch", "nn", "build", "device", "params", "model", "x", "y", "self", "m", "in_channels",
    "DeformConv", "DeformConv2d", "StochasticDepth", "_make_divisible", "_center_crop", "_pad_to", "FrozenBatchNorm2d",
    "LayerNorm2d",
}) | BUILTINS
_SUFFIX = re.compile(r"^(.*?)_(\d+)$")


def identifier_problem(name: str, what: str) -> str | None:
    """Why `name` cannot name a `what` (network, block, parameter, layer, value), or None."""
    if keyword.iskeyword(name):
        return f"`{name}` is a Python keyword and cannot name a {what}"
    if name.startswith("_"):
        return f"a {what} name may not start with an underscore: `{name}`"
    if what == "layer" and name in RESERVED:
        return f"`{name}` is an attribute of nn.Module and cannot name a {what}"
    if what == "parameter" and name in PARAMETER_RESERVED:
        return f"`{name}` is a name of the generated `__init__` and cannot name a parameter"
    return None


def value_problem(name: str) -> str | None:
    """Why `name` cannot name a value (a local variable of the generated forward, renamed where it must be), or None."""
    return identifier_problem(name, "value")


class Namespace:
    """Unique identifiers in one scope of the generated code (as torch.fx's `_Namespace`): `claim` gives a
    wanted name or, where it is taken, the name with the next free suffix (`B` -> `B_2`); `fresh` numbers a
    stem (`out` -> `out1`, `out2`). `outer` is an enclosing scope's set of names (the module's classes, for a
    class's `__init__`), read as taken without being copied: it may grow while this namespace lives."""

    def __init__(self, reserved=(), outer: frozenset[str] | set[str] = frozenset()):
        self.taken: set[str] = set(reserved)
        self.outer = outer
        self.counters: dict[str, int] = {}

    def _taken(self, name: str) -> bool:
        return name in self.taken or name in self.outer

    def claim(self, name: str) -> str:
        if not self._taken(name) and not keyword.iskeyword(name):
            self.taken.add(name)
            return name
        m = _SUFFIX.match(name)
        stem, n = (m.group(1), int(m.group(2))) if m else (name, 2)
        n = max(n, self.counters.get(stem + "_", 2))
        while self._taken(f"{stem}_{n}"):
            n += 1
        self.counters[stem + "_"] = n
        self.taken.add(f"{stem}_{n}")
        return f"{stem}_{n}"

    def release(self, *names: str) -> None:
        """Names whose variables are dead: free to be claimed again (a merge's temporaries, after it)."""
        self.taken.difference_update(names)

    def fresh(self, stem: str) -> str:
        n = self.counters.get(stem, 0) + 1
        while self._taken(f"{stem}{n}"):
            n += 1
        self.counters[stem] = n
        self.taken.add(f"{stem}{n}")
        return f"{stem}{n}"
