"""Uniform weight soup: the mean of several fold checkpoints' floating-point tensors (integer buffers from the
first), saved in ``last.pt``'s layout so ``docs/xfam_learning_curve.py`` can score it. Diagnostic only (measured not
to help: docs/cross_family.md, "A weight soup of seeds"). Run from the repository root, e.g.:
    python docs/xfam_soup.py runs/soup/ffpp_012.pt runs/xfam/last_ffpp/seed_*/ffpp/work/efficientnet_lite0/last.pt
    python docs/xfam_learning_curve.py --threads 1 --family ffpp runs/soup/ffpp_012.pt
"""
import argparse
from pathlib import Path

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()
    states = [torch.load(path, map_location="cpu", weights_only=False)["model"] for path in args.checkpoints]
    soup = {key: torch.stack([state[key].float() for state in states]).mean(0).to(value.dtype)
            if value.is_floating_point() else value for key, value in states[0].items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": soup}, args.out)
    print(f"{args.out}: mean of {len(states)} checkpoints")


if __name__ == "__main__":
    main()
