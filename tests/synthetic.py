"""Small test videos with a real face: scikit-image's astronaut (public domain, NASA) composited into frames."""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

FACE_BOX_IN_ASTRONAUT = (120, 0, 360, 260)  # x1, y1, x2, y2 of the head in skimage.data.astronaut()


def face_image(height: int = 173) -> np.ndarray:
    """The astronaut's head and shoulders, RGB uint8, ``height`` pixels tall."""
    import skimage.data

    x1, y1, x2, y2 = FACE_BOX_IN_ASTRONAUT
    head = skimage.data.astronaut()[y1:y2, x1:x2]
    width = int(round(head.shape[1] * height / head.shape[0]))
    return cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA)


def write_video(path: str | Path, frames: list[np.ndarray] | np.ndarray, fps: int = 25,
                codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    """Encode RGB frames with PyAV (H.264 by default)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face_frames(n: int = 24, width: int = 640, height: int = 360, faces: int = 1, face_height: int = 173,
                background: int = 90, seed: int = 0) -> tuple[np.ndarray, list[list[tuple[int, int, int, int]]]]:
    """Frames with ``faces`` astronaut heads moving right, and where each was pasted (x1, y1, x2, y2)."""
    rng = np.random.default_rng(seed)
    head = face_image(face_height)
    fh, fw = head.shape[:2]
    frames, boxes = [], []
    for i in range(n):
        frame = np.full((height, width, 3), background, np.uint8)
        frame = np.clip(frame + rng.integers(-8, 9, frame.shape), 0, 255).astype(np.uint8)
        placed = []
        for k in range(faces):
            x = int(20 + 2 * i + k * (width // max(1, faces)))
            y = int((height - fh) // 2 + 5 * np.sin(i / 4))
            frame[y:y + fh, x:x + fw] = head
            placed.append((x, y, x + fw, y + fh))
        frames.append(frame)
        boxes.append(placed)
    return np.stack(frames), boxes


def bystander_frames(n: int = 6) -> np.ndarray:
    """A large face on the left and a face a third its size further back, top right (a bystander)."""
    frames, _ = face_frames(n=n, width=800, height=400, face_height=240)
    small = face_image(80)
    frames[:, 60:60 + small.shape[0], 600:600 + small.shape[1]] = small
    return frames


def noise_frames(n: int = 12, width: int = 320, height: int = 240, seed: int = 1) -> np.ndarray:
    """Smooth coloured noise: no face anywhere."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (n, height // 16, width // 16, 3), dtype=np.uint8)
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in small])


def numbered_frames(n: int = 50, width: int = 160, height: int = 120) -> np.ndarray:
    """Frame i is a flat grey of level 4*i: the decoded brightness tells which frame it was."""
    return np.stack([np.full((height, width, 3), 4 * i + 20, np.uint8) for i in range(n)])


def face_crop(size: int = 64) -> np.ndarray:
    """A square ``size`` × ``size`` crop of the astronaut's face."""
    return cv2.resize(face_image(size * 2), (size, size), interpolation=cv2.INTER_AREA)
