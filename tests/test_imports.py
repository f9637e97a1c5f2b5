"""Imports: only .cnn files, never echoed when refused, confined to an import root when one is given; the same
file imported twice is one file, parsed once; cycles and loops of symbolic links are located diagnostics."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import cnndsl
import cnndsl.syntax.parser
from cnndsl import cli

SECRET = "TOPSECRET-do-not-show root:x:0:0"
NET = "network N:\n    input 3x8x8\n"


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def diagnostics(src, **kw):
    with pytest.raises(cnndsl.CnnDslError) as e:
        cnndsl.check(src, **kw)
    return e.value


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(f"{SECRET}\nmore {SECRET}\n", encoding="utf-8")
    return path


# -- only .cnn files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["secret.txt", "{abs}", "secret", "."])
def test_an_import_that_does_not_name_a_cnn_file_is_refused_without_reading_it(tmp_path, secret, target):
    target = target.replace("{abs}", str(secret))
    main = tmp_path / "main.cnn"
    main.write_text(f'import "{target}"\n' + NET + "    conv 4 k1\n", encoding="utf-8")
    e = diagnostics(main)
    [d] = e.diagnostics
    assert (d.file, d.line, d.col) == (str(main), 1, 1)
    assert d.message == f'cannot import "{target}": an import must name a .cnn file'
    assert SECRET not in str(e) and "more" not in str(e)


def test_import_of_etc_passwd_never_shows_its_first_line(tmp_path):
    e = diagnostics('import "/etc/passwd"\nconv 3->4 k3\n')
    assert "cannot import" in e.diagnostics[0].message and "root:" not in str(e)


def test_a_cnn_name_that_links_to_another_file_is_refused_without_reading_it(tmp_path, secret):
    (tmp_path / "evil.cnn").symlink_to(secret)
    main = tmp_path / "main.cnn"
    main.write_text('import "evil.cnn"\n' + NET + "    conv 4 k1\n", encoding="utf-8")
    e = diagnostics(main)
    [d] = e.diagnostics
    assert (d.line, d.col) == (1, 1) and "does not end in .cnn" in d.message
    assert SECRET not in str(e)


def test_a_one_word_string_with_a_slash_or_dot_is_a_path_and_shows_nothing_of_a_file_that_is_no_cnn(tmp_path, secret, monkeypatch):
    # the file exists, but its name does not end in .cnn: refused as a path is, before it is read
    for src in (str(secret), "/etc/passwd"):
        with pytest.raises(cnndsl.UsageError) as e:
            cnndsl.check(src)
        assert "does not end in .cnn" in str(e.value) and SECRET not in str(e.value) and "root:" not in str(e.value)
    e = diagnostics("conv 3->4 k3 | nosuchop")  # text with spaces is source text
    assert isinstance(e, cnndsl.CheckError)
    (tmp_path / "net.cnn").write_text("conv 3->4 k3 | relu\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cnndsl.check("net.cnn", input="3x8x8").name == "Net"
    assert cnndsl.check(str(tmp_path / "net.cnn"), input="3x8x8").name == "Net"


def test_a_path_that_does_not_name_a_cnn_file_is_a_usage_error_that_shows_nothing_of_it(tmp_path, secret, capsys):
    """Decision: a file given by path (a PathLike, the CLI's FILE) must be a .cnn file too, as an import must."""
    for src in (secret, Path("/etc/passwd")):
        with pytest.raises(cnndsl.UsageError) as e:
            cnndsl.check(src)
        assert "does not end in .cnn" in str(e.value) and SECRET not in str(e.value) and "root:" not in str(e.value)
    (tmp_path / "link.cnn").symlink_to(secret)
    with pytest.raises(cnndsl.UsageError):
        cnndsl.parse(tmp_path / "link.cnn")
    for command in ("check", "build", "summary"):
        assert cli.main([command, str(secret)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "does not end in .cnn" in err and SECRET not in err


# -- the import root ----------------------------------------------------------------------------------


@pytest.fixture
def rooted(tmp_path):
    """root/ holds main.cnn and lib/b.cnn; outside.cnn lies beside root/."""
    write(tmp_path, {
        "outside.cnn": "block Out(c):\n    conv c k1\n",
        "root/lib/b.cnn": "block B(c):\n    conv c k1\n",
        "root/main.cnn": 'import "lib/b.cnn"\n' + NET + "    B(4)\n",
    })
    return tmp_path


def test_imports_inside_the_root_work_with_every_verb(rooted):
    main, root = rooted / "root" / "main.cnn", rooted / "root"
    assert cnndsl.check(main, import_root=root).output_shape == (4, 8, 8)
    assert "class B(nn.Module)" in cnndsl.compile(main, import_root=str(root))
    assert cnndsl.parse(main, import_root=root).imports[0].path == "lib/b.cnn"
    pytest.importorskip("torch")
    assert type(cnndsl.load(main, import_root=root, device="cpu")).__name__ == "N"


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "symlinked-folder", "missing-outside"])
def test_an_import_outside_the_root_is_a_located_diagnostic(rooted, how):
    root = rooted / "root"
    target = {"dotdot": "../outside.cnn", "absolute": str(rooted / "outside.cnn"), "symlink": "link.cnn",
              "symlinked-folder": "out/outside.cnn", "missing-outside": "../nowhere.cnn"}[how]
    (root / "link.cnn").symlink_to(rooted / "outside.cnn")
    (root / "out").symlink_to(rooted)
    main = root / "main.cnn"
    main.write_text(NET + "    conv 4 k1\n" + f'import "{target}"\n', encoding="utf-8")
    e = diagnostics(main, import_root=root)
    [d] = e.diagnostics
    assert (d.file, d.line, d.col) == (str(main), 4, 1)
    assert d.message == f'cannot import "{target}": it is outside the import root'  # the same whether it exists or not
    assert "--import-root" in d.hint
    if how != "missing-outside":
        assert cnndsl.check(main).output_shape == (4, 8, 8)  # without a root, the same import is allowed


def test_a_nested_import_outside_the_root_is_located_in_the_importing_file(rooted):
    root = rooted / "root"
    (root / "lib" / "b.cnn").write_text('import "../../outside.cnn"\nblock B(c):\n    Out(c)\n', encoding="utf-8")
    [d] = diagnostics(root / "main.cnn", import_root=root).diagnostics
    assert d.file == str(root / "lib" / "b.cnn") and d.line == 1 and "outside the import root" in d.message


def test_source_text_imports_relative_to_the_root(rooted):
    root = rooted / "root"
    text = 'import "lib/b.cnn"\n' + NET + "    B(4)\n"
    assert cnndsl.check(text, import_root=root).output_shape == (4, 8, 8)
    [d] = diagnostics('import "../outside.cnn"\n' + NET + "    Out(4)\n", import_root=root).diagnostics
    assert "outside the import root" in d.message


@pytest.mark.parametrize("bad", ["missing", "file", "loop"])
def test_an_import_root_that_is_not_a_folder_is_a_usage_error(rooted, bad, capsys):
    root = {"missing": rooted / "nowhere", "file": rooted / "outside.cnn", "loop": rooted / "loop"}[bad]
    (rooted / "loop").symlink_to("loop")
    with pytest.raises(cnndsl.UsageError) as e:
        cnndsl.check(rooted / "root" / "main.cnn", import_root=root)
    assert str(e.value).startswith(f"the import root {root}: ")
    assert cli.main(["check", str(rooted / "root" / "main.cnn"), "--import-root", str(root)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("command", ["build", "check", "summary", "graph", "export"])
def test_every_command_that_compiles_takes_import_root(rooted, command, capsys, monkeypatch):
    monkeypatch.chdir(rooted)
    main = rooted / "root" / "main.cnn"
    main.write_text('import "../outside.cnn"\n' + NET + "    Out(4)\n", encoding="utf-8")
    out = {"build": ["-o", "out.py"], "graph": ["-o", "out.dot"], "export": ["-o", "out.onnx"]}.get(command, [])
    assert cli.main([command, str(main), *out, "--import-root", "root"]) == 1
    err = capsys.readouterr().err
    assert "it is outside the import root" in err and err.endswith("1 error\n")
    assert not any(p.name.startswith("out.") for p in rooted.iterdir())
    if command in ("build", "check", "summary", "graph"):
        assert cli.main([command, str(main), *out]) == 0  # without the root, the import is allowed
        capsys.readouterr()


# -- the same file imported twice ---------------------------------------------------------------------


def test_a_diamond_of_imports_is_one_file(tmp_path):
    write(tmp_path, {
        "common.cnn": "block C(c):\n    conv c k1\n",
        "a.cnn": 'import "common.cnn"\nblock A(c):\n    C(c)\n',
        "b.cnn": 'import "./common.cnn"\nblock B(c):\n    C(c)\n',
        "main.cnn": 'import "a.cnn"\nimport "b.cnn"\n' + NET + "    A(4) | B(4)\n",
    })
    code = cnndsl.compile(tmp_path / "main.cnn")
    assert code.count("class C(nn.Module)") == 1


@pytest.mark.parametrize("second", ["./x.cnn", "sub/../x.cnn", "{abs}", "same.cnn", "hard.cnn"])
def test_the_same_file_under_two_names_is_imported_once(tmp_path, second):
    write(tmp_path, {"x.cnn": "block X(c):\n    conv c k1\n", "sub/keep": ""})
    (tmp_path / "same.cnn").symlink_to(tmp_path / "x.cnn")
    os.link(tmp_path / "x.cnn", tmp_path / "hard.cnn")
    second = second.replace("{abs}", str(tmp_path / "x.cnn"))
    main = tmp_path / "main.cnn"
    main.write_text(f'import "x.cnn"\nimport "{second}"\n' + NET + "    X(4)\n", encoding="utf-8")
    assert cnndsl.check(main).output_shape == (4, 8, 8)


def test_a_block_defined_in_two_different_files_is_still_an_error(tmp_path):
    write(tmp_path, {"a.cnn": "block X(c):\n    conv c k1\n", "b.cnn": "block X(c):\n    conv c k3\n",
                     "main.cnn": 'import "a.cnn"\nimport "b.cnn"\n' + NET + "    X(4)\n"})
    [d] = diagnostics(tmp_path / "main.cnn").diagnostics
    assert "defined twice" in d.message and d.file.endswith("b.cnn")


def _lattice(folder: Path, levels: int) -> Path:
    """Level i has two files; each imports both files of level i+1 (two lines); the last level defines blocks."""
    for i in range(levels):
        for side in "ab":
            if i == levels - 1:
                text = f"block Leaf{side.upper()}(c):\n    conv c k1\n"
            else:
                text = f'import "l{i + 1}a.cnn"\nimport "l{i + 1}b.cnn"\n'
            (folder / f"l{i}{side}.cnn").write_text(text, encoding="utf-8")
    main = folder / "main.cnn"
    main.write_text('import "l0a.cnn"\nimport "l0b.cnn"\n' + NET + "    LeafA(4) | LeafB(4)\n", encoding="utf-8")
    return main


def test_an_import_lattice_parses_each_file_once(tmp_path, monkeypatch):
    """16 levels of two files, each importing both files of the next: 2**16 paths, 32 files (and main)."""
    main = _lattice(tmp_path, 16)
    real, parsed = cnndsl.syntax.parser.parse, []

    def counting(source):
        parsed.append(source.name)
        assert len(parsed) <= 200, "the lattice is parsed once per path, not once per file"
        return real(source)

    monkeypatch.setattr(cnndsl.syntax.parser, "parse", counting)
    start = time.perf_counter()
    net = cnndsl.check(main)
    took = time.perf_counter() - start
    assert net.output_shape == (4, 8, 8)
    assert len(parsed) == 33 and len(set(parsed)) == 33  # main once (check's own parse) and each of the 32 once
    assert took < 20, took


def test_a_long_chain_of_imports_is_no_deep_python_stack(tmp_path, monkeypatch):
    n = 1500  # beyond Python's recursion limit (1,000 frames)
    for i in range(n):
        text = f'import "c{i + 1}.cnn"\n' if i < n - 1 else "block End(c):\n    conv c k1\n"
        (tmp_path / f"c{i}.cnn").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # source text imports relative to the working directory
    assert cnndsl.check('import "c0.cnn"\n' + NET + "    End(4)\n").output_shape == (4, 8, 8)


# -- cycles and loops ---------------------------------------------------------------------------------


def test_a_cycle_is_still_a_located_error(tmp_path):
    write(tmp_path, {"a.cnn": 'import "b.cnn"\n' + NET + "    conv 4 k1\n",
                     "b.cnn": '# b\nimport "c.cnn"\nblock B(c):\n    conv c k1\n',
                     "c.cnn": '\n\nimport "./a.cnn"\n'})
    [d] = diagnostics(tmp_path / "a.cnn").diagnostics
    assert d.file == str(tmp_path / "c.cnn") and (d.line, d.col) == (3, 1)
    assert d.message == '`import "./a.cnn"` makes a cycle of imports'


def test_a_cycle_through_a_symbolic_link_is_a_cycle(tmp_path):
    write(tmp_path, {"a.cnn": 'import "b.cnn"\n' + NET + "    conv 4 k1\n", "b.cnn": 'import "alias.cnn"\n'})
    (tmp_path / "alias.cnn").symlink_to(tmp_path / "a.cnn")
    [d] = diagnostics(tmp_path / "a.cnn").diagnostics
    assert "cycle" in d.message and d.file.endswith("b.cnn")


@pytest.mark.parametrize("target", ["loop/x.cnn", "loop.cnn", "./loop/deeper/x.cnn"])
def test_a_loop_of_symbolic_links_in_an_import_is_a_located_diagnostic(tmp_path, target):
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "loop.cnn").symlink_to("loop.cnn")
    main = tmp_path / "main.cnn"
    main.write_text(f'import "{target}"\n' + NET + "    conv 4 k1\n", encoding="utf-8")
    [d] = diagnostics(main).diagnostics
    assert (d.line, d.col) == (1, 1) and "symbolic link" in d.message and "loops" in d.message


def test_the_main_file_behind_a_loop_of_links_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(cnndsl.UsageError):
        cnndsl.check(tmp_path / "loop" / "x.cnn")
    assert cli.main(["check", str(tmp_path / "loop" / "x.cnn")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnndsl: error: cannot read ") and err.count("\n") == 1
