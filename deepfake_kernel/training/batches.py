"""What one epoch sees: class-balanced draws, self-blended pairs, augmented batches (each sample's randomness fixed
by the seed, the epoch and its position, so a resumed or distributed run makes the same batches)."""
from __future__ import annotations

import numpy as np

from .augment import AugmentConfig, FaceAugmenter
from .data import FaceSamples

FAKE_SOURCES = ("real", "sbi", "sbi+real")
REAL_PAIRINGS = ("none", "source")
FAKE_BYSTANDERS = ("keep", "drop")


def epoch_indices(labels: np.ndarray, count: int, seed: int, epoch: int) -> np.ndarray:
    """A class-balanced draw for one epoch: REAL and FAKE crops equally likely (oversampling the rarer)."""
    rng = np.random.default_rng([seed, epoch, 7])
    count = count or len(labels)
    weights = np.where(labels == 1, 0.5 / max(1, (labels == 1).sum()), 0.5 / max(1, (labels == 0).sum()))
    return rng.choice(len(labels), size=count, replace=True, p=weights / weights.sum())


def source_matched_draw(samples: FaceSamples, count: int, seed: int, epoch: int) -> np.ndarray:
    """``count`` crops as (FAKE, REAL) neighbours: each labelled fake followed by a real crop of its own source, the
    most specific one that holds real faces: same group and dataset, same group, same dataset, same family, any.

    A class-balanced draw lets a source's look stand in for the label wherever a source is mostly fake (DFDC's
    clips, a generator's demo outputs) or mostly real; matched pairs leave only what differs inside a source.
    Loose crops (no video) are one source of their own."""
    rng = np.random.default_rng([seed, epoch, 13])
    fakes = np.flatnonzero(samples.labels == 1)
    reals = np.flatnonzero(samples.labels == 0)
    if not len(fakes) or not len(reals):
        return epoch_indices(samples.labels, count, seed, epoch)

    def keys(index: int) -> list[tuple]:
        video = int(samples.video[index])
        if video < 0:
            return [("loose",)]
        item = samples.videos[video]
        return [("group+dataset", item.group, item.dataset), ("group", item.group), ("dataset", item.dataset),
                ("family", item.family)]

    pools: dict[tuple, list[int]] = {}
    for index in reals:
        for key in keys(int(index)):
            pools.setdefault(key, []).append(int(index))
    picked = rng.choice(fakes, size=max(1, count // 2), replace=True)
    out = np.empty(2 * len(picked), np.int64)
    for position, index in enumerate(picked):
        pool = next((pools[k] for k in keys(int(index)) if k in pools), reals)
        out[2 * position], out[2 * position + 1] = index, pool[int(rng.integers(len(pool)))]
    return out


def sbi_sources(samples: FaceSamples) -> np.ndarray:
    """Indices of the REAL crops with 68-point landmarks: what self-blended pairs are made from."""
    marks = samples.with_landmarks68()
    return np.flatnonzero((samples.labels == 0) & ~np.isnan(marks).any(axis=(1, 2)))


def _shape(points: np.ndarray) -> np.ndarray:
    """68 points centred and scaled to unit spread, flattened: a face's pose and shape, not its place or size."""
    centred = points - points.mean(axis=-2, keepdims=True)
    spread = np.sqrt((centred ** 2).sum(axis=(-2, -1), keepdims=True) / points.shape[-2])
    return (centred / np.maximum(spread, 1e-6)).reshape(*points.shape[:-2], -1)


def blend_donors(samples: FaceSamples, pairs: np.ndarray, sources: np.ndarray, share: float, seed: int, epoch: int,
                 candidates: int = 32) -> np.ndarray:
    """For each SBI pair source, the face blended into it: ``-1`` (itself: a self-blend) or, for about ``share`` of
    them, the index of a REAL face of *another* group whose 68 points are nearest in pose and shape among
    ``candidates`` drawn at random (Face X-ray's donor search), for a face-swap-like blend."""
    donors = np.full(len(pairs), -1, np.int64)
    if share <= 0 or not len(pairs):
        return donors
    rng = np.random.default_rng([seed, epoch, 17])
    groups = np.array([samples.videos[v].group if v >= 0 else f"loose:{i}"
                       for i, v in enumerate(samples.video)], dtype=object)
    shapes = _shape(samples.with_landmarks68()[sources].astype(np.float64))
    where = {int(index): position for position, index in enumerate(sources)}
    for position, index in enumerate(pairs):
        if rng.random() >= share:
            continue
        drawn = rng.integers(len(sources), size=candidates)
        drawn = drawn[groups[sources[drawn]] != groups[index]]
        if not len(drawn):
            continue  # every candidate is of the same person: keep the self-blend
        distance = ((shapes[drawn] - shapes[where[int(index)]]) ** 2).sum(axis=1)
        donors[position] = sources[drawn[int(np.argmin(distance))]]
    return donors


def epoch_plan(samples: FaceSamples, fake_source: str, count: int, seed: int, epoch: int,
               sources: np.ndarray | None = None, real_pairing: str = "none",
               sbi_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(single crops, SBI pair sources) for one epoch of about ``count`` images: ``real`` draws class-balanced
    singles; ``sbi`` only pairs (each gives 2 images); ``sbi+real`` ``sbi_share`` of the images from pairs, the rest
    singles. With ``real_pairing="source"`` the singles are source-matched (fake, real) neighbours
    (:func:`source_matched_draw`)."""
    count = count or len(samples)
    draw_singles = source_matched_draw if real_pairing == "source" else (
        lambda s, n, seed_, epoch_: epoch_indices(s.labels, n, seed_, epoch_))
    if fake_source == "real":
        return draw_singles(samples, count, seed, epoch), np.zeros(0, np.int64)
    sources = sbi_sources(samples) if sources is None else sources
    if not len(sources):
        raise ValueError("--fake-source sbi needs REAL face crops with 68-point landmarks; none were found")
    rng = np.random.default_rng([seed, epoch, 11])
    pair_images = count if fake_source == "sbi" else int(count * sbi_share)  # 0.5: count // 2, as always
    pairs = rng.choice(sources, size=max(1, pair_images // 2), replace=True)
    singles = (draw_singles(samples, count - pair_images, seed, epoch) if fake_source == "sbi+real"
               else np.zeros(0, np.int64))
    return singles, pairs


def make_batch(samples: FaceSamples, indices: np.ndarray, augmenter: FaceAugmenter | None, seed: int,
               epoch: int, pairs: np.ndarray = np.zeros(0, np.int64),
               boundaries: bool = False, donors: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Augmented uint8 crops and (possibly pseudo-fake) labels, then a real/self-blended pair for every index of
    ``pairs`` (blended from the face ``donors[k]`` instead of itself where that is not -1: :func:`blend_donors`);
    each sample's randomness is fixed by its position.

    ``boundaries`` adds each image's blend-boundary map (float32 ``(N, H, W)``) and whether it is known
    (float32 ``(N,)``): zero and known for a REAL face, the blend's boundary for a self-blended one, unknown for a
    labelled fake (where its forgery's boundary lies is not recorded)."""
    images, labels = [], []
    maps = []
    for position, index in enumerate(indices):
        image, label = samples.crops[index], int(samples.labels[index])
        if augmenter is not None:
            marks = samples.landmarks[index]
            marks = None if np.isnan(marks).any() else marks
            rng = np.random.default_rng([seed, epoch, int(position), int(index)])
            image, label = augmenter(image, marks, label, rng)
        images.append(image)
        labels.append(label)
        maps.append(None)
    if len(pairs):
        augmenter = augmenter or FaceAugmenter(AugmentConfig(flip=0, color=0, blur=0, jpeg=0, crop_scale=(1.0, 1.0),
                                                             face_feature_mask=0))
        marks68 = samples.with_landmarks68()
        for position, index in enumerate(pairs):
            rng = np.random.default_rng([seed, epoch, int(position), int(index), 68])
            donor = None if donors is None or donors[position] < 0 else (samples.crops[donors[position]],
                                                                         marks68[donors[position]])
            real, fake, *boundary = augmenter.sbi_pair(samples.crops[index], marks68[index], rng,
                                                       with_boundary=boundaries, donor=donor)
            images += [real, fake]
            labels += [0, 1]
            maps += [np.zeros_like(boundary[0]), boundary[0]] if boundaries else [None, None]
    images, labels = np.stack(images), np.array(labels, dtype=np.float32)
    if not boundaries:
        return images, labels
    known = np.array([m is not None or label == 0 for m, label in zip(maps, labels)], dtype=np.float32)
    blank = np.zeros(images.shape[1:3], np.float32)
    return images, labels, np.stack([blank if m is None else m for m in maps]), known
