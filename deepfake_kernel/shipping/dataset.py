"""``build``: the utility-dataset folder (wheels, weights, notebook, metadata), checked unless asked not to."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .common import (DEFAULT_SLUG, DEFAULT_TITLE, NOTEBOOK_NAME, VERIFY_ARGS, BuildError, folder_sizes, format_sizes,
                     source_root)
from .notebook import dataset_metadata, notebook
from .resolver import (Target, build_package_wheel, constraint_lines, download_wheels, installed_version, resolve,
                       shipped_packages)
from .verify import verify


def copy_weights(src: str | Path, dest: Path) -> list[str]:
    """Verify the manifest and every member's sha256, copy them, and verify the copies."""
    from ..detectors.weights import MANIFEST_NAME, check_member, read_manifest

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
    pins = {"torch": torch_version or installed_version("torch"),
            "torchvision": torchvision_version or installed_version("torchvision")}
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
