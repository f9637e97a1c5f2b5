"""Text: bodies, blocks and the network as `.cnn` source, every layer named where its `state_dict` keys need it
(the checker's automatic names are followed where they already give the module's name), then formatted by
`cnndsl fmt`."""

from __future__ import annotations

from typing import Any

from ..ops import REGISTRY
from .nodes import Body, Call, Expr, Group, Join, Layer, Line, Merge

WIDTH = 96  # a pipeline longer than this continues on the next line (after a trailing `|`)
_POOLS = {"maxpool", "avgpool", "lppool", "adaptiveavgpool", "adaptivemaxpool", "gap"}


def value(v: Any, positional: bool = False) -> str:
    if isinstance(v, Expr):
        text = v.text
        return f"({text})" if positional and (" " in text or text.startswith("-")) else text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"({v})" if positional and v < 0 else str(v)
    if isinstance(v, float):
        text = repr(v)
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"the number {text} has no form in the language")
        if "e" in text and "." not in text.split("e")[0]:
            mant, exp = text.split("e")
            text = f"{mant}.0e{exp}"
        return f"({text})" if positional and v < 0 else text
    if isinstance(v, (tuple, list)):
        if v and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v) and len(v) > 1:
            return "x".join(str(x) for x in v)
        inner = ", ".join(value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, str):
        return v if v.isidentifier() else f'"{v}"'
    raise ValueError(f"no form for {v!r}")


def layer_text(lay: Layer) -> str:
    if lay.op == "unpool":  # `unpool pool1`: the max pool whose indices it reads
        return f"unpool {lay.pool}"
    spec = REGISTRY[lay.op]
    words = [lay.op]
    opts = dict(lay.opts)
    if spec.varargs and spec.varargs in opts:  # permute 0 2 3 1
        words.extend(value(d, positional=True) for d in opts.pop(spec.varargs))
    for name in spec.positional:
        if name in opts:
            words.append(value(opts.pop(name), positional=True))
        else:
            break
    for o in spec.all_options:
        if o.name not in opts:
            continue
        v = opts.pop(o.name)
        flag = next((f for f, fv in o.flags if not isinstance(v, Expr) and fv == v and type(fv) is type(v)), None)
        if flag:
            words.append(flag)
        elif o.short and not isinstance(v, Expr) and (isinstance(v, int) and not isinstance(v, bool) and v >= 0 or
                                                      isinstance(v, tuple) and all(isinstance(x, int) and x > 0 for x in v)):
            words.append(o.short + value(v))
        else:
            words.append(f"{o.short or o.name}={value(v)}")
    if lay.like:
        words.append(f"like={lay.like}")
    for k, v in opts.items():  # none expected: every option is the op's
        words.append(f"{k}={value(v)}")
    return " ".join(words)


class Namer:
    """The checker's automatic names in one block or network (cnndsl/semantics/scope.py, child_name), to write `as`
    only where they differ from the module's own name."""

    def __init__(self, reserved: set[str]):
        self.names: set[str] = set()
        self.counters: dict[str, int] = {}
        self.reserved = reserved

    def _auto(self, kind: str) -> str:
        sep = "_" if kind[-1].isdigit() else ""
        n = self.counters.get(kind, 0)
        while f"{kind}{sep}{n + 1}" in self.names:
            n += 1
        return f"{kind}{sep}{n + 1}"

    def suffix(self, kind: str, wanted: str | None) -> str:
        auto = self._auto(kind)
        if wanted is not None and wanted != auto:
            self.names.add(wanted)
            return f" as {wanted}"
        if wanted is None and auto in self.reserved:
            n = 1
            while f"{kind}_{n}" in self.names or f"{kind}_{n}" in self.reserved:
                n += 1
            self.names.add(f"{kind}_{n}")
            return f" as {kind}_{n}"
        self.counters[kind] = int(auto[len(kind):].lstrip("_"))
        self.names.add(auto)
        return ""


def _reserved(stages: list, found: set[str]) -> set[str]:
    for s in stages:
        if isinstance(s, (Layer, Call)) and s.name and not getattr(s, "in_group", False) or isinstance(s, Group) and s.name:
            found.add(s.name)
        elif isinstance(s, Merge):
            for b in s.branches:
                _reserved(b, found)
    return found


