"""Structure recovery inside one unit: its nn.Sequentials become named groups, fork-and-join patterns become
merges (`add:`, `cat:`, `mul:` with their branches), and what remains a graph becomes named values and joins
(`e1 = ...`, `cat(e1)`). The result is the unit's Body (cnndsl/decompile/nodes.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .nodes import Body, Call, DecompileError, Group, Join, Layer, Line, Merge
from .trace import TNode, Unit, _is_container


@dataclass
class Item:
    id: int
    inputs: list[int]
    stages: list = field(default_factory=list)  # a single-input item: what it applies, in order
    merge: str | None = None  # a join of several tensors
    like: int | None = None


def _key(name: str) -> str | None:
    """How a module's key is written after `as`: itself, or quoted where it is no identifier."""
    return name if name.isidentifier() else f'"{name}"'


def _group(unit: Unit, nodes: list[TNode], prefix: str, container, name: str | None) -> Group:
    """The nodes that call the children of an nn.Sequential (`prefix`), in order, as a Group."""
    children = list(container.named_children())
    stages, ends, i = [], [], 0
    seen: list[str] = []
    while i < len(nodes):
        rel = nodes[i].path[len(prefix) + 1:]
        child = rel.split(".")[0]
        sub = container.get_submodule(child)
        if _is_container(sub):
            j = i
            while j < len(nodes) and (nodes[j].path + ".").startswith(f"{prefix}.{child}."):
                j += 1
            inner = _group(unit, nodes[i:j], f"{prefix}.{child}", sub, None)
            position = [c for c, _ in children].index(child)
            inner.name = None if child == str(position) else _key(child)
            stages.append(inner)
            ends.append(nodes[j - 1].id)
            i = j
        else:
            stage = nodes[i].stages[0] if len(nodes[i].stages) == 1 else None
            position = [c for c, _ in children].index(child)
            if stage is not None:
                stage.name = None if child == str(position) else _key(child)
                stage.in_group = True
            stages.append(stage)
            ends.append(nodes[i].id)
            i += 1
        seen.append(child)
    if seen != [c for c, _ in children]:
        raise DecompileError(f"its forward does not call its children once each, in order ({', '.join(seen)})",
                             path=".".join(p for p in (unit.path, prefix) if p), cls=type(container).__qualname__)
    group = Group(name=name, stages=stages)
    group.ends = ends  # the node whose tensor each stage leaves
    return group


