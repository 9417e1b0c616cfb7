"""The bad-input corpus: every kind of file that must not crash ``predict`` or lose its row.

Everything is generated here (PyAV and numpy, small sizes); nothing of it is committed as binary data.
:func:`build_corpus` writes the files into a folder and returns, per row name, what ``predict`` must answer.
"""
from __future__ import annotations

import fractions
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tests import synthetic


@dataclass(frozen=True)
class Expect:
    """What the details file must say for one row: ``reason`` ("" = scored), and for scored rows a minimum
    number of frames read and the number of face tracks (``None``: not checked)."""

    reason: str
    what: str
    min_frames: int = 0
    tracks: int | None = None


def face_scene(n: int, width: int, height: int, faces: int = 1, face_height: int = 120,
               seed: int = 0) -> np.ndarray:
    """``n`` frames with ``faces`` astronaut heads swaying in place (any ``n``: they never leave the frame)."""
    rng = np.random.default_rng(seed)
    head = synthetic.face_image(face_height)
    fh, fw = head.shape[:2]
    slot = width // faces
    assert fw + 12 <= slot and fh + 12 <= height, "faces do not fit the frame"
    base = np.full((height, width, 3), 90, np.uint8)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frame = np.clip(base.astype(np.int16) + rng.integers(-6, 7, (height, width, 1)), 0, 255).astype(np.uint8)
        for k in range(faces):
            x = k * slot + (slot - fw) // 2 + int(5 * np.sin(i / 3 + k))
            y = (height - fh) // 2 + int(5 * np.cos(i / 4 + k))
            frame[y:y + fh, x:x + fw] = head
        out[i] = frame
    return out


