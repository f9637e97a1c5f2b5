"""Lines of .cnn against lines of torchvision Python for the torchvision ports in examples/.

It prints a markdown table for the README. How the lines are counted:

- .cnn: the lines of examples/<name>.cnn that are neither blank nor only a comment (a line with code and a
  trailing comment counts once).
- torchvision: the source of the classes, functions and tables that torchvision needs to build the
  architecture with random weights, as listed in PARTS below, read from the installed torchvision with
  `inspect`: every line of each definition (its `def`/`class` line, signature, decorators and body) that
  holds code, so not the blank lines, the comment-only lines and the docstrings. A shared definition
  counts in full for every model that needs it (ResNet's generic `ResNet` class, MobileNetV2's
  `Conv2dNormActivation`). Not counted: the public builder functions (`resnet50()`, `_resnet()`, ...) and
  the `*_Weights` enums, which deal with downloading pretrained weights, something cnndsl does not do;
  the definitions of torchvision's internal utilities (`_log_api_usage_once`); imports.
- parameters: `cnndsl.check(...).total_params`, which tests/test_torchvision.py checks against torchvision.
- decompiled: the lines of `cnndsl.decompile(torchvision.models.<name>(weights=None))` (docs/DECOMPILE.md), counted
  as the .cnn lines are, beside the hand-written file's; issue 14 bounds them at 1.5x the hand-written count.

    python benchmarks/line_counts.py
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl

# architecture -> [(module, top-level names)]: what building it runs, besides torch itself
PARTS: dict[str, list[tuple[str, list[str]]]] = {
    "resnet18": [("torchvision.models.resnet", ["conv3x3", "conv1x1", "BasicBlock", "ResNet"])],
    "resnet50": [("torchvision.models.resnet", ["conv3x3", "conv1x1", "Bottleneck", "ResNet"])],
    "vgg16_bn": [("torchvision.models.vgg", ["VGG", "make_layers", "cfgs"])],
    "alexnet": [("torchvision.models.alexnet", ["AlexNet"])],
    "mobilenet_v2": [
        ("torchvision.models._utils", ["_make_divisible"]),
        ("torchvision.ops.misc", ["ConvNormActivation", "Conv2dNormActivation"]),
        ("torchvision.models.mobilenetv2", ["InvertedResidual", "MobileNetV2"]),
    ],
    "squeezenet1_1": [("torchvision.models.squeezenet", ["Fire", "SqueezeNet"])],
}

# families: one .cnn file, the members its parameters choose, and what torchvision needs for all of them (for
# ResNet, its builders too: `resnet18()` ... `resnet152()` and `_resnet()` are where the member is chosen)
FAMILIES: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {
    "resnet": ("depth 18, 34, 50, 101, 152", [("torchvision.models.resnet", [
        "conv3x3", "conv1x1", "BasicBlock", "Bottleneck", "ResNet", "_resnet",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])]),
    "vgg": ("depth 11, 13, 16, 19; batch_norm", [("torchvision.models.vgg", [
        "VGG", "make_layers", "cfgs", "_vgg", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
        "vgg19_bn"])]),
    "mobilenet_v2": ("width_mult 0.5, 0.75, 1.0, 1.4", PARTS["mobilenet_v2"]),
    "resnet_cifar": ("depth 20, 32, 44, 56, 110 (not in torchvision)", []),
}

_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


def cnn_lines(path: Path) -> int:
    """Lines that are neither blank nor only a comment."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def python_lines(module_name: str, names: list[str]) -> int:
    """Lines holding code (not blank, not comments, not docstrings) of these top-level definitions."""
    source = inspect.getsource(importlib.import_module(module_name))
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            code.update(range(tok.start[0], tok.end[0] + 1))
    tree = ast.parse(source)
    docstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    total = 0
    for name in names:
        node = next((n for n in tree.body if _defines(n, name)), None)
        if node is None:
            raise SystemExit(f"{module_name} has no top-level `{name}`: torchvision changed, update PARTS")
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        total += len((code - docstrings) & set(range(start, node.end_lineno + 1)))
    return total


def _defines(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    return False


def decompiled_lines(name: str) -> int:
    """Lines of the decompiled torchvision model (not blank, not only a comment)."""
    import torchvision

    model = getattr(torchvision.models, name)(weights=None)
    text = cnndsl.decompile(model, input=(3, 64, 64) if name != "alexnet" else (3, 96, 96))
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def main() -> None:
    import torchvision

    version = torchvision.__version__.split("+")[0]
    print(f"| architecture | lines of .cnn | decompiled .cnn | lines of torchvision {version} Python | parameters |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, parts in PARTS.items():
        path = ROOT / "examples" / f"{name}.cnn"
        theirs = sum(python_lines(module, names) for module, names in parts)
        params = cnndsl.check(path).total_params
        print(f"| {name} | {cnn_lines(path)} | {decompiled_lines(name)} | {theirs} | {params:,} |")
    print()
    print(f"| family | members | lines of .cnn | lines of torchvision {version} Python |")
    print("| --- | --- | ---: | ---: |")
    for name, (members, parts) in FAMILIES.items():
        theirs = sum(python_lines(module, names) for module, names in parts)
        print(f"| {name} | {members} | {cnn_lines(ROOT / 'examples' / f'{name}.cnn')} | {theirs if parts else '-'} |")


if __name__ == "__main__":
    main()
