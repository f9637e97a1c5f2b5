"""Checked network -> Python source: one readable, black-stable module that imports only torch
(and torchvision.ops where deform or droppath need it). Never imports torch itself."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from ... import __version__
from ...ir.classes import block_classes
from ...ir.network import CheckedNetwork, OutputStep
from ...names import MODULE_NAMES, Namespace
from ...ops.common import fmt_shape
from .emit import ORDERED_DICT, Body, Plan, Uses, fill, plan
from .helpers import HELPERS
from .pyexpr import MAKE_DIVISIBLE, expr_code, path_code
from .pyfmt import Call, Writer, lit

_DEFORM_HELPER = '''
class DeformConv(nn.Module):
    """Deformable convolution: a zero-initialised conv predicts the offsets (DCNv1), and with
    `modulated` also a sigmoid mask (DCNv2), so training starts as a plain convolution.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        offset_groups=1,
        bias=True,
        modulated=False,
    ):
        super().__init__()
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        kh, kw = kernel_size
        self.modulated = modulated
        self.offset = nn.Conv2d(
            in_channels,
            (3 if modulated else 2) * offset_groups * kh * kw,
            kernel_size=(kh, kw),
            stride=stride,
            padding=padding,
            dilation=dilation,
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.conv = DeformConv2d(
            in_channels,
            out_channels,
            kernel_size=(kh, kw),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def forward(self, x):
        if self.modulated:
            o1, o2, mask = torch.chunk(self.offset(x), 3, dim=1)
            return self.conv(x, torch.cat((o1, o2), dim=1), torch.sigmoid(mask))
        return self.conv(x, self.offset(x))
'''

@functools.lru_cache(maxsize=1)
def _make_divisible_source() -> str:
    """The definition a file that uses `make_divisible` carries: the checker's own function (one source for
    the number the checker uses and the one the module computes), under the generated name."""
    import inspect

    from ...ir.values import make_divisible

    return inspect.getsource(make_divisible).replace("def make_divisible(", f"def {MAKE_DIVISIBLE}(", 1)


_HELPERS = {"DeformConv": (_DEFORM_HELPER, ("DeformConv2d",)), **HELPERS}


def safe_file_name(name: str) -> str:
    """The source's base name, reduced to characters that are harmless in a docstring."""
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:80] or "source"


@dataclass
class _Class:
    """A generated block class and the instances' slots that filled it."""

    name: str
    block: str
    signature: tuple
    init: list[str]
    forward: list[str]
    result: list[str]  # the `return` lines
    main: str  # the forward's arguments
    slots: dict = field(default_factory=dict)
    defs: list = field(default_factory=list)  # the `__init__`'s locals naming repeated expressions (emit.Plan)

    def accepts(self, signature, init, forward, slots) -> bool:
        if (signature, init, forward) != (self.signature, self.init, self.forward):
            return False
        return all(v is None or self.slots.get(k) is None or self.slots[k] == v for k, v in slots.items())

    def absorb(self, slots) -> None:
        for k, v in slots.items():
            if self.slots.get(k) is None:
                self.slots[k] = v


def _module_names(net: CheckedNetwork) -> tuple[Namespace, str]:
    """The module's namespace, and the network's class name in it: the generated module's own names and every
    parameter name (a class must not be hidden inside an `__init__`) come first, then the network, then each
    block's first class; a block that needs a second class gets the next free suffix (`B_2`, or `B_3` beside
    a user's block `B_2`)."""
    params = {p.name for p in net.params} | {name for inst in net.instances for name, _ in inst.params}
    ns = Namespace(MODULE_NAMES | params)
    net_class = ns.claim(net.name)
    return ns, net_class


def _external_names(net: CheckedNetwork, ns: Namespace) -> dict[str, str]:
    """Each external module's class (by its import path) and the name the module imports it as: its own, or
    the next free suffix where the module already uses that name (`from a import Block as Block_2`)."""
    names: dict[str, str] = {}
    for layer in net.layers:
        if layer.external is not None and layer.external.path not in names:
            names[layer.external.path] = ns.claim(layer.external.path.rsplit(".", 1)[1])
    return names


def _imports(w: Writer, vision: set[str], aliases: dict[str, str]) -> None:
    """`from MODULE import A, B as B_2` for torchvision.ops and each external module's package, by module."""
    froms: dict[str, set[str]] = {"torchvision.ops": set(vision)} if vision else {}
    for path, name in aliases.items():
        module, cls = path.rsplit(".", 1)
        froms.setdefault(module, set()).add(cls if cls == name else f"{cls} as {name}")
    for module in sorted(froms):
        names = sorted(froms[module])
        if w.fits(f"from {module} import {', '.join(names)}"):
            w.line(f"from {module} import {', '.join(names)}")
            continue
        w.line(f"from {module} import (")  # as black splits an import: one name a line
        with w.indent():
            for name in names:
                w.line(f"{name},")
        w.line(")")


def _block_classes(net: CheckedNetwork, helpers: set, imports: set, ns: Namespace,
                   class_names: set[str], aliases: dict[str, str]) -> tuple[list[_Class], dict[int, str]]:
    """One class per block, or more where instances of a block need different code: the grouping is the
    checked network's (cnndsl.ir.classes.block_classes, which the pins follow too); each instance's text must agree
    with its class's. A class's names (emit.plan) are decided from all its instances, when its first instance
    is rendered: after the classes it calls (inner instances come first) have their names in `class_names`."""
    group = block_classes(net.instances)
    members: dict[int, list[int]] = {}
    for index in range(len(net.instances)):
        members.setdefault(group[index], []).append(index)
    class_of: dict[int, str] = {}
    classes: list[_Class] = []
    plans: dict[int, Plan] = {}
    first: dict[str, str] = {}  # each block's first class, in the order of the instances
    for inst in net.instances:
        if inst.block not in first:
            first[inst.block] = ns.claim(inst.block)
            class_names.add(first[inst.block])
    for index, inst in enumerate(net.instances):  # inner instances come first, so their classes are known
        if group[index] == index:
            params = [name for name, _ in inst.params]
            plans[index] = plan([Uses(net.instances[i].steps) for i in members[index]], params, class_names)
        body = Body(Writer(2), Writer(2), class_of, comments=False, plan=plans[group[index]], aliases=aliases)
        args = [body.local(name) for name in inst.inputs] or [body.main]  # `input high, low`: the forward's arguments
        result = body.steps(inst.steps, body.init, body.forward, args[0], body.main)
        returned = Writer(2)
        _return(returned, body, inst.steps, result)
        body.init.lines = body.finish(body.init.lines)
        helpers |= body.helpers
        imports |= body.imports
        signature = (inst.params, inst.defaults)
        if group[index] != index:  # an instance of an earlier instance's class
            c = next(c for c in classes if c.name == class_of[group[index]])
            if not (c.accepts(signature, body.init.lines, body.forward.lines, body.slots) and c.result == returned.lines):
                raise AssertionError(f"block `{inst.block}`: an instance's code differs from its class's (cnndsl.ir.classes)")
            c.absorb(body.slots)
            class_of[index] = c.name
        else:
            same = [c for c in classes if c.block == inst.block]
            name = first[inst.block] if not same else ns.claim(f"{inst.block}_{len(same) + 1}")
            class_names.add(name)
            classes.append(_Class(name, inst.block, signature, body.init.lines, body.forward.lines, returned.lines, ", ".join(args),
                                  dict(body.slots), plans[index].defs))
            class_of[index] = name
    return classes, class_of


def _write_block(w: Writer, c: _Class) -> None:
    params, defaults = c.signature
    w.line(f"class {c.name}(nn.Module):")
    with w.indent():
        args = ["self", "in_channels"]
        expr_defaults = dict(defaults)
        for name, default in params:
            if name in expr_defaults:
                args.append(f"{name}=None")
            elif default is None:
                args.append(name)
            else:
                args.append(f"{name}={lit(default)}")
        w.call("def __init__", Call("", args), ":")
        with w.indent():
            w.line("super().__init__()")
            for name, default in defaults:
                w.line(f"if {name} is None:")
                with w.indent():
                    w.line(f"{name} = {expr_code(default)}")
            _locals(w, c.defs)
        w.lines.extend(fill(c.init, c.slots))
        w.line()
        w.line(f"def forward(self, {c.main}):")
        w.lines.extend(fill(c.forward, c.slots))
        w.lines.extend(c.result)
    w.line()
    w.line()


def _return(w: Writer, body: Body, steps, result: str) -> None:
    """`return x`; `return a, b` for `output a, b`; a dict for `output p2 as "0", pool`."""
    output = next((s for s in reversed(steps) if isinstance(s, OutputStep)), None)
    if output is None:
        w.line(f"return {result}")
    elif not output.keys:
        w.line(f"return {', '.join(body.local(v) for v in output.values)}")
    else:
        items = [f"{lit(k)}: {body.local(v)}" for k, v in zip(output.keys, output.values)]
        if w.fits(f"return {{{', '.join(items)}}}"):
            w.line(f"return {{{', '.join(items)}}}")
        else:
            w.line("return {")
            with w.indent():
                for item in items:
                    w.line(f"{item},")
            w.line("}")


def _locals(w: Writer, defs) -> None:
    """The `__init__`'s locals that name its repeated expressions (`hidden_dim = in_channels * expand`)."""
    for local, text in defs:
        w.line(f"{local} = {text}")


def _merged(rules) -> list:
    """Rules that set the same tensor the same way (`init conv ...` and `init dwconv ...`) as one."""
    out: list = []
    for rule in rules:
        same = next((r for r in out if r.target == rule.target and r.call == rule.call and len(rule.layers) > 1 and len(r.layers) > 1), None)
        later = out[out.index(same) + 1:] if same is not None else []
        if any(r.target == rule.target and set(r.layers) & set(rule.layers) for r in later):
            same = None  # a rule in between sets these layers too: keep the order
        if same is None:
            out.append(rule)
        else:
            out[out.index(same)] = same.model_copy(update={"layers": same.layers + rule.layers})
    return out


def _pinned_check(w: Writer, net: CheckedNetwork) -> None:
    """The network's pinned parameters (net.pinned: compiled values that the code uses without recomputing
    them) refuse any other value at construction, naming the parameter, instead of failing in forward."""
    compiled = {p.name: p.value for p in net.params}
    for name, why in net.pinned:
        v = compiled[name]
        shown = ("true" if v else "false") if isinstance(v, bool) else v if isinstance(v, str) else repr(v)
        message = (f"{name}: this module was compiled with {name}={shown} ({why}); recompile with "
                   f"`cnndsl build -D {name}=...` or `cnndsl.load(..., {name}=...)`")
        assert '"' not in message and "\\" not in message, message
        given = f"tuple({name})" if isinstance(v, tuple) else name  # a list of the same items is the same value
        w.line(f"if {name} == {name}:" if v != v else f"if {given} != {lit(v)}:")  # a NaN equals nothing
        with w.indent():
            w.call("raise ", Call("ValueError", [f'"{message}"']))


def _init_rules(w: Writer, net: CheckedNetwork, ns: Namespace | None) -> None:
    by_name = {layer.name: layer for layer in net.layers}
    # the loop's variable, from the class's namespace (beside its parameters and locals), or beside the parameters
    m = (ns or Namespace(p.name for p in net.params)).claim("m")
    for rule in _merged(net.init_rules):
        call = rule.call
        fn = f"nn.init.{call.name}_"
        rest = [lit(a) for a in call.args] + [f"{k}={lit(v)}" for k, v in call.kwargs]
        layers = [by_name[n] for n in rule.layers]
        if len(layers) == 1:
            layer = layers[0]
            w.call("", Call(fn, [f"{path_code(layer.access)}.{layer.weight_path}{rule.target}", *rest]))
            continue
        paths = [path_code(layer.access) + (f".{layer.weight_path[:-1]}" if layer.weight_path else "") for layer in layers]
        classes = sorted({layer.module for layer in layers})
        same_class = [other for other in net.layers if other.module in classes]
        helper_inside = "nn.Conv2d" in classes and any(other.module == "DeformConv" for other in net.layers)
        if not w.fits(f"for {m} in ({', '.join(paths)}):") and len(same_class) == len(layers) and not helper_inside:
            # every layer of these classes: loop over the modules, as torchvision does
            w.line(f"for {m} in self.modules():")
            with w.indent():
                kinds = classes[0] if len(classes) == 1 else "(" + ", ".join(classes) + ")"
                guard = f" and {m}.bias is not None" if rule.target == "bias" else ""
                w.line(f"if isinstance({m}, {kinds}){guard}:")
                with w.indent():
                    w.call("", Call(fn, [f"{m}.{layers[0].weight_path}{rule.target}", *rest]))
            continue
        w.call(f"for {m} in ", Call("", paths, collection=True), ":")
        with w.indent():
            w.call("", Call(fn, [f"{m}.{rule.target}", *rest]))


def generate(net: CheckedNetwork) -> str:
    """The whole generated file for one checked network."""
    helpers: set[str] = set()
    imports: set[str] = set()
    ns, net_class = _module_names(net)
    aliases = _external_names(net, ns)
    class_names = {net_class, *aliases.values()}
    classes, class_of = _block_classes(net, helpers, imports, ns, class_names, aliases)
    # without parameters, the network's class prints numbers only, and no condition: nothing to name
    net_plan = plan([Uses(net.steps)], [p.name for p in net.params], class_names) if net.params else Plan()
    body = Body(Writer(2), Writer(2), class_of, comments=True, plan=net_plan, aliases=aliases)
    result = body.steps(net.steps, body.init, body.forward, body.main, body.main)
    body.init.lines = body.finish(body.init.lines)
    helpers |= body.helpers
    ordered = ORDERED_DICT in helpers
    helpers.discard(ORDERED_DICT)
    imports |= body.imports | {i for h in helpers for i in _HELPERS[h][1]}

    w = Writer()
    origin = "source text" if net.file == "<string>" else safe_file_name(net.file)
    w.line(f'"""{net.name}: generated by cnndsl {__version__} from {origin}.')
    w.line()
    w.line("Edit the .cnn source and rebuild rather than editing this file.")
    w.line('"""')
    w.line()
    if ordered:  # named stages of a named group, as torchvision writes them
        w.line("from collections import OrderedDict")
        w.line()
    w.line("import torch")
    w.line("from torch import nn")
    _imports(w, imports, aliases)
    for helper in sorted(helpers):
        w.line()
        w.lines.extend(_HELPERS[helper][0].rstrip("\n").split("\n"))
    functions_at = len(w.lines)  # the functions the expressions call go here (cnndsl.backend.pytorch.pyexpr)
    w.line()
    w.line()
    for c in classes:
        _write_block(w, c)
    w.line(f"class {net_class}(nn.Module):")
    with w.indent():
        total = net.total_params
        count = "parameters known after the first forward (lazy layers)" if total is None else f"{total:,} parameter{'s' * (total != 1)}"
        if total is None and not any(layer.lazy for layer in net.layers):  # only external modules' are unknown
            known = sum(layer.params for layer in net.layers if layer.params is not None)
            count = f"{known:,} parameter{'s' * (known != 1)} besides those of its external modules"
        outputs = ", ".join(fmt_shape(s, "unknown") for s in net.outputs)
        given = fmt_shape(net.input_shape) if net.input_shape else "(N, " + ", ".join([str(net.example_shape[0])] + ["?"] * (len(net.example_shape) - 1)) + ")"
        w.line(f'"""Input {given} -> output {outputs}; {count}."""')
        w.line()
        w.call("def __init__", Call("", ["self", *(f"{p.name}={lit(p.value)}" for p in net.params)]), ":")
        with w.indent():
            w.line("super().__init__()")
            _pinned_check(w, net)
            _locals(w, net_plan.defs)
            w.lines.extend(fill(body.init.lines, body.slots))
            _init_rules(w, net, net_plan.ns)
        w.line()
        w.line(f"def forward(self, {body.main}):")
        with w.indent():
            w.line(f"# {body.main}: {fmt_shape(net.input_shape, 'unknown')}")
        w.lines.extend(fill(body.forward.lines, body.slots))
        with w.indent():
            _return(w, body, net.steps, result)
    w.line()
    w.line()
    w.line("def build(device=None, **params):")
    with w.indent():
        w.line(f'"""Build {net.name} on `device` (CUDA when available); `params` override its parameters."""')
        w.line("if device is None:")
        with w.indent():
            w.line('device = "cuda" if torch.cuda.is_available() else "cpu"')
        w.line(f"return {net_class}(**params).to(device)")
    w.line()
    w.line()
    w.line('if __name__ == "__main__":')
    with w.indent():
        w.line('device = "cuda" if torch.cuda.is_available() else "cpu"')
        w.line("model = build(device).eval()")
        w.line(f"x = torch.randn(2, {', '.join(str(d) for d in net.example_shape)}, device=device)")
        w.line("with torch.no_grad():")
        with w.indent():
            w.line("y = model(x)")
        if any(isinstance(s, OutputStep) and s.keys for s in net.steps):
            w.line(f'print(f"{net.name}: {{tuple(x.shape)}} -> {{ {{k: tuple(t.shape) for k, t in y.items()}} }}")')
        elif len(net.outputs) > 1:
            w.line(f'print(f"{net.name}: {{tuple(x.shape)}} -> {{[tuple(t.shape) for t in y]}}")')
        else:
            w.line(f'print(f"{net.name}: {{tuple(x.shape)}} -> {{tuple(y.shape)}}")')
    if any(f"{MAKE_DIVISIBLE}(" in line for line in w.lines[functions_at:]):
        w.lines[functions_at:functions_at] = ["", "", *_make_divisible_source().rstrip("\n").split("\n")]
    return w.text()
