"""Exploration (twenty-seventh session): a *learned* temporal cue, trained on temporally inconsistent self-blends.

The shipped temporal cue is one number per face pair (what optical flow leaves of the change from frame ``i`` to
``i + 1`` inside the face). A face swap or re-enactment renders each frame on its own, so its blend wavers from frame
to frame; this script asks whether a network can learn that pattern from real footage alone, as SBI learns the
spatial blend:

* input: the flow-compensated residual of a face pair, ``C0 - warp(C1)`` (Farneback flow from C0 to C1, the same
  estimate the shipped cue uses), 3 channels, divided by 32: the motion is taken out, what does not follow it stays;
* REAL: pairs of real videos of the training families (8 pairs a video, ``docs/xfam_network_flicker.py crops``);
* FAKE (``tsbi``): the same real pair self-blended *inconsistently* -- the same SBI source transform and mask on both
  frames, then frame ``i + 1``'s source shifted by up to 1.2 px, its colour gain moved by up to 2 % and its
  brightness by up to 3, its mask deformed by up to 2 px and its blend ratio by up to 0.05, all scaled by one random
  strength (0.2-1); ``tsbi+real`` makes half the FAKEs the labelled fakes' pairs of the training families;
* both frames of every pair independently JPEG re-compressed (p 0.5, quality 60-95), both flipped together;
* EfficientNet-Lite0 from ImageNet (``--init``: other weights; ``--depth 5``: its first 5 stages), AdamW, one-cycle;
  scored on the held-out family's 8 pairs a video (mean logit). ``report`` adds it to the shipped scoring of the
  four seed pairs (``runs/xfam/fit4_byst``) at a fixed weight or as a robust z-score, per family and manipulation.
* ``--head-init small`` (twenty-eighth session) starts the new head as the product trainer's ``reset_head`` does;
  timm's default (U(±1) for one output) begins at losses of 2-3 and made the runs a lottery. ``--warmup``,
  ``--clip``, ``--freeze-bn``: the one-cycle warm-up fraction, gradient-norm clipping, BatchNorm statistics frozen.

    python docs/xfam_temporal_sbi.py train --fold ffpp --mode tsbi --head-init small --seed 0 --out runs/xfam/tsbihs_s0_ffpp
    python docs/xfam_temporal_sbi.py report --scores runs/xfam/tsbi_ffpp/scores.csv,runs/xfam/tsbi_talking-head/scores.csv

Results: docs/cross_family.md, sessions of 2026-12-06 (twenty-seventh and twenty-eighth).
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deepfake_kernel.pipeline.temporal import flow_maps
from deepfake_kernel.training.augment import jpeg_recompress, wavering_self_blend
from deepfake_kernel.training.trainers import reset_head
from xfam_network_flicker import fold_of, items_and_cache, stored_pairs, write_pairs  # beside this script in docs/
from xfam_temporal_cues import auc, robust_z

CUE_SCALE = 32.0
DENSE_DIR = Path("runs/xfam/flicker_crops32")  # 32 pairs of every REAL video, for training (``dense-crops``)


def dense_crops(args) -> None:
    """Face pairs at all 32 cached positions of every REAL video (training material; scoring keeps 8)."""
    items, cache = items_and_cache()
    write_pairs([i for i in items if int(i.label) == 0], cache, DENSE_DIR, positions=32)


def load_pairs(dense_pairs: bool = False) -> list[dict]:
    """Every video's 8 face pairs with the 68 landmarks of the cached crop each first frame matches; with
    ``dense_pairs``, a REAL video's 32 pairs (``dense-crops``) as its training pairs."""
    items, cache = items_and_cache()
    videos = []
    for item in items:
        pairs = stored_pairs(item)
        if pairs is None:
            continue
        first, second = pairs
        train_first, train_second = (dense_pairs and stored_pairs(item, DENSE_DIR)) or pairs
        with np.load(cache.video_file(item)) as npz:
            crops = npz["crops"]
        marks = cache.video_landmarks68(item)
        small = crops[:, ::8, ::8].astype(np.int16)
        index = [int(np.abs(small - f[::8, ::8].astype(np.int16)).reshape(len(crops), -1).mean(1).argmin())
                 for f in train_first]
        videos.append({"path": str(item.path), "label": int(item.label), "family": item.family, "key": item.key,
                       "first": train_first, "second": train_second, "marks": marks[index].astype(np.float64),
                       "test_first": first, "test_second": second})
    return videos


