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
import sys

from .shipping.common import DEFAULT_PLATFORM, DEFAULT_PYTHON, DEFAULT_SLUG, DEFAULT_TITLE, VERIFY_ARGS, BuildError
from .shipping.dataset import build
from .shipping.resolver import Target
from .shipping.verify import verify


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
        from .detectors.weights import WeightsError
        if isinstance(exc, WeightsError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
