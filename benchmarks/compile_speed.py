"""How fast cnndsl compiles: a benchmark script, not a test.

1. In-process compile time (parse + check + codegen, `cnndsl.compile`) of synthetic networks of 100, 1,000 and
   10,000 shape-preserving layers (`conv 16 k3 p1 | bn | relu` repeated on a 16x64x64 input), the median of
   several runs, with the cost per layer, so that linear growth (a flat per-layer cost) is visible.
2. The command line end to end: `cnndsl build examples/resnet50.cnn -o /dev/null` (and lenet5) as a subprocess
   against `python -c "import torch"` (what any use of the generated file pays anyway), alternating, medians;
   beside them the floor, Python's own start (`python -c pass`: the build imports neither lark, whose tables it
   reads from a cache, nor pydantic, which validates only the network `cnndsl.check` hands a user). Each command runs twice over: as this environment starts it (where
   PYTHONDONTWRITEBYTECODE is set and no bytecode is cached, every start compiles cnndsl's source again), and
   with bytecode cached (as an installed package has it; in a private PYTHONPYCACHEPREFIX, for every command).
3. Import time (`python -X importtime`) of `import cnndsl` and of the build, by whose modules take it: Python's
   (standard library, site), lark's, pydantic's (with pydantic_core, annotated_types ...) and cnndsl's.

It prints markdown tables for the README.

    python benchmarks/compile_speed.py                 # everything
    python benchmarks/compile_speed.py --sizes 100 1000 --cli-runs 5
    python benchmarks/compile_speed.py --profile 10000 # cProfile one compile, top functions by cumulative time
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cnndsl  # noqa: E402

PATTERN = ("conv 16 k3 p1", "bn", "relu")


def synthetic(n_layers: int) -> str:
    """A network of `n_layers` shape-preserving layers, three to a line."""
    layers = [PATTERN[i % len(PATTERN)] for i in range(n_layers)]
    lines = [" | ".join(layers[i : i + 3]) for i in range(0, n_layers, 3)]
    body = "".join(f"    {line}\n" for line in lines)
    return f"# {n_layers} synthetic layers\nnetwork Deep:\n    input 16x64x64\n{body}"


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def runs_for(n_layers: int) -> int:
    return 7 if n_layers <= 1000 else 5


def fmt_s(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def stage_times(text: str) -> tuple[float, float, float]:
    """One compile, stage by stage: parse, check, codegen (what `cnndsl.compile` does, timed apart)."""
    from cnndsl.backend.pytorch.codegen import generate
    from cnndsl.semantics.checker import check_network, pick_network
    from cnndsl.syntax.parser import parse

    with cnndsl._no_gc():  # as cnndsl.check does
        t0 = time.perf_counter()
        source = cnndsl.read_source(text)
        tree = parse(source)
        t1 = time.perf_counter()
        net = check_network(source, pick_network(source, tree, None), {}, None)
        t2 = time.perf_counter()
    generate(net)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def bench_compile(sizes: list[int]) -> list[dict]:
    cnndsl.compile(synthetic(30))  # warm-up: grammar, imports
    rows = []
    for n in sizes:
        text = synthetic(n)
        runs = runs_for(n)
        net = cnndsl.check(text)
        assert len(net.layers) == n and net.output_shape == (16, 64, 64), (len(net.layers), net.output_shape)
        stages, ends = [], []
        for _ in range(runs):  # alternate the end-to-end and the staged compile
            t0 = time.perf_counter()
            cnndsl.compile(text)
            ends.append(time.perf_counter() - t0)
            stages.append(stage_times(text))
        t_parse, t_check, t_gen = (statistics.median(s[i] for s in stages) for i in range(3))
        t_compile = statistics.median(ends)
        lines = cnndsl.compile(text).count("\n")
        rows.append(dict(n=n, runs=runs, parse=t_parse, check=t_check, gen=t_gen, compile=t_compile, lines=lines))
        print(f"  {n:>6} layers: parse {fmt_s(t_parse)}, check {fmt_s(t_check)}, codegen {fmt_s(t_gen)}; "
              f"compile {fmt_s(t_compile)} ({t_compile / n * 1e3:.3f} ms/layer, {lines} lines generated, median of {runs})",
              file=sys.stderr)
    return rows


def cnndsl_command() -> list[str]:
    script = Path(sys.executable).parent / "cnndsl"
    if script.is_file():
        return [str(script)]
    found = shutil.which("cnndsl")
    return [found] if found else [sys.executable, "-m", "cnndsl"]


CLI_EXAMPLES = ("resnet50", "lenet5")
FLOOR = "pass"  # Python's own start: what every command pays


def _env(bytecode_dir: str | None) -> dict[str, str]:
    """The environment of a timed command: this one, or with bytecode cached in `bytecode_dir`."""
    env = dict(os.environ)
    if bytecode_dir is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = bytecode_dir
    return env


def bench_cli(runs: int) -> dict:
    commands = {name: [*cnndsl_command(), "build", str(ROOT / "examples" / f"{name}.cnn"), "-o", os.devnull] for name in CLI_EXAMPLES}
    commands["floor"] = [sys.executable, "-c", FLOOR]
    commands["torch"] = [sys.executable, "-c", "import torch"]

    def once(cmd: list[str], env: dict[str, str]) -> float:
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        return time.perf_counter() - t0

    result = {"runs": runs, "medians": {}}
    with tempfile.TemporaryDirectory(prefix="cnndsl-bytecode-") as cached:
        for mode, env in (("as started here", _env(None)), ("bytecode cached", _env(cached))):
            for cmd in commands.values():  # warm the file cache (and write the bytecode) for all
                once(cmd, env)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(runs):  # alternate, so that drifting machine load hits all alike
                for name, cmd in commands.items():
                    times[name].append(once(cmd, env))
            medians = {name: statistics.median(t) for name, t in times.items()}
            result["medians"][mode] = medians
            print(f"  {mode}: " + ", ".join(f"{name} {fmt_s(t)}" for name, t in medians.items()) + f" (medians of {runs})",
                  file=sys.stderr)
    result["bytecode_env"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return result


PYDANTIC_PACKAGES = {"pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"}


def _group(module: str) -> str:
    top = module.split(".")[0]
    if top in PYDANTIC_PACKAGES:
        return "pydantic"
    return top if top in ("lark", "cnndsl") else "python"


def import_breakdown(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """`python -X importtime ARGS`: seconds of import by whose module it is (each module's own time): cnndsl's,
    lark's, pydantic's (with the packages only it brings: pydantic_core, annotated_types, typing_inspection,
    typing_extensions) and Python's (the standard library, site, the editable install's finder)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True, check=True)
    groups = dict.fromkeys(("python", "lark", "pydantic", "cnndsl"), 0.0)
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "[us]" not in line:
            own, _, name = line.split("|")
            groups[_group(name.strip())] += int(own.split(":")[1]) / 1e6
    return groups


