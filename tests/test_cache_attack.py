"""The parser's cache is code (a pickle): cnndsl never loads one that someone else could have written.

Lark's `cache=True` unpickles `$TMPDIR/.lark_cache_<user>_<hash>_<py>.tmp`, so anyone who can write /tmp could
plant code that runs on the next `cnndsl check`. Each test plants a pickle that would create a marker file,
runs `cnndsl check` in a fresh process and asserts that the marker was not created (and that the check worked).

A valid file is parsed from cnndsl's own tables (`tables-*.marshal` beside Lark's cache, plain data read with
marshal, which runs nothing); Lark's parser, and so its cache, is loaded for a file with a syntax error: the
tests check such a file too.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT
from lark import __version__ as lark_version

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid"), reason="owners and modes are POSIX's")

# The options cnndsl gave Lark when it used `cache=True`, in their order: Lark hashes them with the grammar.
OLD_OPTIONS = {"parser": "lalr", "propagate_positions": True, "maybe_placeholders": True, "cache": True}


class _Plant:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('planted code ran')",)


def plant(path: Path, marker: Path) -> None:
    """A cache file as Lark reads it (a hash line, then pickles), whose first pickle runs code."""
    path.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_Plant(marker)) + pickle.dumps(_Plant(marker)))


def lark_tmp_cache_names() -> list[str]:
    """The names Lark's `cache=True` uses in the temporary folder, computed as lark/lark.py does."""
    from cnndsl.syntax.parser import _grammar_path

    grammar = _grammar_path().read_text(encoding="utf-8")
    options = "".join(k + str(v) for k, v in OLD_OPTIONS.items())
    digest = hashlib.sha256((grammar + options + lark_version + str(sys.version_info[:2])).encode("utf8")).hexdigest()
    names = []
    for user in {getpass.getuser(), "unknown"}:
        for kind in ("cache", "cache_grammar"):
            names.append(".lark_%s_%s_%s_%s_%s.tmp" % (kind, user, digest, *sys.version_info[:2]))
    return names


@pytest.fixture
def places(tmp_path):
    tmp, home = tmp_path / "tmp", tmp_path / "home"
    tmp.mkdir()
    home.mkdir()
    marker = tmp_path / "marker"
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return tmp, home / ".cache" / "cnndsl", marker, env


def cnndsl_check(env) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(EXAMPLES / "lenet5.cnn")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "LeNet5" in done.stdout
    return done


