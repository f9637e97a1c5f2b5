"""Which identifiers a user may give to networks, blocks, parameters, layers and values: every one of them
ends up in the generated Python, so none may be a keyword, an nn.Module attribute, or a name the
generated code uses itself."""

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
GENERATED_NAMES = frozenset(
    {"torch", "nn", "build", "self", "super", "x", "DeformConv", "DeformConv2d", "StochasticDepth", "device",
     "params", "in_channels", "m", "isinstance", "print", "tuple", "None", "True", "False"}
)
_TEMPORARY = re.compile(r"^(branch|part)\d+$|_indices$|^use_")


def identifier_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be used in generated code, or None."""
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"`{name}` is a Python keyword and cannot name a {what}"
    if name.startswith("_"):
        return f"a {what} name may not start with an underscore: `{name}`"
    if name in RESERVED:
        return f"`{name}` is an attribute of nn.Module and cannot name a {what}"
    if name in GENERATED_NAMES:
        return f"`{name}` is used by the generated code and cannot name a {what}"
    return None


def value_problem(name: str) -> str | None:
    """Why `name` cannot name a value (a local variable of the generated forward), or None."""
    problem = identifier_problem(name, "value")
    if problem is None and _TEMPORARY.search(name):
        return f"`{name}` looks like a variable the generated code uses and cannot name a value"
    return problem
