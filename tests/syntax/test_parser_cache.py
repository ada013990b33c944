"""lark's tables are cached in the user's own cache folder, never in the shared temp dir: lark unpickles its
cache file, and with `cache=True` that file had a name anyone could foresee in /tmp, so another user who
planted one ran code as whoever parsed a spec next."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PARSE = "import archdsl; archdsl.check_source('model m(x: float32[B, 4]) -> y {\\n    y = x -> relu\\n}\\n')"


def _parse(tmp_path, **env) -> None:
    full = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    full.update(HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"), **env)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-c", PARSE], env=full, check=True, timeout=120)


def test_the_cache_is_in_the_users_folder_not_the_temp_dir(tmp_path):
    _parse(tmp_path)
    folder = tmp_path / "home" / ".cache" / "archdsl"
    assert [p.name for p in folder.iterdir()] == ["grammar.lark-cache"]
    assert folder.stat().st_mode & 0o077 == 0
    assert list((tmp_path / "tmp").iterdir()) == []
    _parse(tmp_path)  # read back


def test_a_folder_others_can_write_is_not_used(tmp_path):
    folder = tmp_path / "xdg" / "archdsl"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    _parse(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert list(folder.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_a_planted_cache_file_is_not_unpickled(tmp_path):
    """A cache file in a folder others cannot write could only be the user's; one that is not a regular file
    (a link to a file someone else wrote) is refused before lark opens it."""
    folder = tmp_path / "xdg" / "archdsl"
    folder.mkdir(parents=True, mode=0o700)
    planted = tmp_path / "planted"
    marker = tmp_path / "ran"
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    planted.write_bytes(b"x\n" + pickle.dumps(Payload()))
    try:
        (folder / "grammar.lark-cache").symlink_to(planted)
    except OSError:
        pytest.skip("no symlinks here")
    _parse(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert not marker.exists()
