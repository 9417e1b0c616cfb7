"""The folder checked the way Kaggle uses it: install from its wheels alone into the offline venv, ``predict``
there and in this checkout on the same clips, and compare the scores."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from ..clips import write_face_clip
from ..pipeline.submission import read_submission
from .common import PACKAGE, TOLERANCE, VERIFY_ARGS, BuildError, run_command, source_root
from .offline_venv import isolated_env, make_offline_venv


def sample_videos(dest: Path) -> Path:
    """Three short clips (a face, two faces, no face) when no ``--videos`` are given (:mod:`deepfake_kernel.clips`)."""
    for name, faces in (("one_face.mp4", 1), ("two_faces.mp4", 2), ("no_face.mp4", 0)):
        write_face_clip(dest / name, 480, 270, 8, fps=25, faces=faces, face_fraction=0.64)
    return dest


def verify(out_dir: str | Path, videos: str | Path | None = None, work_dir: str | Path | None = None,
           predict_args: str = VERIFY_ARGS, source: str | Path | None = None, tolerance: float = TOLERANCE) -> dict:
    """Install from ``out_dir/wheels`` alone into a clean venv, predict there and in this checkout, compare.

    ``work_dir`` keeps the venv (``venv/``), the videos and both runs (``offline/``, ``in_tree/``); by default
    a temporary folder that is removed afterwards.
    """
    out_dir = Path(out_dir).resolve()
    wheels, weights = out_dir / "wheels", out_dir / "weights"
    if not any(wheels.glob(f"{PACKAGE}-*.whl")) or not (weights / "manifest.json").is_file():
        raise BuildError(f"{out_dir} has no {PACKAGE} wheel in wheels/ or no weights/manifest.json; "
                         f"run `python -m deepfake_kernel.kaggle build {out_dir}` first")
    keep = work_dir is not None
    work = Path(work_dir).resolve() if keep else Path(tempfile.mkdtemp(prefix="dfk-verify-"))
    try:
        if keep and work.exists() and any(work.iterdir()):
            if not (work / "venv" / "pyvenv.cfg").is_file():
                raise BuildError(f"--work-dir {work} is not empty and holds no earlier check; choose a new folder")
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        print(f"verify: offline install into a clean virtual environment ({work / 'venv'})", flush=True)
        venv = work / "venv"
        site = make_offline_venv(venv, wheels)
        env = isolated_env(venv)
        python = str(venv / "bin" / "python")
        run_command([python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "--no-compile", "-q",
              PACKAGE], f"pip install --no-index --find-links {wheels} {PACKAGE}", env=env, cwd=work)
        run_command([python, "-m", "pip", "check"], "pip check", env=env, cwd=work, quiet=True)
        location = run_command([python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], "import", env=env,
                        cwd=work, quiet=True).stdout.strip()
        if not Path(location).resolve().is_relative_to(site.resolve()):
            raise BuildError(f"the venv imports {PACKAGE} from {location}, not from its site-packages {site}")
        from_folder = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info"))
        print(f"  installed from the folder: {len(from_folder)} distributions", flush=True)

        video_dir = Path(videos).resolve() if videos else sample_videos(work / "videos")
        args = shlex.split(predict_args)
        runs = {}
        try:  # the reference: this checkout's code with this interpreter's packages
            root = source_root(source)
            reference_env, reference_cwd = {**os.environ, "PYTHONPATH": str(root)}, root
        except BuildError:  # no checkout: the deepfake_kernel this interpreter has
            reference_env, reference_cwd = dict(os.environ), work
        for label, interpreter, run_env, cwd in (("offline", python, env, work),
                                                 ("in_tree", sys.executable, reference_env, reference_cwd)):
            out = work / label
            out.mkdir()
            run_command([interpreter, "-m", f"{PACKAGE}.predict", str(video_dir), "--weights", str(weights),
                  "--out", str(out / "submission.csv"), "--details", str(out / "per_video.csv"), *args],
                 f"predict ({label.replace('_', '-')})", env=run_env, cwd=cwd)
            runs[label] = read_submission(out / "submission.csv")
        offline, in_tree = runs["offline"], runs["in_tree"]
        if list(offline) != list(in_tree):
            raise BuildError(f"the offline run wrote rows {list(offline)}, the in-tree run {list(in_tree)}")
        diff = max((abs(offline[k] - in_tree[k]) for k in offline), default=0.0)
        result = {"videos": len(offline), "max_abs_diff": diff, "tolerance": tolerance,
                  "scores": offline, "installed_from_folder": from_folder, "predict_args": predict_args,
                  "work_dir": str(work) if keep else None}
        print(f"  {len(offline)} videos: offline and in-tree scores differ by at most {diff:.2e}", flush=True)
        if diff > tolerance:
            raise BuildError(f"offline scores differ from the in-tree run by {diff:.2e} > {tolerance}: "
                             f"offline {offline}, in-tree {in_tree}")
        return result
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
