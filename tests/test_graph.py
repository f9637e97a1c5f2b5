"""`cnndsl graph`: the DOT text (nodes, shape-labelled edges, merges, clusters), Graphviz's acceptance of it,
and the command line in a subprocess. The DOT is read back with the regular expressions below."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest
from conftest import EXAMPLES

import cnndsl
from cnndsl.errors import UsageError
from cnndsl.tools.graph import quote, render_svg, to_dot

STRING = r'"((?:[^"\\]|\\.)*)"'
NODE = re.compile(rf"^\s*(n\d+) \[label={STRING}, class=\"(\w+)\"", re.M)
EDGE = re.compile(rf"^\s*(n\d+) -> (n\d+) \[label={STRING}(.*)\];$", re.M)
CLUSTER = re.compile(rf"subgraph \"cluster_\d+\" {{\n\s*label={STRING}; style=\"([^\"]*)\"")

SPLIT = """\
block Half:
    split 2:
        conv 8 k3 p1
        identity

network Two:
    input 16x8x8
    a = conv 16 k1 | Half()
    b = a | maxpool 2
    output a, b
"""


class Graph:
    """The DOT text read back: nodes (id -> label, kind), edges (source, target, label, rest), clusters."""

    def __init__(self, dot: str):
        self.nodes = {n: (label.replace("\\n", "\n"), kind) for n, label, kind in NODE.findall(dot)}
        self.edges = EDGE.findall(dot)
        self.clusters = [(label.replace("\\n", "\n"), style) for label, style in CLUSTER.findall(dot)]

    def of(self, kind: str) -> list[str]:
        return [n for n, (_, k) in self.nodes.items() if k == kind]

    def label(self, node: str) -> str:
        return self.nodes[node][0]

    def name(self, node: str) -> str:
        """The label's first line: a layer's or a block call's path."""
        return self.label(node).split("\n")[0]

    def named(self, first_line: str) -> str:
        return next(n for n in self.nodes if self.name(n) == first_line)

    def into(self, node: str) -> list[tuple]:
        return [e for e in self.edges if e[1] == node]

    def out_of(self, node: str) -> list[tuple]:
        return [e for e in self.edges if e[0] == node]


def dims(shape) -> str:
    return "×".join(str(d) for d in shape)


def graph(name: str, expand: bool = False) -> tuple[cnndsl.CheckedNetwork, Graph]:
    net = cnndsl.check(EXAMPLES / f"{name}.cnn")
    return net, Graph(to_dot(net, expand=expand))


def top_level_calls(steps) -> list:
    """The block calls a collapsed picture draws: those outside any block."""
    found = []
    for step in steps:
        if step.kind == "call":
            found.append(step)
        for inner in step.nested():  # a group's children, each branch's steps
            found += top_level_calls(inner)
    return found


CHECKED = ["resnet18", "lenet5", "mobilenet_v2", "unet", "segnet", "squeezenet1_1"]


@pytest.mark.parametrize("name", CHECKED)
def test_expanded_has_one_node_per_layer_and_edges_carry_the_checked_shapes(name):
    net, g = graph(name, expand=True)
    layers = [g.name(n) for n in g.of("layer")]
    assert layers == [layer.name for layer in net.layers]
    assert g.of("block") == []
    for node in g.of("layer"):
        layer = net.layer(g.name(node))
        assert g.out_of(node), layer.name
        for _, _, label, rest in g.out_of(node):
            if "dashed" in rest:  # a pool's indices for an unpool, or a value's size for `pad`/`crop`/`upsample like=`
                assert label in ("indices", "size"), layer.name
            else:
                assert label.split(": ")[-1] == dims(layer.output_shape), layer.name
    start = g.named("input")
    assert [e[2] for e in g.out_of(start)][0] == dims(net.input_shape)
    assert [e[2].split(": ")[-1] for e in g.into(g.named("output"))] == [dims(net.output_shape)]


