"""Frame reader: N evenly spaced RGB frames from a video file.

Readers, fastest first: torchcodec on a GPU (NVDEC hardware decoding, frames resized on the GPU), decord's
``VideoReader.get_batch`` (seeks and decodes only what the sampled frames need; its PyPI wheels decode on CPU
only), and PyAV as the last resort when the others cannot open a file, fail mid-batch or stall: PyAV decodes
the stream sequentially, so a header that over-reports its frame count just ends the stream early instead of
hanging, and skips corrupt packets, so a stream damaged in the middle still gives the frames around the
damage. Frames larger than ``max_side`` are decoded at reduced size, which bounds memory for 4K input; at most
``batch_size`` frames are decoded per call. Every reader returns frames as displayed (rotation applied).
"""
from __future__ import annotations

import logging
import re
import stat
import threading
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
    count the container reported (it may be wrong); ``scale`` is decoded size / native size. ``next_frames`` maps a
    position in ``frames`` to the source frame right after it, for the positions a read asked pairs for (the
    temporal cue, :mod:`.temporal`).
    """

    frames: np.ndarray
    indices: list[int]
    fps: float
    frame_count: int
    reader: str
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)
    next_frames: dict[int, np.ndarray] = field(default_factory=dict)

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


def pair_positions(num_frames: int, pairs: int) -> list[int]:
    """Which of a video's ``num_frames`` sampled frames also get their next frame read: ``pairs`` evenly spaced
    ones (the temporal cue's frame pairs, :mod:`.temporal`)."""
    if pairs <= 0 or num_frames <= 0:
        return []
    return sorted({int(round(k)) for k in np.linspace(0, num_frames - 1, min(pairs, num_frames))})


def with_next_frames(wanted: list[int], pairs: int, frame_count: int) -> list[int]:
    """``wanted`` plus the frame after each of ``pairs`` evenly spaced ones of them (within ``frame_count``)."""
    extra = {wanted[p] + 1 for p in pair_positions(len(wanted), pairs) if wanted[p] + 1 < frame_count}
    return sorted(set(wanted) | extra)


def assemble_frames(chunks: list[np.ndarray], kept: list[int], sampled: list[int], pairs: int
                    ) -> tuple[np.ndarray, list[int], dict[int, np.ndarray]]:
    """The frames read for :func:`with_next_frames`, from the decoded chunks: the sampled ones as one array (in
    order, one allocation), their numbers, and copies of the next frames by position of the frame they follow."""
    rows = [frame for chunk in chunks for frame in chunk]
    where = {index: row for row, index in enumerate(kept)}
    wanted = set(sampled)
    main = [i for i in kept if i in wanted]
    if len(main) == len(rows):  # no pairs: the chunks in one array, as they came
        return np.concatenate(chunks), main, {}
    frames = np.empty((len(main),) + rows[0].shape, rows[0].dtype)
    for position, index in enumerate(main):
        frames[position] = rows[where[index]]
    next_frames = {position: rows[where[main[position] + 1]].copy() for position in pair_positions(len(main), pairs)
                   if main[position] + 1 in where}
    return frames, main, next_frames


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int, float]:
    if not max_side or max(width, height) <= max_side:
        return width, height, 1.0
    scale = max_side / max(width, height)
    # even sizes keep swscale and the codecs happy
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2), scale


def decord_cuda_available() -> bool:
    """True when decord was built with CUDA (PyPI's wheels are not) and a GPU is visible."""
    try:
        import decord
        import torch

        if not torch.cuda.is_available():
            return False
        decord.gpu(0)
        return True
    except Exception:  # decord raises DECORDError("CUDA not enabled") on CPU-only builds
        return False


