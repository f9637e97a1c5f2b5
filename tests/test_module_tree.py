"""Any module at any path: named stages of a group, keys that are no identifiers, and lists of modules, against a
module tree built by hand with OrderedDict, add_module and nn.ModuleList (examples/module_tree.cnn)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

import cnndsl

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "module_tree.cnn"


class Unit(nn.Module):
    def __init__(self, c_in, c, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 3, stride=stride, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(c)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class HandTree(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, 16, 3, padding=1, bias=False)), ("norm0", nn.BatchNorm2d(16)),
            ("relu0", nn.ReLU(inplace=True)), ("pool0", nn.MaxPool2d(2))]))
        self.stage1, self.stage2 = nn.Sequential(), nn.Sequential()
        self.stage1.add_module("block1-0", Unit(16, 16))
        self.stage1.add_module("block1-1", Unit(16, 16))
        self.stage2.add_module("block2-0", Unit(16, 32, stride=2))
        self.stage2.add_module("block2-1", Unit(32, 32))
        self.heads = nn.ModuleList([nn.Sequential(nn.Conv2d(16, 8, 1)), nn.Sequential(nn.Conv2d(32, 8, 1))])
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        t1 = self.stage1(self.features(x))
        t2 = self.stage2(t1)
        h1 = self.heads[0](t1).mean((2, 3))
        h2 = self.heads[1](t2).mean((2, 3))
        return self.classifier(torch.cat([h1, h2], dim=1))


def test_the_tree_loads_a_hand_built_state_dict_strictly_and_computes_the_same():
    torch.manual_seed(0)
    theirs = HandTree().eval()
    for m in theirs.modules():  # statistics that are not the defaults, so that a mix-up would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    ours = cnndsl.load(EXAMPLE, device="cpu").eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))


def test_the_code_is_written_as_torchvision_writes_such_trees():
    code = cnndsl.compile(EXAMPLE)
    assert code.startswith('"""') and "from collections import OrderedDict\n" in code
    assert '("conv0", nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)),' in code
    assert 'OrderedDict([("block1-0", Unit(16, 16)), ("block1-1", Unit(16, 16))])' in code
    assert "self.heads = nn.ModuleList()\n        self.heads.append(" in code
    assert "x = self.heads[1](t2)" in code


@pytest.mark.parametrize("line, message", [
    ("a = conv 8 k1 as inner[1]\n    a | conv 8 k1 as inner[3]", "the list `inner` has entries 1, 3: `inner[0]` is missing"),
    ("a = conv 8 k1 as inner[0]\n    a | conv 8 k1 as inner[0]", "`inner[0]` is given twice"),
    ("a = conv 8 k1 as inner\n    a | conv 8 k1 as inner[0]", "the name `inner` is already taken in this network"),
    ('conv 8 k1 as "a.b"', "`a.b` cannot be a module's key"),
    ('g: conv 8 k1 as c | relu as c', "the name `c` is already taken in this group"),
    ('g: conv 8 k1 as l[0]', "a stage of a named group takes a name, not a list entry"),
])
def test_mistakes_in_module_paths_are_located(line, message):
    with pytest.raises(cnndsl.CheckError) as info:
        cnndsl.check(f"network N:\n    input 3x8x8\n    {line}\n")
    assert info.value.diagnostics[0].message.startswith(message), info.value.diagnostics[0].message
