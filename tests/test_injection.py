"""Nothing a user writes runs as code. A corpus of injection attempts, one or more for every place a user
writes text — network, block, layer, value and parameter names, option values, strings, comments, -D and
keyword parameter values, file names, import paths, --network and --input — each tried

  * through cnndsl.load (in this process),
  * through the CLI (`cnndsl build -o`), then running the generated file with python (its smoke run), and
  * by importing the generated file,

in a temporary directory. No marker file may ever appear, and each attempt either gives a diagnostic (or a
usage error) or generated code that holds the text only as validated identifiers and literals: it imports
only torch, calls nothing dangerous, and holds no string the attempt wrote."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import cnndsl

MARK = "PWNED"
SHELL = f"__import__('os').system('touch {MARK}')"
NET = "network Net:\n    input 3x8x8\n    "


@dataclass
class Case:
    id: str
    files: dict[str, str]  # name -> text; the first is the one built
    args: tuple[str, ...] = ()  # extra CLI arguments
    kwargs: dict = field(default_factory=dict)  # extra cnndsl.load arguments
    payload: str | None = None  # text that must not reach the generated code verbatim (None: it is a plain identifier)


def _net(body: str, head: str = "network Net:") -> str:
    return f"{head}\n    input 3x8x8\n    {body}\n"


CORPUS: list[Case] = []


def case(id: str, text: str | dict, *args: str, payload: str | None = None, **kwargs) -> None:
    files = text if isinstance(text, dict) else {"net.cnn": text}
    CORPUS.append(Case(id, files, args, kwargs, payload))


# names: network, block, layer (`as`), value, parameter (network and block)
for name in ["__import__", "os", "exec", "eval", "sys", "__builtins__", "__class__", "__dict__", "_modules", "open",
             "globals", "import", "lambda", "class", "def", "None", "match", "training", "forward", "self", "nn",
             "torch", "build", "super", "object", "type", "print", "x", "in", "Net"]:
    case(f"network-{name}", _net("conv 8 k3", f"network {name}:"))
    case(f"block-{name}", f"block {name}:\n    relu\n" + _net(f"{name}() | conv 8 k3"))
    case(f"layer-{name}", _net(f"conv 8 k3 as {name}"))
    case(f"value-{name}", _net(f"{name} = conv 8 k3\n    relu | cat({name})"))
    case(f"param-{name}", _net(f"conv {name} k3", f"network Net({name}=8):"))
    case(f"blockparam-{name}", f"block B({name}=8):\n    conv {name} k3\n" + _net("B()"))
for name, text in {
    "unicode": "network Réseau:\n    input 3x8x8\n    conv 8 k3\n",
    "unicode-layer": _net("conv 8 k3 as сеть"),
    "fullwidth": _net("conv 8 k3 as ｅｘｅｃ"),
    "semicolon": _net("conv 8 k3", "network Net; import os; os.system('touch PWNED'):"),
    "newline-in-name": "network Net\\\n    :\n    input 3x8x8\n    conv 8 k3\n",
    "dunder-call": f"block B:\n    relu\n" + _net("__import__('os')"),
    "call-as-op": _net("exec('import os')"),
    "getattr-chain": _net("conv 8 k3 as a.b"),
}.items():
    case(f"name-{name}", text, payload="os.system" if "os.system" in text else None)

# option values: enumerations, words and strings
for i, value in enumerate([
    f'"reflect\\"); {SHELL}; (\\""', f"reflect); {SHELL}", f'"reflect"); {SHELL} #"', f'"{SHELL}"',
    "__import__", f'"zeros\' + {SHELL} + \'"', '"reflect\\n import os"', '"circular\u2028import os"', "(reflect, circular)",
]):
    case(f"padding-mode-{i}", _net(f"conv 8 k3 p1 padding_mode={value}"), payload=SHELL)
for i, (op, opt) in enumerate([("gelu", "approximate"), ("upsample", "mode")]):
    case(f"enum-{op}", _net(f'{op} {opt}="tanh\' or {SHELL} or \'"'), payload=SHELL)
    case(f"enum-{op}-word", _net(f"{op} {opt}=__import__"), payload=SHELL)
case("padding-string", _net(f'conv 8 k3 padding="same\' + {SHELL} + \'"'), payload=SHELL)
case("init-string", "network Net:\n    input 3x8x8\n    init conv weight=normal(\"" + SHELL + "\")\n    conv 8 k3\n", payload=SHELL)
case("init-name", "network Net:\n    input 3x8x8\n    init conv weight=__import__(0)\n    conv 8 k3\n", payload=SHELL)
case("init-layer", _net(f'conv 8 k3 init=kaiming_normal(mode="fan_out\' + {SHELL} + \'")'), payload=SHELL)
case("condition-string", f"block B(s=1):\n    add:\n        identity\n        conv in k1 if \"{SHELL}\" == s\n" + _net("B()"), payload=SHELL)
case("input-string", f'network Net:\n    input "{SHELL}"\n    conv 8 k3\n', payload=SHELL)

# comments: the generated file quotes none of them, but try to break out of a docstring or a line
for i, comment in enumerate([
    f'# """ ; {SHELL} ; """', f"# ''' ; {SHELL} ; '''", "# \\", f"# \\\n{SHELL}", f'#"""\n#{SHELL}\n#"""',
    f"# \u2028{SHELL}", f"# \r{SHELL}", f"# \x0c{SHELL}", "# coding: rot13",
]):
    case(f"comment-{i}", f"{comment}\n" + _net(f"conv 8 k3  {comment}").replace("input 3x8x8", f"input 3x8x8 {comment}"), payload=SHELL)