def bench_imports(runs: int) -> dict:
    """Medians over `runs` of the import breakdown of `import cnndsl` and of the build (bytecode cached)."""
    build = ["-m", "cnndsl", "build", str(ROOT / "examples" / "resnet50.cnn"), "-o", os.devnull]
    out = {}
    with tempfile.TemporaryDirectory(prefix="cnndsl-bytecode-") as cached:
        for mode, env in (("as started here", _env(None)), ("bytecode cached", _env(cached))):
            for what, args in (("import cnndsl", ["-c", "import cnndsl"]), ("cnndsl build resnet50", build)):
                import_breakdown(args, env)  # warm
                found = [import_breakdown(args, env) for _ in range(runs)]
                out[(what, mode)] = {g: statistics.median(f[g] for f in found) for g in found[0]}
    return out


def profile(n_layers: int, top: int = 25) -> None:
    text = synthetic(n_layers)
    cnndsl.compile(synthetic(30))
    prof = cProfile.Profile()
    prof.enable()
    cnndsl.compile(text)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="network sizes in layers")
    p.add_argument("--cli-runs", type=int, default=7, help="runs of each command (alternating)")
    p.add_argument("--no-cli", action="store_true", help="skip the subprocess comparison and the import times")
    p.add_argument("--profile", type=int, metavar="N", help="only cProfile one compile of an N-layer network")
    args = p.parse_args(argv)
    if args.profile:
        profile(args.profile)
        return

    print(f"cnndsl {cnndsl.__version__}, Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs", file=sys.stderr)
    rows = bench_compile(args.sizes)
    cli = None if args.no_cli else bench_cli(args.cli_runs)
    imports = None if args.no_cli else bench_imports(5)

    base = rows[0]["compile"] / rows[0]["n"]
    print()
    print("| layers | parse | check | codegen | `cnndsl.compile` (all three) | per layer | per layer vs. smallest |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        per = r["compile"] / r["n"]
        print(f"| {r['n']:,} | {fmt_s(r['parse'])} | {fmt_s(r['check'])} | {fmt_s(r['gen'])} | {fmt_s(r['compile'])} | "
              f"{per * 1e3:.3f} ms | {per / base:.2f}x |")
    print()
    print("Synthetic networks of `conv 16 k3 p1 | bn | relu` on `input 16x64x64`, compiled in-process; medians of "
          f"{', '.join(str(r['runs']) for r in rows)} runs. A flat per-layer cost is linear growth.")
    if cli:
        m = cli["medians"]
        modes = list(m)
        print()
        print("| command | " + " | ".join(f"{mode}: median | vs. `import torch`" for mode in modes) + " |")
        print("| --- |" + " ---: | ---: |" * len(modes))
        lines = [(f"`cnndsl build examples/{name}.cnn -o /dev/null`", name) for name in CLI_EXAMPLES]
        lines += [("floor: `python -c pass`", "floor"), ("`python -c \"import torch\"`", "torch")]
        for label, name in lines:
            print(f"| {label} | " + " | ".join(f"{fmt_s(m[mode][name])} | {m[mode][name] / m[mode]['torch']:.2f}" for mode in modes) + " |")
        print()
        print(f"Medians of {cli['runs']} runs each, alternating the commands. PYTHONDONTWRITEBYTECODE is "
              f"{'set' if cli['bytecode_env'] else 'not set'} here.")
    if imports:
        print()
        print("| imports (`python -X importtime`) | Python's modules | lark | pydantic | cnndsl | total |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for (what, mode), g in imports.items():
            print(f"| `{what}`, {mode} | " + " | ".join(fmt_s(g[k]) for k in ("python", "lark", "pydantic", "cnndsl"))
                  + f" | {fmt_s(sum(g.values()))} |")
        print()
        print("Medians of 5 runs; -X importtime adds its own overhead, so these sum to more than the wall times above.")


if __name__ == "__main__":
    main()
