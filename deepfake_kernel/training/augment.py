"""Training-time augmentations for face crops (numpy + OpenCV only).

Images are uint8 RGB face crops ``(H, W, 3)``; landmarks are the 5 MTCNN points of the crop as a float array
``(5, 2)`` of ``(x, y)`` pixel coordinates in the order left eye, right eye, nose, left mouth corner, right
mouth corner ("left" = smaller x in the image), or ``None`` when unknown. Every random choice is drawn from an
explicit ``numpy.random.Generator``, so the same seed gives the same output.

Without landmarks, the landmark-based augmentations (Face Feature Mask, FWA, SBI) use
:func:`estimated_landmarks`: where MTCNN puts the 5 points, on average, in a square crop made with a 30 %
margin around its box (``faces.square_crop``). The estimate is centred and upright, so these augmentations
still target the eyes, nose, mouth and face oval of a typical crop.

:class:`FaceAugmenter` applies, in order: one pseudo-fake (FWA or SBI, REAL samples only, label becomes FAKE),
random crop/scale, horizontal flip, rotation, Face Feature Mask, brightness/contrast, gaussian blur, JPEG,
low-quality re-encoding, H.264 round trip.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

REAL, FAKE = 0, 1
FEATURE_MASK_MODES = ("all", "three", "interval")
FLIP_ORDER = [1, 0, 2, 4, 3]  # landmark order after a horizontal flip: left/right eye and mouth corners swap

# Mean MTCNN landmarks as fractions of the MTCNN box (x of box width, y of box height), and the box's
# width/height ratio; used by estimated_landmarks.
_LANDMARKS_IN_BOX = np.array([[0.30, 0.36], [0.70, 0.36], [0.50, 0.56], [0.34, 0.74], [0.66, 0.74]])
_BOX_ASPECT = 1 / 1.2


@dataclass
class AugmentConfig:
    """Probabilities (0..1) and ranges of the augmentations applied by :class:`FaceAugmenter`."""

    flip: float = 0.5            # horizontal flip (landmarks flipped too; left/right swapped)
    color: float = 0.5           # brightness/contrast jitter
    blur: float = 0.1            # gaussian blur
    jpeg: float = 0.3            # JPEG re-compression, quality 40..95
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random crop side fraction range, resized back
    rotate: float = 0.0          # rotation up to ±10°; default off (rotation hurt in one reference study)
    face_feature_mask: float = 0.33  # Face Feature Mask
    fwa: float = 0.0             # FWA pseudo-fake on REAL samples (label becomes FAKE)
    sbi: float = 0.0             # self-blended pseudo-fake on REAL samples (label becomes FAKE)
    degrade: float = 0.0         # heavy-compression look (FF++ c40): downscale, JPEG quality 15..40, upscale back
    h264: float = 0.0            # H.264 round trip (libx264 CRF 23..40, as FF++ c23..c40) at 0.4..1 of the side


# ----------------------------------------------------------------------------------------------- helpers

def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return image


def _check_landmarks(landmarks: np.ndarray | None) -> np.ndarray | None:
    if landmarks is None:
        return None
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected landmarks of shape (5, 2), got {points.shape}")
    return points


def _odd(value: float, minimum: int = 3) -> int:
    """The odd integer nearest ``value``, at least ``minimum`` (a Gaussian kernel size)."""
    size = max(minimum, int(round(value)))
    return size if size % 2 == 1 else size + 1


def _face_geometry(landmarks: np.ndarray, shape_hw: tuple[int, int]) -> tuple[float, np.ndarray, np.ndarray]:
    """Inter-ocular distance (floored at 5 % of the crop side), unit eye-line vector and unit "down" vector."""
    eye_vector = landmarks[1] - landmarks[0]
    distance = float(np.linalg.norm(eye_vector))
    across = eye_vector / distance if distance > 1e-6 else np.array([1.0, 0.0])
    down = np.array([-across[1], across[0]])
    return max(distance, 0.05 * min(shape_hw)), across, down


def _ellipse(centre: np.ndarray, half_across: float, half_down: float, across: np.ndarray,
             down: np.ndarray, n: int = 24) -> np.ndarray:
    """Points of an ellipse with semi-axes along ``across`` and ``down``."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
    return centre + half_across * np.cos(t) * across + half_down * np.sin(t) * down


