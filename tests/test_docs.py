"""The README and the language reference stay true: their examples are run and compared."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

from cnndsl.ops import REGISTRY

README = (ROOT / "README.md").read_text(encoding="utf-8")
LANGUAGE = (ROOT / "docs" / "LANGUAGE.md").read_text(encoding="utf-8")


def _block_after(marker: str) -> str:
    start = README.index(marker) + len(marker)
    return README[start : README.index("\n$ ", start)] if "\n$ " in README[start:] else ""


def test_every_op_and_alias_is_in_the_language_reference():
    missing = [name for name in REGISTRY if f"`{name}`" not in LANGUAGE]
    assert missing == []


def test_readme_error_example_is_what_the_cli_prints(tmp_path):
    example = re.search(r"```\n\$ cat net.cnn\n(.*?)\$ cnndsl check net.cnn\n(.*?)```", README, re.S)
    source, expected = example.group(1), example.group(2)
    (tmp_path / "net.cnn").write_text(source, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "cnndsl", "check", "net.cnn"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr == expected


def test_readme_check_table_is_what_the_cli_prints():
    expected = re.search(r"`cnndsl check examples/lenet5.cnn` shows every shape:\n\n```\n(.*?)```", README, re.S).group(1)
    run = subprocess.run([sys.executable, "-m", "cnndsl", "check", "examples/lenet5.cnn"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout == expected


def test_readme_summary_excerpt_is_what_the_cli_prints():
    """The README shows the head and the tail of ResNet-18's summary, with `...` between them."""
    excerpt = re.search(r"`cnndsl summary examples/resnet18.cnn`:\n\n```\n(.*?)```", README, re.S).group(1)
    head, tail = excerpt.split("...\n")
    run = subprocess.run([sys.executable, "-m", "cnndsl", "summary", "examples/resnet18.cnn"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(head) and run.stdout.endswith(tail)


def test_readme_generated_code_excerpt_matches_the_compiler():
    import cnndsl

    code = cnndsl.compile(ROOT / "examples" / "lenet5.cnn")
    excerpt = re.search(r"writes:\n\n```python\n(.*?)```", README, re.S).group(1)
    for line in excerpt.splitlines():
        if line.strip() and line.strip() != "...":
            assert line in code.splitlines(), line


def test_readme_resnet_example_is_the_example_file_and_its_block_class_is_generated():
    import cnndsl

    source = re.search(r"```\n(# examples/resnet18.cnn\n.*?)```", README, re.S).group(1)
    example = (ROOT / "examples" / "resnet18.cnn").read_text(encoding="utf-8")
    body = source.split("\n", 1)[1]
    assert body.strip() in example
    code = cnndsl.compile(ROOT / "examples" / "resnet18.cnn").splitlines()
    excerpt = re.search(r"A block becomes one generic class, as you would write it by hand:\n\n```python\n(.*?)```", README, re.S).group(1)
    for line in excerpt.splitlines():
        if line.strip() and line.strip() != "...":
            assert line in code, line


def test_readme_line_count_table_is_current():
    run = subprocess.run([sys.executable, "benchmarks/line_counts.py"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    for table in run.stdout[run.stdout.index("| architecture"):].strip().split("\n\n"):  # architectures, families
        assert table in README


def test_readme_picture_is_what_cnndsl_graph_draws(tmp_path):
    """docs/resnet_block.svg is the drawing of docs/resnet_block.cnn: the same texts (labels and shapes); the
    coordinates are left to the installed Graphviz."""
    assert "](docs/resnet_block.svg)" in README
    out = tmp_path / "block.svg"
    run = subprocess.run([sys.executable, "-m", "cnndsl", "graph", "docs/resnet_block.cnn", "--expand", "-o", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

    def body(text: str) -> list[str]:
        return sorted(re.findall(r"<text[^>]*>(.*?)</text>", text))

    assert body(out.read_text(encoding="utf-8")) == body((ROOT / "docs" / "resnet_block.svg").read_text(encoding="utf-8"))
