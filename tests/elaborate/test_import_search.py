"""Where an import is found (REFERENCE): beside the importing file first, then the -I folders in order, then
$ARCHDSL_PATH. The same file name in each place tells which one was read."""

from __future__ import annotations

from archdsl.cli import main


def _lib(folder, width: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lib.arch").write_text(f"param width = {width}\n")


def _width(tmp_path, capsys, *flags) -> str:
    assert main(["check", str(tmp_path / "spec" / "m.arch"), *flags]) == 0
    return capsys.readouterr().out


def test_an_import_is_found_beside_the_file_then_by_i_then_by_archdsl_path(tmp_path, capsys, monkeypatch):
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "m.arch").write_text(
        'import "lib.arch" as lib\nmodel m(x: float32[B, 4]) -> y {\n    y = x -> linear(lib.width)\n}\n')
    for name, width in (("env", 1), ("i2", 2), ("i3", 3)):
        _lib(tmp_path / name, width)
    monkeypatch.setenv("ARCHDSL_PATH", str(tmp_path / "env"))
    assert "float32[B, 1]" in _width(tmp_path, capsys)  # only the environment's
    assert "float32[B, 2]" in _width(tmp_path, capsys, "-I", str(tmp_path / "i2"), "-I", str(tmp_path / "i3"))
    assert "float32[B, 3]" in _width(tmp_path, capsys, "-I", str(tmp_path / "i3"), "-I", str(tmp_path / "i2"))
    _lib(tmp_path / "spec", 9)  # beside the spec: first of all
    assert "float32[B, 9]" in _width(tmp_path, capsys, "-I", str(tmp_path / "i2"))


def test_imports_nest_32_deep(tmp_path):
    """A chain of 32 imports below the spec builds, a 33rd is refused: the limit said "deeper than 32" at 32
    (the spec itself was counted among its imports)."""
    import pytest

    import archdsl
    from archdsl.diagnostics import LimitError

    def chain(depth: int):
        for k in range(1, depth + 1):
            (tmp_path / f"l{k}.arch").write_text(f'import "l{k + 1}.arch" as n\nparam v = n.v\n' if k < depth
                                                 else "param v = 3\n")
        (tmp_path / "m.arch").write_text('import "l1.arch" as n\nmodel m(x: float32[B, 4]) -> y {\n'
                                         '    y = x -> linear(n.v)\n}\n')
        return archdsl.check_file(str(tmp_path / "m.arch"))
    assert chain(32).outputs[0][1].type.shape[-1] == 3
    with pytest.raises(LimitError, match="imports nested deeper than 32"):
        chain(33)


# mutdriver hunt: each test below failed a mutant the suite let by
def test_an_empty_archdsl_path_entry_is_not_the_working_directory(tmp_path, monkeypatch):
    """ARCHDSL_PATH='lib:' (a trailing colon) names lib alone: the empty entry is skipped, not read as the
    working directory (D30: helper.arch in the cwd was found)."""
    import pytest

    import archdsl
    from archdsl.diagnostics import ArchError
    (tmp_path / "lib").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "helper.arch").write_text("block helper(x) {\n    return x -> relu\n}\n")
    (tmp_path / "sub" / "main.arch").write_text('import "helper.arch"\nmodel m(x: float32[B, 4]) -> y {\n'
                                                "    y = helper(x)\n}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHDSL_PATH", "lib:")
    with pytest.raises(ArchError, match=r'cannot find "helper.arch" \(looked in sub, lib\)'):
        archdsl.check_file("sub/main.arch")
