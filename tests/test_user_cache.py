"""The user's own cache folder (archdsl/user_cache.py), each trust check on its own (mutmisc hunt: each could be
dropped with every other test passing): a folder of another user's, or one its group or others can write, is
not used; none is made in another user's ~/.cache; a relative XDG_CACHE_HOME is ignored even where it exists;
the lock's folder in the temp dir is made where the home has none, and a link in its place is not followed.
"Another user" is this process with os.getuid answering one more: no root needed."""

from __future__ import annotations

import os
import tempfile

import pytest

from archdsl.user_cache import private_folder

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd") or not hasattr(os, "getuid"),
                                reason="the cache folder is Linux only")


@pytest.fixture
def home(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path / "home"


def _someone_else(monkeypatch) -> None:
    uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: uid + 1)


def _opened(**kw) -> bool:
    with private_folder(**kw) as fd:
        return fd is not None


def test_the_folder_is_made_private_and_used(home):
    assert _opened()
    folder = home / ".cache" / "archdsl"
    assert folder.is_dir() and folder.stat().st_mode & 0o077 == 0


def test_a_folder_of_another_user_is_not_used(home, monkeypatch):
    (home / ".cache" / "archdsl").mkdir(parents=True, mode=0o700)
    _someone_else(monkeypatch)
    assert not _opened()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o707, 0o720])
def test_a_folder_its_group_or_others_can_write_is_not_used(home, mode):
    folder = home / ".cache" / "archdsl"
    folder.mkdir(parents=True)
    folder.chmod(mode)
    assert not _opened()
    folder.chmod(0o755)  # readable by others is fine: only writing lets them plant a file
    assert _opened()


def test_no_folder_is_made_in_another_users_cache(home, monkeypatch):
    """sudo -E: root made a root-owned folder in the user's existing ~/.cache."""
    (home / ".cache").mkdir()
    _someone_else(monkeypatch)
    assert not _opened()
    assert list((home / ".cache").iterdir()) == []


def test_a_relative_xdg_cache_home_is_ignored_even_where_it_exists(home, tmp_path, monkeypatch):
    (tmp_path / "work" / "rel").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("XDG_CACHE_HOME", "./rel")
    assert _opened()
    assert list((tmp_path / "work" / "rel").iterdir()) == []
    assert (home / ".cache" / "archdsl").is_dir()


def test_the_lock_folder_is_made_in_the_temp_dir_where_the_home_has_none(home, tmp_path):
    (home / ".cache").write_text("")  # a file where the folder goes
    assert not _opened()  # the parser's pickle: never in the temp dir
    assert _opened(temp_ok=True)  # a lock: there
    folder = tmp_path / "tmp" / f"archdsl-{os.getuid()}"
    assert folder.is_dir() and folder.stat().st_mode & 0o077 == 0


def test_a_link_in_place_of_the_temp_folder_is_not_followed(home, tmp_path):
    """Another user's link archdsl-UID -> a private folder of this user's chose where the lock file went."""
    (home / ".cache").write_text("")
    secret = home / ".ssh"
    secret.mkdir(mode=0o700)
    (tmp_path / "tmp" / f"archdsl-{os.getuid()}").symlink_to(secret)
    assert not _opened(temp_ok=True)
