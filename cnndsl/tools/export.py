"""ONNX export (`cnndsl export net.cnn -o net.onnx`): the checked network's module, in eval mode, through
torch.onnx, with one input named `input`, outputs named `output` (or as the file's `output a, b` names them)
and a dynamic batch dimension named `batch`.

The exporter is torch.onnx's dynamo one (torch.export, then onnxscript's ATen-to-ONNX functions), not the
TorchScript one (`dynamo=False`). Measured with torch 2.14.1, onnxscript 0.7.2 and onnxruntime 1.32.0 on
examples/*.cnn: the dynamo exporter exports every example (lenet5, resnet18, mobilenet_v2, unet, segnet,
deform, video3d, ecg1d), and onnxruntime's outputs agree with PyTorch's within 1e-6 at another batch size.
The TorchScript exporter, deprecated since torch 2.9 ("the feature will be removed"), cannot export segnet
(MaxUnpool2d's output size check fails while tracing) or deform (torchvision::deform_conv2d), and writes an ecg1d that
onnxruntime refuses to run (a dilated `padding=same` conv becomes auto_pad=SAME_UPPER). The dynamo exporter
costs a dependency, onnxscript, and time: seconds per network instead of under one. It writes opset 18 and
newer only (its conversion down fails for every CNN we tried), so an older opset asked for (11, 13, 17 are where
deployments are) goes through the TorchScript exporter, and what that writes is run once in onnxruntime and compared
with the module before it is written.

torch.export runs first, on its own, so that a failure is blamed on its step, and an op that has no ONNX
function is blamed on the layer that uses it (the failing op's node in the exported program knows its module
path, which is the layer's name). Both come out as one error, without a traceback; on success the exporter's
progress lines, warnings and log records are kept off the terminal. Without --weights the weights are the
module's own initialisation with torch's seed 0, so the same command writes the same file.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from ..errors import CnnDslError, Diagnostic, Source, UsageError
from ..ir.network import CheckedLayer, CheckedNetwork, OutputStep

INPUT_NAME = "input"
BATCH_NAME = "batch"
EXAMPLE_BATCH = 2  # not 0 or 1, which torch.export would specialise the batch dimension to
LISTED = 3  # keys named in a weights mismatch before "and N more"
MIN_OPSET, DYNAMO_OPSET, MAX_OPSET = 7, 18, 23  # below 18 the TorchScript exporter writes the opset asked for


def export_onnx(net: CheckedNetwork, path: str | os.PathLike, *, weights: str | os.PathLike | None = None,
                opset: int | None = None):
    """Write `net` to the ONNX file `path` (atomically) and return the nn.Module it exported, in eval mode.

    `weights` is a state_dict saved with torch.save (random weights without it); `opset` the ONNX opset
    version (torch.onnx's default without it). Raises UsageError (missing packages, no input shape, weights
    that do not fit, an export torch.onnx cannot do) or CnnDslError (an op without ONNX support, at its layer).
    """
    _require("torch", "onnx", "onnxscript")
    import torch

    if net.input_shape is None:
        raise UsageError(f"{net.name} has no input shape, and ONNX export needs one: give --input CxHxW "
                         "(or declare `input` in the file)")
    module = _module(net, weights)
    example = torch.randn(EXAMPLE_BATCH, *net.input_shape)
    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"ONNX opset {opset} is not one cnndsl exports: choose {MIN_OPSET} to {MAX_OPSET}")
    with _quiet():
        if opset is not None and opset < DYNAMO_OPSET:
            data = _traced_onnx(net, module, example, opset)
        else:
            program = _exported_program(net, module, example)
            data = _serialized(net, _to_onnx(net, program, opset))
    _write_bytes(path, data)
    return module


def _traced_onnx(net: CheckedNetwork, module, example, opset: int) -> bytes:
    """The ONNX file's bytes at an opset older than the dynamo exporter writes (it converts down from 18 only
    where onnx's version converter can, which fails for every CNN we tried): through torch.onnx's TorchScript
    exporter, which writes opsets 7 to 20 itself. What it writes is run once in onnxruntime (where installed)
    and compared with the module, since that exporter is known to write files that differ or do not run."""
    import torch

    names = output_names(net)
    axes = {name: {0: BATCH_NAME} for name in [INPUT_NAME, *names]}
    f = io.BytesIO()
    try:
        torch.onnx.export(module, (example,), f, opset_version=opset, dynamo=False, input_names=[INPUT_NAME],
                          output_names=names, dynamic_axes=axes)
    except Exception as e:  # the TorchScript exporter raises many kinds (an unsupported op, a failed trace)
        raise UsageError(f"cannot export {net.name} to ONNX opset {opset}: {_first_line(_root_cause(e)).rstrip('.')}; "
                         f"opset {DYNAMO_OPSET} or newer exports it another way, through torch.export") from None
    data = f.getvalue()
    problem = _disagreement(module, data, example)
    if problem:
        raise UsageError(f"cannot export {net.name} to ONNX opset {opset}: {problem}; "
                         f"opset {DYNAMO_OPSET} or newer exports it another way, through torch.export")
    return data


def _disagreement(module, data: bytes, example) -> str | None:
    """Why the ONNX file `data` does not compute what `module` does on `example` (None where it does, or where
    onnxruntime is not installed to run it)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    import numpy as np
    import torch

    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # its own log of the failure would reach the terminal: the message says it
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        got = session.run(None, {INPUT_NAME: example.numpy()})
    except Exception as e:  # onnxruntime refuses a model it cannot load or run
        return f"onnxruntime cannot run what torch.onnx wrote ({_first_line(e)})"
    with torch.no_grad():
        expected = module(example)
    expected = list(expected.values()) if isinstance(expected, dict) else list(expected) if isinstance(expected, tuple) else [expected]
    for want, have in zip(expected, got):
        if want.shape != have.shape or not np.allclose(have, want.numpy(), rtol=1e-3, atol=1e-4):
            return "what torch.onnx wrote computes another result in onnxruntime"
    return None