# -D and keyword parameter values: never anything but numbers and booleans
HEAD = "network Net(a=8, p=0.5, f=true):"
for i, value in enumerate([SHELL, "8; import os", "8 or " + SHELL, "[8]", "{'a': 8}", "lambda: 8", "0x10", "8\n" + SHELL,
                           "1e400", "nan", "-inf", "１２", "1_000", " 8 ", "True", "none", ""]):
    case(f"define-{i}", _net("conv a k3 | dropout p", HEAD), "-D", f"a={value}", payload=SHELL)
case("define-name", _net("conv a k3", HEAD), "-D", f"{SHELL}=8", payload=SHELL)
case("define-name-2", _net("conv a k3", HEAD), "-D", "a; import os=8", payload="import os")


class EvilInt(int):
    def __repr__(self) -> str:
        return f"{SHELL} or 8"

    __str__ = __repr__


class EvilFloat(float):
    def __repr__(self) -> str:
        return f"{SHELL} or 0.5"

    __str__ = __repr__


API_VALUES = {"shell": SHELL, "list": [8], "dict": {"a": 8}, "evil-int": EvilInt(8), "evil-float": EvilFloat(0.5),
              "none": None, "bytes": b"8", "complex": 8j, "huge": 10**5000}
for key, value in API_VALUES.items():
    case(f"keyword-{key}", _net("conv a k3 | dropout p", HEAD), payload=SHELL, a=value)
case("params-yaml", {"net.cnn": _net("conv a k3", HEAD), "p.yaml": f"a: !!python/object/apply:os.system ['touch {MARK}']\n"},
     "--params", "p.yaml", payload=SHELL)
case("params-yaml-string", {"net.cnn": _net("conv a k3", HEAD), "p.yaml": f"a: \"{SHELL}\"\n"}, "--params", "p.yaml", payload=SHELL)

# --network and --input
case("network-option", _net("conv 8 k3"), "--network", f"Net; {SHELL}", payload=SHELL, network=f"Net; {SHELL}")
case("input-option", _net("conv 8 k3"), "--input", f"3x8x8; {SHELL}", payload=SHELL, input=f"3x8x8; {SHELL}")

# file names: they reach the module docstring, reduced to [A-Za-z0-9._-]
for i, name in enumerate([f'a"""; {SHELL}; """.cnn', f"a'''; {SHELL}; '''.cnn", f"a\n{SHELL}\n.cnn", "a\\.cnn",
                          "réseau-été.cnn", "a\u2028b.cnn", "-D.cnn", "$(touch PWNED).cnn", "`touch PWNED`.cnn"]):
    case(f"file-name-{i}", {name: "conv 3->8 k3 | relu\n"}, payload=SHELL)

# import paths: read as .cnn text, never run
EVIL_PY = f"import os\nos.system('touch {MARK}')\n"
case("import-python", {"net.cnn": 'import "evil.py"\n' + _net("conv 8 k3"), "evil.py": EVIL_PY}, payload=SHELL)
case("import-quote", {"net.cnn": f'import "x\\"; {SHELL}; \\""\n' + _net("conv 8 k3")}, payload=SHELL)
case("import-dev-zero", {"net.cnn": 'import "/dev/zero"\n' + _net("conv 8 k3")})
case("import-dir", {"net.cnn": 'import "."\n' + _net("conv 8 k3")})
case("import-self", {"net.cnn": 'import "net.cnn"\n' + _net("conv 8 k3")})
case("import-blocks", {"net.cnn": 'import "b.cnn"\n' + _net("B()"),
                       "b.cnn": f"# {SHELL}\nblock B(c=8):\n    conv c k3 as exec\n"})


def _ids(cases):
    return [c.id for c in cases]


def _write(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in case.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder / next(iter(case.files))


DANGEROUS_CALLS = {"exec", "eval", "__import__", "open", "compile", "getattr", "setattr", "globals", "locals", "vars",
                   "breakpoint", "input"}
DANGEROUS_METHODS = {"system", "popen", "remove", "unlink", "rmtree", "Popen", "spawn", "exec_module", "run_path", "__import__"}


def assert_safe_code(code: str, case: Case) -> None:
    """Generated code holds user text only as validated identifiers and literals."""
    tree = ast.parse(code)
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}  # the user's validated names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert all(a.name == "torch" or a.name.startswith("torch.") for a in node.names), ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.module in ("torch", "torchvision.ops"), ast.unparse(node)
        elif isinstance(node, ast.Call):
            func = node.func
            assert not (isinstance(func, ast.Name) and func.id in DANGEROUS_CALLS - classes), ast.unparse(node)
            assert not (isinstance(func, ast.Attribute) and func.attr in DANGEROUS_METHODS), ast.unparse(node)
    docstring = ast.get_docstring(tree, clean=False) or ""
    assert all(c.isascii() and (c.isprintable() or c == "\n") and c not in "\"'\\" for c in docstring), docstring
    rest = code.replace(docstring, "", 1)  # the docstring holds the file name, reduced to [A-Za-z0-9._-]
    if case.payload is not None:
        assert case.payload not in rest
    assert "os.system" not in rest and "touch" not in rest


