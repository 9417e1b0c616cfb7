"""68-point facial landmarks for training (dlib's shape predictor, offline).

Five MTCNN points cannot outline a face; the self-blended pseudo-fakes of :mod:`.augment` blend through the
hull of these 68 points (jaw line, brows, eyes, nose, mouth; iBUG 300-W order). The model is
``shape_predictor_68_face_landmarks.dat`` of the ``face-recognition-models`` package, loaded by path (its
``__init__`` needs ``pkg_resources``, which new setuptools no longer has); the predictor runs in about a
millisecond per face given a face box. Crops of videos come with MTCNN's box; loose crops (e.g.
``faces_ffpp.csv``) get one from dlib's HOG face detector, else the box the crop geometry implies.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

POINTS = 68
JAW, BROWS, NOSE, EYES, MOUTH = slice(0, 17), slice(17, 27), slice(27, 36), slice(36, 48), slice(48, 68)


def predictor_path() -> Path:
    """Where ``face-recognition-models`` keeps the 68-point model."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("68-point landmarks need the PyPI packages dlib-bin and face-recognition-models "
                           "(pip install -r requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall face-recognition-models")
    return path


def box_in_crop(box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """A frame-coordinate face box mapped into the ``size`` square crop that :func:`faces.square_crop` cuts."""
    from ..pipeline.faces import crop_geometry

    left, top, side = crop_geometry(box, margin)
    box = np.asarray(box, dtype=np.float64).reshape(2, 2)
    return ((box - [left, top]) * (size / side)).reshape(4)


def centred_box(size: int, margin: float) -> np.ndarray:
    """The face box a square crop made with ``margin`` around it implies (centred, side ``size / (1 + margin)``)."""
    half = size / (1.0 + margin) / 2
    return np.array([size / 2 - half, size / 2 - half, size / 2 + half, size / 2 + half])


class LandmarkModel:
    """dlib's 68-point shape predictor (and, for crops without a box, its HOG face detector)."""

    def __init__(self, path: str | Path | None = None):
        import dlib

        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(path or predictor_path()))
        self._detector = None

    def points(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) float32 ``(x, y)`` landmarks of the face in ``box`` (x1, y1, x2, y2) of an RGB uint8 image."""
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        rect = self._dlib.rectangle(x1, y1, max(x1 + 1, x2), max(y1 + 1, y2))
        shape = self.predictor(np.ascontiguousarray(image), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def detect_box(self, image: np.ndarray) -> np.ndarray | None:
        """The largest face dlib's HOG detector finds (upsampled once), or ``None``."""
        if self._detector is None:
            self._detector = self._dlib.get_frontal_face_detector()
        found = self._detector(np.ascontiguousarray(image), 1)
        if not len(found):
            return None
        best = max(found, key=lambda r: r.width() * r.height())
        return np.array([best.left(), best.top(), best.right(), best.bottom()], np.float64)

    def for_crops(self, crops: np.ndarray, boxes: np.ndarray | None = None, margin: float = 0.3) -> np.ndarray:
        """Landmarks of every crop: ``boxes`` (crop coordinates) where given, else detected, else the implied box."""
        out = np.zeros((len(crops), POINTS, 2), np.float32)
        for i, crop in enumerate(crops):
            box = boxes[i] if boxes is not None else self.detect_box(crop)
            if box is None:
                box = centred_box(crop.shape[0], margin)
            out[i] = self.points(crop, box)
        return out
