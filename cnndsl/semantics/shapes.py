"""PyTorch's output-size formulas, one small pure function per rule (see PYTORCH_RULES.md).

Spatial sizes are plain numbers: a kernel or stride given by a network parameter is used at its compiled
value here (the generated constructor still names the parameter), so that shape arithmetic never grows
into unreadable expressions. An unknown size is None and stays None."""

from __future__ import annotations

import math

from ..ir.values import value


def conv_out(i, k, s, p, d):
    """Conv: floor((in + 2p - d(k-1) - 1) / s) + 1 for an int p; None when in is unknown."""
    if i is None:
        return None
    i, k, s, p, d = value((i, k, s, p, d))
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def conv_fits(i, k, p, d) -> bool:
    """Conv needs the padded input at least as large as the dilated kernel."""
    return i is None or value(i) + 2 * value(p) >= value(d) * (value(k) - 1) + 1


def same_padding(k, d) -> tuple[int, int]:
    """padding='same': d(k-1) in total, the odd element on the right."""
    total = value(d) * (value(k) - 1)
    return total // 2, total - total // 2


def convt_out(i, k, s, p, d, op):
    """ConvTranspose: (in-1)s - 2p + d(k-1) + op + 1."""
    if i is None:
        return None
    i, k, s, p, d, op = value((i, k, s, p, d, op))
    return (i - 1) * s - 2 * p + d * (k - 1) + op + 1


def pool_out(i, k, s, p, d, ceil: bool):
    """Max/avg pool, including ceil mode's rule that the last window must start inside the input."""
    if i is None:
        return None
    i, k, s, p, d = value((i, k, s, p, d))
    eff = d * (k - 1) + 1
    out = (i + 2 * p - eff + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= i + p:
        out = out - 1
    return out


def unpool_out(i, k, s, p):
    """MaxUnpool's default size: (in-1)s + k - 2p."""
    if i is None:
        return None
    i, k, s, p = value((i, k, s, p))
    return (i - 1) * s + k - 2 * p


def upsample_out(i, scale: float):
    """Upsample by a scale factor: floor(in * scale) (computed in double, as PyTorch does)."""
    if i is None:
        return None
    return math.floor(value(i) * float(scale))


def prod(dims):
    """The product of sizes; None when any is unknown."""
    out = 1
    for d in dims:
        if d is None:
            return None
        out = out * d
    return out


def pool_stray_index(ins, k, s, p, d, outs) -> bool:
    """Whether a max pool leaves an index outside its input, which MaxUnpool rejects ("Found an invalid max
    index"). A window that holds no input element (only with dilation: its taps step over the input into the
    padding) keeps PyTorch's initial index, built from the window's starts clamped into the input; that flat
    index can lie past the input's end. Unknown sizes: False."""
    if any(v is None for v in (*ins, *outs)):
        return False
    ins, k, s, p, d, outs = (value(tuple(v)) for v in (ins, k, s, p, d, outs))
    n = len(ins)
    strides = [math.prod(ins[j + 1 :]) for j in range(n)]

    def start(j, o):
        c = o * s[j] - p[j]
        while c < 0:
            c += d[j]
        return c

    def empty(j, o):
        return start(j, o) >= min(o * s[j] - p[j] + d[j] * (k[j] - 1) + 1, ins[j])

    top = [max(start(j, o) for o in range(outs[j])) * strides[j] for j in range(n)]
    for j in range(n):
        hollow = [start(j, o) for o in range(outs[j]) if empty(j, o)]
        if hollow and max(hollow) * strides[j] + sum(top) - top[j] >= math.prod(ins):
            return True
    return False
