import pytest

from deepfake_kernel.pipeline.submission import (filenames_for, list_videos, read_submission, read_template,
                                                 write_submission)


def test_list_videos_sorted_recursive(tmp_path):
    for name in ["b.mp4", "a.MOV", "sub/c.webm", "notes.txt", "sub/a.mp4"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list_videos(tmp_path) == ["a.MOV", "b.mp4", "sub/a.mp4", "sub/c.webm"]


def test_template_order_wins(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "sample_submission.csv").write_text("filename,label\nz.mp4,0.5\na.mp4,0.5\n")
    assert filenames_for(tmp_path) == ["z.mp4", "a.mp4"]
    other = tmp_path / "other.csv"
    other.write_text("filename,label\na.mp4,0.5\n")
    assert filenames_for(tmp_path, other) == ["a.mp4"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,label\n")
    with pytest.raises(ValueError, match="filename"):
        read_template(bad)


def test_write_submission_every_row_atomically(tmp_path):
    out = tmp_path / "deep" / "submission.csv"
    write_submission(out, ["b.mp4", "a.mp4"], {"a.mp4": 0.25})
    assert out.read_text().splitlines() == ["filename,label", "b.mp4,0.500000", "a.mp4,0.250000"]
    assert read_submission(out) == {"b.mp4": 0.5, "a.mp4": 0.25}
    assert [p.name for p in out.parent.iterdir()] == ["submission.csv"]  # no temporary file left


def test_a_non_finite_score_is_written_as_the_fallback(tmp_path):
    out = tmp_path / "submission.csv"
    write_submission(out, ["a.mp4", "b.mp4", "c.mp4"], {"a.mp4": float("nan"), "b.mp4": float("inf"), "c.mp4": 0.3},
                     fallback=0.5)
    assert read_submission(out) == {"a.mp4": 0.5, "b.mp4": 0.5, "c.mp4": 0.3}
