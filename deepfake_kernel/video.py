"""Frame reader: N evenly spaced RGB frames from a video file.

decord's ``VideoReader.get_batch`` is the primary reader (seeks and decodes only what the sampled frames
need). PyAV is the fallback when decord cannot open a file, fails mid-batch or stalls: it decodes the stream
sequentially, so a header that over-reports its frame count just ends the stream early instead of hanging,
and skips corrupt packets, so a stream damaged in the middle still gives the frames around the damage.
Frames larger than ``max_side`` are decoded at reduced size, which bounds memory for 4K input; at most
``batch_size`` frames are decoded per decord call. Both readers return frames as displayed (rotation applied).
"""
from __future__ import annotations

import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .watchdog import StageTimeout, run_with_timeout

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
    """Sequential decode through PyAV (FFmpeg); robust to wrong frame counts, odd containers and corrupt packets.

    A packet that fails to decode is skipped (up to ``max_bad_packets`` in a row), so a stream corrupted in
    the middle still yields the frames after the damage. The display rotation (FFmpeg's display matrix) is
    applied, as decord does. When the container does not tell how many frames it holds, every ``stride``-th
    frame is kept and the stride doubles whenever more than ``4 * num_frames`` are held, which bounds memory
    for a long stream while keeping the picks evenly spaced.
    """

    name = "pyav"

    def __init__(self, max_side: int | None = 1920, max_bad_packets: int = 200):
        self.max_side = max_side
        self.max_bad_packets = max_bad_packets

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
            wanted = sample_indices(frame_count, num_frames) if frame_count > 0 else None
            wanted_set = set(wanted or ())
            size: tuple[int, int, float] | None = None
            held: list[tuple[int, np.ndarray]] = []  # (frame number, image)
            stride, cap = 1, max(8, 4 * num_frames)
            notes: list[str] = []
            bad_packets = bad_in_a_row = 0
            index = -1

            def take(frame) -> bool:
                """Handle one decoded frame; False once every wanted frame is in."""
                nonlocal index, size, stride, held
                index += 1
                if wanted is not None:
                    if index > wanted[-1]:
                        return False
                    if index not in wanted_set:
                        return True
                elif index % stride:
                    return True
                if size is None:  # every frame is converted to the first one's (reduced) size
                    size = _scaled_size(frame.width, frame.height, self.max_side)
                image = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                turns = _quarter_turns(frame)
                held.append((index, np.ascontiguousarray(np.rot90(image, turns)) if turns else image))
                if wanted is None and len(held) > cap:
                    stride *= 2
                    held = [(i, im) for i, im in held if i % stride == 0]
                return True

            more = True
            packets = container.demux(stream)
            while more:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except Exception as exc:  # a container that cannot be read further: keep what decoded
                    notes.append(f"pyav stopped demuxing after frame {index}: {exc}")
                    break
                try:
                    decoded = packet.decode()
                    bad_in_a_row = 0
                except Exception as exc:  # a corrupt packet: skip it, the decoder resyncs at the next one
                    bad_packets += 1
                    bad_in_a_row += 1
                    if bad_packets == 1:
                        notes.append(f"pyav skipped corrupt data after frame {index}: {exc}")
                    if bad_in_a_row > self.max_bad_packets:
                        notes.append(f"pyav gave up after {bad_in_a_row} corrupt packets in a row")
                        break
                    continue
                for frame in decoded:
                    if not take(frame):
                        more = False
                        break
            if bad_packets > 1:
                notes.append(f"pyav skipped {bad_packets} corrupt packets")
        if wanted is None:
            frame_count = index + 1
            keep = {held[i][0] for i in sample_indices(len(held), num_frames)}
            held = [(i, im) for i, im in held if i in keep]
        if not held:
            raise VideoReadError("decode_failed", f"PyAV decoded no frame of {path}{': ' + notes[0] if notes else ''}")
        kept = [i for i, _ in held]
        if wanted is not None and len(kept) < len(wanted):
            notes.append(f"container reported {frame_count} frames; decoded {len(kept)}/{len(wanted)} sampled "
                         f"frames up to frame {kept[-1]}")
        scale = size[2] if size else 1.0
        return FrameBatch(np.stack([im for _, im in held]), kept, fps, frame_count, self.name, scale, notes)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that the display matrix asks for (0 when there is none)."""
    try:
        rotation = frame.rotation or 0
    except Exception:  # older PyAV or no side data
        return 0
    return int(round(rotation / 90.0)) % 4


class FrameReader:
    """decord first, PyAV as fallback; a decord call that stalls past ``timeout`` is abandoned.

    Before any decoder sees a file it must exist, be a regular file, be readable and not be empty; each
    failure has its own reason (``missing_file``, ``not_a_file``, ``unreadable_file``, ``empty_file``).
    """

    def __init__(self, batch_size: int = 16, max_side: int | None = 1920, device: str = "cpu",
                 timeout: float = 60.0):
        use_gpu = device.startswith("cuda") and cuda_decoding_available()
        self.primary = DecordReader(batch_size=batch_size, max_side=max_side, use_gpu=use_gpu)
        self.fallback = PyAVReader(max_side=max_side)
        self.timeout = timeout

    def _run_with_timeout(self, path: Path, num_frames: int) -> FrameBatch:
        # decord's FFI call releases the GIL, so a stuck call can be left behind in its daemon thread
        try:
            return run_with_timeout(lambda: self.primary.read(path, num_frames), self.timeout, name="decord")
        except StageTimeout:
            raise VideoReadError("decode_timeout", f"decord took over {self.timeout:.0f}s on {path}") from None

    @staticmethod
    def check_file(path: Path) -> None:
        """Raise :class:`VideoReadError` unless ``path`` is a readable, non-empty regular file."""
        try:
            info = path.stat()
        except FileNotFoundError:
            raise VideoReadError("missing_file", f"{path} does not exist") from None
        except OSError as exc:  # a symlink loop, a name too long, a folder we may not enter
            raise VideoReadError("unreadable_file", f"cannot stat {path}: {exc}") from exc
        if not stat.S_ISREG(info.st_mode):  # a folder, a FIFO (would block a decoder forever), a device
            raise VideoReadError("not_a_file", f"{path} is not a regular file")
        try:
            with open(path, "rb") as handle:
                handle.read(1)
        except OSError as exc:  # EACCES without read permission, EIO on a failing disk
            raise VideoReadError("unreadable_file", f"cannot read {path}: {exc.strerror or exc}") from exc
        if info.st_size == 0:
            raise VideoReadError("empty_file", f"{path} is empty")

    def read(self, path: str | Path, num_frames: int) -> FrameBatch:
        """Read ``num_frames`` evenly spaced frames; raise :class:`VideoReadError` when nothing decodes."""
        path = Path(path)
        self.check_file(path)
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
        """Kept for API compatibility: the reader holds no pool any more (each call gets a daemon thread)."""
