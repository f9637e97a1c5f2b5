"""The command line: the only place that prints and picks exit codes (0 ok, 1 diagnostics, 2 usage)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from . import __version__, _check_with_files, read_source
from .errors import CnnDslError, UsageError
from .files import file_key, real_path, write_atomically

EXIT_OK, EXIT_DIAGNOSTICS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: exit 2, as ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"cnndsl: error: {message}\n")


def _arguments(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. Given the arguments, only the command they name gets its own arguments (the
    others keep their names and help, all that `cnndsl --help` and a wrong command's error show): argparse
    spends about 0.1 ms on each argument it is given, a twentieth of a build's whole budget for them all."""
    args = sys.argv[1:] if argv is None else argv
    named = next((a for a in args if not a.startswith("-")), None)
    full = named not in COMMANDS

    def wanted(command: str) -> bool:
        return full or command == named

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("file", help="the .cnn source")
    common.add_argument("--input", metavar="CxHxW", help="the input size, e.g. 3x32x32 (overrides the file's `input`)")
    common.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE", help="set a network parameter")
    common.add_argument("--params", metavar="FILE.yaml", help="network parameters from a YAML mapping (-D wins)")
    common.add_argument("--network", metavar="NAME", help="the network to use when the file defines several")
    common.add_argument("--import-root", metavar="DIR", help="refuse imports that resolve (symbolic links followed) outside DIR")
    p = _Parser(prog="cnndsl", description="Compile .cnn network descriptions to PyTorch.")
    p.add_argument("--version", action="version", version=f"cnndsl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    b = sub.add_parser("build", parents=[common] if wanted("build") else [], help="write the generated PyTorch module",
                       description="Check a .cnn file and write its PyTorch module.")
    if wanted("build"):
        b.add_argument("-o", "--output", default="-", metavar="OUT", help="the file to write (default -, standard output)")
    c = sub.add_parser("check", parents=[common] if wanted("check") else [], help="check a file and print its layers and shapes",
                       description="Check a .cnn file and print each layer's output shape and parameters.")
    if wanted("check"):
        c.add_argument("--format", choices=("text", "json"), default="text",
                       help="text (the layers, or the diagnostics on standard error) or json: the diagnostics as records on "
                            "standard output (file, range, severity, message, hint, notes)")
        c.add_argument("--werror", action="store_true", help="treat warnings as errors (exit 1 when there are any)")
    ls = sub.add_parser("lsp", help="run the language server (LSP over standard input and output; needs the `lsp` extra)",
                        description="Serve the Language Server Protocol on standard input and output, for editors: "
                                    "diagnostics, hovers with shapes, inlay hints, navigation, completion, formatting.")
    if wanted("lsp"):
        ls.add_argument("--stdio", action="store_true", help="talk over standard input and output (the only transport; "
                        "accepted because editors' clients pass it)")
    s = sub.add_parser("summary", parents=[common] if wanted("summary") else [],
                       help="a table of shapes, parameters, mult-adds and receptive fields",
                       description="Print each layer's output shape, parameters, mult-adds and receptive field, and the "
                                   "totals, computed from the source alone (no forward pass).")
    if wanted("summary"):
        s.add_argument("--format", choices=("table", "json", "yaml"), default="table", help="the output format (default table)")
        s.add_argument("--batch", type=_positive, default=1, metavar="N", help="the batch size of the memory figures (default 1)")
        s.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                       help="the activations' dtype of the memory figures (default float32)")
        s.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                       help="where the training step runs: what a dropout mask and a norm's statistics take (default cuda)")
        s.add_argument("--depth", type=_natural, metavar="N", help="fold the rows below depth N into their block or group")
    g = sub.add_parser("graph", parents=[common] if wanted("graph") else [], help="draw the network (SVG through Graphviz, or DOT)",
                       description="Draw the network: layers as nodes, tensors as edges labelled with their shapes, "
                                   "blocks as clusters, copies of a layer or block drawn once with their count. The "
                                   "output's suffix picks the format: .svg or .png (need Graphviz's `dot`), or .dot/.gv "
                                   "for the DOT text (the default, to standard output).")
    if wanted("graph"):
        g.add_argument("-o", "--output", default="-", metavar="OUT.svg|OUT.png|OUT.dot",
                       help="the picture to write (default -: DOT to standard output)")
        g.add_argument("--expand", action="store_true",
                       help="draw the layers inside each block instead of one node per block, and every copy")
    e = sub.add_parser("export", parents=[common] if wanted("export") else [],
                       help="export the network to ONNX (needs torch, onnx and onnxscript)",
                       description="Export the network to an ONNX file with named inputs and outputs and a dynamic batch "
                                   "dimension, through torch.onnx (random weights, or --weights).")
    if wanted("export"):
        e.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the ONNX file to write")
        e.add_argument("--weights", metavar="FILE.pt", help="a state_dict saved with torch.save to export with")
        e.add_argument("--opset", type=int, metavar="N", help="the ONNX opset version (default: torch.onnx's)")
    f = sub.add_parser("fmt", help="format .cnn files in place (canonical layout, comments kept)",
                       description="Rewrite .cnn files in their canonical layout, keeping every comment.")
    if wanted("fmt"):
        f.add_argument("files", nargs="+", metavar="FILE", help="the .cnn files to format; a folder means every .cnn file "
                       "under it (hidden folders skipped); - reads standard input and writes the result to standard output")
        f.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file would change")
        f.add_argument("--diff", action="store_true", help="change nothing; print a unified diff of the changes "
                       "(with --check, also exit 1 when there are some)")
    d = sub.add_parser("decompile", help="a PyTorch model back to a .cnn file (needs torch)",
                       description="Trace a PyTorch model and write it as a .cnn file: its blocks, named groups, merges and "
                                   "repetitions recovered, its module names kept so that the file loads the model's "
                                   "state_dict strictly. The initialisation is not recovered.")
    if wanted("decompile"):
        d.add_argument("target", metavar="TARGET", help="package.module:callable (torchvision.models:resnet50) or "
                                                        "path/to/model.py:ClassName")
        d.add_argument("-o", "--output", default="-", metavar="OUT.cnn", help="the file to write (default -, standard output)")
        d.add_argument("--input", default="3x224x224", metavar="CxHxW", help="the input size without the batch (default 3x224x224)")
        d.add_argument("--arg", dest="constructor", action="append", default=[], metavar="KEY=VALUE",
                       help="a constructor argument, a Python literal (--arg num_classes=10); repeatable")
        d.add_argument("--network", metavar="NAME", help="the network's name (default: the model's class)")
        d.add_argument("--verify", action="store_true", help="load the result, load the model's state_dict into it strictly "
                                                             "and compare the outputs; exit 1 when they differ")
    return p


