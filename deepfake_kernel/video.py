"""Frame reader: N evenly spaced RGB frames from a video file.

decord's ``VideoReader.get_batch`` is the primary reader (seeks and decodes only what the sampled frames
need). PyAV is the fallback when decord cannot open a file, fails mid-batch or stalls: it decodes the stream
sequentially, so a header that over-reports its frame count just ends the stream early instead of hanging.
Frames larger than ``max_side`` are decoded at reduced size, which bounds memory for 4K input.
"""
from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v")


class VideoReadError(RuntimeError):
    """No frame could be decoded from a file; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass
class FrameBatch:
    """Decoded frames of one video.

    ``frames`` is ``(N, H, W, 3)`` uint8 RGB; ``indices`` are the source frame numbers; ``frame_count`` is the
    count the container reported (it may be wrong); ``scale`` is decoded size / native size.
    """

    frames: np.ndarray
    indices: list[int]
    fps: float
    frame_count: int
    reader: str
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)


def sample_indices(frame_count: int, num_frames: int) -> list[int]:
    """``num_frames`` evenly spaced frame numbers in ``[0, frame_count)``, centred in their intervals."""
    if frame_count <= 0 or num_frames <= 0:
        return []
    if num_frames >= frame_count:
        return list(range(frame_count))
    step = frame_count / num_frames
    return sorted({min(frame_count - 1, int(step * (i + 0.5))) for i in range(num_frames)})


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int, float]:
    if not max_side or max(width, height) <= max_side:
        return width, height, 1.0
    scale = max_side / max(width, height)
    # even sizes keep swscale and the codecs happy
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2), scale


def cuda_decoding_available() -> bool:
    """True when decord was built with CUDA and a GPU is visible."""
    try:
        import decord
        import torch

        if not torch.cuda.is_available():
            return False
        decord.VideoReader  # noqa: B018 - import check
        decord.gpu(0)
        return True
    except Exception:  # decord raises DECORDError("CUDA not enabled") on CPU-only builds
        return False


class DecordReader:
    """Sampled frames through decord ``get_batch`` in batches of ``batch_size``."""

    name = "decord"

    def __init__(self, batch_size: int = 16, max_side: int | None = 1920, use_gpu: bool = False):
        self.batch_size = batch_size
        self.max_side = max_side
        self.use_gpu = use_gpu

    def read(self, path: str | Path, num_frames: int) -> FrameBatch:
        import decord

        ctx = decord.gpu(0) if self.use_gpu else decord.cpu(0)
        try:
            reader = decord.VideoReader(str(path), ctx=ctx)
            height, width = reader[0].shape[:2]
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            raise VideoReadError("decode_failed", f"decord could not open {path}: {exc}") from exc
        out_w, out_h, scale = _scaled_size(width, height, self.max_side)
        if scale != 1.0:
            reader = decord.VideoReader(str(path), ctx=ctx, width=out_w, height=out_h)
        frame_count = len(reader)
        fps = float(reader.get_avg_fps() or 0.0)
        wanted = sample_indices(frame_count, num_frames)
        chunks, kept, notes = [], [], []
        for start in range(0, len(wanted), self.batch_size):
            batch = wanted[start:start + self.batch_size]
            try:
                chunks.append(reader.get_batch(batch).asnumpy())
                kept.extend(batch)
            except Exception as exc:
                # typical of a header that over-reports frames: the tail cannot be reached
                notes.append(f"decord stopped at frame {batch[0]}: {exc}")
                break
        del reader
        if not kept:
            raise VideoReadError("decode_failed", f"decord decoded no frame of {path}: {'; '.join(notes)}")
        if len(kept) < len(wanted):
            raise VideoReadError("partial_decode", f"decord decoded {len(kept)}/{len(wanted)} frames")
        return FrameBatch(np.concatenate(chunks), kept, fps, frame_count, self.name, scale, notes)


class PyAVReader:
    """Sequential decode through PyAV (FFmpeg); robust to wrong frame counts and odd containers."""

    name = "pyav"

    def __init__(self, max_side: int | None = 1920):
        self.max_side = max_side

    def read(self, path: str | Path, num_frames: int) -> FrameBatch:
        import av

        try:
            container = av.open(str(path))
        except Exception as exc:  # av.error.* subclasses, OSError, ValueError
            raise VideoReadError("decode_failed", f"PyAV could not open {path}: {exc}") from exc
        with container:
            if not container.streams.video:
                raise VideoReadError("no_video_stream", f"{path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            frame_count = int(stream.frames or 0)
            if frame_count <= 0 and stream.duration and stream.time_base and fps:
                frame_count = int(float(stream.duration * stream.time_base) * fps)
            if frame_count <= 0 and container.duration and fps:
                frame_count = int(container.duration / 1_000_000 * fps)
            out_w, out_h, scale = _scaled_size(stream.codec_context.width or 0, stream.codec_context.height or 0,
                                               self.max_side)
            wanted = sample_indices(frame_count, num_frames) if frame_count > 0 else None
            wanted_set = set(wanted or ())
            frames, kept, notes = [], [], []
            all_frames: list[np.ndarray] = []  # only when the count is unknown
            try:
                for index, frame in enumerate(container.decode(stream)):
                    if wanted is not None:
                        if index > wanted[-1]:
                            break
                        if index not in wanted_set:
                            continue
                    image = frame.to_ndarray(format="rgb24", width=out_w or None, height=out_h or None)
                    if wanted is None:
                        all_frames.append(image)
                    else:
                        frames.append(image)
                        kept.append(index)
            except Exception as exc:  # corrupt packets mid-stream: keep what decoded
                notes.append(f"pyav stopped: {exc}")
            if wanted is None:
                kept = sample_indices(len(all_frames), num_frames)
                frames = [all_frames[i] for i in kept]
                frame_count = len(all_frames)
        if not frames:
            raise VideoReadError("decode_failed", f"PyAV decoded no frame of {path}{': ' + notes[0] if notes else ''}")
        if wanted is not None and len(kept) < len(wanted):
            notes.append(f"container reported {frame_count} frames; decoded up to frame {kept[-1]}")
        return FrameBatch(np.stack(frames), kept, fps, frame_count, self.name, scale, notes)


class FrameReader:
    """decord first, PyAV as fallback; a decord call that stalls past ``timeout`` is abandoned."""

    def __init__(self, batch_size: int = 16, max_side: int | None = 1920, device: str = "cpu",
                 timeout: float = 60.0):
        use_gpu = device.startswith("cuda") and cuda_decoding_available()
        self.primary = DecordReader(batch_size=batch_size, max_side=max_side, use_gpu=use_gpu)
        self.fallback = PyAVReader(max_side=max_side)
        self.timeout = timeout
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _run_with_timeout(self, path: Path, num_frames: int) -> FrameBatch:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="decord")
            future = self._pool.submit(self.primary.read, path, num_frames)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            # decord's FFI call releases the GIL; abandon the stuck worker and start a fresh one
            with self._lock:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise VideoReadError("decode_timeout", f"decord took over {self.timeout:.0f}s on {path}")

    def read(self, path: str | Path, num_frames: int) -> FrameBatch:
        """Read ``num_frames`` evenly spaced frames; raise :class:`VideoReadError` when nothing decodes."""
        path = Path(path)
        if not path.is_file():
            raise VideoReadError("missing_file", f"{path} does not exist")
        if path.stat().st_size == 0:
            raise VideoReadError("empty_file", f"{path} is empty")
        try:
            return self._run_with_timeout(path, num_frames)
        except VideoReadError as primary_error:
            log.info("decord failed on %s (%s); trying PyAV", path.name, primary_error)
            try:
                batch = self.fallback.read(path, num_frames)
            except VideoReadError as fallback_error:
                if fallback_error.reason == "no_video_stream":
                    raise
                raise VideoReadError(primary_error.reason if primary_error.reason != "partial_decode"
                                     else fallback_error.reason,
                                     f"{primary_error}; {fallback_error}") from fallback_error
            batch.notes.insert(0, f"decord: {primary_error}")
            return batch

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
