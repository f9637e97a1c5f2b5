"""The command line: the only place that prints and picks exit codes (0 ok, 1 diagnostics, 2 usage)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import __version__, check
from .errors import CnnDslError, UsageError

EXIT_OK, EXIT_DIAGNOSTICS, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: exit 2, as ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"cnndsl: error: {message}\n")


def _arguments() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("file", help="the .cnn source")
    common.add_argument("--input", metavar="CxHxW", help="the input size, e.g. 3x32x32 (overrides the file's `input`)")
    common.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE", help="set a network parameter")
    common.add_argument("--params", metavar="FILE.yaml", help="network parameters from a YAML mapping (-D wins)")
    common.add_argument("--network", metavar="NAME", help="the network to use when the file defines several")
    p = _Parser(prog="cnndsl", description="Compile .cnn network descriptions to PyTorch.")
    p.add_argument("--version", action="version", version=f"cnndsl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    b = sub.add_parser("build", parents=[common], help="write the generated PyTorch module",
                       description="Check a .cnn file and write its PyTorch module.")
    b.add_argument("-o", "--output", default="-", metavar="OUT", help="the file to write (default -, standard output)")
    sub.add_parser("check", parents=[common], help="check a file and print its layers and shapes",
                   description="Check a .cnn file and print each layer's output shape and parameters.")
    return p


def _value(text: str, where: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise UsageError(f"{where}: the value {text!r} is not a number or true/false")


def _params(args) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        import yaml

        try:
            data = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"cannot read {args.params}: {e.strerror or e}") from None
        except UnicodeDecodeError as e:
            raise UsageError(f"{args.params} is not UTF-8 text (byte {e.start} cannot be decoded)") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{args.params}:{mark.line + 1}:{mark.column + 1}" if mark is not None else args.params
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UsageError(f"{where}: not valid YAML: {problem}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise UsageError(f"{args.params} must hold a mapping of parameter names to values")
        for key, val in data.items():
            if isinstance(val, bool) or isinstance(val, (int, float)):
                params[str(key)] = val
            else:
                raise UsageError(f"{args.params}: parameter {key!r} must be a number or true/false, found {val!r}")
    for item in args.defines:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"-D expects NAME=VALUE, got {item!r}")
        params[name.strip()] = _value(text, f"-D {name.strip()}")
    return params


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` through a temporary file, so a failure never leaves half a file."""
    target = Path(path)
    if target.exists() and not target.is_file():  # /dev/null, a FIFO: never replace it, write through it
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent.resolve()))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv: list[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    try:
        net = check(Path(args.file), network=args.network, input=args.input, **_params(args))
        for w in net.warnings:
            print(w.render(), file=sys.stderr)
        if args.command == "check":
            print(net.table())
            print(f"ok: {net.name}: {len(net.layers)} layers")
            return EXIT_OK
        from .codegen import generate

        text = generate(net)
        if args.output == "-":
            sys.stdout.write(text)
        else:
            out_dir = Path(args.output).resolve().parent
            if not out_dir.is_dir():
                raise UsageError(f"cannot write {args.output}: the folder {out_dir} does not exist")
            try:
                write_atomically(args.output, text)
            except OSError as e:
                raise UsageError(f"cannot write {args.output}: {e.strerror or e}") from None
            print(f"wrote {args.output} ({net.name}, {len(net.layers)} layers)", file=sys.stderr)
        return EXIT_OK
    except CnnDslError as e:
        print(e.render(), file=sys.stderr)
        errors = sum(d.severity == "error" for d in e.diagnostics)
        print(f"{errors} error{'s' * (errors != 1)}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except UsageError as e:
        print(f"cnndsl: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
