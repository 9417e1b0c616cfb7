"""``python -m deepfake_kernel.train``: rebuild the ensemble members from labelled data.

One command trains every member named in ``--members`` on the same group split and exports each through the
same function ``predict`` loads from, with its metrics, data fingerprint and the exact command::

    python -m deepfake_kernel.train --preset cpu --videos ../shared/data/videos.csv \\
        --faces ../shared/data/faces_ffpp.csv --out weights

Presets (``cpu``, ``gpu``) fix per-member input size, epochs, samples per epoch, batch size and learning
rates; any of them can be overridden (``--epochs``, ``--input-size`` ... apply to every member trained).
``--resume`` continues after a kill from the last finished epoch. Under ``torchrun --nproc_per_node N`` the same
command trains with DDP (gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from .config import add_dataclass_args, from_args
from .training.augment import AugmentConfig
from .training.run import TrainConfig, run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepfake_kernel.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_args(parser, TrainConfig)
    add_dataclass_args(parser, AugmentConfig, prefix="aug")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    config = from_args(TrainConfig, args)
    augment = from_args(AugmentConfig, args, prefix="aug")
    try:
        run(config, augment)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