def _items(unit: Unit) -> tuple[dict[int, Item], dict[int, int]]:
    """The unit's nodes as items, each nn.Sequential of it collapsed into one item with a Group; and the id that
    stands for each collapsed node's tensor."""
    items: dict[int, Item] = {}
    alias: dict[int, int] = {}
    nodes = unit.nodes
    readers: dict[int, int] = {}
    for n in nodes:
        for x in n.inputs + ([n.like] if n.like is not None else []):
            readers[x] = readers.get(x, 0) + 1
    for x in unit.outputs:
        readers[x] = readers.get(x, 0) + 1
    i = 0
    while i < len(nodes):
        n = nodes[i]
        if n.kind == "dead":  # folded into a later node (`shuffle`)
            i += 1
            continue
        if n.kind in ("layer", "call") and n.path is not None:
            head, _, rest = n.path.partition(".")
            parent = getattr(unit.module, "_modules", {}).get(head)  # None for a parameter (`layerscale`)
            if rest and parent is not None and _is_container(parent):
                from torch import nn

                if isinstance(parent, nn.ModuleList) and "." not in rest:  # an entry of a list, applied where it stands
                    stage = n.stages[0]
                    stage.name = f"{head}[{rest}]"
                    items[n.id] = Item(n.id, [alias.get(x, x) for x in n.inputs], [stage], like=n.like)
                    i += 1
                    continue
                if isinstance(parent, nn.ModuleList) and _is_container(parent[int(rest.split(".")[0])]):
                    entry = rest.split(".")[0]  # a list entry that is an nn.Sequential: `(conv 8 k1) as heads[0]`
                    head, parent = f"{head}.{entry}", parent[int(entry)]
                if not isinstance(parent, nn.Sequential):
                    raise DecompileError("its modules sit in an nn.ModuleDict (or a list of lists), which the language "
                                         "has no path for", path=".".join(p for p in (unit.path, head) if p),
                                         cls=type(parent).__qualname__)
                j = i
                while j < len(nodes) and nodes[j].path is not None and (nodes[j].path + ".").startswith(head + "."):
                    j += 1
                run = nodes[i:j]
                for a, b in itertools.pairwise(run):
                    if b.inputs != [a.id]:
                        raise DecompileError("its forward does not chain its children (an nn.Sequential calls each on the "
                                             "result of the one before)", path=".".join(p for p in (unit.path, head) if p))
                label = f"{head.split('.')[0]}[{head.split('.')[1]}]" if "." in head else _key(head)
                group = _group(unit, run, head, parent, label)
                items[run[-1].id] = Item(run[-1].id, [alias.get(x, x) for x in run[0].inputs], [group])
                taps = []
                for a in run[:-1]:  # a value between its stages read elsewhere too (SSD's features): a tap
                    if readers.get(a.id, 0) == 1:
                        alias[a.id] = run[-1].id
                        continue
                    if a.id not in group.ends or not label.isidentifier():
                        raise DecompileError(f"its forward keeps the result of `{a.path}` inside the nn.Sequential "
                                             f"`{head}` for later, which a tap of a named group (`c2 = ...` on a line "
                                             "of it) cannot name: it is not the result of one of its stages",
                                             path=unit.path or None, cls=unit.cls, where=a.where)
                    items[a.id] = Item(a.id, [run[-1].id], [])
                    items[a.id].pick = len(taps)
                    taps.append(a.id)
                group.taps = taps
                i = j
                continue
        if n.kind == "pick":  # one output of a call of several: a value named on the call's line
            items[n.id] = Item(n.id, [alias.get(x, x) for x in n.inputs], [])
            items[n.id].pick = int(n.merge)
            i += 1
            continue
        if n.kind in ("chunk", "part"):  # torch.chunk and its parts: `split N:` where they are concatenated back
            items[n.id] = Item(n.id, [alias.get(x, x) for x in n.inputs], [], merge=None)
            items[n.id].chunk = (n.kind, int(n.merge))
            i += 1
            continue
        stages = n.stages
        for s in stages:
            if n.path is not None and isinstance(s, (Layer, Call)):
                s.name = _key(n.path) if (s.stateful or isinstance(s, Call) or getattr(s, "indices", False)) else None
                s.attr = _key(n.path)
        items[n.id] = Item(n.id, [alias.get(x, x) for x in n.inputs], list(stages), merge=n.merge if n.kind == "merge" else None,
                           like=n.like)
        i += 1
    return items, alias


