"""Parameter values from the command line: a --params YAML file and -D NAME=VALUE.

A params file is a flat mapping of parameter names to values: numbers, true/false, lists of numbers (a tuple
parameter such as `layers: [3, 4, 23, 3]`) and words (a layer-valued parameter, `act: hardswish`). On the
command line the same values are `-D depth=50`, `-D layers=3,4,23,3` (or `-D k=1x7`) and `-D act=hardswish`.
It is read within bounds: no
more than `file_bytes`, no alias (`*name` can expand a few hundred bytes into gigabytes), no nesting deeper
than a few levels (the composer's recursion would not survive it), no integer past the `integer` limit, no
name given twice. Every mistake is a UsageError located at its line and column, and quotes at most a few
dozen characters of what it found (never a Python repr of a decoded value).
"""

from __future__ import annotations

import os
import re
from typing import Any

from . import limits
from .errors import UsageError, quote

# what a -D value may be, as in the language: an integer, a decimal number, inf or nan, true or false, a word;
# or several of those numbers, `3,4,6,3` or `1x7` (ASCII only: Python's int() also reads other scripts' digits)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIMS = re.compile(r"[0-9]+(?:x[0-9]+)+")
_INTEGER = re.compile(r"[+-]?[0-9](?:_?[0-9])*")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE)
_YAML_KINDS = {"str": "a string", "null": "nothing (null)", "binary": "binary data", "timestamp": "a date",
               "seq": "a list", "map": "a mapping", "set": "a set", "omap": "an ordered mapping"}


def value(text: str, where: str) -> Any:
    """A -D value: true/false, an integer within the `integer` limit, a float, a word (str), or a tuple of
    numbers (`3,4,6,3`, `1x7`); UsageError naming `where`."""
    t = text.strip()
    if len(t) >= 2 and (t[0], t[-1]) in (("(", ")"), ("[", "]")):  # as written in a .cnn file or in Python
        t = t[1:-1].strip() + ("," if "," not in t else "")
    if "," in t or (t.isascii() and _DIMS.fullmatch(t)):
        parts = t.split(",") if "," in t else t.split("x")
        if parts[-1].strip() == "" and len(parts) > 1:  # `3,` is a tuple of one
            parts = parts[:-1]
        found = limits.problem("expression", len(parts), "the number of values")
        if found:
            raise UsageError(f"{where}: {found[0]}; {found[1]}")
        return tuple(_number(part, where, text) for part in parts)
    if t.isascii() and _WORD.fullmatch(t) and t.lower() not in ("inf", "infinity", "nan", "true", "false"):
        return t
    return _number(t, where)


def _number(text: str, where: str, whole: str | None = None) -> Any:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    if t.isascii() and _INTEGER.fullmatch(t):
        digits = len(t.lstrip("+-").replace("_", ""))
        if digits > 4000:  # past what int() converts; far past any limit
            raise UsageError(f"{where}: an integer of {digits:,} digits exceeds the limit of {limits.get('integer'):,} "
                             f"({limits.LIMITS['integer'].env})")
        return _within_limit(int(t), where)
    if t.isascii() and _FLOAT.fullmatch(t):
        return float(t)
    within = f" (in {quote(whole.strip())})" if whole is not None else ""
    raise UsageError(f"{where}: the value {quote(text)}{within} is not a number, true/false, a word, or numbers "
                     "such as 3,4,6,3 or (3, 4, 6, 3)")


def _within_limit(n: int, where: str) -> int:
    found = limits.problem("integer", abs(n), "the integer")
    if found:
        raise UsageError(f"{where}: {found[0]}; {found[1]}")
    return n


def define(item: str) -> tuple[str, Any]:
    """NAME=VALUE of a -D option."""
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not name.isascii():
        raise UsageError(f"-D expects NAME=VALUE, got {quote(item)}")
    return name, value(text, f"-D {name}")


