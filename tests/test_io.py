"""Atomic writes: the target is the complete old content or the complete new content, and no temporary remains."""
import pytest

from mmoe_np import _io


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old")
    _io.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_an_error_while_writing_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old figure")
    with pytest.raises(KeyboardInterrupt):
        with _io.atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png"
            tmp.write_bytes(b"half a fig")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_the_file_gets_the_mode_of_an_ordinary_open(tmp_path):
    import os
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = _io.write_text(tmp_path / "atomic.txt", "x")
    assert os.stat(target).st_mode == os.stat(plain).st_mode
