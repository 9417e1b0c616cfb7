"""Keep out-of-family predictions in the repository without the data's labels, and rebuild them for
``cross_family --from-predictions``.

The headline's calibration is fitted on fold predictions that took hours of CPU to make and lived in ``runs/`` on
one machine; ``pack`` keeps their scores (per video: fold, seed, path, raw and member scores, cues) in a small CSV
under ``docs/xfam_predictions/``, with no label, family, group, method or dataset (those stay in ``../shared/data``,
research-licensed); ``unpack`` joins them back from the video CSVs and writes a ``predictions.csv`` that
``cross_family --from-predictions`` reads. From the repository root:

    python docs/xfam_archive.py pack runs/xfam/headline/predictions.csv docs/xfam_predictions/members.csv.gz
    python docs/xfam_archive.py pack-cue runs/tcue/ffpp_s0.csv docs/xfam_predictions/tcue_ffpp_s0.csv.gz
    python docs/xfam_archive.py unpack docs/xfam_predictions/members.csv.gz runs/xfam/rebuilt \\
        --videos ../shared/data/videos.csv,../shared/data/videos_extra.csv
    python docs/xfam_archive.py unpack-cue docs/xfam_predictions/tcue_ffpp_s0.csv.gz runs/tcue/ffpp_s0.csv \\
        --videos ../shared/data/videos.csv,../shared/data/videos_extra.csv

A name ending in ``.gz`` is read and written gzip-compressed (about a fifth of the size; the tracked tree is kept
under 60 MiB), with no time stamp, so packing the same rows again gives the same bytes.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

from deepfake_kernel.training.data import read_video_csv

FROM_DATA = ("label", "family", "group", "method", "dataset")  # never stored here: read again from the video CSVs


def read_rows(path: str | Path) -> list[dict]:
    if str(path).endswith(".gz"):
        with gzip.open(path, "rt", newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    if str(path).endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as handle:
            handle.write(text.getvalue().encode("utf-8"))
    else:
        Path(path).write_text(text.getvalue(), encoding="utf-8", newline="")


def pack(source: str, out: str) -> None:
    rows = read_rows(source)
    columns = [c for c in rows[0] if c not in FROM_DATA]
    write_rows(out, rows, columns)
    print(f"{len(rows)} rows, columns {columns} -> {out}")


def labels_of(videos: str) -> dict[str, dict]:
    """path → the data's own columns, for every video of the comma-separated CSVs."""
    out = {}
    for name in videos.split(","):
        for item in read_video_csv(name):
            out[item.path] = {"label": int(item.label), "family": item.family, "group": item.group,
                              "method": item.method, "dataset": item.dataset}
    return out


def unpack(source: str, out: str, videos: str, name: str) -> None:
    known = labels_of(videos)
    rows = read_rows(source)
    missing = sorted({r["path"] for r in rows} - set(known))
    if missing:
        raise SystemExit(f"{len(missing)} videos of {source} are in none of {videos}, e.g. {missing[0]}")
    rows = [dict(r, **known[r["path"]]) for r in rows]
    columns = list(rows[0])
    target = Path(out) / name if name else Path(out)
    write_rows(target, rows, columns)
    print(f"{len(rows)} rows -> {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "pack-cue", "unpack", "unpack-cue"])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    args = parser.parse_args()
    if args.action in ("pack", "pack-cue"):
        pack(args.source, args.out)
    else:
        unpack(args.source, args.out, args.videos, "predictions.csv" if args.action == "unpack" else "")


if __name__ == "__main__":
    main()