def residual(first: np.ndarray, second: np.ndarray, normalise: bool = False) -> np.ndarray:
    """``first - second`` warped onto ``first`` by the shipped cue's Farneback flow, float32 HWC, divided by
    :data:`CUE_SCALE`."""
    maps = flow_maps(cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), cv2.cvtColor(second, cv2.COLOR_RGB2GRAY))
    warped = cv2.remap(second.astype(np.float32), *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out = first.astype(np.float32) - warped
    if normalise:  # relative to the pair's own level of residual: its pattern, not its compression noise
        return out / (4.0 * (float(np.abs(out).mean()) + 1.0))
    return out / CUE_SCALE


def sample(video: dict, j: int, fake_kind: str | None, rng: np.random.Generator, normalise: bool = False) -> np.ndarray:
    first, second, marks = video["first"][j], video["second"][j], video["marks"][j]
    if fake_kind == "tsbi":
        first, second = wavering_self_blend(first, second, marks, rng)
    if rng.random() < 0.5:
        first, second = first[:, ::-1].copy(), second[:, ::-1].copy()
    if rng.random() < 0.5:
        first = jpeg_recompress(first, rng, (60, 95))
        second = jpeg_recompress(second, rng, (60, 95))
    return residual(first, second, normalise)


class Truncated(torch.nn.Module):
    """EfficientNet-Lite0's stem and first ``depth`` block stages, average pooled, one linear output (not the
    registry's ``PatchNetwork``, whose per-patch head is a 1×1 convolution stack: this is what ``--depth 5`` measured)."""

    def __init__(self, full: torch.nn.Module, depth: int):
        super().__init__()
        self.stem = torch.nn.Sequential(full.conv_stem, full.bn1)
        self.blocks = full.blocks[:depth]
        self.fc = torch.nn.Linear(self.blocks[-1][-1].bn3.num_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def network(depth: int = 7, init: str = ""):
    """Lite0 from ImageNet, or from ``init`` (a fold's first-stage SBI weights, ``.safetensors``; head left new)."""
    import timm

    from deepfake_kernel.detectors.pretrained import load_efficientnet_lite_imagenet
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1)
    if init:
        from safetensors.torch import load_file
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(init).items()
                 if not k.startswith("classifier.")}
        model.load_state_dict(state, strict=False)
    else:
        load_efficientnet_lite_imagenet(model, 0)
    return model if depth >= 7 else Truncated(model, depth)


def to_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    videos = load_pairs(args.dense_pairs)
    held = [v for v in videos if fold_of(v["family"]) == args.fold]
    training = [v for v in videos if fold_of(v["family"]) != args.fold]
    reals = [v for v in training if v["label"] == 0]
    fakes = [v for v in training if v["label"] == 1]
    print(f"fold {args.fold}: {len(reals)} real / {len(fakes)} fake training videos, {len(held)} held out", flush=True)
    model = network(args.depth, args.init.replace('{fold}', args.fold)).to(memory_format=torch.channels_last)
    if args.head_init == "small":  # timm's Linear init for one output is U(±1): start logits of several units
        reset_head(model.fc if isinstance(model, Truncated) else model.classifier)
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * args.samples // args.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, args.lr, total_steps=steps, pct_start=args.warmup)
    half = args.batch // 2
    start, losses = time.time(), []
    for step in range(steps):
        model.train()
        if args.freeze_bn:  # ImageNet running statistics kept: residual batches are small and alike
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
        arrays, labels = [], []
        for _ in range(half):
            video = reals[rng.integers(len(reals))]
            arrays.append(sample(video, int(rng.integers(len(video["first"]))), None, rng, args.normalise))
            labels.append(0.0)
        for _ in range(half):
            if args.mode == "tsbi+real" and rng.random() < 0.5:
                video, kind = fakes[rng.integers(len(fakes))], None
            else:
                video, kind = reals[rng.integers(len(reals))], "tsbi"
            arrays.append(sample(video, int(rng.integers(len(video["first"]))), kind, rng, args.normalise))
            labels.append(1.0)
        logits = model(to_batch(arrays)).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, torch.tensor(labels))
        optimiser.zero_grad()
        loss.backward()
        if args.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0:
            print(f"step {step + 1}/{steps} loss {np.mean(losses[-25:]):.4f} {time.time() - start:.0f} s", flush=True)
    torch.save(model.state_dict(), out / "model.pt")
    model.eval()
    rows = []
    with torch.inference_mode():
        for video in held:
            batch = to_batch([residual(a, b, args.normalise) for a, b in zip(video["test_first"], video["test_second"])])
            logits = model(batch).squeeze(1).numpy()
            rows.append({"path": video["path"], "family": video["family"], "label": video["label"],
                         "logit": float(logits.mean()), "logits": ";".join(f"{v:.4f}" for v in logits)})
    with open(out / "scores.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {family: auc(np.array([r["label"] for r in rows if r["family"] == family]),
                           np.array([r["logit"] for r in rows if r["family"] == family]))
               for family in sorted({r["family"] for r in rows})}
    json.dump({"args": vars(args), "auc": summary, "seconds": time.time() - start,
               "final_loss": float(np.mean(losses[-50:]))}, open(out / "summary.json", "w"), indent=1)
    print("held-out AUC", summary, flush=True)


