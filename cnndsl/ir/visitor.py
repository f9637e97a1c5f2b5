"""StepVisitor: the one base class of every pass over a checked network's steps (cnndsl.ir.network).

jinja2's NodeVisitor and sqlglot's generator find one method per node type; a pass here has one method per
step kind, `visit_<kind>`, and a kind it lacks is an error rather than a silent pass-through."""

from __future__ import annotations

STEP_KINDS = ("layer", "call", "group", "merge", "value", "use", "join", "output")


class StepVisitor:
    """A pass over steps, one method per kind: `visit(step, *args)` calls `visit_<kind>(step, *args)` and
    returns what it returns. A kind the pass has no method for raises NotImplementedError: a new kind of step
    cannot be skipped silently by a tool that was never taught it."""

    _methods: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._methods = {kind: getattr(cls, f"visit_{kind}") for kind in STEP_KINDS if hasattr(cls, f"visit_{kind}")}

    def visit(self, step, *args):
        try:
            method = self._methods[step.kind]
        except KeyError:
            raise self._unhandled(step) from None
        return method(self, step, *args)

    def flow(self, steps, cur, *args):
        """Visit steps in order, each reading what the one before returned (the tensor, a field, ...)."""
        methods = self._methods
        for step in steps:
            try:
                method = methods[step.kind]
            except KeyError:
                raise self._unhandled(step) from None
            cur = method(self, step, cur, *args)
        return cur

    def _unhandled(self, step) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} does not handle `{step.kind}` steps (it has no visit_{step.kind})")


class LayerMap(StepVisitor):
    """Steps rebuilt with each layer, at any depth, replaced by `layer(it)` and each block call's step by
    `call(it)` (a call's own layers are its instance's, rebuilt with the instances); a step with nothing
    replaced inside stays the same object. A pass that rewrites layers subclasses it with its own `layer`."""

    def layer(self, layer):
        return layer

    def call(self, step):
        return step

    def steps(self, steps) -> tuple:
        return tuple(self.visit(step) for step in steps)

    def visit_layer(self, step):
        layer = self.layer(step.layer)
        return step if layer is step.layer else step.model_copy(update={"layer": layer})

    def visit_group(self, step):
        return step.model_copy(update={"children": self.steps(step.children)})

    def visit_merge(self, step):
        branches = tuple(b.model_copy(update={"steps": self.steps(b.steps)}) if b.steps else b for b in step.branches)
        return step.model_copy(update={"branches": branches})

    def visit_call(self, step):
        return self.call(step)

    def visit_value(self, step):
        return step

    visit_use = visit_join = visit_output = visit_value


def through_call(step, inst, cur, env: dict, run):
    """A block call's data flow, for any pass: the caller's value for each of the block's named inputs (`input
    top, skip`; the flowing `cur` where none is named), `run(first, inner)` over the block's steps with its inputs
    bound in `inner`, and each of several outputs bound to the caller's name in `env` (`a, b = Two()`). Returns
    what flows on after the call: its last output, or the block's result."""
    inputs = [env[v] if v else cur for v in step.inputs] or [cur]
    inner = dict(zip(inst.inputs, inputs))
    out = run(inputs[0], inner)
    returned = [inner[v] for s in inst.steps if s.kind == "output" for v in s.values] or [out]
    for name, x in zip(step.outputs, returned):
        env[name] = x
    return returned[-1]
