import numpy as np
import pytest

from deepfake_kernel.pipeline.video import (DecordReader, FrameReader, PyAVReader, TorchCodecReader, VideoReadError,
                                            pair_positions, sample_indices, torchcodec_status, with_next_frames)
from tests import synthetic

needs_torchcodec = pytest.mark.skipif(torchcodec_status() is not None,
                                      reason=f"torchcodec unusable here: {torchcodec_status()}")


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("numbered") / "numbered.mp4"
    return synthetic.write_video(path, synthetic.numbered_frames(50), fps=25)


def frame_numbers(batch):
    """Recover source frame numbers from the flat grey levels of numbered_frames."""
    return [int(round((f.mean() - 20) / 4)) for f in batch.frames]


def test_sample_indices_are_even_and_in_range():
    assert sample_indices(100, 4) == [12, 37, 62, 87]
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(0, 8) == []
    idx = sample_indices(301, 32)
    assert len(idx) == 32 and idx == sorted(idx) and idx[-1] < 301


@pytest.mark.parametrize("reader", [DecordReader(batch_size=3), PyAVReader(),
                                    pytest.param(TorchCodecReader(batch_size=3), marks=needs_torchcodec)],
                         ids=["decord", "pyav", "torchcodec"])
def test_reader_returns_the_sampled_frames(numbered_video, reader):
    batch = reader.read(numbered_video, 8)
    assert batch.indices == sample_indices(50, 8)
    assert batch.frames.shape == (8, 120, 160, 3) and batch.frames.dtype == np.uint8
    assert frame_numbers(batch) == batch.indices  # the pixels really are those frames
    assert batch.fps == pytest.approx(25, abs=0.1)


@pytest.mark.parametrize("reader", [DecordReader(batch_size=3), PyAVReader(),
                                    pytest.param(TorchCodecReader(batch_size=3), marks=needs_torchcodec)],
                         ids=["decord", "pyav", "torchcodec"])
def test_reader_adds_the_next_frame_of_the_paired_positions(numbered_video, reader):
    """The temporal cue's pairs: the sampled frames stay exactly as without pairs, and each paired position gets
    the source frame right after it."""
    batch = reader.read(numbered_video, 8, pairs=3)
    assert batch.indices == sample_indices(50, 8) and frame_numbers(batch) == batch.indices
    assert sorted(batch.next_frames) == pair_positions(8, 3) == [0, 4, 7]
    for position, image in batch.next_frames.items():
        assert int(round((image.mean() - 20) / 4)) == batch.indices[position] + 1
    assert reader.read(numbered_video, 8).next_frames == {}


@pytest.mark.parametrize("reader", [DecordReader(batch_size=4), PyAVReader(),
                                    pytest.param(TorchCodecReader(batch_size=4), marks=needs_torchcodec)],
                         ids=["decord", "pyav", "torchcodec"])
def test_decoding_threads_do_not_change_the_frames(tmp_path, reader):
    """``predict`` decodes two videos ahead on one FFmpeg thread each for the light preset: the frames must be the
    ones FFmpeg's own threading gives, to the last bit."""
    frames, _ = synthetic.face_frames(n=40)
    path = synthetic.write_video(tmp_path / "face.mp4", frames)
    auto, one = reader.read(path, 6, pairs=3), reader.read(path, 6, pairs=3, threads=1)
    assert auto.indices == one.indices and np.array_equal(auto.frames, one.frames)
    assert sorted(auto.next_frames) == sorted(one.next_frames) == [0, 2, 5]
    assert all(np.array_equal(auto.next_frames[k], one.next_frames[k]) for k in auto.next_frames)


def test_the_reader_chain_passes_the_decoding_threads_on(numbered_video, monkeypatch):
    reader, asked = FrameReader(), []
    real = reader.primary.read
    monkeypatch.setattr(reader.primary, "read",
                        lambda path, n, pairs=0, threads=0: asked.append(threads) or real(path, n, pairs, threads))
    assert frame_numbers(reader.read(numbered_video, 5, threads=1)) == sample_indices(50, 5)
    reader.read(numbered_video, 5)
    assert asked == [1, 0]


def test_pairs_stay_inside_the_video():
    assert with_next_frames([0, 5, 9], 3, 10) == [0, 1, 5, 6, 9]  # frame 10 does not exist
    assert with_next_frames([0, 1, 2], 3, 3) == [0, 1, 2]  # every frame sampled: the next ones are among them
    assert pair_positions(4, 8) == [0, 1, 2, 3] and pair_positions(5, 0) == []