def report(args) -> None:
    scores = {}
    for path in args.scores.split(","):
        with open(path) as handle:
            for row in csv.DictReader(handle):
                scores.setdefault(row["path"], []).append(float(row["logit"]))
    with open(f"{args.pairs}/predictions.csv") as handle:
        shipped = [r for r in csv.DictReader(handle) if r["path"] in scores]
    for family in sorted({r["family"] for r in shipped}):
        results: dict[str, list] = {}
        for seed in sorted({r["seed"] for r in shipped}):
            rows = [r for r in shipped if r["family"] == family and r["seed"] == seed]
            y = np.array([int(r["label"]) for r in rows])
            raw = np.log(np.clip([float(r["raw"]) for r in rows], 1e-6, 1 - 1e-6))
            raw = raw - np.log1p(-np.exp(raw))
            cue = np.array([np.mean(scores[r["path"]]) for r in rows])
            results.setdefault("learned temporal cue alone", []).append(auc(y, cue))
            results.setdefault("shipped pair (network + cue)", []).append(auc(y, raw))
            scale = np.subtract(*np.percentile(raw, [75, 25]))
            for w in (0.1, 0.25, 0.5, 1.0):
                results.setdefault(f"shipped + {w} z(learned)", []).append(auc(y, raw + w * scale * robust_z(cue)))
            for w in (0.25, 0.5, 1.0):  # a fixed weight on the logit, as predict would add it
                results.setdefault(f"shipped + {w} learned", []).append(auc(y, raw + w * cue))
            methods = np.array([r["method"].split("/")[0].split(" (")[0] for r in rows])
            for method in sorted(set(methods[y == 1])):
                keep = (y == 0) | (methods == method)
                if (methods == method).sum() >= 4:
                    results.setdefault(f"  {method} alone ({(methods == method).sum()})", []).append(
                        auc(y[keep], cue[keep]))
                    results.setdefault(f"  {method} shipped", []).append(auc(y[keep], raw[keep]))
                    results.setdefault(f"  {method} shipped + 0.5 z", []).append(
                        auc(y[keep], (raw + 0.5 * scale * robust_z(cue))[keep]))
        for name, values in results.items():
            print(f"{family:13s} {name:36s} {np.mean(values):.3f}  ({' '.join(f'{v:.3f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    training = sub.add_parser("train")
    training.add_argument("--fold", required=True)
    training.add_argument("--mode", choices=("tsbi", "tsbi+real"), default="tsbi")
    training.add_argument("--epochs", type=int, default=3)
    training.add_argument("--samples", type=int, default=1024, help="samples an epoch")
    training.add_argument("--batch", type=int, default=16)
    training.add_argument("--lr", type=float, default=5e-4)
    training.add_argument("--warmup", type=float, default=0.1, help="fraction of steps rising to the peak rate")
    training.add_argument("--clip", type=float, default=0.0, help="gradient norm clipped to this (0: none)")
    training.add_argument("--head-init", choices=("timm", "small"), default="timm",
                          help="the new head's start, as train's --head-init: timm's U(±1), or reset_head's N(0, 0.01)")
    training.add_argument("--freeze-bn", action="store_true", help="BatchNorm statistics kept at their start")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--threads", type=int, default=1)
    training.add_argument("--init", default="", help="start weights ({fold}: the held-out fold's name), e.g. "
                          "runs/xfam/sbi12_{fold}/{fold}/weights/efficientnet_lite0.safetensors")
    training.add_argument("--normalise", action="store_true", help="each residual over its own mean level")
    training.add_argument("--dense-pairs", action="store_true", help="32 pairs of each REAL training video")
    training.add_argument("--depth", type=int, default=7, help="block stages of Lite0 kept (7: all, with its head)")
    training.add_argument("--out", required=True)
    sub.add_parser("dense-crops")
    reporting = sub.add_parser("report")
    reporting.add_argument("--scores", required=True, help="scores.csv of train runs, comma-separated (averaged)")
    reporting.add_argument("--pairs", default="runs/xfam/fit4_byst")
    args = parser.parse_args()
    {"train": train, "report": report, "dense-crops": dense_crops}[args.command](args)


if __name__ == "__main__":
    main()