def _params(args) -> dict[str, Any]:
    """The parameter values of --params FILE and -D NAME=VALUE (cnndsl/params.py); -D wins."""
    if not args.params and not args.defines:
        return {}
    from . import params

    values = params.read_file(args.params) if args.params else {}
    for item in args.defines:
        name, v = params.define(item)
        values[name] = v
    return values


def _output(path: str, inputs: list) -> None:
    """UsageError unless `path` can be written: its folder exists, no loop of symbolic links is in the way, and
    it is none of the command's inputs (the source and every file it imports, by inode: links included)."""
    try:
        out_dir = real_path(path).parent
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    if not out_dir.is_dir():
        raise UsageError(f"cannot write {path}: the folder {out_dir} does not exist")
    _not_an_input(path, inputs)


def _not_an_input(path: str, inputs: list) -> None:
    """UsageError when `path` is the same file as one of `inputs` (the source first, then what it imports)."""
    key = file_key(path)
    if key is not None:
        for i, name in enumerate(inputs):
            if file_key(name) == key:
                what = "the source file" if i == 0 else "a file that the source imports"
                raise UsageError(f"cannot write {path}: it is {what}, an input of this command; choose another output")


def _write(path: str, text: str, what: str, inputs: list) -> None:
    """Write a result to `path` atomically, or to standard output for `-`."""
    if path == "-":
        sys.stdout.write(text)
        return
    _output(path, inputs)
    try:
        write_atomically(path, text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    print(f"wrote {path} ({what})", file=sys.stderr)


def _checked(args):
    """The checked network; `args.inputs` receives every file read (the source first)."""
    output = getattr(args, "output", "-")
    if output != "-":  # before compiling: `cnndsl build net.cnn -o net.cnn` is a usage error whatever net.cnn holds
        _not_an_input(output, [args.file])
    args.inputs = []
    net = _check_with_files(Path(args.file), args.network, args.input, args.import_root, _params(args), args.inputs)
    _print_warnings(net.warnings)
    return net


def _print_warnings(warnings) -> None:
    """The first MAX_ERRORS warnings, then how many more there are."""
    from .errors import MAX_ERRORS

    for w in warnings[:MAX_ERRORS]:
        print(w.render(), file=sys.stderr)
    if len(warnings) > MAX_ERRORS:
        print(f"... and {len(warnings) - MAX_ERRORS:,} more warnings (the checked network's `warnings` has them all)", file=sys.stderr)


def _build(args) -> int:
    from .backend.pytorch.codegen import generate

    net = _checked(args)
    _write(args.output, generate(net), f"{net.name}, {len(net.layers)} layers", args.inputs)
    return EXIT_OK


def _check(args) -> int:
    """One network (--network), or every network of the file and its blocks that none calls (a library: blocks only)."""
    if args.format == "json":
        return _check_json(args)
    nets = _every_network(args)
    _print_warnings([w for net in nets for w in net.warnings])
    for net in nets:
        print(net.table())
        print(f"ok: {net.name}: {len(net.layers)} layers")
    if not nets:
        print(f"ok: {args.file}: no network (its blocks checked as far as they can be without a call)")
    count = sum(len(net.warnings) for net in nets)
    if args.werror and count:
        print(f"cnndsl: error: {count} warning{'s' * (count != 1)}, made errors by --werror", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    return EXIT_OK


def _every_network(args) -> list:
    """The network --network names, or every network of the file (none for a library); their warnings unprinted."""
    if args.network is not None:
        return [_check_with_files(Path(args.file), args.network, args.input, args.import_root, _params(args))]
    from . import _check_all_with_files

    return _check_all_with_files(Path(args.file), args.input, args.import_root, _params(args))


def _check_json(args) -> int:
    """The diagnostics as JSON records on standard output, for CI and other tools; exit 1 on any error (or any
    warning, with --werror). Lines and columns are 1-based, the end column exclusive, as in the text output."""
    import json

    try:
        diagnostics = tuple(w for net in _every_network(args) for w in net.warnings)
    except CnnDslError as e:
        diagnostics = (*e.diagnostics, *getattr(e, "warnings", ()))  # a check's warnings before its errors too
    print(json.dumps([_record(d) for d in diagnostics], indent=2))
    failed = any(d.severity == "error" for d in diagnostics) or (args.werror and diagnostics)
    return EXIT_DIAGNOSTICS if failed else EXIT_OK


def _record(d) -> dict:
    span = d.span
    return {
        "file": d.file,
        "range": {"start": {"line": span.line, "column": span.col}, "end": {"line": span.end_line, "column": span.end_col}},
        "severity": d.severity,
        "message": d.message,
        "hint": d.hint,
        "notes": [_record(n) for n in d.notes],
    }


def _lsp(args) -> int:
    from .lsp import main as serve

    return serve()


def _natural(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {text!r}")
    return int(text)


def _summary(args) -> int:
    from .tools.summary import render, summarize

    summary = summarize(_checked(args), batch=args.batch, dtype=args.dtype, device=args.device, depth=args.depth)
    print(render(summary, args.format), end="")
    return EXIT_OK


def _graph(args) -> int:
    from .tools.graph import render, to_dot

    suffix = Path(args.output).suffix.lower()
    if args.output != "-" and suffix not in (".svg", ".png", ".dot", ".gv"):
        raise UsageError(f"cnndsl graph writes SVG (.svg), PNG (.png) or DOT (.dot, .gv, or - for standard output), not "
                         f"{args.output!r}; for another format, write the .dot and run Graphviz, e.g. `dot -Tpdf net.dot -o net.pdf`")
    net = _checked(args)
    dot = to_dot(net, expand=args.expand)
    fmt = suffix[1:] if suffix in (".svg", ".png") and args.output != "-" else None
    _write(args.output, dot if fmt is None else render(dot, fmt) if fmt == "png" else render(dot, fmt).decode("utf-8"),
           f"{net.name}, {(fmt or 'dot').upper()}", args.inputs)
    return EXIT_OK


def _export(args) -> int:
    from .tools.export import export_onnx, signature

    if Path(args.output).suffix.lower() != ".onnx":
        raise UsageError(f"the ONNX file's name must end in .onnx, got {args.output!r}")
    net = _checked(args)
    _output(args.output, args.inputs)
    export_onnx(net, args.output, weights=args.weights, opset=args.opset)
    print(f"wrote {args.output} ({net.name}, ONNX: {signature(net)})", file=sys.stderr)
    return EXIT_OK


def _fmt(args) -> int:
    """Format each file in place, or only say which would change (--check) or print the diff (--diff). A file
    that does not parse is left as it is and the others are still formatted; the exit status is the worst."""
    status = EXIT_OK
    for path in _cnn_files(args.files):
        try:
            status = max(status, _fmt_stdin(args.check, args.diff) if path == "-" else _fmt_file(path, args.check, args.diff))
        except CnnDslError as e:
            _report(e)
            status = max(status, EXIT_DIAGNOSTICS)
        except UsageError as e:
            print(f"cnndsl: error: {e}", file=sys.stderr)
            status = EXIT_USAGE
    return status


def _cnn_files(names: list[str]) -> list[str]:
    """The files named, a folder replaced by the .cnn files under it (sorted; hidden folders such as .git and
    .venv skipped), each once."""
    found: list[str] = []
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            under = sorted(p for p in path.rglob("*.cnn")
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not under:
                print(f"cnndsl: no .cnn files under {name}", file=sys.stderr)
            found += [str(p) for p in under]
        else:
            found.append(name)
    return list(dict.fromkeys(found))


def _fmt_stdin(check: bool, diff: bool) -> int:
    """`cnndsl fmt -`: standard input formatted to standard output (or only checked, or its diff)."""
    from .tools.fmt import format_source

    before = sys.stdin.read()
    after = format_source(before, "<stdin>")
    if not (check or diff):
        sys.stdout.write(after)
        return EXIT_OK
    return _changed("-", before, after, check, diff)


def _changed(path: str, before: str, after: str, check: bool, diff: bool) -> int:
    """Report a file that would change: its diff (--diff) and/or a line and exit status 1 (--check)."""
    from .tools.fmt import unified_diff

    if before == after:
        return EXIT_OK
    if diff:
        sys.stdout.write(unified_diff(path, before, after))
    if check:
        print(f"would reformat {path}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    return EXIT_OK


def _fmt_file(path: str, check: bool, diff: bool) -> int:
    from .tools.fmt import format_source

    source = read_source(Path(path))  # what `cnndsl build` reads, with its checks (size, UTF-8, text)
    after = format_source(source.text, source.name)
    try:
        before = Path(path).read_bytes().decode("utf-8")  # the BOM and line endings, which read_source hides
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    if before == after:
        return EXIT_OK
    if check or diff:
        return _changed(path, before, after, check, diff)
    try:
        write_atomically(path, after)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    print(f"reformatted {path}", file=sys.stderr)
    return EXIT_OK


def _decompile(args) -> int:
    import shlex

    from . import _input_shape
    from .decompile import DecompileError, decompile
    from .decompile.target import arguments, load_target
    from .decompile.verify import verify

    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("cnndsl decompile needs torch (and the model's own packages): pip install torch") from None
    shape = _input_shape(args.input)
    if args.output != "-" and not args.output.endswith(".cnn"):
        raise UsageError(f"the decompiled file's name must end in .cnn, got {args.output!r}")
    model = load_target(args.target, arguments(args.constructor))
    words = ["cnndsl", "decompile", args.target, "--input", "x".join(map(str, shape))]
    words += [w for item in args.constructor for w in ("--arg", item)] + (["--network", args.network] if args.network else [])
    try:
        text = decompile(model, input=shape, network=args.network, source=args.target, command=shlex.join(words))
    except DecompileError as e:
        print(f"cnndsl: error: {e.render()}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    lines = sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    _write(args.output, text, f"{lines} lines", [])
    if not args.verify:
        return EXIT_OK
    source = Path(args.output) if args.output != "-" else text
    ok, report = verify(model, source, shape, import_root=Path(args.output).resolve().parent if args.output != "-" else None)
    print(report if ok else f"cnndsl: error: --verify: {report}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_DIAGNOSTICS


def _report(e: CnnDslError) -> None:
    print(e.render(), file=sys.stderr)
    errors = sum(d.severity == "error" for d in e.diagnostics)
    print(f"{errors} error{'s' * (errors != 1)}", file=sys.stderr)


COMMANDS = {"build": _build, "check": _check, "summary": _summary, "graph": _graph, "export": _export, "fmt": _fmt, "lsp": _lsp, "decompile": _decompile}


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv).parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except CnnDslError as e:
        _report(e)
        return EXIT_DIAGNOSTICS
    except UsageError as e:
        print(f"cnndsl: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `cnndsl check net.cnn | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