def _blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * foreground + (1 - alpha) * background`` for a float (H, W) alpha, as uint8."""
    alpha = alpha[..., None].astype(np.float32)
    mixed = alpha * foreground.astype(np.float32) + (1.0 - alpha) * background.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def estimated_landmarks(shape_hw: tuple[int, int], margin: float = 0.3) -> np.ndarray:
    """Where MTCNN's 5 landmarks typically are in a square crop made with ``margin`` around the face box.

    ``faces.square_crop`` takes a square of side ``(1 + margin) * max(box sides)`` centred on the box; the box
    is assumed 1.2× taller than wide, centred, with the mean landmark positions of ``_LANDMARKS_IN_BOX``.
    """
    h, w = shape_hw
    box_h = 1.0 / (1.0 + margin)
    box_w = box_h * _BOX_ASPECT
    fractions = np.column_stack([0.5 + (_LANDMARKS_IN_BOX[:, 0] - 0.5) * box_w,
                                 0.5 + (_LANDMARKS_IN_BOX[:, 1] - 0.5) * box_h])
    return fractions * np.array([w, h]) - 0.5


def _landmarks_or_estimate(landmarks: np.ndarray | None, shape_hw: tuple[int, int]) -> np.ndarray:
    points = _check_landmarks(landmarks)
    return estimated_landmarks(shape_hw) if points is None else points


def hull_mask(shape_hw: tuple[int, int], points: np.ndarray, dilate: int) -> np.ndarray:
    """uint8 mask (1 inside, 0 outside) of the convex hull of ``points`` (x, y), dilated by ``dilate`` pixels.

    Degenerate hulls (one or two points) still mark the point or segment; ``dilate`` is the radius of the
    elliptical dilation kernel, 0 for none.
    """
    h, w = shape_hw
    mask = np.zeros((h, w), np.uint8)
    pts = np.round(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(np.int32)
    if len(pts) == 0:
        return mask
    hull = cv2.convexHull(pts)
    cv2.fillConvexPoly(mask, hull, 1)
    cv2.polylines(mask, [hull], True, 1)
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        mask = cv2.dilate(mask, kernel)
    return mask


def face_ellipse_points(landmarks: np.ndarray, scale: float = 1.0,
                        shape_hw: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Polygon (24 × 2) of the face oval estimated from 5 landmarks: about the MTCNN box, times ``scale``.

    Centred between the eye and mouth midpoints, semi-axes 1.0× the inter-ocular distance across and 1.35×
    the eye-to-mouth distance down, rotated with the eye line. ``shape_hw`` (the crop) only floors the
    inter-ocular distance at 5 % of the crop side, for degenerate landmarks.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    iod, across, down = _face_geometry(points, shape_hw)
    eyes, mouth = points[:2].mean(axis=0), points[3:].mean(axis=0)
    eye_to_mouth = max(float(np.dot(mouth - eyes, down)), 0.5 * iod)
    return _ellipse((eyes + mouth) / 2, scale * iod, scale * 1.35 * eye_to_mouth, across, down)


# ---------------------------------------------------------------------------------- face feature mask

def _landmark_regions(landmarks: np.ndarray, iod: float, across: np.ndarray, down: np.ndarray) -> list[np.ndarray]:
    """Per landmark, the polygon of the facial feature around it: eyes, discs of 0.25× IOD; nose, an ellipse
    of 0.2× by 0.25× IOD; mouth corners, ellipses of 0.1× by 0.15× IOD (stretched vertically)."""
    radius = 0.25 * iod
    left_eye, right_eye, nose, left_mouth, right_mouth = landmarks
    return [
        _ellipse(left_eye, radius, radius, across, down),
        _ellipse(right_eye, radius, radius, across, down),
        _ellipse(nose, 0.2 * iod, 0.25 * iod, across, down),
        _ellipse(left_mouth, 0.1 * iod, 0.15 * iod, across, down),
        _ellipse(right_mouth, 0.1 * iod, 0.15 * iod, across, down),
    ]


def feature_mask(shape_hw: tuple[int, int], landmarks: np.ndarray | None, rng: np.random.Generator,
                 mode: str | None = None) -> np.ndarray:
    """uint8 mask (1 = kept) of the Face Feature Mask: see :func:`face_feature_mask`."""
    if mode is None:
        mode = FEATURE_MASK_MODES[int(rng.integers(len(FEATURE_MASK_MODES)))]
    if mode not in FEATURE_MASK_MODES:
        raise ValueError(f"mode must be one of {FEATURE_MASK_MODES} or None, got {mode!r}")
    points = _landmarks_or_estimate(landmarks, shape_hw)
    iod, across, down = _face_geometry(points, shape_hw)
    regions = _landmark_regions(points, iod, across, down)
    features = [regions[0], regions[1], regions[2], np.vstack(regions[3:])]  # left eye, right eye, nose, mouth
    if mode == "three":
        features = [features[i] for i in sorted(rng.choice(4, size=3, replace=False))]
    elif mode == "interval":
        length = int(rng.integers(2, 6))
        start = int(rng.integers(0, 5 - length + 1))
        features = [np.vstack(regions[start:start + length])]
    dilate = max(1, int(round(0.08 * iod)))
    mask = np.zeros(shape_hw, np.uint8)
    for polygon in features:
        mask |= hull_mask(shape_hw, polygon, dilate)
    return mask


def face_feature_mask(image: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator,
                      mode: str | None = None) -> np.ndarray:
    """Keep only the dilated convex hulls of facial features and black out the rest.

    Features come from the 5 landmarks: each eye (disc of 0.25× the inter-ocular distance), the nose
    (ellipse around its tip) and the mouth (hull of both corners, stretched vertically). ``mode``: ``"all"``
    keeps the four features, ``"three"`` three of them at random, ``"interval"`` the hull of a random run of
    2 to 5 consecutive landmarks (in the order above); ``None`` picks a mode at random. Hulls are dilated by
    0.08× the inter-ocular distance. Without landmarks, :func:`estimated_landmarks` stands in.
    """
    image = _check_image(image)
    mask = feature_mask(image.shape[:2], landmarks, rng, mode)
    return np.ascontiguousarray(image * mask[..., None])


# ---------------------------------------------------------------------------------------- pseudo-fakes

def fwa_pseudo_fake(image: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Face-warping-artifact pseudo-fake (Li & Lyu 2019) of a real face.

    The crop is downscaled to 0.2..0.6 of its size, gaussian-blurred, upscaled back and slightly warped
    (rotation ±5°, scale 0.95..1.05, shift ±3 % about the face centre); the result replaces the face oval
    (:func:`face_ellipse_points`, scale 0.9..1.15) through a feathered mask, so pixels change mostly there.
    """
    image = _check_image(image)
    h, w = image.shape[:2]
    points = _landmarks_or_estimate(landmarks, (h, w))
    iod = _face_geometry(points, (h, w))[0]

    factor = rng.uniform(0.2, 0.6)
    small = cv2.resize(image, (max(4, round(w * factor)), max(4, round(h * factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (_odd(rng.choice([3, 5])),) * 2, 0)
    degraded = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    centre = points.mean(axis=0)
    warp = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), rng.uniform(-5, 5), rng.uniform(0.95, 1.05))
    warp[:, 2] += rng.uniform(-0.03, 0.03, size=2) * np.array([w, h])
    degraded = cv2.warpAffine(degraded, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    region = hull_mask((h, w), face_ellipse_points(points, rng.uniform(0.9, 1.15), (h, w)), 0)
    feather = _odd(rng.uniform(0.15, 0.35) * iod)
    alpha = cv2.GaussianBlur(region.astype(np.float32), (feather, feather), 0)
    return np.ascontiguousarray(_blend(degraded, image, alpha))


def _sbi_source(image: np.ndarray, centre: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The SBI source: colour jitter (RGB shift, HSV shift, brightness/contrast), then sharpen or blur by
    down/upscaling, then a small translation and scale about ``centre``."""
    h, w = image.shape[:2]
    source = image.astype(np.float32)
    if rng.random() < 0.5:
        source += rng.uniform(-20, 20, size=3).astype(np.float32)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(np.clip(source, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-4, 4)) % 180
        hsv[..., 1:] += rng.uniform(-20, 20, size=2).astype(np.float32)
        source = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(-25, 25)
    source = (source - source.mean()) * contrast + source.mean() + brightness
    source = np.clip(source, 0, 255)

    if rng.random() < 0.5:
        alpha, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
        effect = np.full((3, 3), -1.0, np.float32)
        effect[1, 1] = 8 + lightness
        identity = np.zeros((3, 3), np.float32)
        identity[1, 1] = 1
        source = cv2.filter2D(source, -1, (1 - alpha) * identity + alpha * effect)
    else:
        ratio = rng.choice([2, 4])
        small = cv2.resize(source, (max(4, w // ratio), max(4, h // ratio)), interpolation=cv2.INTER_AREA)
        source = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    warp = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, rng.uniform(0.95, 1 / 0.95))
    warp[:, 2] += rng.uniform([-0.03, -0.015], [0.03, 0.015]) * np.array([w, h])
    source = cv2.warpAffine(source, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(source, 0, 255).astype(np.uint8)


def _sbi_alpha(shape_hw: tuple[int, int], points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI blend mask: the landmark hull (dilated) or the face oval, eroded by a first blur, softened by a
    second (random kernels), times a blend ratio from {0.25, 0.5, 0.75, 1, 1, 1}."""
    iod = _face_geometry(points, shape_hw)[0]
    if rng.random() < 0.5:
        region = hull_mask(shape_hw, points, int(round(rng.uniform(0.3, 0.6) * iod)))
    else:
        region = hull_mask(shape_hw, face_ellipse_points(points, rng.uniform(0.85, 1.1), shape_hw), 0)
    first, second = (_odd(rng.uniform(0.05, 0.26) * iod) for _ in range(2))
    alpha = cv2.GaussianBlur(region.astype(np.float32), (first, first), 0)
    eroded = (alpha >= alpha.max() - 1e-4).astype(np.float32) if alpha.max() > 0 else alpha
    if eroded.sum() > 0.25 * region.sum():
        alpha = eroded
    alpha = cv2.GaussianBlur(alpha, (second, second), 0)
    alpha /= max(float(alpha.max()), 1e-6)
    return alpha * _blend_ratio(rng)


def self_blend_pseudo_fake(image: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Self-blended pseudo-fake (SBI, Shiohara & Yamasaki 2022) of a real face.

    Source and target are the same face: the source gets colour and frequency jitter and a small translation
    and scale, then is blended into the target through a blurred landmark-hull mask with a random blend
    ratio in 0.25..1, so pixels change mostly inside that mask.
    """
    image = _check_image(image)
    points = _landmarks_or_estimate(landmarks, image.shape[:2])
    source = _sbi_source(image, points.mean(axis=0), rng)
    alpha = _sbi_alpha(image.shape[:2], points, rng)
    return np.ascontiguousarray(_blend(source, image, alpha))


# ------------------------------------------------------------------------- SBI from 68 landmarks, in pairs

def _elastic(mask: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """``mask`` (float32) warped by a smooth random displacement field of up to about ``amplitude`` pixels."""
    h, w = mask.shape
    grid = max(3, int(rng.integers(3, 7)))
    field = [cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
             * amplitude for _ in range(2)]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xs + field[0], ys + field[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def sbi_region_68(shape_hw: tuple[int, int], points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The blend region (float32 0/1) from 68 landmarks: the hull of the whole face, of the face with a forehead
    raised above the brows, of the inner face (brows, eyes, nose, mouth) or of the lower face (jaw and nose)."""
    points = np.asarray(points, dtype=np.float64)
    choice = rng.random()
    if choice < 0.35:
        chosen = points
    elif choice < 0.65:  # the iBUG points stop at the brows: extend the hull upwards into the forehead
        brows = points[17:27]
        up = points[8] - points[27]  # chin minus nose bridge: the face's "down" direction and length
        raised = brows - up * rng.uniform(0.15, 0.45)
        chosen = np.vstack([points[:17], raised])
    elif choice < 0.85:
        chosen = points[17:]
    else:
        chosen = np.vstack([points[:17], points[27:36]])
    return hull_mask(shape_hw, chosen, 0).astype(np.float32)


def sbi_mask_68(shape_hw: tuple[int, int], points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The soft blend mask (float32, peak 1) from 68 landmarks: a random face region (:func:`sbi_region_68`),
    elastically deformed, eroded or dilated, softened by two random blurs."""
    points = np.asarray(points, dtype=np.float64)
    face = max(float(np.ptp(points[:, 0])), float(np.ptp(points[:, 1])), 0.1 * min(shape_hw))
    region = sbi_region_68(shape_hw, points, rng)
    if rng.random() < 0.7:
        region = (_elastic(region, rng, rng.uniform(0.02, 0.07) * face) > 0.5).astype(np.float32)
    size = int(round(rng.uniform(0.0, 0.08) * face))
    if size > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
        region = (cv2.erode if rng.random() < 0.5 else cv2.dilate)(region, kernel)
    if region.sum() < 16:  # a degenerate hull: fall back to the whole-face hull
        region = hull_mask(shape_hw, points, 0).astype(np.float32)
    first, second = (_odd(rng.uniform(0.03, 0.2) * face) for _ in range(2))
    alpha = cv2.GaussianBlur(region, (first, first), 0)
    inner = (alpha >= 0.999).astype(np.float32)  # erode by the first blur, so the second softens inwards
    if inner.sum() > 0.25 * region.sum():
        alpha = inner
    alpha = cv2.GaussianBlur(alpha, (second, second), 0)
    return alpha / max(float(alpha.max()), 1e-6)


def _blend_ratio(rng: np.random.Generator) -> float:
    """SBI's blend ratio (how much of the source replaces the target inside the mask): 0.25, 0.5, 0.75, 1, 1 or 1."""
    return float(rng.choice([0.25, 0.5, 0.75, 1.0, 1.0, 1.0]))


def blend_boundary(mask: np.ndarray) -> np.ndarray:
    """The blending boundary of a soft mask, ``4 · m · (1 − m)`` (Face X-ray, Li et al. 2020): 1 where the two
    images mix half and half, 0 wherever a pixel is all one image (a real face's boundary is 0 everywhere)."""
    mask = np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)
    return 4.0 * mask * (1.0 - mask)


def self_blend_68(image: np.ndarray, points: np.ndarray, rng: np.random.Generator,
                  with_boundary: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Self-blended pseudo-fake from 68 landmarks: the face, colour- and frequency-jittered and slightly moved
    (:func:`_sbi_source`), blended back into itself through :func:`sbi_mask_68` times a blend ratio.
    ``with_boundary`` also returns the blend's boundary map (:func:`blend_boundary` of the mask before the blend
    ratio), float32 ``(H, W)``."""
    image = _check_image(image)
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks, got {points.shape}")
    source = _sbi_source(image, points[27:36].mean(axis=0), rng)
    mask = sbi_mask_68(image.shape[:2], points, rng)
    fake = np.ascontiguousarray(_blend(source, image, mask * _blend_ratio(rng)))
    return (fake, blend_boundary(mask)) if with_boundary else fake


def _check_pair(first: np.ndarray, second: np.ndarray, points: np.ndarray):
    """Two crops of one shape (uint8 RGB) and 68 landmarks (float64), or a ValueError saying what came instead."""
    first, second = _check_image(first), _check_image(second)
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (68, 2) or first.shape != second.shape:
        raise ValueError(f"expected two crops of one shape and 68 landmarks, got {first.shape}, {second.shape}, "
                         f"{points.shape}")
    return first, second, points


def wavering_self_blend(first: np.ndarray, second: np.ndarray, points: np.ndarray,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two consecutive frames of a real face self-blended as a forgery rendered frame by frame would be: the same
    SBI source transform (:func:`_sbi_source`) and 68-point mask on both, then the second frame's source, colour,
    mask and blend ratio moved slightly — a blend that wavers. One random strength (0.2–1) scales every change, up
    to about 1.2 px of shift, 0.3° of turn, 2 % of colour gain, 3 grey levels, 2 px of mask deformation and 0.05
    of blend ratio. The learned temporal cue's FAKE class (:mod:`.temporal`); ``points``: the first frame's."""
    first, second, points = _check_pair(first, second, points)
    centre = points.mean(axis=0)
    seed = int(rng.integers(1 << 31))
    source0 = _sbi_source(first, centre, np.random.default_rng(seed))
    source1 = _sbi_source(second, centre, np.random.default_rng(seed)).astype(np.float32)
    strength = rng.uniform(0.2, 1.0)
    angle = rng.uniform(0, 2 * np.pi)
    warp = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), strength * rng.uniform(-0.3, 0.3),
                                   1 + strength * rng.uniform(-0.005, 0.005))
    warp[:, 2] += strength * rng.uniform(0.2, 1.2) * np.array([np.cos(angle), np.sin(angle)])
    h, w = first.shape[:2]
    source1 = cv2.warpAffine(source1, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    source1 = (source1 * (1 + strength * rng.uniform(-0.02, 0.02, size=3)).astype(np.float32)
               + strength * rng.uniform(-3, 3))
    source1 = np.clip(source1, 0, 255).astype(np.uint8)
    mask0 = sbi_mask_68((h, w), points, rng)
    mask1 = np.clip(_elastic(mask0, rng, strength * rng.uniform(0.5, 2.0)), 0, 1)
    ratio0 = float(rng.choice([0.5, 0.75, 1.0, 1.0]))
    ratio1 = float(np.clip(ratio0 + strength * rng.uniform(-0.05, 0.05), 0.3, 1.0))
    return (np.ascontiguousarray(_blend(source0, first, mask0 * ratio0)),
            np.ascontiguousarray(_blend(source1, second, mask1 * ratio1)))


def frozen_self_blend(first: np.ndarray, second: np.ndarray, points: np.ndarray,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two consecutive frames of a real face where the second frame's inner face is the first's, moved onto the
    second by their optical flow: a texture that follows the motion but does not change as a live face does (too
    steady, the opposite of :func:`wavering_self_blend`), blended in with a 68-point mask (``points``: the first
    frame's), softened by a light blur half the time. The first frame is returned unchanged."""
    from ..pipeline.temporal import pair_flow

    first, second, points = _check_pair(first, second, points)
    maps = pair_flow(second, first)  # warps an image of the first frame onto the second
    frozen = cv2.remap(first, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        frozen = cv2.GaussianBlur(frozen, (0, 0), float(rng.uniform(0.4, 1.0)))
    mask = sbi_mask_68(first.shape[:2], points, rng)
    ratio = float(rng.choice([0.5, 0.75, 1.0, 1.0]))
    return first, np.ascontiguousarray(_blend(frozen, second, mask * ratio))


def pair_jitter(first: np.ndarray, second: np.ndarray, rng: np.random.Generator,
                crop_side: tuple[float, float] = (0.85, 1.0), contrast: float = 0.2, brightness: float = 20.0,
                downscale: tuple[float, float] = (0.5, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """One random look applied alike to both frames of a pair, so that what changes between them stays what the
    video changed: the same window of ``crop_side`` × the sides resized back, the same contrast (×1 ± ``contrast``
    about the first frame's mean) and brightness (± ``brightness`` grey levels), and half the time the same
    resolution loss (down to ``downscale`` of the side and back up)."""
    first, second = _check_image(first), _check_image(second)
    if first.shape != second.shape:
        raise ValueError(f"expected two crops of one shape, got {first.shape} and {second.shape}")
    h, w = first.shape[:2]
    fraction = rng.uniform(*crop_side)
    crop_w, crop_h = max(1, round(w * fraction)), max(1, round(h * fraction))
    left, top = int(rng.integers(0, w - crop_w + 1)), int(rng.integers(0, h - crop_h + 1))
    gain, shift = rng.uniform(1 - contrast, 1 + contrast), rng.uniform(-brightness, brightness)
    mean = float(first.mean())
    factor = rng.uniform(*downscale) if rng.random() < 0.5 else 1.0
    small = (max(8, round(w * factor)), max(8, round(h * factor)))

    def look(image: np.ndarray) -> np.ndarray:
        image = cv2.resize(image[top:top + crop_h, left:left + crop_w], (w, h), interpolation=cv2.INTER_LINEAR)
        if factor < 1.0:
            image = cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (w, h),
                               interpolation=cv2.INTER_LINEAR)
        pixels = (image.astype(np.float32) - mean) * gain + mean + shift
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)

    return look(first), look(second)


def _match_colour(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``source`` (uint8 RGB) with each Lab channel's mean and spread inside ``region`` moved to ``target``'s there
    (Reinhard et al. 2001), so a donor face takes the skin tone and light of the face it is blended into."""
    inside = region > 0.5
    if inside.sum() < 16:
        return source
    src = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_mean, s_std = src[inside].mean(axis=0), src[inside].std(axis=0) + 1e-3
    d_mean, d_std = dst[inside].mean(axis=0), dst[inside].std(axis=0)
    moved = (src - s_mean) * (d_std / s_std) + d_mean
    return cv2.cvtColor(np.clip(np.rint(moved), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def cross_blend_68(image: np.ndarray, points: np.ndarray, donor: np.ndarray, donor_points: np.ndarray,
                   rng: np.random.Generator, with_boundary: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """A face-swap-like pseudo-fake (Face X-ray's blended images, Li et al. 2020): another person's face
    (``donor``, its 68 points) aligned onto ``image`` by the similarity transform between the two sets of points,
    colour-matched inside the face, then blended in through :func:`sbi_mask_68` times a blend ratio, as
    :func:`self_blend_68` blends a face into itself. ``with_boundary`` also returns the boundary map."""
    image, donor = _check_image(image), _check_image(donor)
    points, donor_points = (np.asarray(p, dtype=np.float64) for p in (points, donor_points))
    if points.shape != (68, 2) or donor_points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks for both faces, got {points.shape} and {donor_points.shape}")
    h, w = image.shape[:2]
    warp, _ = cv2.estimateAffinePartial2D(donor_points.astype(np.float32), points.astype(np.float32))
    if warp is None:  # degenerate points: blend the face into itself instead
        return self_blend_68(image, points, rng, with_boundary=with_boundary)
    aligned = cv2.warpAffine(donor, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    aligned = _match_colour(aligned, image, hull_mask((h, w), points, 0).astype(np.float32))
    mask = sbi_mask_68((h, w), points, rng)
    fake = np.ascontiguousarray(_blend(aligned, image, mask * _blend_ratio(rng)))
    return (fake, blend_boundary(mask)) if with_boundary else fake


# ----------------------------------------------------------------------------------- standard augmentations

def horizontal_flip(image: np.ndarray, landmarks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror the image; landmarks are mirrored and re-ordered so that index 0 is again the left-side eye."""
    flipped = np.ascontiguousarray(image[:, ::-1])
    if landmarks is None:
        return flipped, None
    points = np.asarray(landmarks, dtype=np.float64)[FLIP_ORDER].copy()
    points[:, 0] = image.shape[1] - 1 - points[:, 0]
    return flipped, points


def random_crop_scale(image: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator,
                      side_range: tuple[float, float] = (0.8, 1.0)) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop a random window of ``side_range`` × the image sides and resize it back; landmarks follow."""
    h, w = image.shape[:2]
    fraction = rng.uniform(*side_range) if side_range[0] < side_range[1] else float(side_range[0])
    crop_w, crop_h = max(1, min(w, round(w * fraction))), max(1, min(h, round(h * fraction)))
    left, top = int(rng.integers(0, w - crop_w + 1)), int(rng.integers(0, h - crop_h + 1))
    if (crop_w, crop_h) == (w, h):
        return image, landmarks
    crop = image[top:top + crop_h, left:left + crop_w]
    resized = cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    if landmarks is None:
        return resized, None
    scale = np.array([w / crop_w, h / crop_h])
    points = (np.asarray(landmarks, dtype=np.float64) - [left, top] + 0.5) * scale - 0.5
    return resized, points


def random_rotate(image: np.ndarray, landmarks: np.ndarray | None, rng: np.random.Generator,
                  max_degrees: float = 10.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Rotate about the centre by up to ±``max_degrees`` (reflected border); landmarks follow."""
    h, w = image.shape[:2]
    warp = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), rng.uniform(-max_degrees, max_degrees), 1.0)
    rotated = cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if landmarks is None:
        return rotated, None
    points = np.asarray(landmarks, dtype=np.float64)
    return rotated, points @ warp[:, :2].T + warp[:, 2]


def brightness_contrast(image: np.ndarray, rng: np.random.Generator, brightness: float = 25.0,
                        contrast: float = 0.2) -> np.ndarray:
    """Contrast ×(1 ± ``contrast``) about the mean, brightness ± ``brightness`` grey levels."""
    pixels = image.astype(np.float32)
    mean = float(pixels.mean())
    pixels = (pixels - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean + rng.uniform(-brightness, brightness)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, rng: np.random.Generator, sigma: tuple[float, float] = (0.5, 1.5)) -> np.ndarray:
    """Gaussian blur with a random sigma."""
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(*sigma))


def jpeg_recompress(image: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] = (40, 95)) -> np.ndarray:
    """Encode as JPEG at a random quality in ``quality`` (inclusive) and decode back."""
    level = int(rng.integers(quality[0], quality[1] + 1))
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, level])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode JPEG")
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def low_quality(image: np.ndarray, rng: np.random.Generator, scale: tuple[float, float] = (0.35, 0.7),
                quality: tuple[int, int] = (15, 40)) -> np.ndarray:
    """The look of a heavily compressed, low-resolution video face (FF++ c40, a small face in a DFDC frame):
    downscale to ``scale`` of the side, JPEG at a quality in ``quality``, upscale back to the input size."""
    h, w = image.shape[:2]
    factor = rng.uniform(*scale)
    small = cv2.resize(image, (max(8, round(w * factor)), max(8, round(h * factor))), interpolation=cv2.INTER_AREA)
    small = jpeg_recompress(small, rng, quality)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def h264_recompress(image: np.ndarray, rng: np.random.Generator, crf: tuple[int, int] = (23, 40),
                    scale: tuple[float, float] = (0.4, 1.0)) -> np.ndarray:
    """A video codec's look instead of JPEG's: resize to ``scale`` of the side (the face's size in its frame),
    encode as one H.264 frame with libx264 (preset medium, yuv420p, CRF in ``crf``: FaceForensics++ c23 is CRF 23,
    c40 CRF 40), decode back, resize to the input size. Intra-coded only: no motion between frames."""
    import av  # PyAV, already a dependency (the clip generator); imported here so augment stays light

    h, w = image.shape[:2]
    factor = rng.uniform(*scale)
    level = int(rng.integers(crf[0], crf[1] + 1))
    side_w, side_h = max(16, 2 * round(w * factor / 2)), max(16, 2 * round(h * factor / 2))  # yuv420p: even sides
    small = cv2.resize(image, (side_w, side_h), interpolation=cv2.INTER_AREA)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = side_w, side_h, "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"crf": str(level), "preset": "medium", "tune": "zerolatency", "threads": "1"}
    packets = list(encoder.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(small), format="rgb24")))
    packets += list(encoder.encode(None))
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1
    frames = [frame for packet in packets for frame in decoder.decode(packet)] + list(decoder.decode(None))
    if not frames:
        raise RuntimeError("libx264 round trip gave no frame")
    decoded = frames[0].to_ndarray(format="rgb24")
    return cv2.resize(decoded, (w, h), interpolation=cv2.INTER_LINEAR if factor < 1 else cv2.INTER_AREA)