@pytest.mark.parametrize("name", CHECKED)
def test_collapsed_draws_one_node_per_top_level_block_call(name):
    net, g = graph(name)
    calls = iter(top_level_calls(net.steps))
    for node in g.of("block"):  # copies of a call are one node with their count: `Bottleneck(64) ×2`
        text = g.label(node).split("\n")[1]
        count = int(text.rsplit("×", 1)[1]) if "×" in text else 1
        copies = [next(calls) for _ in range(count)]
        assert all(text.startswith(net.instances[c.instance].block + "(") for c in copies)
        assert [e[2].split(": ")[-1] for e in g.out_of(node)][0] == dims(copies[-1].output_shape)
    assert next(calls, None) is None
    assert not any(style.startswith("rounded,filled") for _, style in g.clusters)  # no block cluster


def test_copies_are_drawn_once_with_their_count_and_expand_draws_each():
    _, g = graph("resnet50")
    assert [g.label(n) for n in g.of("block")] == [
        "layer1.0\nBottleneck(64)", "layer1.1 … layer1.2\nBottleneck(64) ×2",
        "layer2.0\nBottleneck(128, stride=2)", "layer2.1 … layer2.3\nBottleneck(128) ×3",
        "layer3.0\nBottleneck(256, stride=2)", "layer3.1 … layer3.5\nBottleneck(256) ×5",
        "layer4.0\nBottleneck(512, stride=2)", "layer4.1 … layer4.2\nBottleneck(512) ×2"]
    _, g = graph("resnet50", expand=True)
    assert not any("×" in g.label(n) for n in g.nodes) and not any("×" in label for label, _ in g.clusters)
    # a repeated run of layers is one cluster, its copies starting with the layer that has weights
    _, g = graph("vgg16_bn")
    assert ("features.17 … features.22 ×2", "rounded,bold") in g.clusters
    assert ("features.34 … features.42 ×3", "rounded,bold") in g.clusters
    assert len(g.of("layer")) == len(cnndsl.check(EXAMPLES / "vgg16_bn.cnn").layers) - 12  # 3 + 3 + 6 drawn once


