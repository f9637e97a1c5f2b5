"""The torchvision ports in examples/ are the torchvision models, weight for weight.

For each of examples/{resnet18,resnet50,vgg16_bn,alexnet,mobilenet_v2,squeezenet1_1}.cnn, the module cnndsl
builds loads the `state_dict` of `torchvision.models.<name>()` (random weights, nothing downloaded) with
`strict=True` — so every key and every shape is torchvision's — and then computes the same output in eval
mode. Before the transfer the batch norms get random statistics and affine parameters (a fresh torchvision
model has mean 0, variance 1, weight 1, bias 0, which would hide a wrong `eps` or a misplaced norm).
"""

from __future__ import annotations

import pytest
from conftest import EXAMPLES

import cnndsl

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

MODELS = ["resnet18", "resnet50", "vgg16_bn", "alexnet", "mobilenet_v2", "squeezenet1_1"]


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _reference(name: str, **kwargs):
    """torchvision's model with random weights and random batch-norm statistics, in eval mode."""
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_same_weights_same_output(name):
    path = EXAMPLES / f"{name}.cnn"
    torch.manual_seed(0)
    reference = _reference(name)
    model = cnndsl.load(path, device="cpu")
    model.load_state_dict(reference.state_dict(), strict=True)
    model.eval()

    x = torch.randn(1, 3, 224, 224)  # one sample at the real size (batch statistics do not enter eval mode)
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    assert actual.shape == expected.shape == (1, 1000)
    # the same float32 operations in the same order: exact in practice. The relative bound matters where the
    # logits are small (MobileNetV2's are ~0.1): a batch norm with eps=1e-3 instead of 1e-5 stays within 1e-4.
    diff, scale = (actual - expected).abs().max().item(), expected.abs().max().item()
    assert diff <= 1e-4 and diff <= 1e-5 * scale, (diff, scale)

    net = cnndsl.check(path)
    assert _count(model) == _count(reference) == net.total_params
    assert net.output_shape == (1000,)


@pytest.mark.parametrize("name", [m for m in MODELS if m != "vgg16_bn"])  # vgg: 138M parameters, twice
def test_num_classes_is_a_parameter(name):
    """`num_classes` flows into the head: the keys and shapes match torchvision's with 10 classes too."""
    reference = getattr(torchvision.models, name)(weights=None, num_classes=10)
    model = cnndsl.load(EXAMPLES / f"{name}.cnn", device="cpu", num_classes=10)
    model.load_state_dict(reference.state_dict(), strict=True)


@pytest.mark.parametrize("name", MODELS)
def test_generated_source_is_black_stable(name):
    black = pytest.importorskip("black")
    source = cnndsl.compile(EXAMPLES / f"{name}.cnn")
    assert black.format_str(source, mode=black.Mode()) == source
