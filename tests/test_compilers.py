"""PyTorch's own compilers take the generated modules: torch.jit.script, and torch.compile with
fullgraph=True (no graph break), both matching eager outputs. CI runs the small examples; `pytest -m slow`
runs every example."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

from conftest import EXAMPLES

import cnndsl

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.cnn"))
SMALL = {"oneliner", "lenet5", "ecg1d", "unet", "segnet", "mobile_block", "resnet18"}
CASES = [pytest.param(p, id=p.stem, marks=() if p.stem in SMALL else pytest.mark.slow) for p in EXAMPLE_FILES]


def _model_and_input(path):
    net = cnndsl.check(path)
    given = None
    if (net.total_params or 0) > 5_000_000 or len(net.example_shape) == 4:  # keep the big and the 3-D ones small
        given = (net.example_shape[0], *(32 if len(net.example_shape) == 4 else 64,) * (len(net.example_shape) - 1))
        net = cnndsl.check(path, input=given)
    model = cnndsl.load(path, device="cpu", input=given).eval()
    torch.manual_seed(0)
    x = torch.randn(2, *net.example_shape)
    with torch.no_grad():
        model(x)  # a lazy layer takes its size here, before the compilers see the module
    return model, x


def _same(a, b) -> bool:
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return len(a) == len(b) and all(torch.allclose(p, q, atol=1e-5, rtol=1e-4) for p, q in zip(a, b))


def _scripts(module: torch.nn.Module) -> bool:
    try:
        torch.jit.script(module)
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("path", CASES)
def test_torch_jit_script(path):
    model, x = _model_and_input(path)
    if any(isinstance(m, torch.nn.modules.pooling._MaxUnpoolNd) for m in model.modules()):
        # TorchScript in torch 2.14.1 cannot script nn.MaxUnpool2d at all ("isIntList() INTERNAL ASSERT
        # FAILED"), hand-written or generated: the generated module fails exactly as the plain torch one does
        class HandWritten(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.pool, self.unpool = torch.nn.MaxPool2d(2, return_indices=True), torch.nn.MaxUnpool2d(2)

            def forward(self, x):
                x, indices = self.pool(x)
                return self.unpool(x, indices)

        assert not _scripts(HandWritten()) and not _scripts(model)
        return
    scripted = torch.jit.script(model)
    with torch.no_grad():
        assert _same(scripted(x), model(x))


@pytest.mark.parametrize("path", CASES)
def test_torch_compile_fullgraph(path):
    torch._dynamo.reset()
    model, x = _model_and_input(path)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # a graph break raises
    with torch.no_grad():
        assert _same(compiled(x), model(x))