class Writer:
    def __init__(self):
        self.out: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.out.append("    " * depth + text)

    # -- stages -----------------------------------------------------------------------------------------

    def stage(self, s: Any, namer: Namer | None) -> str:
        if isinstance(s, Layer):
            text = layer_text(s)
            kind = "unpool" if s.op == "unpool" else REGISTRY[s.op].kind or s.op
            return text + (namer.suffix(kind, s.name) if namer else (f" as {s.name}" if s.name else ""))
        if isinstance(s, Call):
            count = getattr(s, "count", None)
            text = f"{s.block}({', '.join(self.args(s))})" + _repeat(count)
            if namer and isinstance(count, int):  # `Block() x3` outside a group: each copy takes an automatic name
                suffix = namer.suffix(s.block.lower(), s.name)
                for _ in range(count - 1):
                    namer.suffix(s.block.lower(), None)
                return text + suffix
            return text + (namer.suffix(s.block.lower(), s.name) if namer else (f" as {s.name}" if s.name else ""))
        if isinstance(s, Join):
            return f"{s.kind}({', '.join(s.values)})"
        if isinstance(s, Group):
            parts = [self.stage(x, None) for x in s.stages]
            inner = " | ".join(parts)
            if len(inner) > WIDTH - 24:  # broken inside its parentheses (cnndsl fmt indents the lines)
                inner = "\n" + _wrap(parts, s.stages) + "\n"
            text = ("*" if s.splice else "") + f"({inner})" + _repeat(s.count)
            if s.name and namer:
                namer.names.add(s.name)
            return text + (f" as {s.name}" if s.name else "")
        raise TypeError(f"not a stage: {s!r}")

    def args(self, call: Call) -> list[str]:
        params = getattr(call, "params", None) or []
        out = []
        for p in params:
            if p.name not in call.args:
                continue
            v = call.args[p.name]
            if p.default is None:
                out.append(value(v))
            elif not (v == p.default and type(v) is type(p.default)):
                if isinstance(p.default, tuple) and isinstance(v, tuple) and v and len(set(v)) == 1:
                    v = v[0]  # a number stands in each place of a tuple parameter: `k=3` for (3, 3)
                out.append(f"{p.name}={value(v)}")
        out += [f"{k}={v}" for k, v in (getattr(call, "given", None) or {}).items()]  # `Up(skip=x4)`
        return out

    def pipeline(self, depth: int, head: str, parts: list[str], tail: str = "") -> None:
        """`head` then the stages joined by `|`, continued on further lines (4 deeper) past WIDTH."""
        lines: list[str] = []
        current = head
        for k, p in enumerate(parts):
            indent = "    " * (depth + (1 if lines else 0))
            if k and len(indent + current + " | " + p) > WIDTH:
                lines.append(current + " |")
                current = p
            else:
                current += p if k == 0 else " | " + p
        lines.append(current + tail)
        for k, text in enumerate(lines):
            for piece in text.split("\n"):  # a group broken inside its parentheses: fmt indents it
                self.emit(depth + (1 if k else 0), piece)

    # -- statements ---------------------------------------------------------------------------------------

    def body(self, depth: int, b: Body, keys: list[str] | None = None) -> None:
        namer = Namer(set().union(*(_reserved(l.stages, set()) for l in b.lines)) if b.lines else set())
        if b.inputs:
            self.emit(depth, "input " + ", ".join(b.inputs))
        for line in b.lines:
            self.line(depth, line, namer)
        if b.outputs:
            items = [o if not keys else f"{o} as {value(k) if k.isidentifier() else chr(34) + k + chr(34)}"
                     for o, k in zip(b.outputs, keys or b.outputs)]
            self.emit(depth, "output " + ", ".join(items))

    def line(self, depth: int, line: Line, namer: Namer) -> None:
        """One Line as statements: its merges and its named groups on lines of their own, the stages between them
        as pipelines (each continues from the last result; the first from the line's source)."""
        stages, source = list(line.stages), line.source
        target = f"{', '.join(line.targets)} = " if line.targets else ""
        chunk: list = []
        for k, s in enumerate(stages):
            last = k == len(stages) - 1
            statement = isinstance(s, Merge) or getattr(s, "tap_names", None) or \
                (isinstance(s, Group) and s.name and not s.count and not s.splice and not (chunk == [] and source)
                 and not (last and target) and s.name.isidentifier())  # not `"0"` nor `heads[0]`
            if not statement:
                chunk.append(s)
                continue
            if chunk or source:
                self.pipeline(depth, "", ([source] if source else []) + [self.stage(x, namer) for x in chunk] or ["identity"])
                chunk, source = [], None
            if isinstance(s, Merge):
                self.merge(depth, s, namer)
            else:
                self.named_group(depth, s, namer)
        if chunk or (target and not (stages and getattr(stages[-1], "tap_names", None))):
            parts = ([source] if source else []) + [self.stage(x, namer) for x in chunk]
            self.pipeline(depth, target, parts or ["identity"])

    def named_group(self, depth: int, g: Group, namer: Namer, cond: str = "") -> None:
        namer.names.add(g.name)
        texts = [(self.stage(s, None), s) for s in g.stages]
        taps = getattr(g, "tap_names", None) or {}
        if taps:  # a line per tap, `x1 = stage`, ending where each tapped stage ends
            self.emit(depth, f"{g.name}:{cond}")
            line: list[str] = []
            for k, (t, _) in enumerate(texts):
                line.append(t)
                if k in taps or k == len(texts) - 1:
                    self.pipeline(depth + 1, f"{taps[k]} = " if k in taps else "", line)
                    line = []
            return
        one = f"{g.name}: " + " | ".join(t for t, _ in texts)
        if len("    " * depth + one + cond) <= WIDTH and len(texts) <= 6:
            self.emit(depth, one + cond)
            return
        self.emit(depth, f"{g.name}:{cond}")
        line: list[str] = []
        for t, s in texts:
            if line and len("    " * (depth + 1) + " | ".join(line + [t])) > WIDTH:
                self.emit(depth + 1, " | ".join(line))
                line = []
            line.append(t)
            if _breaks_after(s):
                self.emit(depth + 1, " | ".join(line))
                line = []
        if line:
            self.emit(depth + 1, " | ".join(line))

    def merge(self, depth: int, m: Merge, namer: Namer) -> None:
        self.emit(depth, f"{m.kind}" + (f" if {m.cond}" if m.cond else "") + ":")
        for k, branch in enumerate(m.branches):
            cond = m.branch_conds[k] if k < len(m.branch_conds) else None
            if len(branch) == 1 and isinstance(branch[0], Merge) and not cond:  # a branch that is a merge
                self.merge(depth + 1, branch[0], namer)
                continue
            if any(isinstance(s, Merge) for s in branch):
                raise ValueError("a merge inside a branch of a merge, after layers or with a condition")
            parts = [self.stage(s, namer) for s in branch] or ["identity"]
            self.pipeline(depth + 1, "", parts, f" if {cond}" if cond else "")


