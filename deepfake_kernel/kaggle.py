"""Kaggle utility dataset: ``python -m deepfake_kernel.kaggle build OUT_DIR``.

A DFDC notebook runs with the internet off, so everything it installs must come from an attached dataset.
``build`` assembles that dataset's folder::

    OUT_DIR/
      wheels/                        deepfake_kernel + every dependency a Kaggle GPU image may lack
                                     (never torch, torchvision, triton, nvidia-*, cuda-*: the image has them)
      weights/                       manifest.json + the members' .safetensors (sha256-checked)
      deepfake-kernel-inference.ipynb   installs with pip --no-index and writes /kaggle/working/submission.csv
      dataset-metadata.json          for ``kaggle datasets create -p OUT_DIR --dir-mode zip``
      build-info.json                target, versions, verification result

The wheels are chosen by pip's own resolver (``pip install --dry-run --report`` for the target Python and
platform, torch and torchvision pinned to the versions the image is assumed to have, requirements.txt as
constraints), then everything reachable from deepfake_kernel *without passing through torch or torchvision*
is downloaded with ``pip download --no-deps --only-binary=:all:``.

Unless ``--no-verify``, the folder is then checked the way Kaggle will use it: a fresh virtual environment
without the system site-packages, where only torch, torchvision, their own requirements and pip are visible
("preinstalled", linked from this interpreter), gets ``pip install --no-index --find-links OUT_DIR/wheels
deepfake_kernel`` with pip's configuration switched off; then ``predict`` runs there on a few videos and in
this checkout, and the scores must agree within 1e-4.

    python -m deepfake_kernel.kaggle build kaggle_dataset --user YOUR_KAGGLE_NAME
    python -m deepfake_kernel.kaggle verify kaggle_dataset --videos some_videos/
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "deepfake_kernel"
DEFAULT_SLUG = "deepfake-kernel"
DEFAULT_TITLE = "deepfake_kernel: offline DFDC detector"
COMPETITION = "deepfake-detection-challenge"
NOTEBOOK_NAME = "deepfake-kernel-inference.ipynb"
# Kaggle's GPU images (Python 3.11, x86_64, Ubuntu 22.04 → glibc 2.35)
DEFAULT_PYTHON = "3.11"
DEFAULT_PLATFORM = "manylinux_2_35_x86_64"
PREINSTALLED = ("torch", "torchvision")  # on every Kaggle GPU image: never shipped, never upgraded
NEVER_SHIP = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$")
TIME_BUDGET = "8h45m"  # Kaggle stops a notebook at 9 h; the install and the final writes fit in the rest
VERIFY_ARGS = "--frames 4 --detect-long-side 480 --device cpu --no-progress"
TOLERANCE = 1e-4
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class BuildError(RuntimeError):
    """The folder cannot be built or fails its check; the message says what to do."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ----------------------------------------------------------------------------------------------- target