def test_png_and_dot_on_standard_output_by_default(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cnndsl", "graph", str(EXAMPLES / "resnet18.cnn")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith('digraph "ResNet18" {'), out.stderr
    png = tmp_path / "net.png"
    done = subprocess.run([sys.executable, "-m", "cnndsl", "graph", str(EXAMPLES / "resnet18.cnn"), "-o", str(png)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "(ResNet18, PNG)" in done.stderr


def test_resnet18_labels_clusters_and_residual_adds():
    net, g = graph("resnet18")
    assert [g.label(n) for n in g.of("layer")] == [
        "conv1\nconv 64 k7 s2 p3", "bn1\nbn", "relu1\nrelu", "maxpool1\nmaxpool 3 s2 p1",
        "avgpool1\ngap", "flatten1\nflatten", "fc\nlinear 1000"]
    assert g.label(g.of("block")[1]) == "layer2.0\nBasicBlock(128, stride=2)"  # (layer1.0 … layer1.1 ×2 before it)
    assert [label for label, _ in g.clusters] == ["layer1", "layer2", "layer3", "layer4"]

    _, g = graph("resnet18", expand=True)
    assert len(g.of("layer")) == len(net.layers)
    assert ("layer2.0: BasicBlock(128, stride=2)", "rounded,filled") in g.clusters
    assert ("layer2.0.downsample", "rounded,dashed") in g.clusters
    adds = g.of("merge")
    assert [g.label(n) for n in adds] == ["add"] * 8
    assert all(len(g.into(n)) == 2 for n in adds)
    sources = [sorted(g.name(e[0]) for e in g.into(n)) for n in adds]
    assert sources[0] == ["layer1.0.bn2", "maxpool1"]  # the identity: an edge from the block's input
    assert sources[1] == ["layer1.0.relu2", "layer1.1.bn2"]
    assert sources[2] == ["layer2.0.bn2", "layer2.0.downsample.1"]
    assert all(e[2] == "128×28×28" for e in g.into(adds[2]))


def test_labels_are_the_layer_as_written_without_its_defaults():
    """A label is the op's own (cnndsl/ops, Label): a pool's stride defaults to its kernel, so `maxpool 3 s1 p1`
    keeps its s1 and `maxpool 2 s2` drops it; tuples equal to a default are defaults; `padding=same` is written
    as the source writes it; positional options go first."""
    net = cnndsl.check("network N:\n    input 4x16x16\n"
                       "    maxpool 3 s1 p1 | maxpool 2 s2 | conv 8 k3x3 s1x1 p0x0 | conv 8 k5 padding=same"
                       " | rrelu lower=0.1 upper=0.3 | softmax dim=1 | lppool 2 3 s3 | upsample scale_factor=2 mode=bilinear"
                       " | layerscale 0.5 | dropout 0.5 | softmax dim=-1\n")
    g = Graph(to_dot(net))
    assert [g.label(n).split("\n")[1] for n in g.of("layer")] == [
        "maxpool 3 s1 p1", "maxpool 2", "conv 8 k3x3", "conv 8 k5 padding=same", "rrelu 0.1 0.3", "softmax", "lppool 2 3",
        "upsample 2 mode=bilinear", "layerscale 0.5", "dropout", "softmax dim=-1"]


def test_mobilenet_v2_draws_only_the_residuals_that_hold():
    _, g = graph("mobilenet_v2", expand=True)
    adds = g.of("merge")
    assert len(adds) == 10  # `add if stride == 1 and in == out`: torchvision's use_res_connect blocks
    for node in adds:
        projection, shortcut = (e[0] for e in g.into(node))
        block = g.name(projection).removesuffix(".conv.3")
        assert shortcut == g.into(g.named(f"{block}.conv.0.0"))[0][0]  # the identity: from the block's input


def test_squeezenet_fire_modules_concatenate_two_branches():
    _, g = graph("squeezenet1_1", expand=True)
    cats = g.of("merge")
    assert len(cats) == 8
    for node in cats:
        sources = [g.name(e[0]).rsplit(".", 1)[1] for e in g.into(node)]
        assert sources == ["expand1x1_activation", "expand3x3_activation"]
    assert g.label(g.named("features.3.expand3x3")) == "features.3.expand3x3\nconv 64 k3 p1"


def test_unet_named_values_are_edges_from_where_they_were_stored():
    _, g = graph("unet")
    cats = g.of("merge")
    assert len(cats) == 2
    assert [(g.name(e[0]), e[2]) for e in g.into(cats[0])] == [
        ("pad1", "32×32×32"), ("enc2", "e2: 32×32×32")]
    assert [(g.name(e[0]), e[2]) for e in g.into(cats[1])] == [
        ("pad2", "16×64×64"), ("enc1", "e1: 16×64×64")]
    assert [e[2] for e in g.out_of(cats[1])] == ["32×64×64"]


def test_segnet_unpools_read_their_pools_indices_on_dashed_edges():
    _, g = graph("segnet")
    dashed = [(g.name(a), g.name(b)) for a, b, _, rest in g.edges if "dashed" in rest]
    assert dashed == [("pool3", "unpool3"), ("pool2", "unpool2"), ("pool1", "unpool1")]
    _, g = graph("segnet", expand=True)
    assert len([e for e in g.edges if "dashed" in e[3]]) == 3


def test_split_and_several_outputs():
    net = cnndsl.check(SPLIT)
    collapsed, g = Graph(to_dot(net)), Graph(to_dot(net, expand=True))
    assert [collapsed.label(n) for n in collapsed.of("block")] == ["half1\nHalf()"]
    split, = g.of("split")
    assert g.label(split) == "split 2" and [e[2] for e in g.out_of(split)] == ["8×8×8", "8×8×8"]
    cat, = g.of("merge")
    assert [g.name(e[0]) for e in g.into(cat)] == ["half1.conv1", "split 2"]
    outputs = [g.label(n) for n in g.of("io")]
    assert outputs == ["input", "output a", "output b"]
    assert [e[2] for e in g.into(g.named("output b"))] == ["b: 16×4×4"]


def test_graphviz_accepts_every_example():
    for path in sorted(EXAMPLES.glob("*.cnn")):
        net = cnndsl.check(path)
        for expand in (False, True):
            svg = render_svg(to_dot(net, expand=expand))
            assert "<svg" in svg and svg.rstrip().endswith("</svg>"), (path.name, expand)


def test_output_is_deterministic():
    net = cnndsl.check(EXAMPLES / "mobilenet_v2.cnn")
    again = cnndsl.check(EXAMPLES / "mobilenet_v2.cnn")
    assert to_dot(net, expand=True) == to_dot(again, expand=True)
    assert render_svg(to_dot(net)) == render_svg(to_dot(again))


def test_text_is_quoted_so_no_label_reaches_dot_unescaped():
    evil = 'x"]; evil -> y [label="\\\nz\\'  # a quote, a backslash, a line break, a final backslash
    assert quote(evil) == '"x\\"]; evil -> y [label=\\"\\\\\\nz\\\\"'
    plain = subprocess.run(["dot", "-Tplain"], input=f"digraph {{ a [label={quote(evil)}]; }}", capture_output=True,
                           text=True, check=True).stdout
    assert [line.split()[1] for line in plain.splitlines() if line.startswith("node ")] == ["a"]


def test_failing_dot_is_a_usage_error_with_its_first_line():
    with pytest.raises(UsageError, match="Graphviz's dot failed: .*syntax error"):
        render_svg("digraph {")


# -- the command line --------------------------------------------------------------------------------------


def run(*args: str, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnndsl", "graph", *args], cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=120)


def test_cli_writes_svg_dot_and_standard_output_the_same_every_time(tmp_path):
    source = EXAMPLES / "resnet18.cnn"
    proc = run(str(source), "-o", "net.svg", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "wrote net.svg (ResNet18, SVG)\n", proc.stderr
    svg = (tmp_path / "net.svg").read_bytes()
    assert svg.startswith(b"<?xml") and b"layer2.0" in svg
    assert run(str(source), "-o", "net.svg", cwd=tmp_path).returncode == 0
    assert (tmp_path / "net.svg").read_bytes() == svg
    expected = to_dot(cnndsl.check(source), expand=True)
    for out in ("net.dot", "net.gv"):
        assert run(str(source), "--expand", "-o", out, cwd=tmp_path).returncode == 0
        assert (tmp_path / out).read_text(encoding="utf-8") == expected
    proc = run(str(source), "--expand", "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == expected and proc.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.dot", "net.gv", "net.svg"]


def test_cli_usage_and_source_errors(tmp_path):
    (tmp_path / "net.cnn").write_text("network Net:\n    input 3x32x32\n    cnov 16 k3\n", encoding="utf-8")
    proc = run(str(EXAMPLES / "lenet5.cnn"), "-o", "net.pdf", cwd=tmp_path)
    assert proc.returncode == 2 and "not 'net.pdf'" in proc.stderr and "dot -Tpdf" in proc.stderr
    proc = run("net.cnn", "-o", "net.svg", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("net.cnn:3:5: error: unknown op `cnov`\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "net.cnn"]


def test_cli_without_graphviz_says_how_to_install_it(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no `dot` anywhere on it
    proc = run(str(EXAMPLES / "lenet5.cnn"), "-o", "net.svg", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "apt-get install graphviz" in proc.stderr and "brew install graphviz" in proc.stderr
    assert run(str(EXAMPLES / "lenet5.cnn"), "-o", "net.dot", cwd=tmp_path, env=env).returncode == 0


def test_graph_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from cnndsl import cli\n"
        f"assert cli.main(['graph', {str(EXAMPLES / 'resnet18.cnn')!r}, '--expand', '-o', 'net.svg']) == 0\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    assert Counter(p.suffix for p in tmp_path.iterdir()) == {".svg": 1}
