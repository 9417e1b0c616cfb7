"""Training-free cues, judged per family (docs/cross_family.md, "Cues that need no training").

From the face-crop cache of the cross-family protocol (32 frames, 224 px, 68-point landmarks), per crop:

* blend-consistency statistics: Laplacian, median-filter residual and gradient energy of the inner face against
  the boundary band and the surrounding ring, mouth and eyes against the inner face, Lab colour differences, and
  the radial power spectrum of the inner face;
* identity jitter: dlib's 128-d face descriptor of every crop of the longest track, spread around the track mean
  and between consecutive crops (``--identity``; about 10 min on one core).

Per video the median over crops; printed: each cue's video AUC within ffpp and within talking-head, and a logistic
regression on all blend cues trained on the other families (leave-one-family-out). Run from the repository root:
    python docs/xfam_cues.py [--identity]
"""
import argparse
from pathlib import Path

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepfake_kernel.training.augment import hull_mask
from deepfake_kernel.training.data import CacheConfig, CropCache, read_video_csv
from deepfake_kernel.training.landmarks import predictor_path

EPS = 1e-3
BLEND_CUES = [f"{stat} {what}" for stat in ("laplacian", "residual", "gradient")
              for what in ("inner", "inner/ring", "band/(inner+ring)", "mouth/inner", "eyes/inner")]
BLEND_CUES += [f"Lab {c} {what}" for c in "Lab" for what in ("inner-ring", "inner/ring std")]
BLEND_CUES += [f"spectrum r={r}" for r in (4, 8, 12, 16, 20, 24, 28, 31)]


def regions(shape, points):
    face = hull_mask(shape, points[:27], 0).astype(np.uint8)
    k = max(3, int(0.06 * np.ptp(points[:, 0])) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    inner = cv2.erode(face, kernel, iterations=2) > 0
    dilated = cv2.dilate(face, kernel, iterations=2) > 0
    ring = (cv2.dilate(face, kernel, iterations=5) > 0) & ~dilated
    mouth = cv2.dilate(hull_mask(shape, points[48:68], 0).astype(np.uint8), kernel) > 0
    eyes = cv2.dilate((hull_mask(shape, points[36:42], 0) | hull_mask(shape, points[42:48], 0)).astype(np.uint8),
                      kernel) > 0
    return inner, dilated & ~inner, ring, mouth, eyes


def mean_in(image, mask):
    return image[mask].mean() if mask.sum() > 10 else np.nan


def blend_cues(crop, points):
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inner, band, ring, mouth, eyes = regions(gray.shape, points)
    energies = (np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3)),
                np.abs(gray - cv2.medianBlur(gray.astype(np.uint8), 3).astype(np.float32)),
                np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)))
    out = []
    for energy in energies:
        i, b, o, m, e = (mean_in(energy, r) for r in (inner, band, ring, mouth, eyes))
        out += [np.log(i + EPS), np.log((i + EPS) / (o + EPS)), np.log((b + EPS) / (0.5 * (i + o) + EPS)),
                np.log((m + EPS) / (i + EPS)), np.log((e + EPS) / (i + EPS))]
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
    for c in range(3):
        channel = lab[..., c]
        out += [mean_in(channel, inner) - mean_in(channel, ring),
                (channel[inner].std() + EPS) / (channel[ring].std() + EPS) if ring.sum() > 10 else np.nan]
    ys, xs = np.nonzero(inner)
    if len(ys) > 100:
        box = cv2.resize(gray[ys.min():ys.max() + 1, xs.min():xs.max() + 1], (64, 64), interpolation=cv2.INTER_AREA)
        spectrum = np.log(np.abs(np.fft.fftshift(np.fft.fft2(box - box.mean()))) + 1)
        radius = np.hypot(*np.mgrid[-32:32, -32:32]).astype(int).ravel()
        profile = (np.bincount(radius, spectrum.ravel()) / np.maximum(np.bincount(radius), 1))[:32]
        out += list(profile[[4, 8, 12, 16, 20, 24, 28, 31]] - profile[2])
    else:
        out += [np.nan] * 8
    return np.array(out, np.float32)


def identity_jitter(crops, marks, tracks, recogniser):
    import dlib

    longest = np.bincount(tracks).argmax()
    embeddings = []
    for crop, points in zip(crops[tracks == longest], marks[tracks == longest]):
        if np.isnan(points).any():
            continue
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        shape = dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
                                           [dlib.point(int(round(x)), int(round(y))) for x, y in points])
        embeddings.append(np.array(recogniser.compute_face_descriptor(np.ascontiguousarray(crop), shape, 0, 0.25)))
    if len(embeddings) < 3:
        return [np.nan] * 2
    e = np.stack(embeddings)
    return [np.linalg.norm(e - e.mean(0), axis=1).mean(), np.linalg.norm(np.diff(e, axis=0), axis=1).mean()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", default="../shared/data/videos.csv,../shared/data/videos_extra.csv")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--identity", action="store_true", help="also the dlib identity-jitter cues")
    args = parser.parse_args()
    items = [i for csv in args.videos.split(",") for i in read_video_csv(csv)]
    cache = CropCache(args.cache_dir, CacheConfig(frames=32, crop_size=224))
    recogniser = None
    if args.identity:
        import dlib
        recogniser = dlib.face_recognition_model_v1(
            str(Path(predictor_path()).with_name("dlib_face_recognition_resnet_model_v1.dat")))
    names = BLEND_CUES + (["identity spread", "identity step"] if args.identity else [])
    rows, labels, families = [], [], []
    for item in items:
        samples = cache.load_videos([item], landmarks68=True)
        keep = ~np.isnan(samples.with_landmarks68()).any(axis=(1, 2))
        if not keep.any():
            continue
        cues = np.nanmedian([blend_cues(c, p) for c, p in zip(samples.crops[keep], samples.landmarks68[keep])], 0)
        if recogniser is not None:
            cues = np.concatenate([cues, identity_jitter(samples.crops, samples.landmarks68, samples.track, recogniser)])
        rows.append(cues)
        labels.append(item.label)
        families.append(item.family)
    x, y, family = np.nan_to_num(np.stack(rows)), np.array(labels), np.array(families)
    print(f"{len(y)} videos; video AUC of each cue (higher = FAKE) within a family")
    print(f"{'cue':28s} ffpp  talking-head")
    for j, name in enumerate(names):
        print(f"{name:28s} " + "  ".join(f"{roc_auc_score(y[family == f], x[family == f, j]):.2f}"
                                          for f in ("ffpp", "talking-head")))
    blend = x[:, :len(BLEND_CUES)]
    for c in (0.01, 0.1, 1.0):
        out = []
        for held in ("ffpp", "talking-head"):
            test = family == held
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, class_weight="balanced"))
            p = model.fit(blend[~test], y[~test]).predict_proba(blend[test])[:, 1]
            out.append(f"{held} AUC {roc_auc_score(y[test], p):.3f} log loss {log_loss(y[test], np.clip(p, .01, .99)):.3f}")
        print(f"logistic regression on the blend cues, C={c}, trained without the family: " + " | ".join(out))


if __name__ == "__main__":
    main()
