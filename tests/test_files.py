"""Atomic writes: a reader sees the old file or the new one, never a part; a failed write leaves no trace."""
import pytest

from deepfake_kernel.files import atomic_path, atomic_write_bytes, atomic_write_text


def test_writes_replace_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "submission.csv"
    atomic_write_text(path, "filename,label\na.mp4,0.5\n")
    assert path.read_text() == "filename,label\na.mp4,0.5\n"
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and (path.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["submission.csv"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "manifest.json"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_text_keeps_undecodable_file_names(tmp_path):
    name = b"caf\xe9.mp4".decode("utf-8", "surrogateescape")
    atomic_write_text(tmp_path / "s.csv", f"{name},0.5\n")
    assert (tmp_path / "s.csv").read_bytes() == b"caf\xe9.mp4,0.5\n"
