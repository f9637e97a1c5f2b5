"""Every public verb called from several threads at once gives what it gives alone.

The threads are started together (a barrier) and Python is made to switch threads every microsecond
(`sys.setswitchinterval(1e-6)`), so that any state two calls share is interleaved as badly as it can be:
once, one Lark post-lexer's indentation state served every parse and 113 of 120 such compiles failed.
"""

from __future__ import annotations

import contextlib
import gc
import os
import random
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import EXAMPLES, ROOT

import cnndsl

GOLDEN = ROOT / "tests" / "golden"
VALID = sorted(EXAMPLES.glob("*.cnn")) + sorted((GOLDEN / "ok").glob("*.cnn"))  # blocks, merges, imports
INVALID = sorted((GOLDEN / "bad").glob("*.cnn"))  # syntax, indentation and checking mistakes
THREADS = 8


@contextlib.contextmanager
def forced_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def outcome(fn, job):
    """("ok", result) or ("error", type and text): an error is compared by its rendered text."""
    try:
        return "ok", fn(job)
    except Exception as e:  # noqa: BLE001 - the comparison reports it
        return "error", f"{type(e).__name__}: {e}"


def in_threads(fn, jobs):
    """[(job, outcome)] for every job, run by THREADS threads that start together, with forced switching."""
    barrier = threading.Barrier(THREADS)

    def worker(i):
        barrier.wait()
        return [(job, outcome(fn, job)) for job in jobs[i::THREADS]]

    with forced_switching(), ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, i) for i in range(THREADS)]
        return [r for f in futures for r in f.result()]


def mismatches(fn, files, rounds, key=lambda result: result):
    """Each file `rounds` times, shuffled, from threads; the ones whose outcome differs from the serial one."""
    serial = {f: outcome(lambda p: key(fn(p)), f) for f in files}
    jobs = list(files) * rounds
    random.Random(0).shuffle(jobs)
    results = in_threads(lambda p: key(fn(p)), jobs)
    assert len(results) == len(jobs)
    bad = [(job.name, got) for job, got in results if got != serial[job]]
    return bad, len(jobs)


def report(bad, total):
    first = "; ".join(f"{name}: {got[0]} {str(got[1])[:200]!r}" for name, got in bad[:3])
    return f"{len(bad)} of {total} calls from {THREADS} threads differ from the serial call: {first}"


def test_compile_from_threads_is_byte_identical_to_serial():
    bad, total = mismatches(cnndsl.compile, VALID, rounds=6)
    assert not bad, report(bad, total)


def test_check_from_threads_equals_serial_including_the_errors():
    bad, total = mismatches(cnndsl.check, VALID + INVALID, rounds=4, key=lambda net: repr(net.model_dump()))  # values compare by their repr
    assert not bad, report(bad, total)


def test_parse_from_threads_equals_serial():
    bad, total = mismatches(cnndsl.parse, VALID + INVALID, rounds=6, key=lambda tree: tree.model_dump())
    assert not bad, report(bad, total)