def cnndsl_check_syntax_error(env, tmp: Path) -> subprocess.CompletedProcess:
    """`cnndsl check` of a file with a syntax error: Lark's parser (from its cache) reports it."""
    bad = tmp / "bad.cnn"
    bad.write_text("network N:\n    input 3x8x8\n    conv 4 k3 ->\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(bad)],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 1, done.stderr
    assert "bad.cnn:3:" in done.stderr and "error: expected" in done.stderr, done.stderr
    return done


def tables_file(env) -> Path:
    """The file cnndsl keeps its own parse tables in, as this environment's cnndsl computes it."""
    code = "from cnndsl.syntax.parser import _tables_file, _grammar_path; print(_tables_file(_grammar_path().read_text(encoding='utf-8')))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def private_cache_file(env) -> Path:
    """The file cnndsl caches its parser in, as this environment's cnndsl computes it."""
    code = "from cnndsl.syntax.parser import _cache_file, _grammar_path; print(_cache_file(_grammar_path().read_text(encoding='utf-8')))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def test_the_names_are_the_ones_lark_uses(tmp_path):
    """The planted names are right: Lark itself, given the old options, writes one of them."""
    code = (
        "from lark import Lark\nfrom cnndsl.syntax.parser import CnnIndenter, _grammar_path\n"
        f"Lark(_grammar_path().read_text(encoding='utf-8'), postlex=CnnIndenter(), **{OLD_OPTIONS!r})\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120, cwd=ROOT)
    written = [p.name for p in tmp_path.iterdir()]
    assert len(written) == 1 and written[0] in lark_tmp_cache_names(), (written, lark_tmp_cache_names())


def test_a_cache_planted_in_the_temporary_folder_is_not_loaded(places):
    tmp, private, marker, env = places
    for name in lark_tmp_cache_names():
        plant(tmp / name, marker)
    cnndsl_check(env)
    cnndsl_check_syntax_error(env, marker.parent)
    assert not marker.exists(), "code planted in the temporary folder ran"
    assert sorted(p.name for p in tmp.iterdir()) == sorted(lark_tmp_cache_names()), "cnndsl wrote to the temporary folder"


def test_the_private_cache_is_made_private_and_used(places):
    tmp, private, marker, env = places
    cnndsl_check(env)
    cache, tables = private_cache_file(env), tables_file(env)
    assert cache.parent == private and tables.parent == private
    assert (private.stat().st_mode & 0o777) == 0o700
    for path in (cache, tables):
        assert (path.stat().st_mode & 0o777) == 0o600 and path.stat().st_uid == os.geteuid(), path
    assert sorted(p.name for p in private.iterdir()) == sorted([cache.name, tables.name])
    written = {path: path.stat().st_mtime_ns for path in (cache, tables)}
    for path in (cache, tables):
        os.utime(path, ns=(written[path] - 10**9, written[path] - 10**9))
    cnndsl_check(env)
    cnndsl_check_syntax_error(env, marker.parent)
    for path in (cache, tables):
        assert path.stat().st_mtime_ns == written[path] - 10**9, f"{path.name} was rebuilt, not read"
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("how", ["private", "writable by others", "a link"])
def test_planted_tables_run_nothing_and_break_nothing(places, tmp_path, how):
    """The tables are read with marshal: a pickle planted there runs nothing, and whatever the file holds
    (or if anyone else could have written it), the parse is the right one."""
    _, _, marker, env = places
    cnndsl_check(env)
    tables = tables_file(env)
    plant(tables, marker)
    tables.chmod(0o600)
    if how == "writable by others":
        tables.chmod(0o666)
    elif how == "a link":
        elsewhere = tmp_path / "planted.marshal"
        tables.rename(elsewhere)
        tables.symlink_to(elsewhere)
    cnndsl_check(env)
    cnndsl_check_syntax_error(env, marker.parent)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["folder writable by others", "folder writable by the group", "file writable by others",
                                 "folder is a link", "file is a link", "folder of another user", "file of another user"])
def test_a_private_cache_anyone_else_could_have_written_is_not_loaded(places, tmp_path, how):
    tmp, private, marker, env = places
    cnndsl_check(env)  # makes the folder, and the file where the cache goes
    cache = private_cache_file(env)
    if "another user" in how:
        if os.geteuid() != 0:
            pytest.skip("only root can give a file to another user")
    plant(cache, marker)
    cache.chmod(0o600)
    if how == "folder writable by others":
        private.chmod(0o777)
    elif how == "folder writable by the group":
        private.chmod(0o770)
    elif how == "file writable by others":
        cache.chmod(0o666)
    elif how == "folder is a link":
        elsewhere = tmp_path / "elsewhere"
        private.rename(elsewhere)
        private.symlink_to(elsewhere, target_is_directory=True)
    elif how == "file is a link":
        elsewhere = tmp_path / "planted.lark"
        cache.rename(elsewhere)
        cache.symlink_to(elsewhere)
    elif how == "folder of another user":
        os.chown(private, 65534, 65534)
    elif how == "file of another user":
        os.chown(cache, 65534, 65534)
    cnndsl_check(env)
    cnndsl_check_syntax_error(env, marker.parent)
    assert not marker.exists(), f"code planted in the cache ran ({how})"
    # the control: the same file, made private again, is read (so the test plants where cnndsl reads)
    if how != "folder is a link":
        if private.is_symlink() or cache.is_symlink():
            return
        if os.geteuid() == 0:
            os.chown(private, 0, 0), os.chown(cache, 0, 0)
        private.chmod(0o700)
        cache.chmod(0o600)
        cnndsl_check(env)  # a valid file: cnndsl's own tables, not Lark's cache
        assert not marker.exists()
        done = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(tmp_path / "bad.cnn")],
                              env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
        assert marker.exists(), f"the control failed: cnndsl does not read the file the test plants\n{done.stderr}"
