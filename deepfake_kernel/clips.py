"""Generated H.264 clips with real faces (scikit-image's astronaut, public domain) for the benchmark and for the
Kaggle folder's check: the one clip generator of the package."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_face_clip(path: str | Path, width: int, height: int, frames: int, fps: int = 30, faces: int = 1,
                    face_fraction: float = 1 / 3, seed: int = 0, crf: int = 23) -> Path:
    """Write ``frames`` frames of ``faces`` astronaut heads (``face_fraction`` of the height tall), each moving
    left to right across its share of the width over a textured background; made once, then reused."""
    path = Path(path)
    if path.is_file():  # made earlier (or carried to a machine without PyAV)
        return path
    import av
    import cv2
    import skimage.data

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    face_h = int(height * face_fraction)
    head = skimage.data.astronaut()[0:260, 120:360]
    head = cv2.resize(head, (int(face_h * head.shape[1] / head.shape[0]), face_h), interpolation=cv2.INTER_AREA)
    texture = cv2.resize(rng.integers(40, 200, (height // 40 + 1, width // 40 + 1, 3), dtype=np.uint8),
                         (width, height), interpolation=cv2.INTER_CUBIC)
    slot = width // max(1, faces)
    if faces and head.shape[1] > slot:
        raise ValueError(f"{faces} faces of height {face_h} do not fit side by side in {width} px")
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf)}
        for i in range(frames):
            frame = texture.copy()
            for k in range(faces):
                x = k * slot + int((slot - head.shape[1]) * (0.1 + 0.8 * i / max(1, frames - 1)))
                y = (height - face_h) // 2 + int(height * 0.03 * np.sin(i / 9))
                frame[y:y + face_h, x:x + head.shape[1]] = head
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path