def test_a_parse_inside_another_does_not_disturb_its_indentation():
    """The root of the thread failures, in one thread: the post-lexer's state belongs to each parse. `fmt`
    walks a parse lazily (parse_interactive); another parse in the middle of it once reset its indentation."""
    from cnndsl.syntax.parser import lark_parser

    text = (EXAMPLES / "resnet18.cnn").read_text(encoding="utf-8")
    alone = [(t.type, str(t)) for t in lark_parser().parse_interactive(text).iter_parse()]
    walk = lark_parser().parse_interactive(text).iter_parse()
    interleaved = [(t.type, str(t)) for _, t in zip(range(len(alone) // 2), walk)]
    cnndsl.parse("network N:\n    input 3x8x8\n    conv 4 k3\n")  # leaves no open parenthesis or indentation
    cnndsl.parse(EXAMPLES / "unet.cnn")
    interleaved += [(t.type, str(t)) for t in walk]
    assert interleaved == alone


@pytest.mark.parametrize("cached", [False, True])
def test_the_first_calls_from_threads_build_one_parser(tmp_path, cached):
    """In a fresh process, eight first calls at once: the parse tables are made once, from one Lark parser
    built once (and both written to the cache), or read once from the cache, without Lark."""
    script = """
import sys, threading
import lark, cnndsl, cnndsl.syntax.parser as p
built, tables = [], []
class Counted(lark.Lark):
    def __init__(self, *a, **k):
        built.append(1)
        super().__init__(*a, **k)
class CountedTables(p._Tables):
    def __init__(self, *a, **k):
        tables.append(1)
        super().__init__(*a, **k)
lark.Lark = Counted
p._Tables = CountedTables
sys.setswitchinterval(1e-6)
barrier = threading.Barrier(8)
def go():
    barrier.wait()
    cnndsl.compile("conv 3->8 k3 | relu")
threads = [threading.Thread(target=go) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(built), len(tables))
"""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
            for _ in range(1 + cached)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    assert runs[0].stdout.split() == ["1", "1"]  # nothing cached yet: one Lark parser, one set of tables
    if cached:
        assert runs[1].stdout.split() == ["0", "1"]  # from the cache: no Lark at all


def test_load_from_threads_builds_the_same_modules():
    torch = pytest.importorskip("torch")
    cases = [
        (EXAMPLES / "lenet5.cnn", None),
        (EXAMPLES / "resnet18.cnn", "3x32x32"),
        (EXAMPLES / "mobile_block.cnn", None),
        (GOLDEN / "ok" / "comp_import.cnn", None),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = {i: cnndsl.load(path, input=shape, device="cpu").eval() for i, (path, shape) in enumerate(cases)}
        jobs = list(serial) * 2
        results = in_threads(lambda i: cnndsl.load(cases[i][0], input=cases[i][1], device="cpu").eval(), jobs)
        assert all(kind == "ok" for _, (kind, _) in results), [got for _, got in results if got[0] != "ok"]
        for i, (_, model) in results:
            reference = serial[i]
            assert type(model).__name__ == type(reference).__name__
            assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
            model.load_state_dict(reference.state_dict())  # the initial weights came from one shared generator
            net = cnndsl.check(cases[i][0], input=cases[i][1])
            x = torch.randn(2, *net.input_shape, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                assert torch.equal(model(x), reference(x)), cases[i][0].name
    finally:
        torch.set_num_threads(threads)


def test_the_generated_module_is_executed_once_whoever_asks_first():
    """Two threads loading the same text get the same module object (sys.modules and linecache agree)."""
    import linecache

    from cnndsl.backend.pytorch.loader import module_from_source

    text = f"# {uuid.uuid4()}\nimport time\nRUNS = []\nRUNS.append(1)\ntime.sleep(0.05)\n"
    results = in_threads(lambda _: module_from_source(text, "Race"), list(range(THREADS)))
    modules = {id(got[1]) for _, got in results}
    assert all(got[0] == "ok" for _, got in results), results
    assert len(modules) == 1
    module = results[0][1][1]
    assert module.RUNS == [1]
    assert sys.modules[module.__name__] is module
    assert "".join(linecache.getlines(module.__file__)) == text


def test_the_cycle_collector_is_paused_until_the_last_overlapping_compile_ends():
    from cnndsl import _no_gc

    was = gc.isenabled()
    try:
        for before in (True, False):
            (gc.enable if before else gc.disable)()
            first_in, second_in, first_out, second_out = (threading.Event() for _ in range(4))
            seen = {}

            def first():
                with _no_gc():
                    first_in.set()
                    second_in.wait()
                first_out.set()

            def second():
                first_in.wait()
                with _no_gc():
                    second_in.set()
                    first_out.wait()
                    seen["inside, after the first ended"] = gc.isenabled()
                second_out.set()

            a, b = threading.Thread(target=first), threading.Thread(target=second)
            a.start(), b.start()
            a.join(10), b.join(10)
            assert seen == {"inside, after the first ended": False}
            assert gc.isenabled() is before
            with _no_gc():  # and nested in one thread
                with _no_gc():
                    pass
                assert not gc.isenabled()
            assert gc.isenabled() is before
    finally:
        (gc.enable if was else gc.disable)()