def _probe_clip() -> bytes:
    """A 4-frame 32×32 H.264 mp4 in memory (made with PyAV, which bundles its own FFmpeg)."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 60 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


_TORCHCODEC_STATUS: dict[str, str | None] = {}


def torchcodec_status(device: str = "cpu") -> str | None:
    """``None`` when torchcodec really decodes on ``device`` here, else why not (not installed, FFmpeg's shared
    libraries missing, no GPU, NVDEC refused).

    Importing torchcodec succeeds without FFmpeg's libraries (its core library loads lazily), so the probe opens
    a decoder on a tiny in-memory clip and decodes a frame before it says yes. The answer is cached per device.
    """
    key = "cuda" if device.startswith("cuda") else "cpu"
    if key not in _TORCHCODEC_STATUS:
        _TORCHCODEC_STATUS[key] = _probe_torchcodec(device)
    return _TORCHCODEC_STATUS[key]


def _probe_torchcodec(device: str) -> str | None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return "torch sees no GPU"
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError as exc:
        return f"torchcodec is not installed ({exc})"
    except (OSError, RuntimeError) as exc:
        return f"torchcodec cannot load FFmpeg ({str(exc).splitlines()[0][:160]})"
    try:
        clip = _probe_clip()
    except Exception as exc:  # PyAV missing or without an H.264 encoder: the probe cannot run
        return f"torchcodec not probed: no test clip ({type(exc).__name__}: {str(exc)[:120]})"
    try:
        frames = VideoDecoder(clip, device=device).get_frames_at([0]).data
        if tuple(frames.shape[-2:]) != (32, 32):
            return f"torchcodec decoded a frame of shape {tuple(frames.shape)} from a 32×32 clip"
    except Exception as exc:  # RuntimeError/OSError: no FFmpeg libraries torchcodec can link, or no NVDEC
        text = str(exc)
        if "Could not load libtorchcodec" in text:
            missing = sorted(set(re.findall(r"([\w.+-]+\.so[.\d]*): cannot open shared object file", text)))
            return ("torchcodec cannot load its FFmpeg-linked core library: no FFmpeg shared libraries it supports "
                    f"on the loader path (not found: {', '.join(missing[:6]) or 'see torchcodec'})")
        first = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
        return f"torchcodec cannot decode on {device}: {first}"
    return None


class TorchCodecReader:
    """Sampled frames through torchcodec's ``VideoDecoder.get_frames_at``; on ``device="cuda"`` the GPU's NVDEC
    engine decodes and the frames are resized there, so the CPU only receives the final frames.

    The decoder resizes while decoding when the frames exceed ``max_side``; when that transform is refused
    (some GPU backends), the full frames are resized with ``torch.nn.functional.interpolate`` on the device.
    """

    def __init__(self, batch_size: int = 16, max_side: int | None = 1920, device: str = "cpu"):
        self.batch_size = batch_size
        self.max_side = max_side
        self.device = device
        self.name = "torchcodec-nvdec" if device.startswith("cuda") else "torchcodec"

    def _decoder(self, path: Path, transforms=None, threads: int = 0):
        from torchcodec.decoders import VideoDecoder

        return VideoDecoder(str(path), device=self.device, dimension_order="NHWC", seek_mode="approximate",
                            num_ffmpeg_threads=threads, transforms=transforms)

    def read(self, path: str | Path, num_frames: int, pairs: int = 0, threads: int = 0) -> FrameBatch:
        """``threads``: FFmpeg's decoding threads (0: its own choice)."""
        import torch

        try:
            decoder = self._decoder(Path(path), threads=threads)
            meta = decoder.metadata
            width, height = meta.width, meta.height  # as displayed: torchcodec applies the display rotation
            frame_count = int(meta.num_frames or 0)
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError with FFmpeg's message
            raise VideoReadError("decode_failed", f"torchcodec could not open {path}: {exc}") from exc
        out_w, out_h, scale = _scaled_size(width, height, self.max_side)
        if scale != 1.0:
            try:
                from torchcodec.transforms import Resize

                decoder = self._decoder(Path(path), [Resize((out_h, out_w))], threads)
            except Exception:  # the transform is not supported here: the frames are resized below instead
                pass
        sampled = sample_indices(frame_count, num_frames)
        wanted = with_next_frames(sampled, pairs, frame_count)
        chunks, kept, notes = [], [], []
        for start in range(0, len(wanted), self.batch_size):
            batch = wanted[start:start + self.batch_size]
            try:
                frames = decoder.get_frames_at(batch).data
            except Exception as exc:  # a header that over-reports frames, or damage in the stream
                notes.append(f"torchcodec stopped at frame {batch[0]}: {exc}")
                break
            if tuple(frames.shape[1:3]) != (out_h, out_w):  # the decoder did not resize (or not exactly)
                frames = torch.nn.functional.interpolate(
                    frames.permute(0, 3, 1, 2).float(), size=(out_h, out_w), mode="bilinear", antialias=True,
                    align_corners=False).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            chunks.append(frames.cpu().numpy())
            kept.extend(batch)
        fps = float(meta.average_fps or 0.0)
        del decoder
        if not kept:
            raise VideoReadError("decode_failed", f"torchcodec decoded no frame of {path}: {'; '.join(notes)}")
        if len(kept) < len(wanted):
            raise VideoReadError("partial_decode", f"torchcodec decoded {len(kept)}/{len(wanted)} frames")
        frames, kept, next_frames = assemble_frames(chunks, kept, sampled, pairs)
        frames = np.ascontiguousarray(frames)
        return FrameBatch(frames, kept, fps, frame_count, self.name, scale, notes, next_frames)


