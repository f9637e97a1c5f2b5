"""Blocks from instances: the bodies of every instance of one class are unified into one template, generic in what
differs between them. A number that differs becomes `in`, an expression of `in` or of an earlier parameter, or a new
parameter; a branch or a merge present in some instances only becomes conditional, on a condition over the
parameters and `in` that holds exactly where it is present (else a boolean parameter). Instances that cannot share
a template (a different structure) get classes of their own: `InvertedResidual`, `InvertedResidual_2`."""

from __future__ import annotations

import inspect
import keyword
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from ..names import PARAMETER_RESERVED
from ..ops import REGISTRY
from .nodes import Body, Call, Expr, Group, Join, Layer, Line, Merge


class Mismatch(Exception):
    pass


@dataclass
class Slot:
    values: list
    key: str
    channel: bool = False  # a parameter without default: an op's channels, a block's own parameter without default


@dataclass
class Presence:
    present: list[bool]
    hint: str | None = None


@dataclass
class Param:
    name: str
    default: Any
    values: list


class _Absent:
    """The value of an instance in which this part is absent (a conditional branch it lacks): matches anything."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


def _same(vals: list) -> bool:
    real = [v for v in vals if v is not ABSENT]
    return all(v == real[0] and type(v) is type(real[0]) for v in real)


def _values(vals: list, key: str) -> Any:
    if _same(vals) and ABSENT not in vals:
        return vals[0]
    return Slot(list(vals), key)  # where a part is absent from some instances, a parameter may still name its value


def matches(vals: list, wanted: list) -> bool:
    return all(w is ABSENT or (v == w and type(v) is type(w)) for v, w in zip(vals, wanted))


def _default(op: str, key: str) -> Any:
    return next((o.default for o in REGISTRY[op].all_options if o.name == key), None)


def unify(all_xs: list) -> Any:
    """One template of the same part in every instance (None where an instance lacks the part)."""
    xs = [x for x in all_xs if x is not None]
    x0 = xs[0]
    if any(type(x) is not type(x0) for x in xs):
        raise Mismatch
    gap = lambda f: [ABSENT if x is None else f(x) for x in all_xs]
    if isinstance(x0, Layer):
        if any((x.op, x.name, x.like, x.attr if not x.stateful else None) != (x0.op, x0.name, x0.like, x0.attr if not x0.stateful else None) for x in xs):
            raise Mismatch
        keys = list(dict.fromkeys(k for x in xs for k in x.opts))
        fixed = REGISTRY[x0.op].varargs  # `permute 0 2 3 1` takes numbers, not a parameter
        if fixed and not _same([x.opts.get(fixed) for x in xs]):
            raise Mismatch
        out = replace(x0, opts={k: _values(gap(lambda x, k=k: x.opts.get(k, _default(x.op, k))), k) for k in keys})
        out.in_group = getattr(x0, "in_group", False)
        return out
    if isinstance(x0, Call):
        if any((x.block, x.name, getattr(x, "given", None)) != (x0.block, x0.name, getattr(x0, "given", None)) for x in xs):
            raise Mismatch
        keys = [p.name for p in x0.params]
        out = Call(block=x0.block, args={k: _values(gap(lambda x, k=k, p=p: x.args.get(k, p.default)), k)
                                         for k, p in zip(keys, x0.params)},
                   name=x0.name, stateful=x0.stateful)
        for p in x0.params:  # what the callee takes without default (channels) is the caller's without default too
            if isinstance(out.args.get(p.name), Slot) and p.default is None:
                out.args[p.name].channel = True
        out.params, out.in_group, out.given = x0.params, getattr(x0, "in_group", False), getattr(x0, "given", None)
        counts = [getattr(x, "count", None) for x in xs]
        if any(isinstance(c, int) for c in counts):  # `DenseLayer() x(num_layers)`
            if not all(isinstance(c, int) for c in counts):
                raise Mismatch
            out.count = _values(gap(lambda x: x.count), "count")
        return out
    if isinstance(x0, Group):
        key = lambda x: (x.name, x.splice, x.count, len(x.stages), getattr(x, "tap_names", None))
        if any(key(x) != key(x0) for x in xs):
            raise Mismatch
        out = Group(name=x0.name, stages=[unify([x and x.stages[k] for x in all_xs]) for k in range(len(x0.stages))])
        if getattr(x0, "tap_names", None):
            out.tap_names = x0.tap_names
        return out
    if isinstance(x0, Merge):
        if any((x.kind, len(x.branches)) != (x0.kind, len(x0.branches)) for x in xs):
            raise Mismatch
        branches, conds = [], []
        for k in range(len(x0.branches)):
            bs = [x.branches[k] if x is not None else None for x in all_xs]
            present = [b is not None and len(b) > 0 for b in bs]
            full = [b if b else None for b in bs]
            branches.append(unify_list(full) if any(present) else [])
            if any(present) and not all(present) and any(len(b) == 1 and isinstance(b[0], Merge) for b in full if b):
                raise Mismatch  # a branch that is a merge takes no condition
            conds.append(Presence(present) if any(present) and not all(present) and k > 0 else None)
            if any(present) and not all(present) and k == 0:
                raise Mismatch
        return Merge(kind=x0.kind, branches=branches, branch_conds=conds)
    if isinstance(x0, Join):
        if any((x.kind, x.values) != (x0.kind, x0.values) for x in xs):
            raise Mismatch
        return x0
    if isinstance(x0, Line):
        if any((x.targets, x.source) != (x0.targets, x0.source) for x in xs):
            raise Mismatch
        return Line(stages=unify_list([x and x.stages for x in all_xs]), targets=x0.targets, source=x0.source)
    if isinstance(x0, Body):
        if any((x.inputs, x.outputs, len(x.lines)) != (x0.inputs, x0.outputs, len(x0.lines)) for x in xs):
            raise Mismatch
        return Body(lines=[unify([x and x.lines[k] for x in all_xs]) for k in range(len(x0.lines))], inputs=x0.inputs, outputs=x0.outputs)
    raise Mismatch


def unify_list(all_lists: list) -> list:
    """Stage lists, position by position (None where an instance lacks the part); where some instances have a merge
    that others lack (only its first branch runs there: MobileNetV2's residual), the merge becomes conditional."""
    lists = [s for s in all_lists if s is not None]
    if all(len(s) == len(lists[0]) for s in lists) and all(
            all(type(a) is type(b) for a, b in zip(s, lists[0])) for s in lists):
        return [unify([s and s[k] for s in all_lists]) for k in range(len(lists[0]))]
    with_merge = [s for s in lists if any(isinstance(x, Merge) for x in s)]
    if not with_merge or len(lists) != len(all_lists):
        raise Mismatch
    ref = with_merge[0]
    p = next(k for k, x in enumerate(ref) if isinstance(x, Merge))
    first = len(ref[p].branches[0])
    expanded, present = [], []
    for s in lists:
        if len(s) == len(ref) and isinstance(s[p], Merge):
            expanded.append(s)
            present.append(True)
        elif len(s) == len(ref) - 1 + first:
            m = Merge(kind=ref[p].kind, branches=[s[p:p + first]] + [None] * (len(ref[p].branches) - 1))
            expanded.append(s[:p] + [m] + s[p + first:])
            present.append(False)
        else:
            raise Mismatch
    merged = [unify([s[k] for s in expanded]) for k in range(len(ref))]
    merged[p].cond = Presence(present)
    return merged


# -- parameters -------------------------------------------------------------------------------------------

_KEY_NAMES = {"out": "out", "kernel_size": "k", "num_groups": "groups", "output_size": "size", "p": "p"}
_CHANNEL_KEYS = {"out", "num_groups", "normalized_shape", "num_parameters", "unflattened_size", "groups", "count"}


class Params:
    """The parameters of one block, found from its template's slots, in the order they appear."""

    def __init__(self, instances: list, ins: list[int]):
        self.instances, self.ins = instances, ins
        self.params: list[Param] = []
        self.exprs: list[tuple[str, list]] = [("in", ins)]  # every expression written so far, with its values
        cls = type(instances[0].module)
        try:
            sig = [n for n, p in inspect.signature(cls.__init__).parameters.items()  # not `conv_builder`, `norm_layer`
                   if n != "self" and not (p.default is not p.empty and callable(p.default))
                   and not n.endswith(("builder", "layer", "block", "_fn", "module"))]
        except (TypeError, ValueError):
            sig = []
        self.signature = [s for s in sig if _ok(s) and not _input_like(s)]
        self.attrs = {a: [getattr(u.module, a, None) for u in instances] for a in vars(instances[0].module)
                      if not a.startswith("_") and _ok(a) and a != "training"}

    def name_for(self, key: str, values: list, channel: bool = False) -> str:
        taken = {p.name for p in self.params}
        for a, vals in self.attrs.items():
            if matches(vals, values) and a not in taken:
                return a
        if key in _CHANNEL_KEYS or channel:
            for s in self.signature:
                if s not in taken and s not in self.attrs:
                    return s
        base = _KEY_NAMES.get(key, key)
        name, n = base, 2
        while name in taken or not _ok(name):
            name, n = f"{base}{n}", n + 1
        return name

    def slot(self, s: Slot) -> Expr:
        v = s.values
        real = [x for x in v if x is not ABSENT]
        ints = all(isinstance(x, int) and not isinstance(x, bool) for x in real)
        for text, vals in self.exprs:
            if matches(vals, v):
                return Expr(text)
        if _same(v):
            return real[0]
        if ints and s.key != "count":  # a repetition's count is its own parameter, never a multiple of `in`
            for text, vals in self.exprs:
                if all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in vals):
                    for k in range(2, 65):
                        if all(b is ABSENT or a * k == b for a, b in zip(vals, v)):
                            return self._expr(f"{text}*{k}", [a * k for a in vals])
                        if all(b is ABSENT or (a // k == b and a % k == 0) for a, b in zip(vals, v)):
                            return self._expr(f"{text}//{k}", [a // k for a in vals])
                    if text != "in" and all(b is ABSENT or a // 2 == b for a, b in zip(vals, v)):  # padding=k//2
                        return self._expr(f"{text}//2", [a // 2 for a in vals])
        channel = s.key in _CHANNEL_KEYS or s.channel
        common = Counter(map(repr, real)).most_common(1)[0][0]
        typical = next(x for x in real if repr(x) == common)
        full = [typical if x is ABSENT else x for x in v]
        sizes = {len(x) for x in full if isinstance(x, tuple)}
        if len(sizes) == 1 and any(_int(x) for x in full) and all(_int(x) or isinstance(x, tuple) for x in full):
            n = sizes.pop()  # `k=3` beside `k=(1, 7)`: a tuple parameter, a number standing in each place
            full = [(x,) * n if _int(x) else x for x in full]
            typical = (typical,) * n if _int(typical) else typical
        name = self.name_for(s.key, full, channel)
        self.params.append(Param(name, None if channel else typical, full))
        return self._expr(name, full)

    def _expr(self, text: str, values: list) -> Expr:
        self.exprs.append((text, list(values)))
        return Expr(text)

    def condition(self, p: Presence, hint: str | None) -> str:
        atoms: list[tuple[str, list[bool]]] = []
        for prm in self.params:
            if isinstance(prm.default, (int, float)) and prm.default is not None:
                atoms.append((f"{prm.name} != {value_text(prm.default)}", [x != prm.default for x in prm.values]))
                atoms.append((f"{prm.name} == {value_text(prm.default)}", [x == prm.default for x in prm.values]))
        for text, vals in self.exprs[1:]:
            if all(isinstance(x, int) for x in vals):
                atoms.append((f"in != {text}", [a != b for a, b in zip(self.ins, vals)]))
                atoms.append((f"in == {text}", [a == b for a, b in zip(self.ins, vals)]))
        want = p.present
        for text, vals in atoms:
            if vals == want:
                return text
        for i, (t1, v1) in enumerate(atoms):
            for t2, v2 in atoms[i + 1:]:
                if [a or b for a, b in zip(v1, v2)] == want:
                    return f"{t1} or {t2}"
                if [a and b for a, b in zip(v1, v2)] == want:
                    return f"{t1} and {t2}"
        name = self.name_for(f"use_{hint}" if hint else "use", want)
        common = Counter(want).most_common(1)[0][0]
        self.params.append(Param(name, common, list(want)))
        return name


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _input_like(name: str) -> bool:
    """`inplanes`, `in_channels`, `cin`, `c_in`, `inp`: a constructor's input channels, which the block reads as `in`."""
    low = name.lower()
    return low.startswith(("in", "cin", "c_in", "ch_in", "num_in")) or low.endswith(("_in", "in_ch", "in_channels"))


def _ok(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name) and name not in PARAMETER_RESERVED and \
        name not in ("in", "same", "shape") and name not in REGISTRY and not name.startswith("_")


def value_text(v: Any) -> str:
    from .emit import value

    return value(v)


def fill(template: Any, params: Params) -> Any:
    """The template with each Slot an Expr and each Presence a condition, in the order they are written."""
    if isinstance(template, Layer):
        template.opts = {k: params.slot(v) if isinstance(v, Slot) else v for k, v in template.opts.items()}
    elif isinstance(template, Call):
        template.args = {k: params.slot(v) if isinstance(v, Slot) else v for k, v in template.args.items()}
        if isinstance(getattr(template, "count", None), Slot):
            template.count = params.slot(template.count)
    elif isinstance(template, Group):
        for s in template.stages:
            fill(s, params)
    elif isinstance(template, Merge):
        for b in template.branches:
            for s in b:
                fill(s, params)
        if isinstance(template.cond, Presence):
            template.cond = params.condition(template.cond, "res")
        template.branch_conds = [params.condition(c, _hint(b)) if isinstance(c, Presence) else c
                                 for c, b in zip(template.branch_conds, template.branches)]
    elif isinstance(template, Line):
        for s in template.stages:
            fill(s, params)
    elif isinstance(template, Body):
        for line in template.lines:
            fill(line, params)
    return template


def _hint(branch: list) -> str | None:
    names = [s.name for s in branch if getattr(s, "name", None)]
    return names[0].strip('"') if names else None


def order(params: list[Param]) -> list[Param]:
    return [p for p in params if p.default is None] + [p for p in params if p.default is not None]