def test_decord_and_pyav_agree(tmp_path):
    frames, _ = synthetic.face_frames(n=20)
    path = synthetic.write_video(tmp_path / "face.mp4", frames)
    a, b = DecordReader().read(path, 5), PyAVReader().read(path, 5)
    assert a.indices == b.indices
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 3


def test_large_frames_are_decoded_at_reduced_size(tmp_path):
    path = synthetic.write_video(tmp_path / "wide.mp4", synthetic.numbered_frames(10, width=640, height=360))
    batch = FrameReader(max_side=320).read(path, 4)
    assert batch.frames.shape[1:3] == (180, 320)
    assert batch.scale == pytest.approx(0.5)


def test_portrait_and_other_containers(tmp_path):
    portrait = synthetic.write_video(tmp_path / "portrait.mov", synthetic.numbered_frames(12, width=96, height=160))
    webm = synthetic.write_video(tmp_path / "clip.webm", synthetic.numbered_frames(12), codec="libvpx-vp9")
    avi = synthetic.write_video(tmp_path / "clip.avi", synthetic.numbered_frames(12), codec="mpeg4")
    reader = FrameReader()
    assert reader.read(portrait, 4).frames.shape[1:3] == (160, 96)
    for path in (webm, avi):
        batch = reader.read(path, 4)
        assert len(batch) == 4 and frame_numbers(batch) == batch.indices


def test_fallback_reader_used_when_decord_fails(numbered_video, monkeypatch):
    reader = FrameReader()

    def broken(path, num_frames, pairs=0, threads=0):
        raise VideoReadError("decode_failed", "simulated decord failure")

    monkeypatch.setattr(reader.primary, "read", broken)
    batch = reader.read(numbered_video, 6)
    assert batch.reader == "pyav" and frame_numbers(batch) == batch.indices
    assert "simulated" in batch.notes[0]


def test_stalled_decord_is_abandoned(numbered_video, monkeypatch):
    import time

    reader = FrameReader(timeout=0.5)
    monkeypatch.setattr(reader.primary, "read", lambda path, n, pairs=0, threads=0: time.sleep(3))
    started = time.monotonic()
    batch = reader.read(numbered_video, 4)
    assert time.monotonic() - started < 2.5
    assert batch.reader == "pyav" and "decode_timeout" in batch.notes[0]


@pytest.mark.parametrize("content,reason", [(b"", "empty_file"), (b"not a video at all" * 50, "decode_failed")])
def test_unreadable_files_raise_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoReadError) as info:
        FrameReader().read(path, 4)
    assert info.value.reason == reason


def test_missing_file(tmp_path):
    with pytest.raises(VideoReadError) as info:
        FrameReader().read(tmp_path / "nope.mp4", 4)
    assert info.value.reason == "missing_file"


@needs_torchcodec
def test_torchcodec_matches_decord_at_reduced_size(tmp_path):
    frames, _ = synthetic.face_frames(n=20, width=320, height=240)
    path = synthetic.write_video(tmp_path / "face.mp4", frames)
    a, b = DecordReader(max_side=160).read(path, 5), TorchCodecReader(max_side=160).read(path, 5)
    assert a.indices == b.indices and b.frames.shape == a.frames.shape == (5, 120, 160, 3)
    assert b.scale == pytest.approx(0.5) and b.reader == "torchcodec"
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 3


@needs_torchcodec
def test_torchcodec_chain_falls_back_and_drops_a_failing_torchcodec(numbered_video, monkeypatch):
    reader = FrameReader(reader="torchcodec", demote_after=2)
    assert [r.name for r in reader.readers] == ["torchcodec", "decord"]

    def broken(path, num_frames, pairs=0, threads=0):
        raise VideoReadError("decode_failed", "simulated torchcodec failure")

    monkeypatch.setattr(reader.readers[0], "read", broken)
    first = reader.read(numbered_video, 6)
    assert first.reader == "decord" and frame_numbers(first) == first.indices and "simulated" in first.notes[0]
    reader.read(numbered_video, 6)  # the second rescue in a row: torchcodec is dropped
    assert reader.primary.name == "decord" and "failed on 2 videos in a row" in reader.notes[-1]
    assert reader.read(numbered_video, 6).notes == []  # no failed try any more