@dataclass
class Target:
    """The interpreter the wheels are for: ``python_version`` like ``3.11``, pip ``--platform`` tags."""

    python_version: str = DEFAULT_PYTHON
    platforms: list[str] = field(default_factory=lambda: [DEFAULT_PLATFORM])

    def pip_options(self) -> list[str]:
        options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python_version]
        for platform in expand_platforms(self.platforms):
            options += ["--platform", platform]
        return options

    @property
    def machine(self) -> str:
        for arch in ("x86_64", "aarch64"):
            if any(p.endswith(arch) for p in self.platforms):
                return arch
        return "x86_64"

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values on the target (pip's report gives this interpreter's, not the target's)."""
        return {"implementation_name": "cpython", "platform_python_implementation": "CPython",
                "python_version": self.python_version, "python_full_version": f"{self.python_version}.0",
                "implementation_version": f"{self.python_version}.0", "os_name": "posix",
                "sys_platform": "linux", "platform_system": "Linux", "platform_machine": self.machine}

    def matches_this_interpreter(self) -> bool:
        import sysconfig

        here = sysconfig.get_platform().replace("-", "_")  # linux_x86_64
        return (self.python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
                and sys.platform == "linux" and here.endswith(self.machine))


def expand_platforms(platforms: list[str]) -> list[str]:
    """``manylinux_2_35_x86_64`` → every older glibc tag and the legacy aliases, as a pip on that host accepts
    (``pip download --platform`` takes tags literally)."""
    out: list[str] = []
    for platform in platforms:
        match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
        if not match:
            out.append(platform)
            continue
        glibc, arch = int(match.group(1)), match.group(2)
        for minor in range(glibc, 4, -1):
            out.append(f"manylinux_2_{minor}_{arch}")
            legacy = _LEGACY_MANYLINUX.get(minor) if arch in ("x86_64", "i686") or minor == 17 else None
            if legacy:
                out.append(f"{legacy}_{arch}")
    return list(dict.fromkeys(out))


# ----------------------------------------------------------------------------------------------- helpers

def _run(cmd: list[str], what: str, env: dict | None = None, cwd: str | Path | None = None,
         quiet: bool = False) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, text=True, capture_output=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n  $ {shlex.join(map(str, cmd))}\n{tail}")
    if not quiet:
        print(f"  {what}: {time.monotonic() - started:.1f}s", flush=True)
    return proc


def _packaging():
    """``packaging``'s requirement classes (a declared dependency)."""
    from packaging.requirements import InvalidRequirement, Requirement

    return InvalidRequirement, Requirement


def source_root(path: str | Path | None = None) -> Path:
    """The checkout holding setup.py and the package (the wheel is built from it)."""
    root = Path(path) if path else Path(__file__).resolve().parents[1]
    if not (root / "setup.py").is_file() or not (root / PACKAGE).is_dir():
        raise BuildError(f"{root} is not a deepfake_kernel checkout (no setup.py next to {PACKAGE}/); "
                         f"pass --source PATH/TO/CHECKOUT")
    return root


def folder_sizes(out_dir: str | Path) -> dict[str, tuple[int, int]]:
    """``{part: (files, bytes)}`` for wheels/, weights/, the rest and the total."""
    out_dir = Path(out_dir)
    sizes: dict[str, list[int]] = {"wheels": [0, 0], "weights": [0, 0], "other": [0, 0], "total": [0, 0]}
    for path in out_dir.rglob("*"):
        if path.is_file():
            part = path.relative_to(out_dir).parts[0]
            key = part if part in ("wheels", "weights") else "other"
            for k in (key, "total"):
                sizes[k][0] += 1
                sizes[k][1] += path.stat().st_size
    return {k: (v[0], v[1]) for k, v in sizes.items()}


def format_sizes(sizes: dict[str, tuple[int, int]]) -> str:
    labels = {"wheels": "wheels/", "weights": "weights/", "other": "notebook, metadata", "total": "total"}
    return "\n".join(f"  {labels[k]:<20} {n:>4} files {b / 1e6:>9.1f} MB" for k, (n, b) in sizes.items())


# ----------------------------------------------------------------------------------------------- wheels

def build_package_wheel(source: Path, dest: Path) -> Path:
    """``deepfake_kernel-<version>-py3-none-any.whl`` from a copy of the checkout (no build/ left in the tree)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dfk-src-") as tmp:
        copy = Path(tmp) / "src"
        copy.mkdir()
        for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in"):
            if (source / name).is_file():
                shutil.copy2(source / name, copy / name)
        shutil.copytree(source / PACKAGE, copy / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest),
              str(copy)], "build the deepfake_kernel wheel")
    wheels = sorted(dest.glob(f"{PACKAGE}-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one {PACKAGE} wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def _installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name).split("+")[0]
    except metadata.PackageNotFoundError:
        return None


def constraint_lines(source: Path | None, constraints: str | Path | None, pins: dict[str, str]) -> list[str]:
    """requirements.txt (or ``constraints``) without its torch/torchvision lines, plus the image's torch pins."""
    InvalidRequirement, Requirement = _packaging()

    lines = []
    path = Path(constraints) if constraints else (source / "requirements.txt" if source else None)
    if path is not None and path.is_file():
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if canonical(req.name) not in pins:
                lines.append(line)
    elif constraints:
        raise BuildError(f"constraints file {constraints} does not exist")
    return lines + [f"{name}=={version}" for name, version in pins.items() if version]


def resolve(package_wheel: Path, target: Target, constraints: list[str], work: Path) -> dict:
    """Run pip's resolver for the target; return its ``--report`` (every package, torch's stack included)."""
    cons = work / "constraints.txt"
    cons.write_text("\n".join(constraints) + "\n")
    report = work / "report.json"
    try:
        _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--target",
              str(work / "never-written"), "--report", str(report), "-q", *target.pip_options(), "-c", str(cons),
              str(package_wheel)], f"resolve the dependencies for Python {target.python_version} "
                                   f"{target.platforms[0]}")
    except BuildError as exc:
        pinned = ", ".join(line for line in constraints if line.startswith(("torch==", "torchvision==")))
        raise BuildError(f"{exc}\nThe resolver assumed the image has {pinned}: pass --torch-version and "
                         f"--torchvision-version with versions the package index has for the target.") from None
    return json.loads(report.read_text())