def _consumers(items: dict[int, Item]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {k: [] for k in items}
    for it in items.values():
        for x in it.inputs:
            found.setdefault(x, []).append(it.id)
        if it.like is not None:
            found.setdefault(it.like, []).append(it.id)
    return found


def _chains(items: dict[int, Item], users: dict, keep: set[int], m: Item, nested: bool) -> tuple[list, set]:
    """The chain of single-use items that leads to each input of the join m, and the tensors they start from. A
    branch is one pipeline, or (`nested`) one merge alone: a merge inside a merge's branch."""
    branches, forks = [], set()
    for x in m.inputs:
        chain = []
        while x in items and items[x].merge is None and len(items[x].inputs) == 1 and len(users[x]) == 1 \
                and x not in keep and items[x].like is None and items[x].stages:
            if any(isinstance(s, Merge) for s in items[x].stages):
                if nested and not chain and len(items[x].stages) == 1:
                    chain.append(x)
                    x = items[x].inputs[0]
                break
            chain.append(x)
            x = items[x].inputs[0]
        forks.add(x)
        branches.append(chain[::-1])
    return branches, forks


def _reduce(items: dict[int, Item], keep: set[int]) -> bool:
    """One fork-and-join reduced to a Merge stage: a join whose inputs are chains from one common tensor."""
    users = _consumers(items)
    for m in list(items.values()):
        if m.merge is None:
            continue
        branches, forks = _chains(items, users, keep, m, False)
        if len(forks) != 1:
            branches, forks = _chains(items, users, keep, m, True)  # a branch that is a merge on the same tensor
        if len(forks) != 1:
            found = _split(items, users, m, branches, forks)
            if found:
                return True
            continue
        fork = forks.pop()
        heads = sorted(b[0] if b else m.id for b in branches)
        if not set(heads) <= set(users[fork]):  # the fork may be read elsewhere too (a named value)
            continue
        stages = [[s for x in b for s in items[x].stages] for b in branches]
        if m.merge == "add" and len(stages) == 2 and not stages[0]:
            stages = stages[::-1]  # the identity last: `add if c:` keeps its first branch
        for b in branches:
            for x in b:
                del items[x]
        items[m.id] = Item(m.id, [fork], [Merge(kind=m.merge, branches=stages)])
        return True
    return False


def _split(items: dict[int, Item], users: dict, m: Item, branches: list, forks: set) -> bool:
    """`torch.cat` of the parts of one torch.chunk, each through its own chain, in order: a `split N:` merge."""
    if m.merge != "cat":
        return False
    starts = [b[0] if b else x for b, x in zip(branches, m.inputs)]
    parts = [items[b[0]].inputs[0] if b else x for b, x in zip(branches, m.inputs)]
    if not all(p in items and getattr(items[p], "chunk", ("",))[0] == "part" for p in parts):
        return False
    chunk = items[parts[0]].inputs[0]
    n = items[chunk].chunk[1]
    if [items[p].chunk[1] for p in parts] != list(range(n)) or any(items[p].inputs[0] != chunk for p in parts):
        return False
    if sorted(users[chunk]) != sorted(parts) or any(len(users[p]) != 1 for p in parts) or len(starts) != n:
        return False
    stages = [[s for x in b for s in items[x].stages] for b in branches]
    source = items[chunk].inputs[0]
    for x in [y for b in branches for y in b] + parts + [chunk]:
        del items[x]
    items[m.id] = Item(m.id, [source], [Merge(kind=f"split {n}", branches=stages)])
    return True


def _order(items: dict[int, Item], start: list[int]) -> list[int]:
    """A topological order that follows chains: after a value, its consumer where one is ready."""
    done, order = set(start), []
    last = start[0] if len(start) == 1 else None  # of several inputs, the forward's first use goes first
    pending = sorted(items)
    while pending:
        ready = [i for i in pending if all(x in done for x in items[i].inputs) and (items[i].like is None or items[i].like in done)]
        pick = next((i for i in ready if items[i].inputs and items[i].inputs[0] == last), ready[0])
        pending.remove(pick)
        done.add(pick)
        order.append(pick)
        last = pick
    return order


def body(unit: Unit) -> Body:
    items, alias = _items(unit)
    inputs = [n.id for n in unit.nodes if n.kind == "input"]
    outputs = [alias.get(o, o) for o in unit.outputs]
    for i in inputs:
        items.pop(i, None)
    keep = set(outputs)
    while _reduce(items, keep):
        pass
    for it in items.values():
        if getattr(it, "chunk", None):
            raise DecompileError("its forward calls torch.chunk, and not as `split N:` (each part through its own "
                                 "layers, all concatenated back in order)", path=unit.path or None, cls=unit.cls)
    picks: dict[int, list[int]] = {}  # a call of several outputs -> the values of its outputs, in order
    for it in sorted(items.values(), key=lambda it: getattr(it, "pick", -1)):
        if getattr(it, "pick", None) is not None:
            picks.setdefault(it.inputs[0], []).append(it.id)
    order = [x for x in _order(items, inputs) if getattr(items[x], "pick", None) is None]
    users = _consumers(items)
    for x, ps in picks.items():  # the values of its outputs (or taps) do not read it
        users[x] = [u for u in users[x] if u not in ps]
    for o in outputs:
        users.setdefault(o, []).append(-1)
    # a value needs a name where it is read more than once, not right after it is made, or not as the first input
    position = {x: k for k, x in enumerate(order)}
    for k, x in enumerate(inputs):
        position[x] = -1 - k
    for x, ps in picks.items():
        position.update({p: position[x] for p in ps})
    named: set[int] = set()
    for it in items.values():
        if getattr(it, "pick", None) is not None:
            continue
        flow = it.inputs[0] if it.inputs else None  # the input that flows in; of a sum or a product, the one just made
        before = [x for x in it.inputs if position[x] == position[it.id] - 1]
        if it.merge in ("add", "mul") and len(before) == 1 and it.inputs.count(before[0]) == 1:
            flow = before[0]
        for x in it.inputs:
            if x != flow or len(users[x]) > 1 or position[x] != position[it.id] - 1:
                named.add(x)
        if it.like is not None:
            named.add(it.like)
    keyed = unit.output_keys is not None and unit.path == ""  # the network's dict: `output x1 as out`
    if len(outputs) > 1 or keyed or (outputs and order and outputs[0] != order[-1]) or (outputs and not order):
        named.update(outputs)
    if len(inputs) > 1:
        named.update(inputs)
    for x, ps in picks.items():  # `a, b = Body()`: every output named, the call itself is no value (a group's is)
        named.update(ps)
        if not isinstance(items[x].stages[-1], Group):
            named.discard(x)
    own = {x: unit.nodes[x].path for x in inputs} if len(inputs) > 1 else {x: "x" for x in inputs}
    if len(set(own.values())) != len(own):
        own = {x: f"input{k + 1}" for k, x in enumerate(inputs)}
    names, k = dict(own), 0
    for x in sorted(named - set(inputs), key=lambda x: (position[x], x)):  # x1, x2, ... in the order they are made
        k += 1
        while f"x{k}" in own.values():
            k += 1
        names[x] = f"x{k}"
    lines: list[Line] = []
    line: Line | None = None
    last = inputs[0] if inputs else None
    for x in order:
        it = items[x]
        src = it.inputs[0]
        stages = list(it.stages)
        if it.merge is not None:  # a join of named values: the first input flows, the others are named
            rest = list(it.inputs[1:])
            if it.merge in ("add", "mul") and last in it.inputs and src != last:
                rest = [i for i in it.inputs if i != last] if it.inputs.count(last) == 1 else rest
                src = last
            stages = [Join(kind=it.merge, values=[names[i] for i in rest])]
        if len(it.inputs) > 1 and it.merge is None:  # a block of several inputs: the first flows, the others by name
            call = stages[0]
            call.given = {call.inputs[j]: names[x] for j, x in enumerate(it.inputs) if j > 0}
        if it.like is not None:
            for s in stages:
                if isinstance(s, Layer) and s.like == "<like>":
                    s.like = names[it.like]
        if line is None or src != last or line.targets:
            line = Line(stages=[], source=None if src == last else names[src])
            lines.append(line)
        line.stages.extend(stages)
        if x in named:
            line.targets = [names[x]]
        last = x
        group = stages[-1] if stages and isinstance(stages[-1], Group) and getattr(stages[-1], "taps", None) else None
        if group is not None:  # a group's taps: `x1 = stage` on lines of the group, its result too where it is named
            group.tap_names = {group.ends.index(t): names[t] for t in group.taps}
            if x in named:
                group.tap_names[len(group.stages) - 1] = names[x]
            line.targets = []
        elif x in picks:  # the flowing tensor after a call of several outputs is its last
            line.targets = [names[p] for p in picks[x]]
            last = picks[x][-1]
    b = Body(lines=lines)
    if any(i in named for i in inputs):
        b.inputs = [names[i] for i in inputs]
    if len(outputs) > 1 or keyed or (outputs and order and outputs[0] != order[-1]):
        b.outputs = [names[o] for o in outputs]
    return b