def _require(*packages: str) -> None:
    """UsageError naming the install command when one of `packages` cannot be imported."""
    for name in packages:
        try:
            importlib.import_module(name)
        except ImportError:
            raise UsageError(f"ONNX export needs the package {name}: pip install onnx onnxscript "
                             "(the `onnx` extra of cnndsl)") from None


def _module(net: CheckedNetwork, weights: str | os.PathLike | None):
    """The network's module on the CPU, in eval mode, with `weights` or its own initialisation (seed 0)."""
    import torch

    from ..backend.pytorch.loader import load_checked

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = load_checked(net, "cpu")
    if weights is not None:
        _load_weights(module, weights, net.name)
    return module.eval()


def _load_weights(module, path: str | os.PathLike, name: str) -> None:
    """Load a state_dict file into `module`; UsageError, in one line, when it is unreadable or does not fit."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception:  # a pickled model, a file torch.save did not write: torch.load raises what its readers raise
        raise UsageError(f"{path} is not a state_dict saved with torch.save (torch.load with weights_only=True "
                         "refuses it): save `model.state_dict()`") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path} holds a {type(state).__name__}, not a state_dict (a mapping of names to tensors): "
                         "save `model.state_dict()`")
    problems = _mismatches(module.state_dict(), state)
    if problems:
        raise UsageError(f"{path} does not fit {name}: {'; '.join(problems)}")
    module.load_state_dict(state)


def _mismatches(expected: Mapping, found: Mapping) -> list[str]:
    """What keeps `found` from loading where `expected` is: missing and unexpected keys, shapes that differ."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} is {_shape(found[k])} in the file, {_shape(expected[k])} in the network"
              for k in expected if k in found and found[k].shape != expected[k].shape]
    kinds = (("missing key", "missing keys", missing), ("unexpected key", "unexpected keys", unexpected),
             ("shape mismatch", "shape mismatches", shapes))
    return [f"{len(items)} {one if len(items) == 1 else many}: {_listed(items)}" for one, many, items in kinds if items]


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED])
    return shown if len(items) <= LISTED else f"{shown} and {len(items) - LISTED} more"


def _shape(tensor) -> str:
    return str(tuple(tensor.shape))


@contextlib.contextmanager
def _quiet():
    """torch.export's and torch.onnx's progress lines, warnings and log records, kept off the terminal."""
    previous = logging.root.manager.disable
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(previous)


def _exported_program(net: CheckedNetwork, module, example):
    """torch.export's program of `module`, its batch dimension dynamic."""
    import torch

    batch = torch.export.Dim(BATCH_NAME)
    try:
        return torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False)
    except Exception as e:  # torch.export raises many kinds (user errors, unsupported Python, constraint violations)
        raise UsageError(f"cannot export {net.name} to ONNX: torch.export cannot trace it: {_first_line(e)}") from None