def _no_marker(*folders: Path) -> None:
    for folder in folders:
        assert not list(folder.rglob(MARK)), f"{MARK} appeared in {folder}"
    assert not Path(MARK).exists()


@pytest.mark.parametrize("case", CORPUS, ids=_ids(CORPUS))
def test_through_load(case: Case, tmp_path, monkeypatch):
    path = _write(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    for src in ([path] if len(case.files) > 1 or "\n" in path.name else [path, path.read_text(encoding="utf-8")]):
        try:
            code = cnndsl.compile(src, **case.kwargs)
        except (cnndsl.CnnDslError, cnndsl.UsageError) as e:
            assert str(e) and "Traceback" not in str(e)
            continue
        assert_safe_code(code, case)
        model = cnndsl.load(src, device="cpu", **case.kwargs)
        assert model is not None
    _no_marker(tmp_path)


def _cli_in_process(folder: Path, argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    from cnndsl import cli

    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(argv)
            except SystemExit as e:  # argparse
                rc = e.code
    finally:
        os.chdir(cwd)
    return rc, err.getvalue()


_RUN_ALL = """
import importlib.util, json, runpy, sys, io, contextlib
results = {}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("generated_" + str(len(results)), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # importing the generated file
    module.build("cpu")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        runpy.run_path(path, run_name="__main__")   # running it, as `python model.py`
    results[path] = out.getvalue()
print(json.dumps(results))
"""


def test_through_the_cli_then_running_and_importing_the_generated_files(tmp_path):
    """Each case built by the CLI in a folder of its own; then one python runs and imports every generated file."""
    built, refused, places = [], 0, set()
    for i, case in enumerate(CORPUS):
        folder = tmp_path / f"case{i}"
        path = _write(case, folder)
        place = case.id.split("-")[0]
        if place not in places:  # a real process for the first case of each place; cli.main in-process for the rest
            places.add(place)
            proc = subprocess.run([sys.executable, "-m", "cnndsl", "build", path.name, "-o", "model.py", *case.args],
                                  cwd=folder, capture_output=True, text=True, timeout=120)
            rc, err = proc.returncode, proc.stderr
        else:
            rc, err = _cli_in_process(folder, ["build", path.name, "-o", "model.py", *case.args])
        assert rc in (0, 1, 2), (case.id, err)
        assert "Traceback" not in err, (case.id, err)
        if rc == 0:
            code = (folder / "model.py").read_text(encoding="utf-8")
            assert_safe_code(code, case)
            built.append(str(folder / "model.py"))
        else:
            refused += 1
            assert not (folder / "model.py").exists(), case.id
        _no_marker(folder)
    assert built and refused  # the corpus has both: names that are fine identifiers, and attempts refused
    proc = subprocess.run([sys.executable, "-c", _RUN_ALL, *built], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)
    assert all(" -> " in out for out in runs.values()), runs
    _no_marker(tmp_path)


def test_the_corpus_covers_every_place():
    places = {c.id.split("-")[0] for c in CORPUS}
    assert {"network", "block", "layer", "value", "param", "blockparam", "padding", "enum", "init", "comment", "define",
            "keyword", "params", "file", "import", "input", "name", "condition"} <= places


@pytest.mark.parametrize("value", [SHELL, "8; import os", "[8", "lambda: 8", "0xff", "os.system", ""])
def test_define_values_that_are_not_numbers_are_usage_errors(value, tmp_path):
    (tmp_path / "net.cnn").write_text(_net("conv a k3", HEAD), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "cnndsl", "build", "net.cnn", "-D", f"a={value}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("cnndsl: error: -D a: the value ") and proc.stderr.endswith("is not a number, true/false, a word, or numbers such as 3,4,6,3 or (3, 4, 6, 3)\n")
    _no_marker(tmp_path)


@pytest.mark.parametrize("key", sorted(API_VALUES))
def test_keyword_values_that_are_not_plain_numbers_are_refused_or_made_plain(key):
    value = API_VALUES[key]
    try:
        code = cnndsl.compile(_net("conv a k3 | dropout p", HEAD), a=value)
    except cnndsl.CnnDslError as e:
        assert "error: " in str(e)  # a diagnostic (it may quote the value: text, never run)
        return
    assert key == "evil-int"  # an int subclass is used as the plain int it is
    assert "def __init__(self, a=8, p=0.5, f=True):" in code and MARK not in code
