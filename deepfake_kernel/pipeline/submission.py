"""Submission: which videos get a row, in which order, and writing ``submission.csv`` atomically.

With a template (``--template`` or a ``sample_submission.csv`` in the video folder) the rows follow the
template's order exactly, even for files that are missing. Without one, every video file under the folder
gets a row, sorted; a file in a subfolder is named by its path relative to the folder (so the same name in
two subfolders gives two rows). Names that are not valid UTF-8 are written back byte for byte
(``surrogateescape``), so such a file still gets its row.
"""
from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable

from ..files import atomic_write_text
from .video import VIDEO_EXTENSIONS

TEMPLATE_NAME = "sample_submission.csv"
COLUMNS = ("filename", "label")


def list_videos(video_dir: str | Path) -> list[str]:
    """Video files under ``video_dir`` (recursive), as sorted POSIX paths relative to it."""
    root = Path(video_dir)
    found = [p.relative_to(root).as_posix() for p in root.rglob("*")
             if p.suffix.lower() in VIDEO_EXTENSIONS and not p.is_dir()]
    return sorted(found)


def read_template(path: str | Path) -> list[str]:
    """File names of a DFDC-style template (column ``filename``), in order."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "filename" not in reader.fieldnames:
            raise ValueError(f"{path} has no 'filename' column (columns: {reader.fieldnames})")
        return [row["filename"] for row in reader if row.get("filename")]


def find_template(video_dir: str | Path, template: str | Path | None) -> Path | None:
    """The explicit template, else ``sample_submission.csv`` inside the folder, else ``None``."""
    if template:
        return Path(template)
    candidate = Path(video_dir) / TEMPLATE_NAME
    return candidate if candidate.is_file() else None


def filenames_for(video_dir: str | Path, template: str | Path | None = None) -> list[str]:
    """The rows the submission must have, in order."""
    found = find_template(video_dir, template)
    return read_template(found) if found else list_videos(video_dir)


def check_writable(path: str | Path) -> None:
    """Raise ``OSError`` unless a file can be written at ``path`` (its folder is created when missing)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    os.close(fd)
    os.unlink(tmp)


def render_csv(columns: Iterable[str], rows: Iterable[Iterable]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(rows)
    return buffer.getvalue()


def write_submission(path: str | Path, filenames: list[str], scores: dict[str, float],
                     fallback: float = 0.5) -> None:
    """One ``filename,label`` row per name in ``filenames``; names without a finite score get ``fallback``."""
    rows = [(name, f"{_finite_or(scores.get(name, fallback), fallback):.6f}") for name in filenames]
    atomic_write_text(path, render_csv(COLUMNS, rows))


def _finite_or(value, fallback: float) -> float:
    """``value`` as a float, or ``fallback`` where it is NaN or infinite (a scorer's NaN must not reach the file)."""
    value = float(value)
    return value if math.isfinite(value) else float(fallback)


def read_submission(path: str | Path) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}