def read_file(path: str) -> dict[str, Any]:
    """The parameters of a --params YAML file."""
    import yaml

    def refuse(mark, message: str) -> UsageError:
        return UsageError(f"{path}:{mark.line + 1}:{mark.column + 1}: {message}")

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise refuse(self.peek_event().start_mark, "an alias (*name) in a params file, which holds only "
                             "parameter names and numbers or true/false; write the value itself")
            self.depth += 1
            try:
                if self.depth > 8:
                    raise refuse(self.peek_event().start_mark, "nesting deeper than 8 levels in a params file, which "
                                 "holds only parameter names and numbers or true/false")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    try:
        with open(path, "rb") as f:  # never more than the limit allows: /dev/zero has no size
            data = f.read(limits.get("file_bytes") + 1)
            size = max(len(data), os.fstat(f.fileno()).st_size)
        found = limits.problem("file_bytes", size, "the params file's size")
        if found:
            raise UsageError(f"{path}: {found[0]}; {found[1]}")
        loader = Loader(data.decode("utf-8"))
        try:
            root = loader.get_single_node()
            return {} if root is None else _mapping(root, loader, path, refuse)
        finally:
            loader.dispose()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text (byte {e.start} cannot be decoded)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"{where}: not valid YAML: {problem[:200]}") from None


def _mapping(root, loader, path: str, refuse) -> dict[str, Any]:
    import yaml

    if not isinstance(root, yaml.MappingNode):
        raise refuse(root.start_mark, f"a params file holds a mapping of parameter names to values, found {_kind(root)}")
    out: dict[str, Any] = {}
    for key, node in root.value:
        if not (isinstance(key, yaml.ScalarNode) and key.tag.endswith(":str")):
            raise refuse(key.start_mark, f"a parameter's name is a word, found {_kind(key)}")
        name = key.value
        if name in out:
            raise refuse(key.start_mark, f"the parameter {quote(name)} is given twice")
        if isinstance(node, yaml.SequenceNode) and node.value:  # a tuple parameter: a list of numbers
            if len(node.value) > limits.get("expression"):
                lim = limits.LIMITS["expression"]
                raise refuse(node.start_mark, f"the list {quote(name)} has {len(node.value):,} items, more than the limit of "
                             f"{limits.get('expression'):,} ({lim.env})")
            out[name] = tuple(_scalar(item, loader, name, refuse, "item") for item in node.value)
        elif isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and _WORD.fullmatch(node.value):
            out[name] = node.value  # a word: a layer-valued parameter
        else:
            out[name] = _scalar(node, loader, name, refuse, "the parameter")
    return out


def _scalar(node, loader, name: str, refuse, what: str):
    """A number or true/false of a params file."""
    import yaml

    if not (isinstance(node, yaml.ScalarNode) and node.tag.rsplit(":", 1)[-1] in ("int", "float", "bool")):
        raise refuse(node.start_mark, f"the parameter {quote(name)} must be a number, true/false, a word or a list of numbers,"
                     f" found {_kind(node)}" if what == "the parameter" else f"the list {quote(name)} holds numbers or true/false, found {_kind(node)}")
    try:
        v = loader.construct_object(node, deep=True)
    except ValueError:  # an integer past the 4,300 digits Python converts
        raise refuse(node.start_mark, f"an integer of {len(node.value):,} characters exceeds the limit of "
                     f"{limits.get('integer'):,} ({limits.LIMITS['integer'].env})") from None
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > limits.get("integer"):
        lim = limits.LIMITS["integer"]
        raise refuse(node.start_mark, f"the integer exceeds the limit of {limits.get('integer'):,} ({lim.env})")
    return v


def _kind(node) -> str:
    """What a YAML node holds, in words (`a string "abc"`), without constructing it."""
    import yaml

    tag = node.tag.rsplit(":", 1)[-1]
    kind = _YAML_KINDS.get(tag, f"a value tagged {quote(node.tag)}")
    if isinstance(node, yaml.ScalarNode) and tag in ("str", "timestamp") and node.value:
        return f"{kind} {quote(node.value)}"
    return kind