def shipped_packages(report: dict, target: Target, preinstalled=PREINSTALLED) -> dict[str, str]:
    """``{name: version}`` reachable from deepfake_kernel without passing through a preinstalled package.

    torch's own requirements (nvidia-*, triton, sympy, …) are left out unless something else needs them.
    """
    _, Requirement = _packaging()

    env = target.marker_environment()
    items = {canonical(i["metadata"]["name"]): i for i in report["install"]}
    stop = {canonical(n) for n in preinstalled}
    keep: dict[str, str] = {}
    todo: list[tuple[str, frozenset]] = [(canonical(PACKAGE), frozenset())]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen or name in stop or name not in items:
            continue
        seen.add((name, extras))
        meta = items[name]["metadata"]
        keep[name] = meta["version"]
        for spec in meta.get("requires_dist") or []:
            req = Requirement(spec)
            if req.marker is not None and not any(req.marker.evaluate({**env, "extra": e})
                                                  for e in ("", *sorted(extras))):
                continue
            todo.append((canonical(req.name), frozenset(req.extras)))
    keep.pop(canonical(PACKAGE), None)
    bad = sorted(n for n in keep if NEVER_SHIP.match(n))
    if bad:
        raise BuildError(f"{bad} would be shipped: something other than torch requires them. Kaggle's images "
                         f"have their own; find the requirement (pip's report) and relax it.")
    return dict(sorted(keep.items()))


def download_wheels(packages: dict[str, str], target: Target, dest: Path) -> list[Path]:
    """``pip download --no-deps --only-binary=:all:`` of the exact versions the resolver chose."""
    pins = [f"{name}=={version}" for name, version in packages.items()]
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *target.pip_options(), "--dest", str(dest),
          *pins], f"download {len(pins)} wheels")
    wheels = sorted(dest.glob("*.whl"))
    have = {canonical(w.name.split("-")[0]) for w in wheels}
    missing = sorted(set(packages) - have)
    if missing:
        raise BuildError(f"pip download did not produce wheels for {missing}")
    shipped_by_mistake = sorted(n for n in have if NEVER_SHIP.match(n))
    if shipped_by_mistake:
        raise BuildError(f"{shipped_by_mistake} landed in {dest}; they must come from the Kaggle image")
    return wheels


# ----------------------------------------------------------------------------------------------- weights

def copy_weights(src: str | Path, dest: Path) -> list[str]:
    """Verify the manifest and every member's sha256, copy them, and verify the copies."""
    from .weights import MANIFEST_NAME, check_member, read_manifest

    src = Path(src)
    manifest = read_manifest(src)
    if not manifest.members:
        raise BuildError(f"{src / MANIFEST_NAME} lists no members; export them first (python -m "
                         f"deepfake_kernel.train)")
    for entry in manifest.members:
        check_member(entry, src)
    for name in (MANIFEST_NAME, *(entry.file for entry in manifest.members)):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / name, dest / name)
        os.chmod(dest / name, 0o644)  # exported checkpoints are 0600 (mkstemp); the dataset is for others too
    copied = read_manifest(dest)
    for entry in copied.members:
        check_member(entry, dest)
    return [m.name for m in copied.members]


