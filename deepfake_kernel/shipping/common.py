"""What every part of the Kaggle folder shares: names, the target's assumptions, errors, running a tool."""
from __future__ import annotations

import re
import shlex
import subprocess
import time
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


class BuildError(RuntimeError):
    """The folder cannot be built or fails its check; the message says what to do."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run_command(cmd: list[str], what: str, env: dict | None = None, cwd: str | Path | None = None,
         quiet: bool = False) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, text=True, capture_output=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n  $ {shlex.join(map(str, cmd))}\n{tail}")
    if not quiet:
        print(f"  {what}: {time.monotonic() - started:.1f}s", flush=True)
    return proc


def packaging_classes():
    """``packaging``'s requirement classes (a declared dependency)."""
    from packaging.requirements import InvalidRequirement, Requirement

    return InvalidRequirement, Requirement


def source_root(path: str | Path | None = None) -> Path:
    """The checkout holding setup.py and the package (the wheel is built from it)."""
    root = Path(path) if path else Path(__file__).resolve().parents[2]  # deepfake_kernel/shipping/common.py
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