# ----------------------------------------------------------------------------------------------- pipeline

class FaceAugmenter:
    """The training augmentation pipeline of one face crop, driven by an :class:`AugmentConfig`.

    Order: pseudo-fake (REAL only: FWA with probability ``fwa``, else SBI with probability ``sbi``, from one
    draw, so at most one per call; label becomes FAKE), crop/scale, flip, rotation, Face Feature Mask,
    brightness/contrast, blur, JPEG, low-quality re-encoding, H.264. Missing landmarks are replaced by
    :func:`estimated_landmarks` where a step needs them.
    """

    def __init__(self, config: AugmentConfig):
        self.config = config

    def __call__(self, image: np.ndarray, landmarks: np.ndarray | None, label: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Returns (augmented uint8 image of the SAME size as the input, possibly changed label).

        label 1 = FAKE, 0 = REAL.
        """
        image, _, label = self.augment(image, landmarks, label, rng)
        return image, label

    def augment(self, image: np.ndarray, landmarks: np.ndarray | None, label: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Like ``__call__``, also returning the landmarks moved with the image (``None`` stays ``None``)."""
        cfg = self.config
        image = _check_image(image)
        points = _check_landmarks(landmarks)
        label = int(label)

        if label == REAL and (cfg.fwa > 0 or cfg.sbi > 0):
            draw = rng.random()
            if draw < cfg.fwa:
                image, label = fwa_pseudo_fake(image, points, rng), FAKE
            elif draw < cfg.fwa + cfg.sbi:
                image, label = self_blend_pseudo_fake(image, points, rng), FAKE
        image, points = self.post_process(image, points, rng)
        return image, points, label

    def sbi_pair(self, image: np.ndarray, landmarks68: np.ndarray, rng: np.random.Generator,
                 with_boundary: bool = False,
                 donor: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
        """A real face and its self-blended version (:func:`self_blend_68`), both post-processed with the same
        random parameters (crop, flip, colour, blur, JPEG ...), so only the blend tells them apart.
        ``with_boundary`` adds the fake's blend-boundary map (float32 ``(H, W)`` in 0..1), moved by the same
        crop, flip and rotation as the images. ``donor`` (another face and its 68 points) blends that face in
        instead (:func:`cross_blend_68`)."""
        fake = (self_blend_68(image, landmarks68, rng, with_boundary=with_boundary) if donor is None
                else cross_blend_68(image, landmarks68, *donor, rng, with_boundary=with_boundary))
        if with_boundary:
            fake, boundary = fake
        seed = int(rng.integers(2 ** 63))
        real, _ = self.post_process(_check_image(image), None, np.random.default_rng(seed))
        fake, _ = self.post_process(fake, None, np.random.default_rng(seed))
        if not with_boundary:
            return real, fake
        # the geometric steps draw first and the same numbers whatever the image, so the same seed moves the map
        # exactly as it moved the faces
        plane = np.repeat(np.rint(boundary * 255).astype(np.uint8)[..., None], 3, axis=2)
        plane, _ = self.geometry(plane, None, np.random.default_rng(seed))
        return real, fake, plane[..., 0].astype(np.float32) / 255.0

    def post_process(self, image: np.ndarray, points: np.ndarray | None,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """The label-preserving steps: :meth:`geometry` (crop/scale, flip, rotation), then Face Feature Mask,
        colour, blur, JPEG, low-quality re-encoding, H.264 round trip."""
        cfg = self.config
        image, points = self.geometry(image, points, rng)
        if rng.random() < cfg.face_feature_mask:
            image = face_feature_mask(image, points, rng)
        if rng.random() < cfg.color:
            image = brightness_contrast(image, rng)
        if rng.random() < cfg.blur:
            image = gaussian_blur(image, rng)
        if rng.random() < cfg.jpeg:
            image = jpeg_recompress(image, rng)
        if cfg.degrade > 0 and rng.random() < cfg.degrade:  # no draw when off: older recipes' streams unchanged
            image = low_quality(image, rng)
        if cfg.h264 > 0 and rng.random() < cfg.h264:  # likewise
            image = h264_recompress(image, rng)
        return np.ascontiguousarray(image, dtype=np.uint8), points

    def geometry(self, image: np.ndarray, points: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """Crop/scale, flip, rotation: the steps that move pixels. Their draws do not depend on the image, so one
        seed moves a face and a map of it alike."""
        cfg = self.config
        if tuple(cfg.crop_scale) != (1.0, 1.0):
            image, points = random_crop_scale(image, points, rng, tuple(cfg.crop_scale))
        if rng.random() < cfg.flip:
            image, points = horizontal_flip(image, points)
        if rng.random() < cfg.rotate:
            image, points = random_rotate(image, points, rng)
        return image, points
