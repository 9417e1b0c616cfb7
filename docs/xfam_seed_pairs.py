"""Fold ensembles of seeds: for each seed n of a ``cross_family --seeds`` run, link the fold weights of seeds n, n+1,
... (mod the number of seeds) into ``OUT/seed_n/FOLD/weights`` as one weights folder (members after the first
renamed ``<name>_s<seed>``, files linked, manifests merged, fits dropped), ready for ``cross_family --score-only``.
This is how the shipped two-seed ensemble was judged (docs/cross_family.md, sixteenth session). From the repository
root, e.g.:
    python docs/xfam_seed_pairs.py --run runs/xfam/sbi12ftsn4c5_all --out runs/xfam/pairsn4_all --size 2
    python -m deepfake_kernel.cross_family $FLAGS --score-only --test-set-norm-blocks 4 --seeds 0,1,2,3,4 \\
        --folds ffpp,talking-head,dfdc+deeperforensics --out runs/xfam/pairsn4_all
"""
import argparse
import dataclasses
import os
from pathlib import Path

from deepfake_kernel.detectors.weights import forget_fits, read_manifest, write_manifest


def join(out: Path, sources: list[tuple[Path, str]]) -> list[str]:
    """One weights folder from ``sources`` (folder, suffix for its members' names)."""
    out.mkdir(parents=True, exist_ok=True)
    merged = None
    for folder, suffix in sources:
        folder = folder.resolve()
        manifest = read_manifest(folder)
        entries = []
        for entry in manifest.members:
            renamed = dataclasses.replace(entry, name=entry.name + suffix, file=f"{entry.name}{suffix}.safetensors")
            if not (out / renamed.file).exists():
                os.symlink(folder / entry.file, out / renamed.file)
            entries.append(renamed)
        if merged is None:
            merged, merged.members = manifest, entries
        else:
            merged.members += entries
    for entry in merged.members:
        forget_fits(merged, entry.name)
    write_manifest(merged, out)
    return [entry.name for entry in merged.members]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a cross_family --seeds run (RUN/seed_S/FOLD/weights)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=2, help="seeds per ensemble")
    parser.add_argument("--folds", default="ffpp,talking-head,dfdc+deeperforensics")
    args = parser.parse_args()
    run = Path(args.run)
    seeds = sorted(int(p.name.split("_")[1]) for p in run.glob("seed_*"))
    for i, seed in enumerate(seeds):
        chosen = [seeds[(i + k) % len(seeds)] for k in range(args.size)]
        for fold in args.folds.split(","):
            sources = [(run / f"seed_{s}" / fold / "weights", "" if k == 0 else f"_s{s}") for k, s in enumerate(chosen)]
            names = join(Path(args.out) / f"seed_{seed}" / fold / "weights", sources)
            print(f"seed_{seed}/{fold}: seeds {chosen} as {names}")


if __name__ == "__main__":
    main()