def write_video(path: Path, frames: np.ndarray, fps: int = 25, codec: str = "libx264", *,
                pts_ms: list[int] | None = None, rotation: int | None = None, faststart: bool = False,
                crf: int | None = None) -> Path:
    """PyAV encoder with the knobs the corpus needs: explicit timestamps (variable frame rate), a display
    rotation (counter-clockwise degrees, as FFmpeg's display matrix), the moov atom in front."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", **({"crf": str(crf)} if crf is not None else {})}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            if pts_ms is not None:
                video_frame.pts, video_frame.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An mp4 with one AAC track and no video track."""
    samples = int(seconds * rate)
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)).astype(np.float32)[None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        for start in range(0, samples, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def corrupt_middle(path: Path, fraction: float = 0.06, seed: int = 3) -> Path:
    """Overwrite ``fraction`` of the file, starting at its middle, with random bytes (container kept)."""
    data = bytearray(path.read_bytes())
    start, length = len(data) // 2, max(64, int(len(data) * fraction))
    data[start:start + length] = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


UNREADABLE = "unreadable.mp4"
GHOST = "ghost_listed_in_template.mp4"
SPACED = "name with spaces ñ é 日本語.mp4"


def build_corpus(root: Path) -> dict[str, Expect]:
    """Write the corpus under ``root``; return row name → expectation (``GHOST`` is not written)."""
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, Expect] = {}
    one = face_scene(12, 320, 240)

    (root / "empty.mp4").write_bytes(b"")
    expect["empty.mp4"] = Expect("empty_file", "zero-byte file")

    truncate(write_video(root / "truncated.mp4", one), 0.5)  # moov (the index) is at the end: cut off
    expect["truncated.mp4"] = Expect("decode_failed", "truncated mp4, index lost")

    truncate(write_video(root / "truncated_faststart.mp4", one, faststart=True), 0.6)
    expect["truncated_faststart.mp4"] = Expect("", "truncated mp4, index in front: scored from what decoded",
                                               min_frames=2, tracks=1)

    (root / "random_bytes.mp4").write_bytes(np.random.default_rng(7).integers(0, 256, 4096, np.uint8).tobytes())
    expect["random_bytes.mp4"] = Expect("decode_failed", "random bytes named .mp4")

    (root / "text.mp4").write_text("this is not a video, it is a text file\n" * 20)
    expect["text.mp4"] = Expect("decode_failed", "text file named .mp4")

    write_audio_only(root / "audio_only.mp4")
    expect["audio_only.mp4"] = Expect("no_video_stream", "audio-only mp4")

    write_video(root / "no_face.mp4", synthetic.noise_frames(n=6, width=160, height=120))
    expect["no_face.mp4"] = Expect("no_face", "a video with no face")

    write_video(root / "two_faces.mp4", face_scene(6, 480, 240, faces=2, face_height=150))
    expect["two_faces.mp4"] = Expect("", "two faces", min_frames=3, tracks=2)

    write_video(root / "three_faces.mp4", face_scene(6, 720, 240, faces=3, face_height=150, seed=1))
    expect["three_faces.mp4"] = Expect("", "three faces (at most --max-faces 2 tracks kept)", min_frames=3,
                                       tracks=2)

    write_video(root / "portrait_1080x1920.mp4", face_scene(3, 1080, 1920, face_height=600), crf=40)
    expect["portrait_1080x1920.mp4"] = Expect("", "portrait 1080x1920", min_frames=3, tracks=1)

    write_video(root / "uhd_3840x2160.mp4", face_scene(2, 3840, 2160, face_height=900), crf=40)
    expect["uhd_3840x2160.mp4"] = Expect("", "short 4K clip (decoded at reduced size)", min_frames=2, tracks=1)

    write_video(root / "one_frame.mp4", one[:1])
    expect["one_frame.mp4"] = Expect("", "one-frame video", min_frames=1, tracks=1)

    pts = np.cumsum([0] + [[20, 40, 120, 33][i % 4] for i in range(11)]).tolist()
    write_video(root / "variable_frame_rate.mp4", one, pts_ms=pts)
    expect["variable_frame_rate.mp4"] = Expect("", "variable frame rate", min_frames=3, tracks=1)

    # stored sideways (the face lies on its side); the display matrix says "rotate 90° clockwise"
    write_video(root / "rotated.mp4", np.stack([np.rot90(f, 1) for f in one]), rotation=-90)
    expect["rotated.mp4"] = Expect("", "rotation metadata (face only upright once rotated)", min_frames=3,
                                   tracks=1)

    write_video(root / "clip.webm", face_scene(6, 320, 240), codec="libvpx-vp9")
    expect["clip.webm"] = Expect("", ".webm (VP9)", min_frames=3, tracks=1)
    write_video(root / "clip.avi", face_scene(6, 320, 240), codec="mpeg4")
    expect["clip.avi"] = Expect("", ".avi (MPEG-4 part 2)", min_frames=3, tracks=1)
    write_video(root / "clip.mov", face_scene(6, 320, 240))
    expect["clip.mov"] = Expect("", ".mov (H.264)", min_frames=3, tracks=1)

    write_video(root / UNREADABLE, face_scene(6, 320, 240))
    os.chmod(root / UNREADABLE, 0)
    expect[UNREADABLE] = Expect("unreadable_file", "a file without read permission")

    write_video(root / SPACED, face_scene(6, 320, 240))
    expect[SPACED] = Expect("", "spaces and non-ASCII characters in the name", min_frames=3, tracks=1)

    for sub in ("day1", "day2"):
        write_video(root / sub / "same_name.mp4", face_scene(6, 320, 240, seed=len(sub)))
        expect[f"{sub}/same_name.mp4"] = Expect("", "same file name in two subfolders", min_frames=3, tracks=1)

    # three minutes at 2 fps (360 frames): long in time, small on disk
    write_video(root / "long_3min.mp4", face_scene(360, 192, 144, face_height=110), fps=2, crf=35)
    expect["long_3min.mp4"] = Expect("", "a long video (3 minutes)", min_frames=3, tracks=1)

    corrupt_middle(write_video(root / "corrupt_middle.mp4", face_scene(24, 320, 240)))
    expect["corrupt_middle.mp4"] = Expect("", "a stream corrupted in the middle: scored from what decoded",
                                          min_frames=2, tracks=1)

    expect[GHOST] = Expect("missing_file", "a template row whose file does not exist")

    # beyond the list: a name that is not UTF-8, a FIFO (a decoder would block on it), a dangling link
    latin1 = os.fsdecode(b"caf\xe9_latin1.mp4")
    try:
        write_video(root / latin1, face_scene(6, 320, 240))
        expect[latin1] = Expect("", "a name that is not valid UTF-8", min_frames=3, tracks=1)
    except (OSError, UnicodeEncodeError):  # a file system that only takes UTF-8 names
        pass
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.mp4")
        expect["fifo.mp4"] = Expect("not_a_file", "a FIFO named .mp4")
    (root / "dangling_link.mp4").symlink_to(root / "no_such_target.mp4")
    expect["dangling_link.mp4"] = Expect("missing_file", "a symlink to nothing")
    return expect
