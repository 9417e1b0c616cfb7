"""The frame reader's and the face cropper's settings as dataclasses, shared by ``predict`` (through
:class:`~.detector.Detector`) and the training crop cache, so that training crops are cut like prediction crops
by construction. Light on purpose: the stages' heavy modules are imported only when one is built."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReaderConfig:
    """How frames are decoded (see :class:`~.video.FrameReader`)."""

    batch_size: int = 16
    max_side: int = 1920          # larger frames are decoded at reduced size
    timeout: float = 60.0         # seconds before a stalled decoder call is abandoned
    reader: str = "auto"          # auto, torchcodec, decord or pyav

    def build(self, device: str = "cpu"):
        from .video import FrameReader

        return FrameReader(batch_size=self.batch_size, max_side=self.max_side, device=device, timeout=self.timeout,
                           reader=self.reader)


@dataclass(frozen=True)
class CropperConfig:
    """How faces are found, tracked and cut (see :class:`~.faces.FaceCropper`)."""

    detect_long_side: int = 1000  # MTCNN runs on frames downscaled to this long side
    min_prob: float = 0.9
    margin: float = 0.3           # crop margin around a face, fraction of its side
    max_faces: int = 2            # tracks kept per video
    min_face_size: int = 24       # pixels of the detection frame
    detect_every: int = 1         # MTCNN on every k-th frame, boxes interpolated between
    batch_size: int = 16
    min_track_size_ratio: float = 0.5  # bystanders: tracks of faces under this share of the main face's side dropped

    def build(self, crop_size: int, device: str = "cpu"):
        from .faces import FaceCropper

        return FaceCropper(device=device, detect_long_side=self.detect_long_side, min_prob=self.min_prob,
                           margin=self.margin, max_faces=self.max_faces, crop_size=crop_size,
                           batch_size=self.batch_size, detect_every=self.detect_every,
                           min_face_size=self.min_face_size, min_track_size_ratio=self.min_track_size_ratio)