def _to_onnx(net: CheckedNetwork, program, opset: int | None):
    """torch.onnx's ONNXProgram of an exported program, with named inputs and outputs."""
    import torch

    try:
        onnx_program = torch.onnx.export(program, (), input_names=[INPUT_NAME], output_names=output_names(net),
                                         opset_version=opset, dynamo=True, verbose=False)
    except Exception as e:  # torch.onnx's errors wrap their cause (an op without an ONNX function, an internal error)
        raise _conversion_error(net, program, e) from None
    onnx_program.rename_axes({onnx_program.model.graph.inputs[0].shape[0]: BATCH_NAME})  # torch.export's `s77`
    written = onnx_program.model.opset_imports.get("")
    if opset is not None and written != opset:  # a failed version conversion is only a warning to torch.onnx
        raise UsageError(f"torch.onnx cannot convert {net.name} to ONNX opset {opset} (it made opset {written}): "
                         "give another --opset, or none for torch.onnx's default")
    return onnx_program


def output_names(net: CheckedNetwork) -> list[str]:
    """The ONNX outputs' names: the keys of `output p2 as "0", pool`, the names of `output a, b`, else `output`, or
    `output_0`, `output_1`, ..."""
    named = next((list(step.keys or step.values) for step in net.steps if isinstance(step, OutputStep)), [])
    if len(named) == len(net.outputs) and len(set(named)) == len(named):  # `output a, a` is allowed
        return named
    return ["output"] if len(net.outputs) == 1 else [f"output_{i}" for i in range(len(net.outputs))]


def signature(net: CheckedNetwork) -> str:
    """The ONNX graph's inputs and outputs: `input (batch, 1, 28, 28) -> output (batch, 10)`."""
    def shape(dims) -> str:
        return f"({', '.join([BATCH_NAME, *('?' if d is None else str(d) for d in dims)])})"

    outputs = ", ".join(f"{name} {shape(dims)}" for name, dims in zip(output_names(net), net.outputs))
    return f"{INPUT_NAME} {shape(net.input_shape)} -> {outputs}"


def _conversion_error(net: CheckedNetwork, program, error: Exception) -> Exception:
    """The error to show for a failed conversion: at the layer whose op has no ONNX function, when known."""
    cause = _root_cause(error)
    found = re.search(r"OpOverload\(op='([\w.]+)'", str(cause))
    if found is None:
        return UsageError(f"cannot export {net.name} to ONNX: {_first_line(cause)}")
    op = found.group(1)
    message = f"torch.onnx has no ONNX function for {op}"
    layer = _layer_using(net, program, op)
    if layer is None:
        return UsageError(f"cannot export {net.name} to ONNX: {message}")
    text = f"cannot export layer `{layer.name}` ({layer.op}, {layer.module}) to ONNX: {message}"
    source = _source_of(net, layer)
    if source is None:
        return UsageError(text)
    return CnnDslError([Diagnostic(message=text, file=source.name, span=layer.span,
                                   line_text=source.line_text(layer.span.line),
                                   hint="replace it with an op that ONNX supports, or use the PyTorch module")])


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _layer_using(net: CheckedNetwork, program, op: str) -> CheckedLayer | None:
    """The layer whose module calls `op` (`aten.rrelu_with_noise_functional`) in the exported program.

    The converter decomposes the program before it fails, so the op may be a decomposition's: a node of the
    program whose op starts its name (`aten.rrelu`) stands in for it, the longest such name first."""
    stem = op.split(".")[1] if "." in op else op
    candidates = []
    for node in program.graph.nodes:
        parts = str(node.target).split(".")
        if node.op == "call_function" and len(parts) >= 2 and stem.startswith(parts[1]):
            candidates.append((len(parts[1]), node))
    names = {layer.name for layer in net.layers}
    for _, node in sorted(candidates, key=lambda c: -c[0]):
        for path, _type in reversed(list(node.meta.get("nn_module_stack", {}).values())):
            if path in names:
                return net.layer(path)
    return None


def _source_of(net: CheckedNetwork, layer: CheckedLayer) -> Source | None:
    """The source the layer's span is in: its own file (an imported block's, for the block's layers)."""
    name = layer.file or net.file
    if name.startswith("<"):
        return Source(name=name, text="")
    try:
        return Source(name=name, text=Path(name).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError):
        return Source(name=name, text="")


def _serialized(net: CheckedNetwork, onnx_program) -> bytes:
    """The ONNX file's bytes, weights included."""
    from google.protobuf.message import EncodeError

    try:
        return onnx_program.model_proto.SerializeToString()
    except EncodeError:  # protobuf writes no message over 2 GB
        raise UsageError(f"cannot write {net.name} as one ONNX file: its weights take more than the 2 GB protobuf "
                         "allows") from None


def _write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically, as `cnndsl build` writes (cnndsl.files.write_atomically: through a
    temporary file in the same folder, through a symbolic link to the file it points to)."""
    from ..files import write_atomically

    try:
        write_atomically(path, data)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None


def _first_line(error: BaseException) -> str:
    """An exception's first non-empty line, without terminal colour codes, or its type's name."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
