"""Exploration (fifteenth session): zoomed crops as test-time augmentation, after the test-set statistics.

Each cached face is centre-cropped to a fraction of its side and resized back (zoom 0.85, 0.7), scored, and the
video AUC (predict's rule) printed for each zoom and for the mean of the plain and 0.85 scores. Run from the
repository root:
    python docs/xfam_zoom_tta.py runs/xfam/sbi12ft_ffpp/seed_0/ffpp/weights --family ffpp
"""
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from deepfake_kernel.detectors.weights import load_member, read_manifest
from xfam_set_adabn import family_faces, family_parser, track_max  # beside this script in docs/


def zoomed(crops: np.ndarray, fraction: float) -> np.ndarray:
    """The central ``fraction`` of each uint8 crop, resized back to the crop's size."""
    side = crops.shape[1]
    keep = int(round(side * fraction))
    start = (side - keep) // 2
    images = torch.as_tensor(crops[:, start:start + keep, start:start + keep]).permute(0, 3, 1, 2).float()
    images = F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    return images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def main():
    parser = family_parser(__doc__)
    parser.add_argument("--blocks", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    videos, labels, pool = family_faces(args.family, args.videos, args.cache_dir, per_video=8)
    tracks = [t for _, _, t in videos]
    for weights in args.weights:
        model = load_member(read_manifest(weights).members[0], weights).eval()
        model.adapt_batchnorm(pool, args.blocks)
        scores = {}
        with torch.inference_mode():
            for fraction in (1.0, 0.85, 0.7):
                scores[fraction] = [model.predict_proba(crops if fraction == 1.0 else zoomed(crops, fraction))
                                    for _, crops, _ in videos]
        result = {f"zoom {f}": roc_auc_score(labels, [track_max(p, t) for p, t in zip(s, tracks)])
                  for f, s in scores.items()}
        result["mean of 1 and 0.85"] = roc_auc_score(labels, [track_max((a + b) / 2, t) for a, b, t
                                                               in zip(scores[1.0], scores[0.85], tracks)])
        print(weights, {k: round(v, 3) for k, v in result.items()}, flush=True)


if __name__ == "__main__":
    main()