def test_asking_for_an_unusable_torchcodec_fails_early(monkeypatch):
    import deepfake_kernel.pipeline.video as video

    monkeypatch.setattr(video, "torchcodec_status", lambda device="cpu": "torchcodec is not installed")
    with pytest.raises(ValueError, match="torchcodec is not installed"):
        FrameReader(reader="torchcodec")
    with pytest.raises(ValueError, match="--reader"):
        FrameReader(reader="opencv")
    auto = FrameReader(reader="auto", device="cuda")  # on a GPU without torchcodec: decord, and a note why
    assert auto.primary.name == "decord" and "GPU decoding off" in auto.notes[0]
    assert FrameReader(reader="pyav").primary.name == "pyav"


def _nvdec_missing() -> str | None:
    import torch

    return "no GPU" if not torch.cuda.is_available() else torchcodec_status("cuda")


@pytest.mark.skipif(_nvdec_missing() is not None, reason="needs a GPU with torchcodec (run by docs/gpu_check.sh)")
def test_nvdec_frames_match_the_cpu_decode(tmp_path):
    frames, _ = synthetic.face_frames(n=20, width=640, height=480)
    path = synthetic.write_video(tmp_path / "face.mp4", frames)
    reader = FrameReader(device="cuda")
    assert reader.primary.name == "torchcodec-nvdec"
    for max_side in (None, 320):  # native size, and resized on the GPU
        gpu = TorchCodecReader(max_side=max_side, device="cuda").read(path, 6)
        cpu = DecordReader(max_side=max_side).read(path, 6)
        assert gpu.indices == cpu.indices and gpu.frames.shape == cpu.frames.shape
        assert np.abs(gpu.frames.astype(int) - cpu.frames.astype(int)).mean() < 4


@needs_torchcodec
def test_torchcodec_resizes_itself_when_the_decoder_cannot(tmp_path, monkeypatch):
    import torchcodec.transforms

    def refused(size):
        raise RuntimeError("transform not supported on this device")

    monkeypatch.setattr(torchcodec.transforms, "Resize", refused)
    path = synthetic.write_video(tmp_path / "wide.mp4", synthetic.numbered_frames(10, width=640, height=360))
    batch = TorchCodecReader(max_side=320).read(path, 4)
    reference = DecordReader(max_side=320).read(path, 4)
    assert batch.frames.shape == reference.frames.shape == (4, 180, 320, 3) and batch.scale == pytest.approx(0.5)
    assert frame_numbers(batch) == batch.indices
    assert np.abs(batch.frames.astype(int) - reference.frames.astype(int)).mean() < 3


def _ffmpeg_libraries_loadable(env: dict) -> bool:
    """Whether a fresh process with ``env`` can load any FFmpeg libavutil that torchcodec 0.17 links against."""
    import subprocess
    import sys

    check = ("import ctypes, sys\n"
             "for major in range(56, 62):\n"
             "    try:\n"
             "        ctypes.CDLL(f'libavutil.so.{major}'); sys.exit(0)\n"
             "    except OSError:\n"
             "        pass\n"
             "sys.exit(1)\n")
    return subprocess.run([sys.executable, "-c", check], env=env).returncode == 0


def _probe_in_fresh_process(env: dict) -> str:
    import subprocess
    import sys

    code = "from deepfake_kernel.pipeline.video import torchcodec_status; print(repr(torchcodec_status()))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("state", ["as_installed", "libraries_hidden"])
def test_torchcodec_probe_is_true_to_the_machine(state, tmp_path):
    """The real probe (nothing patched), in a fresh process: it says yes exactly when FFmpeg's libraries load.

    ``libraries_hidden`` runs it with the loader path emptied of any FFmpeg folder given by LD_LIBRARY_PATH, which
    is how the probe is seen without the libraries on a machine that has them only there.
    """
    import importlib.util
    import os

    if importlib.util.find_spec("torchcodec") is None:
        pytest.skip("torchcodec is not installed")
    env = dict(os.environ)
    if state == "libraries_hidden":
        if not env.get("LD_LIBRARY_PATH") or not _ffmpeg_libraries_loadable(env):
            pytest.skip("FFmpeg's libraries are not on LD_LIBRARY_PATH here: the as_installed case covers this state")
        env["LD_LIBRARY_PATH"] = ""
    answer = _probe_in_fresh_process(env)
    if _ffmpeg_libraries_loadable(env):
        assert answer == "None", f"FFmpeg's libraries load here, yet the probe says {answer}"
    else:
        assert "FFmpeg" in answer and answer != "None", answer
