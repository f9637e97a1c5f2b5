"""Checked network -> Python source: one readable, black-stable module that imports only torch
(and torchvision.ops where deform or droppath need it). Never imports torch itself."""

from __future__ import annotations

import re
from contextlib import contextmanager

from . import __version__
from .network import CheckedLayer, CheckedNetwork
from .values import Val, number_code

LINE_LENGTH = 88
INDENT = "    "

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

_HELPERS = {"DeformConv": (_DEFORM_HELPER, ("DeformConv2d",))}


def lit(x) -> str:
    """A Python literal (or parameter expression) for a value the checker produced."""
    if isinstance(x, Val):
        return x.code() if x.symbolic else lit(x.v)
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, (int, float)):
        return number_code(x)
    if isinstance(x, str):
        assert re.fullmatch(r"[A-Za-z0-9_\-]*", x), x  # enumeration values only: never arbitrary text
        return f'"{x}"'
    if isinstance(x, tuple):
        return "(" + ", ".join(lit(i) for i in x) + ("," if len(x) == 1 else "") + ")"
    if x is None:
        return "None"
    raise TypeError(f"no literal for {x!r}")  # pragma: no cover


def fmt_shape(shape) -> str:
    if shape is None:
        return "unknown"
    return "(N, " + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def safe_file_name(name: str) -> str:
    """The source's base name, reduced to characters that are harmless in a docstring."""
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:80] or "source"


class Writer:
    """Lines of Python at an indentation level; long calls are wrapped the way black wraps them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.level = 0

    def line(self, text: str = "") -> None:
        self.lines.append(INDENT * self.level + text if text else "")

    @contextmanager
    def indent(self):
        self.level += 1
        yield
        self.level -= 1

    def bracketed(self, head: str, items: list[str], tail: str, opener: str = "(", closer: str = ")") -> None:
        """`head(items)tail`, split over lines as black would when it does not fit."""
        pad = INDENT * self.level
        one = f"{head}{opener}{', '.join(items)}{closer}{tail}"
        if len(pad) + len(one) <= LINE_LENGTH or not items:
            self.line(one)
            return
        self.line(head + opener)
        with self.indent():
            inner = ", ".join(items)
            if len(pad) + len(INDENT) + len(inner) <= LINE_LENGTH:
                self.line(inner)
            else:
                for item in items:
                    self.line(item + ",")
        self.line(closer + tail)

    def text(self) -> str:
        return "\n".join(self.lines).rstrip("\n") + "\n"


def _ctor_items(layer: CheckedLayer) -> list[str]:
    return [lit(a) for a in layer.args] + [f"{k}={lit(v)}" for k, v in layer.kwargs]


def _declare(w: Writer, layer: CheckedLayer) -> None:
    target = f"self.{layer.name} = "
    if layer.forward == "permute":
        return
    if layer.forward == "mul":
        shape, init = layer.args
        w.bracketed(target + "nn.Parameter(torch.full", [lit(shape), lit(init)], ")")
        return
    w.bracketed(target + layer.module, _ctor_items(layer), "")


def _forward(w: Writer, layer: CheckedLayer) -> None:
    comment = f"  # {fmt_shape(layer.output_shape)}"
    if layer.forward == "permute":
        w.line(f"x = x.permute({', '.join(lit(d) for d in layer.args)}){comment}")
    elif layer.forward == "mul":
        w.line(f"x = x * self.{layer.name}{comment}")
    else:
        w.line(f"x = self.{layer.name}(x){comment}")


def _init_rules(w: Writer, net: CheckedNetwork) -> None:
    by_name = {layer.name: layer for layer in net.layers}
    for rule in net.init_rules:
        call = rule.call
        fn = f"nn.init.{call.name}_"
        rest = [lit(a) for a in call.args] + [f"{k}={lit(v)}" for k, v in call.kwargs]
        if len(rule.layers) == 1:
            layer = by_name[rule.layers[0]]
            w.bracketed(fn, [f"self.{layer.name}.{layer.weight_path}{rule.target}", *rest], "")
            continue
        paths = [f"self.{n}" + (f".{by_name[n].weight_path[:-1]}" if by_name[n].weight_path else "") for n in rule.layers]
        w.bracketed("for m in ", paths, ":")
        with w.indent():
            w.bracketed(fn, [f"m.{rule.target}", *rest], "")


def generate(net: CheckedNetwork) -> str:
    """The whole generated file for one checked network."""
    w = Writer()
    origin = "source text" if net.file == "<string>" else safe_file_name(net.file)
    w.line(f'"""{net.name}: generated by cnndsl {__version__} from {origin}.')
    w.line()
    w.line("Edit the .cnn source and rebuild rather than editing this file.")
    w.line('"""')
    w.line()
    w.line("import torch")
    w.line("from torch import nn")
    helpers = sorted({layer.helper for layer in net.layers if layer.helper})
    imports = sorted({i for layer in net.layers for i in layer.imports} | {i for h in helpers for i in _HELPERS[h][1]})
    if imports:
        w.line(f"from torchvision.ops import {', '.join(imports)}")
    for helper in helpers:
        w.line()
        w.lines.extend(_HELPERS[helper][0].rstrip("\n").split("\n"))
    w.line()
    w.line()
    w.line(f"class {net.name}(nn.Module):")
    with w.indent():
        total = net.total_params
        count = "parameters known after the first forward (lazy layers)" if total is None else f"{total:,} parameter{'s' * (total != 1)}"
        w.line(f'"""Input {fmt_shape(net.input_shape)} -> output {fmt_shape(net.output_shape)}; {count}."""')
        w.line()
        w.bracketed("def __init__", ["self", *(f"{p.name}={lit(p.value)}" for p in net.params)], ":")
        with w.indent():
            w.line("super().__init__()")
            for layer in net.layers:
                _declare(w, layer)
            _init_rules(w, net)
        w.line()
        w.line("def forward(self, x):")
        with w.indent():
            w.line(f"# x: {fmt_shape(net.input_shape)}")
            for layer in net.layers:
                _forward(w, layer)
            w.line("return x")
    w.line()
    w.line()
    w.line("def build(device=None, **params):")
    with w.indent():
        w.line(f'"""Build {net.name} on `device` (CUDA when available); `params` override its parameters."""')
        w.line("if device is None:")
        with w.indent():
            w.line('device = "cuda" if torch.cuda.is_available() else "cpu"')
        w.line(f"return {net.name}(**params).to(device)")
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
        w.line(f'print(f"{net.name}: {{tuple(x.shape)}} -> {{tuple(y.shape)}}")')
    return w.text()