# ----------------------------------------------------------------------------------------------- notebook

def _cell(kind: str, source: str, index: int) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{index}", "metadata": {},
            "source": source.strip("\n").splitlines(True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(slug: str = DEFAULT_SLUG, dataset_id: str | None = None) -> dict:
    """The example notebook (nbformat 4): install from the dataset's wheels, predict, show the submission.

    ``KAGGLE_INPUT_ROOT`` / ``KAGGLE_WORKING`` (default ``/kaggle/input`` / ``/kaggle/working``) move every path,
    ``DEEPFAKE_KERNEL_ARGS`` adds predict options: that is how the test runs it outside Kaggle.
    """
    dataset_id = dataset_id or f"<username>/{slug}"
    cells = [
        ("markdown", f"""
# deepfake_kernel: DFDC submission, offline

Attach the utility dataset **`{dataset_id}`** (*Add Input*) to a notebook of the
[Deepfake Detection Challenge](https://www.kaggle.com/competitions/{COMPETITION}); set *Internet* off and
*Accelerator* to a GPU, then *Save & Run All* and submit `submission.csv`.

The install uses only the dataset's `wheels/` (`pip --no-index`) and keeps the image's own torch and torchvision.
`predict` writes a complete `submission.csv` (0.5 for every video) before the first video and rewrites it as it
goes; `--time-budget {TIME_BUDGET}` keeps the run inside Kaggle's 9 hours (model loading included), scoring
fewer frames per video if the GPU is slow. `per_video.csv` says why a video got the fallback 0.5.
"""),
        ("code", f"""
import os, sys, subprocess
from pathlib import Path

INPUT = Path(os.environ.get("KAGGLE_INPUT_ROOT", "/kaggle/input"))
WORKING = Path(os.environ.get("KAGGLE_WORKING", "/kaggle/working"))
DATASET = INPUT / "{slug}"  # this utility dataset
COMPETITION = INPUT / "{COMPETITION}"


def folder_of(root, pattern):
    \"\"\"The folder that holds the first file named like `pattern` under `root`.\"\"\"
    hit = next(iter(sorted(Path(root).glob("**/" + pattern))), None)
    if hit is None:
        raise FileNotFoundError(f"no {{pattern}} under {{root}}: attach the dataset {dataset_id} (Add Input)")
    return hit.parent


if not DATASET.is_dir():  # attached under another name (a fork, another mount layout)
    DATASET = folder_of(INPUT, "{PACKAGE}-*.whl").parent
WHEELS = folder_of(DATASET, "{PACKAGE}-*.whl")
WEIGHTS = folder_of(DATASET, "manifest.json")
TEST_VIDEOS = COMPETITION / "test_videos"
TEMPLATE = COMPETITION / "sample_submission.csv"
SUBMISSION = WORKING / "submission.csv"
DETAILS = WORKING / "per_video.csv"
TIME_BUDGET = "{TIME_BUDGET}"  # Kaggle stops the notebook at 9 h
EXTRA_ARGS = os.environ.get("DEEPFAKE_KERNEL_ARGS", "").split()   # e.g. "--frames 16"
print(WHEELS, WEIGHTS, TEST_VIDEOS, sep="\\n")
"""),
        ("code", f"""
%pip install --no-index --find-links={{WHEELS}} {PACKAGE}
import importlib.metadata
print("{PACKAGE}", importlib.metadata.version("{PACKAGE}"), "with torch", importlib.metadata.version("torch"))
"""),
        ("code", f"""
import codecs, signal


def run(cmd):
    \"\"\"Run `cmd`, showing its output (progress bar included) as it comes; fail on a non-zero exit.\"\"\"
    print(" ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=WORKING, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
            print(decoder.decode(chunk), end="", flush=True)
    except KeyboardInterrupt:  # Stop button: predict writes every row (0.5 for the rest) and exits
        try:
            proc.wait(timeout=10)  # it usually got the interrupt too
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        raise
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)


run([sys.executable, "-m", "{PACKAGE}.predict", str(TEST_VIDEOS), "--template", str(TEMPLATE),
     "--weights", str(WEIGHTS), "--out", str(SUBMISSION), "--time-budget", TIME_BUDGET,
     "--details", str(DETAILS), *EXTRA_ARGS])
"""),
        ("code", """
import pandas as pd

submission = pd.read_csv(SUBMISSION)
details = pd.read_csv(DETAILS, dtype={"reason": str}, keep_default_na=False)
print(len(submission), "rows; label mean", round(submission.label.mean(), 4))
print(details.reason.replace("", "scored").value_counts().to_string())
submission.head()
"""),
    ]
    return {"cells": [_cell(kind, source, i) for i, (kind, source) in enumerate(cells)],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def dataset_metadata(user: str, slug: str, title: str, license_name: str) -> dict:
    """``dataset-metadata.json`` as the Kaggle CLI reads it (``kaggle datasets create -p OUT_DIR``)."""
    return {"title": title, "id": f"{user}/{slug}", "licenses": [{"name": license_name}],
            "subtitle": "Offline install of deepfake_kernel: wheels, weights, notebook",
            "description": (f"Wheels (`pip install --no-index --find-links=/kaggle/input/{slug}/wheels "
                            f"{PACKAGE}`), checkpoints (`weights/`) and an example notebook "
                            f"(`{NOTEBOOK_NAME}`) for the {COMPETITION} with the internet off. torch and "
                            f"torchvision come from the Kaggle image. Each wheel keeps its own license "
                            f"(see its METADATA).")}


# ----------------------------------------------------------------------------------------------- verify

def _dist_files(dist) -> set[str]:
    """Top-level names (packages, modules, .dist-info, .libs) a distribution put into site-packages."""
    tops = {str(f).split("/")[0] for f in (dist.files or []) if not str(f).startswith("..")}
    if not tops:  # no RECORD: fall back to top_level.txt and the metadata folder
        tops = set((dist.read_text("top_level.txt") or "").split()) | {Path(str(dist._path)).name}
    return {t for t in tops if t != "__pycache__" and not t.endswith(".pth")}


def installed_closure(names, skip=()) -> dict[str, object]:
    """This interpreter's distributions ``names`` and everything they require (extras followed), less ``skip``."""
    from importlib import metadata

    _, Requirement = _packaging()

    skip = {canonical(n) for n in skip}
    found: dict[str, object] = {}
    todo = [(n, frozenset()) for n in names]
    seen = set()
    while todo:
        name, extras = todo.pop()
        key = canonical(name)
        if (key, extras) in seen or key in skip:
            continue
        seen.add((key, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement this interpreter lacks; pip will say if it matters
        found[key] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *sorted(extras))):
                todo.append((req.name, frozenset(req.extras)))
    return found


def link_installed(shim: Path, names, skip=()) -> list[str]:
    """Make ``names`` (and their requirements) of this interpreter importable from ``shim`` by symlinks.

    A venv whose site-packages holds a ``.pth`` naming ``shim`` then sees exactly those distributions as
    installed (pip too), like the packages a Kaggle image ships; nothing else of this interpreter leaks in.
    """
    shim.mkdir(parents=True, exist_ok=True)
    linked = []
    for key, dist in sorted(installed_closure(names, skip).items()):
        base = Path(str(dist.locate_file("")))
        for top in sorted(_dist_files(dist)):
            target, link = base / top, shim / top
            if target.exists() and not link.exists() and not link.is_symlink():
                link.symlink_to(target)
        linked.append(key)
    return linked


def isolated_env(venv: Path) -> dict[str, str]:
    """Environment for the check: pip's configuration off (no extra index, no find-links), no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1",
               VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def make_offline_venv(venv: Path, wheels: Path) -> Path:
    """A venv without system site-packages; torch, torchvision (+ requirements) and pip linked in as if
    preinstalled, except what the wheels folder itself provides. Returns its site-packages."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "create a clean virtual environment")
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     "locate site-packages", quiet=True).stdout.strip())
    provided = {canonical(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    linked = link_installed(venv / "preinstalled", (*PREINSTALLED, "pip"), skip=provided)
    (site / "_kaggle_preinstalled.pth").write_text(str(venv / "preinstalled") + "\n")
    print(f"  preinstalled (linked, as on Kaggle): {', '.join(linked)}", flush=True)
    return site


def read_scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as handle:
        return {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}


def sample_videos(dest: Path) -> Path:
    """Three short clips (a face, two faces, no face) when no ``--videos`` are given.

    The face is scikit-image's astronaut (public domain); without scikit-image every clip is faceless, and
    the members are loaded but never run: pass ``--videos`` then.
    """
    import av
    import cv2
    import numpy as np

    dest.mkdir(parents=True, exist_ok=True)
    try:
        import skimage.data
        head = cv2.resize(skimage.data.astronaut()[0:260, 120:360], (160, 173))
    except ImportError:
        print("  scikit-image is missing: the sample clips hold no face (pass --videos for a real check)")
        head = None
    rng = np.random.default_rng(0)
    for name, faces in (("one_face.mp4", 1), ("two_faces.mp4", 2), ("no_face.mp4", 0)):
        with av.open(str(dest / name), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 480, 270, "yuv420p"
            for i in range(8):
                frame = np.clip(90 + rng.integers(-8, 9, (270, 480, 3)), 0, 255).astype(np.uint8)
                for k in range(faces if head is not None else 0):
                    x, y = 20 + 2 * i + k * 240, 48
                    frame[y:y + 173, x:x + 160] = head
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
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
        _run([python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "--no-compile", "-q",
              PACKAGE], f"pip install --no-index --find-links {wheels} {PACKAGE}", env=env, cwd=work)
        _run([python, "-m", "pip", "check"], "pip check", env=env, cwd=work, quiet=True)
        location = _run([python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"], "import", env=env,
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
            _run([interpreter, "-m", f"{PACKAGE}.predict", str(video_dir), "--weights", str(weights),
                  "--out", str(out / "submission.csv"), "--details", str(out / "per_video.csv"), *args],
                 f"predict ({label.replace('_', '-')})", env=run_env, cwd=cwd)
            runs[label] = read_scores(out / "submission.csv")
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


# ----------------------------------------------------------------------------------------------- build

def build(out_dir: str | Path, weights: str | Path | None = None, user: str | None = None,
          slug: str = DEFAULT_SLUG, title: str = DEFAULT_TITLE, license_name: str = "other",
          target: Target | None = None, constraints: str | Path | None = None, source: str | Path | None = None,
          torch_version: str | None = None, torchvision_version: str | None = None, force: bool = False,
          check: bool = True, videos: str | Path | None = None, work_dir: str | Path | None = None,
          verify_args: str = VERIFY_ARGS) -> dict:
    """Assemble the utility-dataset folder (see the module docstring); return the build info."""
    started = time.monotonic()
    target = target or Target()
    root = source_root(source)
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise BuildError(f"{out_dir} is not empty; pass --force to replace it")
        if not (out_dir / "dataset-metadata.json").is_file():
            raise BuildError(f"{out_dir} is not empty and is not a folder built before; not replacing it")
        shutil.rmtree(out_dir)
    weights = Path(weights) if weights else root / "weights"
    user = user or os.environ.get("KAGGLE_USERNAME") or "INSERT_USERNAME"
    print(f"build {out_dir} for Python {target.python_version} {target.platforms[0]}", flush=True)

    members = copy_weights(weights, out_dir / "weights")  # checks first: a bad weights folder leaves no OUT_DIR
    print(f"  weights: {', '.join(members)} (sha256 checked) from {weights}", flush=True)
    wheels = out_dir / "wheels"
    package_wheel = build_package_wheel(root, wheels)
    pins = {"torch": torch_version or _installed_version("torch"),
            "torchvision": torchvision_version or _installed_version("torchvision")}
    with tempfile.TemporaryDirectory(prefix="dfk-resolve-") as tmp:
        report = resolve(package_wheel, target, constraint_lines(root, constraints, pins), Path(tmp))
    packages = shipped_packages(report, target)
    download_wheels(packages, target, wheels)
    (out_dir / NOTEBOOK_NAME).write_text(json.dumps(notebook(slug, f"{user}/{slug}"), indent=1) + "\n")
    (out_dir / "dataset-metadata.json").write_text(
        json.dumps(dataset_metadata(user, slug, title, license_name), indent=2) + "\n")

    info = {"package": package_wheel.name, "python_version": target.python_version,
            "platforms": target.platforms, "assumed_preinstalled": pins, "wheels": packages,
            "members": members, "verification": None}
    if not check:
        print("  verification skipped (--no-verify)")
    elif not target.matches_this_interpreter():
        print(f"  verification skipped: the target (Python {target.python_version}, {target.platforms[0]}) "
              f"is not this interpreter; run `python -m deepfake_kernel.kaggle verify` on a matching one")
    else:
        info["verification"] = verify(out_dir, videos, work_dir, verify_args, root)
        info["verification"].pop("scores", None)
    (out_dir / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    sizes = folder_sizes(out_dir)
    print(f"wrote {out_dir} in {time.monotonic() - started:.0f}s\n{format_sizes(sizes)}", flush=True)
    info["sizes"] = sizes
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.kaggle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def verify_options(p):
        p.add_argument("--videos", help="videos for the check (default: three generated clips)")
        p.add_argument("--work-dir", help="keep the check's venv, videos and submissions here")
        p.add_argument("--verify-args", default=VERIFY_ARGS,
                       help=f'predict options of the check, one string: --verify-args="--frames 8" ({VERIFY_ARGS})')
        p.add_argument("--source", help="the checkout (default: the one this module comes from)")

    b = commands.add_parser("build", help="assemble the utility-dataset folder")
    b.add_argument("out_dir")
    b.add_argument("--weights", help="weights folder to ship (default: the checkout's weights/)")
    b.add_argument("--user", help="Kaggle user name for dataset-metadata.json (default: $KAGGLE_USERNAME)")
    b.add_argument("--slug", default=DEFAULT_SLUG, help=f"dataset slug (default: {DEFAULT_SLUG})")
    b.add_argument("--title", default=DEFAULT_TITLE, help="dataset title (6 to 50 characters)")
    b.add_argument("--license", default="other", dest="license_name", help="Kaggle license name (default: other)")
    b.add_argument("--python-version", default=DEFAULT_PYTHON, help=f"target Python (default: {DEFAULT_PYTHON})")
    b.add_argument("--platform", action="append", dest="platforms",
                   help=f"pip platform tag, repeatable (default: {DEFAULT_PLATFORM}; older glibc tags included)")
    b.add_argument("--constraints", help="pins for the dependencies (default: the checkout's requirements.txt)")
    b.add_argument("--torch-version", help="torch on the image, for the resolver (default: this one's)")
    b.add_argument("--torchvision-version", help="torchvision on the image (default: this one's)")
    b.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    b.add_argument("--no-verify", dest="check", action="store_false", help="skip the offline install check")
    verify_options(b)

    v = commands.add_parser("verify", help="check a built folder: offline install, predict, compare")
    v.add_argument("out_dir")
    verify_options(v)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            if len(args.title) < 6 or len(args.title) > 50:
                raise BuildError("--title must have 6 to 50 characters (Kaggle's rule)")
            build(args.out_dir, weights=args.weights, user=args.user, slug=args.slug, title=args.title,
                  license_name=args.license_name,
                  target=Target(args.python_version, args.platforms or [DEFAULT_PLATFORM]),
                  constraints=args.constraints, source=args.source, torch_version=args.torch_version,
                  torchvision_version=args.torchvision_version, force=args.force, check=args.check,
                  videos=args.videos, work_dir=args.work_dir, verify_args=args.verify_args)
        else:
            verify(args.out_dir, args.videos, args.work_dir, args.verify_args, args.source)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from .weights import WeightsError
        if isinstance(exc, WeightsError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
