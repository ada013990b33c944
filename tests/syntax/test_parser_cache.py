"""lark's tables are cached in the user's own cache folder (archdsl/user_cache.py), never in the shared temp
dir: lark unpickles its cache file, and with `cache=True` that file had a name anyone could foresee in /tmp,
so another user who planted one ran code as whoever parsed a spec next. The folder is checked on its open
handle and reached through it, so a folder swapped in after the check is not read either."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

PARSE = "import archdsl; archdsl.check_source('model m(x: float32[B, 4]) -> y {\\n    y = x -> relu\\n}\\n')"
pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the cache needs /proc/self/fd (Linux)")


def _parse(tmp_path, cwd=None, **env) -> None:
    full = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    full.update({"HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"), **env})
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-c", PARSE], env=full, check=True, timeout=120, cwd=cwd or tmp_path)


def _cached(tmp_path) -> list:
    folder = tmp_path / "home" / ".cache" / "archdsl"
    return sorted(folder.glob("grammar-*.lark-tables")) if folder.is_dir() else []


def test_the_cache_is_in_the_users_folder_not_the_temp_dir(tmp_path):
    _parse(tmp_path)
    assert len(_cached(tmp_path)) == 1
    for folder in (tmp_path / "home" / ".cache", tmp_path / "home" / ".cache" / "archdsl"):
        assert folder.stat().st_mode & 0o077 == 0, folder  # made private, whatever the umask
    assert list((tmp_path / "tmp").iterdir()) == []
    _parse(tmp_path)  # read back
    assert len(_cached(tmp_path)) == 1


def test_a_folder_others_can_write_is_not_used(tmp_path):
    folder = tmp_path / "xdg" / "archdsl"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    _parse(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert list(folder.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_a_planted_cache_file_is_not_unpickled(tmp_path):
    """A link in place of the cache file (to a file someone else wrote) is refused before lark opens it."""
    _parse(tmp_path)
    cached = _cached(tmp_path)[0]
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    planted = tmp_path / "planted"
    planted.write_bytes(pickle.dumps(Payload()))
    cached.unlink()
    cached.symlink_to(planted)
    _parse(tmp_path)
    assert not marker.exists()


def test_a_relative_or_missing_home_makes_no_folder_in_the_working_dir(tmp_path):
    """XDG_CACHE_HOME=rel made ./rel/archdsl; no HOME and no passwd entry made a folder named ~ here."""
    work = tmp_path / "work"
    work.mkdir()
    _parse(tmp_path, cwd=work, XDG_CACHE_HOME="rel", HOME="~")
    assert list(work.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give the home away")
def test_root_makes_no_folder_in_another_users_home(tmp_path):
    """sudo -E archdsl ...: root made a root-owned ~/.cache in the user's home, which the user then could
    not remove."""
    (tmp_path / "home").mkdir()
    os.chown(tmp_path / "home", 12345, 12345)
    _parse(tmp_path)
    assert list((tmp_path / "home").iterdir()) == []


def test_processes_starting_together_leave_one_whole_cache_file(tmp_path):
    """lark writes its cache where it reads it, in place: processes starting together on an empty cache
    interleaved their bytes, and the next one could not unpickle the file (it rebuilt the tables)."""
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}, "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", PARSE], env=env) for _ in range(8)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert [p.name for p in (tmp_path / "home" / ".cache" / "archdsl").iterdir()] == [_cached(tmp_path)[0].name]
    assert _loads(tmp_path, env)


def _loads(tmp_path, env: dict, extra_fds: int = 0) -> bool:
    """Whether a process (with `extra_fds` more files open first) loads the saved tables rather than building."""
    probe = (f"import os; [os.open(os.devnull, os.O_RDONLY) for _ in range({extra_fds})]\n"
             "from archdsl.syntax import parser\nfrom archdsl.user_cache import private_folder\n"
             f"with private_folder() as fd: print(parser._load_tables(fd, {_cached(tmp_path)[0].name!r}) is not None)")
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    return run.stdout.split() == ["True"]


def test_the_saved_tables_are_read_whatever_the_folders_descriptor_and_not_written_again(tmp_path):
    """lark keyed its cache file on the path it was given, /proc/self/fd/N/...: the file a first run wrote
    (under a temp name) was rebuilt by the second, and again by any process whose folder got another N (one
    embedding archdsl with files open), each rewriting the file in place (0.25 s instead of 0.06)."""
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}, "HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    _parse(tmp_path)
    (cached,) = _cached(tmp_path)
    before = (cached.stat().st_ino, cached.stat().st_mtime_ns, cached.read_bytes())
    for extra in (0, 3, 0):
        subprocess.run([sys.executable, "-c", f"import os; [os.open(os.devnull, os.O_RDONLY) for _ in range({extra})]"
                        f"\n{PARSE}"], env=env, check=True, timeout=120)
        assert _loads(tmp_path, env, extra)
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns, cached.read_bytes()) == before
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]


def test_a_damaged_tables_file_is_made_again(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}, "HOME": str(tmp_path / "home")}
    _parse(tmp_path)
    (cached,) = _cached(tmp_path)
    cached.write_bytes(cached.read_bytes()[:1000])
    assert not _loads(tmp_path, env)
    _parse(tmp_path)
    assert _loads(tmp_path, env)


def test_the_tables_are_keyed_on_the_parser_module_too(tmp_path, monkeypatch):
    """The key held the grammar, lark and Python only: an upgrade that changed the options given to Lark (a
    start rule) or the post-lexer loaded the old tables, and failed ("Unknown start rule")."""
    from pathlib import Path

    from archdsl.syntax import parser
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    real, module = Path.read_text, Path(parser.__file__)
    try:
        for edit in ("", "\n# start=[..., 'assign']\n"):
            monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: real(self, *a, **k) + (edit if self == module
                                                                                                 else ""))
            parser._made.cache_clear()
            parser._lark()
        assert len(list((tmp_path / ".cache" / "archdsl").glob("grammar-*.lark-tables"))) == 2
    finally:
        monkeypatch.undo()
        parser._made.cache_clear()


def test_a_fifo_in_place_of_the_tables_does_not_hang_a_parse_and_old_cache_files_go(tmp_path):
    _parse(tmp_path)
    (cached,) = _cached(tmp_path)
    old = cached.parent / "grammar-0123456789abcdef.lark-cache"  # lark's own, from before
    old.write_bytes(b"x")
    cached.unlink()
    os.mkfifo(cached)
    _parse(tmp_path)  # it waited for a writer (timeout: 120 s)
    assert not old.exists()


def test_a_cache_file_of_another_user_is_not_unpickled(tmp_path, monkeypatch):
    """A regular file in the folder that is not this user's (the folder check aside): refused before it is
    unpickled. The earlier test plants a link, which O_NOFOLLOW alone stops (mutmisc hunt)."""
    from archdsl.syntax.parser import _load_tables
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    (folder / "grammar-x.lark-tables").write_bytes(pickle.dumps(Payload()))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        uid = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: uid + 1)
        assert _load_tables(fd, "grammar-x.lark-tables") is None
        assert not marker.exists(), "the other user's file was unpickled"
        monkeypatch.setattr(os, "getuid", lambda: uid)
        _load_tables(fd, "grammar-x.lark-tables")  # the same file as this user's own is read: the payload runs
        assert marker.exists()
    finally:
        os.close(fd)