def _wrap(parts: list[str], stages: list) -> str:
    lines, current = [], []
    for text, s in zip(parts, stages):
        if current and (len(" | ".join(current + [text])) > WIDTH - 16 or isinstance(s, Group)):
            lines.append(" | ".join(current))
            current = []
        current.append(text)
        if isinstance(s, Group):
            lines.append(" | ".join(current))
            current = []
    if current:
        lines.append(" | ".join(current))
    return " |\n".join(lines)


def _breaks_after(s: Any) -> bool:
    """In a named group's lines: a new line after a pool, a nested group, a block call."""
    if isinstance(s, Layer):
        return s.op in _POOLS
    return isinstance(s, (Group, Call))


def _repeat(count: Any) -> str:
    if count is None:
        return ""
    if isinstance(count, tuple):
        return f" x({count[0]}, {count[1]})"
    if isinstance(count, Expr):
        return f" x({count.text})"
    return f" x{count}"


def block_text(name: str, params: list, b: Body) -> str:
    w = Writer()
    head = ", ".join(p.name if p.default is None else f"{p.name}={value(p.default)}" for p in params)
    w.emit(0, f"block {name}({head}):" if params else f"block {name}:")
    w.body(1, b)
    return "\n".join(w.out)


def hoist(bodies: list[Body]) -> list[str]:
    """`defaults bn eps=0.001 momentum=0.01`: the options written `key=value` (no flag, no short form, no position)
    that every layer of an op in the file shares, where three or more share them, taken out of the layers (MobileNetV3's
    and EfficientNet's batch norms) into the network's `defaults` lines."""
    from .blocks import walk

    layers: dict[str, list[Layer]] = {}
    for b in bodies:
        for line in b.lines:
            for s in walk(line.stages):
                if isinstance(s, Layer) and s.op in REGISTRY:
                    layers.setdefault(s.op, []).append(s)
    lines = []
    for op, found in layers.items():
        flags = {o.name for o in REGISTRY[op].all_options if o.flags or o.short} | set(REGISTRY[op].positional)
        common = dict(found[0].opts)
        for lay in found[1:]:
            common = {k: v for k, v in common.items() if k in lay.opts and lay.opts[k] == v and type(lay.opts[k]) is type(v)}
        common = {k: v for k, v in common.items() if k not in flags and not isinstance(v, Expr) and k != "like"}
        if len(found) < 3 or not common:
            continue
        for lay in found:
            lay.opts = {k: v for k, v in lay.opts.items() if k not in common}
        lines.append(f"defaults {op} " + " ".join(f"{k}={value(v)}" for k, v in common.items()))
    return lines


def network_text(name: str, input_shape: tuple, b: Body, unit=None, defaults: list[str] = ()) -> str:
    w = Writer()
    w.emit(0, f"network {name}:")
    w.emit(1, "input " + "x".join(str(d) for d in input_shape))
    for line in defaults:
        w.emit(1, line)
    if b.inputs:  # a network's input has no name: an identity gives it one
        w.emit(1, f"{b.inputs[0]} = identity")
        b = Body(lines=b.lines, outputs=b.outputs)
    keys = getattr(unit, "output_keys", None)  # a block's dict of one tensor is returned as that tensor
    if keys and not b.outputs:
        raise ValueError("a dict of one output")
    w.body(1, b, keys)
    return "\n".join(w.out)
