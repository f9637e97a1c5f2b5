"""`cnndsl summary --depth N`: the rows below depth N folded into their block or group, as torchinfo's `depth`.

A row's depth is the number of parts of its `state_dict` path (`conv1` is 1, `layer1.0.conv1` is 3). The rows
of `layer1.0.conv1`, `layer1.0.bn1`, ... fold at depth 1 into one row `layer1`, named by the group (`group`) or
the block (`BasicBlock`) it is, with the group's or call's output shape; its parameters, mult-adds and memory
are the sums of its rows', and its receptive field is its last row's (the field of what it returns). Depth 0
folds everything away: only the totals remain."""

from __future__ import annotations

from typing import Optional

from ..ir.network import CheckedNetwork

SUMMED = ("params", "macs", "output_bytes", "saved_bytes")


def owners(net: CheckedNetwork) -> dict[str, tuple[str, Optional[list]]]:
    """Each group's and block call's path -> (what it is: `group` or the block's name, its output shape)."""
    found: dict[str, tuple[str, Optional[list]]] = {}

    def walk(steps, prefix: str) -> None:
        for step in steps:
            if step.kind == "group":
                found[prefix + step.name] = ("group", step.output_shape)
                walk(step.children, f"{prefix}{step.name}.")
            elif step.kind == "call":
                found[prefix + step.name] = (net.instances[step.instance].block, step.output_shape)
                walk(net.instances[step.instance].steps, f"{prefix}{step.name}.")
            else:
                for inner in step.nested():
                    walk(inner, prefix)

    walk(net.steps, "")
    return found


def fold(net: CheckedNetwork, rows: list, depth: int) -> list:
    """The rows at depth N or less, the deeper ones folded into their ancestor at depth N."""
    if depth < 0:
        raise ValueError("the depth is 0 or more")
    made = owners(net)
    out: dict[str, object] = {}
    for row in rows:
        parts = row.name.split(".")
        if len(parts) <= depth:
            out[row.name] = row
            continue
        if depth == 0:
            continue
        key = ".".join(parts[:depth])
        what, shape = made.get(key, ("group", None))
        if key not in out:
            out[key] = row.model_copy(update={"name": key, "op": what, "module": None,
                                              "output_shape": None if shape is None else list(shape)})
            continue
        folded = out[key]
        update = {name: _add(getattr(folded, name), getattr(row, name)) for name in SUMMED}
        update.update(receptive_field=row.receptive_field, jump=row.jump, exact=row.exact,
                      external=folded.external or row.external)
        out[key] = folded.model_copy(update=update)
    return list(out.values())


def _add(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return None if a is None or b is None else a + b
