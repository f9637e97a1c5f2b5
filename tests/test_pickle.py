"""Loaded models pickle: they live in a synthetic module (`cnndsl_generated_<Class>_<digest>`), which a fresh
interpreter rebuilds from the generated text the pickle carries, through `cnndsl.backend.pytorch.loader._rebuild`.

Checked with real second processes: `torch.save` here and `torch.load` in a fresh interpreter, and
`torch.multiprocessing.spawn` with the model in its arguments; and `copy.deepcopy` in this process.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT

import cnndsl

torch = pytest.importorskip("torch")

CASES = {
    "lenet5": (EXAMPLES / "lenet5.cnn", None),
    "resnet18": (EXAMPLES / "resnet18.cnn", "3x32x32"),  # blocks: nested modules of a second generated class
}


@pytest.fixture(scope="module", autouse=True)
def one_thread_here():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic in every process, so outputs compare exactly
    yield
    torch.set_num_threads(threads)


def trained(name):
    """(model, input, expected output): the batch-norm statistics moved by one training step, so that the
    buffers must travel too, not only the parameters."""
    path, shape = CASES[name]
    torch.manual_seed(0)
    model = cnndsl.load(path, input=shape, device="cpu")
    x = torch.randn(2, *cnndsl.check(path, input=shape).input_shape)
    model.train()
    with torch.no_grad():
        model(x * 2 + 1)
    model.eval()
    with torch.no_grad():
        y = model(x)
    return model, x, y


def fresh_env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_save_then_torch_load_in_a_fresh_process(name, tmp_path):
    model, x, y = trained(name)
    torch.save(model, tmp_path / "model.pt")
    torch.save({"x": x}, tmp_path / "input.pt")
    script = """
import sys, torch
torch.set_num_threads(1)
model = torch.load(sys.argv[1], weights_only=False)
x = torch.load(sys.argv[2])["x"]
with torch.no_grad():
    torch.save(model(x), sys.argv[3])
print(type(model).__module__, type(model).__name__, model.training)
"""
    done = subprocess.run([sys.executable, "-c", script, "model.pt", "input.pt", "output.pt"],
                          cwd=tmp_path, env=fresh_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    module, cls, training = done.stdout.split()
    assert (module, cls, training) == (type(model).__module__, type(model).__name__, "False")
    assert torch.equal(torch.load(tmp_path / "output.pt"), y)


def _spawned(rank, model, x, out):
    torch.set_num_threads(1)
    with torch.no_grad():
        torch.save({"y": model(x), "module": type(model).__module__}, out)


@pytest.mark.parametrize("name", ["resnet18"])
def test_torch_multiprocessing_spawn_takes_the_model_in_its_arguments(name, tmp_path):
    import torch.multiprocessing as mp

    model, x, y = trained(name)
    out = tmp_path / "spawned.pt"
    mp.spawn(_spawned, args=(model, x, str(out)), nprocs=1, join=True, start_method="spawn")
    got = torch.load(out)
    assert got["module"] == type(model).__module__
    assert torch.equal(got["y"], y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_deepcopy_gives_an_equal_independent_model(name):
    model, x, y = trained(name)
    twin = copy.deepcopy(model)
    assert type(twin) is type(model)
    assert [type(m) for m in twin.modules()] == [type(m) for m in model.modules()]
    assert twin.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(twin.state_dict().values(), model.state_dict().values()))
    with torch.no_grad():
        assert torch.equal(twin(x), y)
        next(twin.parameters()).add_(1)
        assert torch.equal(model(x), y)


def test_pickle_in_this_process_and_a_subclass_of_a_generated_class():
    model, x, y = trained("lenet5")
    again = pickle.loads(pickle.dumps(model))
    assert type(again) is type(model)
    with torch.no_grad():
        assert torch.equal(again(x), y)
    sub = _Subclassed.of(model)
    again = pickle.loads(pickle.dumps(sub))  # a user's subclass pickles as any class: by its own name
    assert type(again) is _Subclassed[type(model)]
    with torch.no_grad():
        assert torch.equal(again(x), y)


class _Subclassed:
    """A subclass of a generated class, defined here (importable by its name, unlike the generated one)."""

    classes: dict = {}

    def __class_getitem__(cls, base):
        return cls.classes[base]

    @classmethod
    def of(cls, model):
        base = type(model)
        if base not in cls.classes:
            sub = type("LeNet5Sub", (base,), {"__module__": __name__, "__qualname__": "LeNet5Sub"})
            cls.classes[base] = sub
            globals()["LeNet5Sub"] = sub
        twin = copy.deepcopy(model)
        twin.__class__ = cls.classes[base]
        return twin