class DecordReader:
    """Sampled frames through decord ``get_batch`` in batches of ``batch_size``."""

    name = "decord"

    def __init__(self, batch_size: int = 16, max_side: int | None = 1920, use_gpu: bool = False):
        self.batch_size = batch_size
        self.max_side = max_side
        self.use_gpu = use_gpu

    def read(self, path: str | Path, num_frames: int, pairs: int = 0, threads: int = 0) -> FrameBatch:
        """``threads``: FFmpeg's decoding threads (0: its own choice)."""
        import decord

        ctx = decord.gpu(0) if self.use_gpu else decord.cpu(0)
        try:
            reader = decord.VideoReader(str(path), ctx=ctx, num_threads=threads)
            height, width = reader[0].shape[:2]
        except Exception as exc:  # decord raises its own DECORDError and RuntimeError
            raise VideoReadError("decode_failed", f"decord could not open {path}: {exc}") from exc
        out_w, out_h, scale = _scaled_size(width, height, self.max_side)
        if scale != 1.0:
            reader = decord.VideoReader(str(path), ctx=ctx, width=out_w, height=out_h, num_threads=threads)
        frame_count = len(reader)
        fps = float(reader.get_avg_fps() or 0.0)
        sampled = sample_indices(frame_count, num_frames)
        wanted = with_next_frames(sampled, pairs, frame_count)  # a next frame follows its frame: no extra seek
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
        frames, kept, next_frames = assemble_frames(chunks, kept, sampled, pairs)
        return FrameBatch(frames, kept, fps, frame_count, self.name, scale, notes, next_frames)


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

    def read(self, path: str | Path, num_frames: int, pairs: int = 0, threads: int = 0) -> FrameBatch:
        """``threads``: FFmpeg's decoding threads (0: its own choice)."""
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
            if threads:
                stream.thread_count = threads
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            frame_count = int(stream.frames or 0)
            if frame_count <= 0 and stream.duration and stream.time_base and fps:
                frame_count = int(float(stream.duration * stream.time_base) * fps)
            if frame_count <= 0 and container.duration and fps:
                frame_count = int(container.duration / 1_000_000 * fps)
            sampled = sample_indices(frame_count, num_frames) if frame_count > 0 else None
            wanted = with_next_frames(sampled, pairs, frame_count) if sampled else None
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
        if not sampled:  # no frame count: the kept frames are the sample, and no pairs are read
            sampled, pairs = kept, 0
        frames, kept, next_frames = assemble_frames([[im for _, im in held]], kept, sampled, pairs)
        if not kept:
            raise VideoReadError("decode_failed", f"PyAV decoded none of the sampled frames of {path}")
        if len(kept) < len(sampled):
            notes.append(f"container reported {frame_count} frames; decoded {len(kept)}/{len(sampled)} sampled "
                         f"frames up to frame {kept[-1]}")
        scale = size[2] if size else 1.0
        return FrameBatch(frames, kept, fps, frame_count, self.name, scale, notes, next_frames)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that the display matrix asks for (0 when there is none)."""
    try:
        rotation = frame.rotation or 0
    except Exception:  # older PyAV or no side data
        return 0
    return int(round(rotation / 90.0)) % 4


READERS = ("auto", "torchcodec", "decord", "pyav")


class FrameReader:
    """The fastest reader that works, then the others in turn; a reader call that stalls past ``timeout`` is
    abandoned.

    ``reader``: ``auto`` (torchcodec's NVDEC on a GPU when torchcodec and FFmpeg are installed, else decord),
    ``torchcodec``, ``decord`` or ``pyav`` (PyAV alone); otherwise the chain ends in decord, then PyAV. When
    torchcodec fails on ``demote_after`` videos in a row that decord then reads, it is dropped for the rest of
    the run (a broken install must not cost every video a failed try). Before any decoder sees a file it must exist, be a
    regular file, be readable and not be empty; each failure has its own reason (``missing_file``,
    ``not_a_file``, ``unreadable_file``, ``empty_file``).
    """

    def __init__(self, batch_size: int = 16, max_side: int | None = 1920, device: str = "cpu",
                 timeout: float = 60.0, reader: str = "auto", demote_after: int = 3):
        if reader not in READERS:
            raise ValueError(f"--reader {reader!r} is not one of {', '.join(READERS)}")
        decord_reader = DecordReader(batch_size=batch_size, max_side=max_side,
                                     use_gpu=device.startswith("cuda") and decord_cuda_available())
        self.readers: list = [decord_reader]
        self.notes: list[str] = []
        if reader == "pyav":
            self.readers = []
        elif reader == "torchcodec" or (reader == "auto" and device.startswith("cuda")):
            codec_device = device if device.startswith("cuda") else "cpu"
            why_not = torchcodec_status(codec_device)
            if why_not is None:
                self.readers.insert(0, TorchCodecReader(batch_size=batch_size, max_side=max_side,
                                                        device=codec_device))
            elif reader == "torchcodec":
                raise ValueError(f"--reader torchcodec: {why_not}. Install torchcodec and FFmpeg's shared "
                                 f"libraries (e.g. apt-get install libavcodec59 libavformat59 libavdevice59), or "
                                 f"use --reader auto")
            else:
                self.notes.append(f"GPU decoding off: {why_not}")
                log.info("GPU decoding off (%s); decoding on the CPU with decord", why_not)
        self.fallback = PyAVReader(max_side=max_side)
        self.timeout = timeout
        self.demote_after = demote_after
        self._rescued_in_a_row = 0
        self._lock = threading.Lock()  # the prefetching thread reads too

    @property
    def primary(self):
        """The reader tried first."""
        return self.readers[0] if self.readers else self.fallback

    def _read_with_timeout(self, reader, path: Path, num_frames: int, pairs: int = 0, threads: int = 0) -> FrameBatch:
        # decoders' FFI calls release the GIL, so a stuck call can be left behind in its daemon thread
        try:
            return run_with_timeout(lambda: reader.read(path, num_frames, pairs, threads), self.timeout,
                                    name=reader.name)
        except StageTimeout:
            raise VideoReadError("decode_timeout", f"{reader.name} took over {self.timeout:.0f}s on {path}") from None

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

    def read(self, path: str | Path, num_frames: int, pairs: int = 0, threads: int = 0) -> FrameBatch:
        """Read ``num_frames`` evenly spaced frames (and the next frame of ``pairs`` of them, in
        ``next_frames``) with ``threads`` decoding threads each (0: FFmpeg's choice; the frames do not depend on
        it); raise :class:`VideoReadError` when nothing decodes."""
        path = Path(path)
        self.check_file(path)
        errors: list[VideoReadError] = []
        for reader in list(self.readers):
            try:
                batch = self._read_with_timeout(reader, path, num_frames, pairs, threads)
            except VideoReadError as error:
                log.info("%s failed on %s (%s); trying the next reader", reader.name, path.name, error)
                errors.append(error)
                continue
            self._note_rescue(len(errors))
            batch.notes[:0] = [f"{e}" for e in errors]
            return batch
        try:
            batch = self.fallback.read(path, num_frames, pairs, threads)
        except VideoReadError as fallback_error:
            if fallback_error.reason == "no_video_stream" or not errors:
                raise
            first = errors[0]
            raise VideoReadError(first.reason if first.reason != "partial_decode" else fallback_error.reason,
                                 "; ".join(str(e) for e in errors + [fallback_error])) from fallback_error
        batch.notes[:0] = [f"{e}" for e in errors]
        return batch

    def _note_rescue(self, failures_before_success: int) -> None:
        """Count videos torchcodec failed on and the next reader read; drop torchcodec after enough in a row."""
        with self._lock:
            if not self.readers or not isinstance(self.readers[0], TorchCodecReader):
                return
            self._rescued_in_a_row = self._rescued_in_a_row + 1 if failures_before_success else 0
            if self._rescued_in_a_row >= self.demote_after:
                dropped = self.readers.pop(0)
                message = (f"{dropped.name} failed on {self._rescued_in_a_row} videos in a row that "
                           f"{self.primary.name} read; using {self.primary.name} from now on")
                self.notes.append(message)
                log.warning(message)
