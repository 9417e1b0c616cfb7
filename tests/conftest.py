import os
from pathlib import Path

import pytest

from tests import synthetic

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TEST_INPUT_SIZE = 64  # members exported at a small input size keep model tests fast on 2 cores


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "videos.csv").is_file():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """one face, two faces, no face and a corrupt file."""
    root = tmp_path_factory.mktemp("videos")
    frames, _ = synthetic.face_frames(n=24, faces=1)
    synthetic.write_video(root / "one_face.mp4", frames)
    frames, _ = synthetic.face_frames(n=24, width=800, faces=2, seed=2)
    synthetic.write_video(root / "two_faces.mp4", frames)
    synthetic.write_video(root / "no_face.mp4", synthetic.noise_frames())
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    return root


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A weights folder of freshly initialised members, exported by the trainer's export function."""
    import torch

    from deepfake_kernel.detectors import create_model
    from deepfake_kernel.detectors.weights import export_member

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name in ("xception", "resnet50", "efficientnet_lite0"):
        export_member(create_model(name, input_size=TEST_INPUT_SIZE), root, storage_dtype="float16")
    return root


@pytest.fixture(scope="session")
def training_videos(tmp_path_factory):
    """A videos.csv of 8 clips in 4 identity groups: in each, a real clip and a "fake" whose face is re-rendered
    (blurred and colour-shifted inside the face box, the kind of blending trace detectors learn)."""
    import cv2
    import numpy as np

    root = tmp_path_factory.mktemp("train_videos")
    rows = ["path,label,group"]
    for group in range(4):
        frames, boxes = synthetic.face_frames(n=8, width=320, height=240, face_height=150, seed=group,
                                              background=60 + 30 * group)
        synthetic.write_video(root / f"real_{group}.mp4", frames)
        fake = frames.copy()
        for frame, placed in zip(fake, boxes):
            x1, y1, x2, y2 = placed[0]
            inner = frame[y1 + 30:y2 - 20, x1 + 20:x2 - 20]
            blurred = cv2.GaussianBlur(inner, (9, 9), 3)
            inner[:] = np.clip(blurred.astype(int) + [25, -10, 5], 0, 255).astype(np.uint8)
        synthetic.write_video(root / f"fake_{group}.mp4", fake)
        rows += [f"real_{group}.mp4,REAL,g{group}", f"fake_{group}.mp4,FAKE,g{group}"]
    (root / "videos.csv").write_text("\n".join(rows) + "\n")
    return root / "videos.csv", root


@pytest.fixture(scope="session")
def shipped_weights() -> Path:
    """The repository's trained weights/ folder."""
    weights = Path(__file__).resolve().parents[1] / "weights"
    if not (weights / "manifest.json").is_file():
        pytest.skip("weights/ holds no trained members")
    return weights
