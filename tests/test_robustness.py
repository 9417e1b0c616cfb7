"""Never crash, never lose a row: the bad-input corpus, the watchdog, the time budget, interruption, memory,
and configuration errors that must stop ``predict`` before it reads any video.

The corpus (tests/corpus.py) is generated into a temporary folder; nothing of it is committed. The corpus run
and the SIGTERM runs are real ``python -m deepfake_kernel.predict`` processes; the rest runs in-process.
"""
from __future__ import annotations

import csv
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from deepfake_kernel import predict
from deepfake_kernel.pipeline import runner
from deepfake_kernel.pipeline.detector import Detector
from deepfake_kernel.pipeline.video import FrameReader, PyAVReader
from tests import corpus

REPO = Path(__file__).resolve().parents[1]
FAST = ["--frames", "4", "--detect-long-side", "320", "--models", "efficientnet_lite0", "--no-progress"]


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


def write_template(path: Path, names: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write("filename,label\n" + "".join(f'"{n}",0.5\n' for n in names))
    return path


def drop_read_override() -> list[str] | None:
    """A command prefix under which a mode-000 file really is unreadable: nothing for a normal user; for root,
    ``setpriv`` without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH. ``None`` when root cannot drop them."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        return None
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"deepfake_kernel_probe_{os.getpid()}"
    probe.write_text("x")
    probe.chmod(0)
    try:
        done = subprocess.run(prefix + ["cat", str(probe)], capture_output=True, timeout=20)
        return prefix if done.returncode != 0 and b"ermission denied" in done.stderr else None
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        probe.unlink()


def cli(args: list[str], prefix: list[str] = (), **popen) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*prefix, sys.executable, "-m", "deepfake_kernel.predict", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    videos = root / "videos"
    expect = corpus.build_corpus(videos)
    names = sorted(expect)
    names.insert(len(names) // 2, names.pop(names.index(corpus.GHOST)))  # the missing file sits mid-template
    return videos, write_template(root / "template.csv", names), expect


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return Detector.from_weights(tiny_weights, device="cpu", frames=3, detect_long_side=320,
                                 models=["efficientnet_lite0"])


# --------------------------------------------------------------------------------------------- the corpus


def test_corpus_every_row_written_with_its_reason(bad_corpus, tiny_weights, tmp_path):
    videos, template, expect = bad_corpus
    prefix = drop_read_override()
    if prefix is None:  # root that cannot drop CAP_DAC_OVERRIDE reads a mode-000 file: it is simply scored
        expect = {**expect, corpus.UNREADABLE: corpus.Expect("", "read anyway: root with CAP_DAC_OVERRIDE", 3, 1)}
    out, details = tmp_path / "submission.csv", tmp_path / "details.csv"
    proc = cli([str(videos), "--weights", str(tiny_weights), "--template", str(template), "--out", str(out),
                "--details", str(details), *FAST], prefix=prefix)
    stdout, stderr = proc.communicate(timeout=300)
    stdout, stderr = stdout.decode(errors="replace"), stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr[-3000:]

    template_names = [r["filename"] for r in rows(template)]
    submission, per_video = rows(out), {r["filename"]: r for r in rows(details)}
    assert [r["filename"] for r in submission] == template_names  # every row, in the template's order
    assert set(per_video) == set(expect)
    problems = []
    for row in submission:
        name, label = row["filename"], float(row["label"])
        want, got = expect[name], per_video[name]
        if got["reason"] != want.reason:
            problems.append(f"{name} ({want.what}): reason {got['reason']!r}, expected {want.reason!r}; "
                            f"notes: {got['notes'][:300]}")
        elif want.reason:
            if label != 0.5:
                problems.append(f"{name}: fallback row has label {label}")
        else:
            if not 0.01 <= label <= 0.99:
                problems.append(f"{name}: label {label} outside the clip range")
            if int(got["frames_read"]) < want.min_frames:
                problems.append(f"{name}: {got['frames_read']} frames read, expected >= {want.min_frames}")
            if want.tracks is not None and int(got["tracks"]) != want.tracks:
                problems.append(f"{name}: {got['tracks']} tracks, expected {want.tracks}")
    assert not problems, "\n".join(problems)

    # a partly decodable video was scored from what decoded, and says so
    assert "skipped corrupt" in per_video["corrupt_middle.mp4"]["notes"]
    # a non-UTF-8 name comes back byte for byte
    latin1 = [n for n in expect if n.startswith("caf")]
    for name in latin1:
        assert os.fsencode(name) in out.read_bytes()
    # the closing summary counts fallbacks by reason
    counts: dict[str, int] = {}
    for want in expect.values():
        if want.reason:
            counts[want.reason] = counts.get(want.reason, 0) + 1
    scored = len(expect) - sum(counts.values())
    assert f"{len(expect)} rows, {scored} scored, {sum(counts.values())} fallbacks" in stdout
    for reason, count in counts.items():
        assert f"fallback {reason}: {count}\n" in stdout + "\n", stdout


# --------------------------------------------------------------------------------------------- readers


def test_every_reader_applies_rotation(bad_corpus):
    from deepfake_kernel.pipeline.video import TorchCodecReader, torchcodec_status

    videos, _, _ = bad_corpus
    readers = [FrameReader().primary, PyAVReader()] + ([TorchCodecReader()] if torchcodec_status() is None else [])
    # stored 240 wide and 320 high with the face on its side; displayed, it is the upright 320 x 240 original
    original = corpus.face_scene(12, 320, 240)
    for reader in readers:
        batch = reader.read(videos / "rotated.mp4", 3)
        assert batch.frames.shape == (3, 240, 320, 3), reader.name
        assert np.abs(batch.frames.astype(int) - original[batch.indices].astype(int)).mean() < 6, reader.name
    with av.open(str(videos / "rotated.mp4")) as container:
        assert next(container.decode(video=0)).rotation == -90  # the metadata really is there


def test_pyav_reads_past_a_corrupt_middle(bad_corpus):
    videos, _, _ = bad_corpus
    batch = PyAVReader().read(videos / "corrupt_middle.mp4", 6)
    assert len(batch) == 6 and max(batch.indices) > 18  # frames after the damage
    assert any("skipped corrupt" in n for n in batch.notes)


def test_memory_is_bounded_for_4k_and_unknown_length(bad_corpus, tmp_path):
    videos, _, _ = bad_corpus
    for reader in (FrameReader(), PyAVReader()):
        batch = reader.read(videos / "uhd_3840x2160.mp4", 2)
        assert batch.frames.shape[1:3] == (1080, 1920) and batch.scale == pytest.approx(0.5)
    # a raw H.264 stream says nothing about its length: PyAV may not hold every frame to pick from
    frames = corpus.face_scene(240, 320, 240, face_height=150)
    raw = tmp_path / "stream.h264"
    with av.open(str(raw), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = 320, 240, "yuv420p", {"preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tracemalloc.start()
    try:
        batch = PyAVReader().read(raw, 8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert batch.frame_count == 240 and len(batch) == 8
    assert batch.indices == sorted(batch.indices) and batch.indices[-1] >= 200  # spread over the whole stream
    assert peak < 0.25 * frames.nbytes, f"held {peak / 1e6:.1f} MB of {frames.nbytes / 1e6:.1f} MB"


def test_unreadable_file_reason(tmp_path):
    """A mode-000 file: ``unreadable_file``. Root reads it anyway, so for root the check runs in a process
    without CAP_DAC_OVERRIDE (setpriv); the test is skipped when that is not possible."""
    path = tmp_path / "locked.mp4"
    path.write_bytes(b"\x00" * 64)
    path.chmod(0)
    prefix = drop_read_override()
    if prefix is None:
        pytest.skip("running as root without a way to drop CAP_DAC_OVERRIDE: a mode-000 file is readable")
    code = ("import sys; from deepfake_kernel.pipeline.video import FrameReader, VideoReadError\n"
            "try:\n    FrameReader.check_file(__import__('pathlib').Path(sys.argv[1]))\n"
            "except VideoReadError as e:\n    print(e.reason)\n")
    done = subprocess.run([*prefix, sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.stdout.strip() == "unreadable_file", done.stderr


# --------------------------------------------------------------------------------------------- hard limits


@pytest.fixture
def release():
    """An event that blocked (hung) calls wait on; set at teardown so abandoned workers end."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("stage", ["decode", "detect", "classify"])
def test_watchdog_abandons_a_hung_stage(detector, bad_corpus, monkeypatch, release, stage):
    videos, _, _ = bad_corpus
    hang = lambda *args, **kwargs: release.wait(60)  # noqa: E731
    if stage == "decode":
        monkeypatch.setattr(detector.reader, "read", hang)
    elif stage == "detect":
        monkeypatch.setattr(detector, "_detect", hang)
    else:
        monkeypatch.setattr(detector.members["efficientnet_lite0"], "predict_proba", hang)
    started = time.monotonic()
    result = detector.predict_video(videos / "clip.mov", timeout=1.0)
    assert time.monotonic() - started < 2.5
    assert result.reason == f"{stage}_timeout" and result.score == 0.5
    assert "abandoned" in result.notes[-1]


def test_time_budget_is_a_hard_limit(tiny_weights, bad_corpus, tmp_path, monkeypatch, release):
    """Detection hangs on every video; the run still ends within the budget plus a small margin."""
    from deepfake_kernel.pipeline.faces import FaceCropper

    videos, _, _ = bad_corpus
    folder = tmp_path / "hanging"
    folder.mkdir()
    for i in range(5):
        (folder / f"v{i}.mp4").symlink_to(videos / "clip.mov")
    monkeypatch.setattr(FaceCropper, "__call__", lambda self, frames, **kw: release.wait(60))
    out, details = tmp_path / "submission.csv", tmp_path / "details.csv"
    started = time.monotonic()
    summary = predict.run(predict.PredictConfig(video_dir=str(folder), weights=str(tiny_weights), out=str(out),
                                                details=str(details), frames=3, time_budget="6s", progress=False,
                                                models=["efficientnet_lite0"], detect_long_side=320))
    elapsed = time.monotonic() - started
    assert elapsed < 6 + 1.0, elapsed
    assert [float(r["label"]) for r in rows(out)] == [0.5] * 5
    assert summary["fallbacks"] == {"time_budget": 5}
    assert {r["reason"] for r in rows(details)} == {"time_budget"}


def test_out_of_memory_retries_with_smaller_batches_then_falls_back(detector, bad_corpus, monkeypatch):
    from deepfake_kernel.pipeline.faces import FaceCropper

    videos, _, _ = bad_corpus
    member = detector.members["efficientnet_lite0"]
    real_proba, real_crop = member.predict_proba, FaceCropper.__call__
    monkeypatch.setattr(detector, "batch_size", 16)
    monkeypatch.setattr(detector.cropper, "batch_size", 16)

    def proba(crops, batch_size=16):
        if batch_size > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_proba(crops, batch_size)

    def crop(self, frames, **kw):
        if self.batch_size > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_crop(self, frames, **kw)

    monkeypatch.setattr(member, "predict_proba", proba)
    monkeypatch.setattr(FaceCropper, "__call__", crop)
    result = detector.predict_video(videos / "clip.mov", frames=3)
    assert result.reason is None, result.notes
    assert detector.batch_size == 2 and detector.cropper.batch_size == 4  # kept for the next videos
    assert any("retried at 8" in n for n in result.notes)

    def never(crops, batch_size=16):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(member, "predict_proba", never)
    result = detector.predict_video(videos / "clip.mov", frames=3)
    assert result.reason == "out_of_memory" and result.score == 0.5


def _start_and_wait(args: list[str], pattern: str, count: int, timeout: float = 120):
    """Start the CLI; return it once ``count`` stderr lines match ``pattern`` (and the lines read so far)."""
    proc = cli(args)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.decode(errors="replace")) for l in proc.stderr],
                     daemon=True).start()
    seen, matched, deadline = [], 0, time.monotonic() + timeout
    while matched < count and time.monotonic() < deadline and proc.poll() is None:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        matched += bool(re.search(pattern, line))
    assert matched >= count, "".join(seen[-30:])
    return proc, lines, seen


def _copies_of_clip(bad_corpus, tmp_path: Path, count: int, pattern: str = "v{}.mp4") -> Path:
    """A folder of ``count`` links to the corpus's readable clip with a face."""
    videos, _, _ = bad_corpus
    folder = tmp_path / "copies"
    folder.mkdir()
    for i in range(count):
        (folder / pattern.format(i)).symlink_to(videos / "clip.mov")
    return folder


@pytest.mark.parametrize("when", ["mid_run", "while_loading"])
def test_sigterm_leaves_a_complete_submission(tiny_weights, bad_corpus, tmp_path, when):
    folder = _copies_of_clip(bad_corpus, tmp_path, 30, "v{:02d}.mp4")
    out, details = tmp_path / "submission.csv", tmp_path / "details.csv"
    args = [str(folder), "--weights", str(tiny_weights), "--out", str(out), "--details", str(details), *FAST,
            "--log-level", "INFO"]
    if when == "mid_run":  # after two videos
        proc, lines, seen = _start_and_wait(args, r"predict: v\d\d\.mp4: ", 2)
    else:  # the handler is in place, torch and the models are still loading
        proc, lines, seen = _start_and_wait(args, r"loading the models", 1)
        time.sleep(0.3)  # into the imports
    proc.send_signal(signal.SIGTERM)
    stdout = proc.stdout.read().decode()
    code = proc.wait(timeout=60)
    time.sleep(0.2)  # let the reader thread drain stderr
    while not lines.empty():
        seen.append(lines.get())
    assert code == predict.EXIT_SIGTERM, stdout + "".join(seen[-40:])
    submission, per_video = rows(out), rows(details)
    assert [r["filename"] for r in submission] == [f"v{i:02d}.mp4" for i in range(30)]
    interrupted = [r["filename"] for r in per_video if r["reason"] == "interrupted"]
    assert all(float(r["label"]) == 0.5 for r in submission if r["filename"] in interrupted)
    assert "run interrupted (SIGTERM)" in stdout
    reached = 30 - len(interrupted)
    if when == "mid_run":
        assert 2 <= reached < 30 and f"fallback interrupted: {len(interrupted)}" in stdout
    else:
        assert reached == 0


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, predict.EXIT_SIGTERM), (signal.SIGINT, predict.EXIT_SIGINT)])
def test_signal_while_loading_is_raised_after_loading(tiny_weights, bad_corpus, tmp_path, monkeypatch, capsys,
                                                      sig, code):
    """A SIGTERM or Ctrl-C that arrives inside the model loading (torch's imports: an exception raised there can
    abort the process) is held until loading returns; then the run stops with every row at the fallback."""
    folder, out = _copies_of_clip(bad_corpus, tmp_path, 3), tmp_path / "submission.csv"
    real_load, after_signal = runner._load_detector, []

    def load(config):
        os.kill(os.getpid(), sig)  # Python runs the handler at the next bytecode, still inside loading
        after_signal.append(True)  # not reached if the handler raised
        return real_load(config)

    monkeypatch.setattr(runner, "_load_detector", load)
    # Ctrl-C as in a terminal (a background or nohup'd test run inherits SIGINT ignored, which predict respects)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert predict.main([str(folder), "--weights", str(tiny_weights), "--out", str(out), *FAST]) == code
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    finally:
        signal.signal(signal.SIGINT, outer)
    assert after_signal == [True]
    assert [float(r["label"]) for r in rows(out)] == [0.5, 0.5, 0.5]
    assert "fallback interrupted: 3" in capsys.readouterr().out


def test_ctrl_c_in_a_stage_leaves_checkpointed_complete_submission(tiny_weights, bad_corpus, tmp_path,
                                                                  monkeypatch, capsys):
    """Ctrl-C raised inside the third video's detection (in the worker thread) stops the run: exit 130, every
    row written; with checkpoints on every video, the file already held the first two scores before that."""
    from deepfake_kernel.pipeline.faces import FaceCropper

    folder, out = _copies_of_clip(bad_corpus, tmp_path, 5), tmp_path / "submission.csv"
    real_crop, calls, seen_on_disk = FaceCropper.__call__, [], []

    def crop(self, frames, **kw):
        calls.append(1)
        if len(calls) == 3:
            seen_on_disk.extend(rows(out))
            raise KeyboardInterrupt
        return real_crop(self, frames, **kw)

    monkeypatch.setattr(FaceCropper, "__call__", crop)
    monkeypatch.setattr(runner, "CHECKPOINT_SECONDS", 0.0)
    assert predict.main([str(folder), "--weights", str(tiny_weights), "--out", str(out), *FAST]) == 130
    assert [float(r["label"]) != 0.5 for r in seen_on_disk] == [True, True, False, False, False]
    labels = [float(r["label"]) for r in rows(out)]
    assert len(labels) == 5 and labels[2:] == [0.5, 0.5, 0.5] and 0.5 not in labels[:2]
    assert "fallback interrupted: 3" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- configuration


@pytest.fixture
def no_video_may_be_read(monkeypatch):
    touched = []
    monkeypatch.setattr(FrameReader, "read", lambda self, path, n, pairs=0, threads=0: touched.append(path))
    yield touched
    assert touched == [], "a video was read although the configuration is wrong"


def _one_member_weights(tiny_weights: Path, root: Path) -> Path:
    manifest = json.loads((tiny_weights / "manifest.json").read_text())
    manifest["members"] = [m for m in manifest["members"] if m["name"] == "efficientnet_lite0"]
    root.mkdir()
    shutil.copy(tiny_weights / manifest["members"][0]["file"], root)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _break(weights: Path, how: str) -> None:
    manifest = json.loads((weights / "manifest.json").read_text())
    member = manifest["members"][0]
    if how == "missing_folder":
        shutil.rmtree(weights)
    elif how == "missing_checkpoint":
        (weights / member["file"]).unlink()
    elif how == "sha256_mismatch":
        with open(weights / member["file"], "ab") as handle:
            handle.write(b"\0")
    elif how == "unknown_architecture":
        member["detector"] = "vision_transformer_9000"
    elif how == "architecture_mismatch":
        member["arch"] = "resnet18"
    if how in ("unknown_architecture", "architecture_mismatch"):
        (weights / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("how,advice", [
    ("missing_folder", "does not exist"), ("missing_checkpoint", "is missing"),
    ("sha256_mismatch", "sha256"), ("unknown_architecture", "unknown detector"),
    ("architecture_mismatch", "another release")])
def test_broken_weights_stop_before_any_video(tiny_weights, bad_corpus, tmp_path, capsys, no_video_may_be_read,
                                              how, advice):
    videos, _, _ = bad_corpus
    weights = _one_member_weights(tiny_weights, tmp_path / "weights")
    _break(weights, how)
    out = tmp_path / "submission.csv"
    assert predict.main([str(videos), "--weights", str(weights), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert not out.exists() and advice in err, err
    assert "python -m deepfake_kernel.train" in err or "remove the member" in err or "release" in err


@pytest.mark.parametrize("target", ["proc", "under_a_file", "a_folder", "details_under_a_file"])
def test_unwritable_output_stops_before_any_video(tiny_weights, bad_corpus, tmp_path, capsys,
                                                   no_video_may_be_read, target):
    videos, _, _ = bad_corpus
    (tmp_path / "plain.txt").write_text("a file, not a folder")
    out, extra = str(tmp_path / "submission.csv"), []
    if target == "proc":
        out = "/proc/deepfake_kernel/submission.csv"
    elif target == "under_a_file":
        out = str(tmp_path / "plain.txt" / "submission.csv")
    elif target == "a_folder":
        out = str(tmp_path)
    else:
        extra = ["--details", str(tmp_path / "plain.txt" / "details.csv")]
    started = time.monotonic()
    assert predict.main([str(videos), "--weights", str(tiny_weights), "--out", out, *extra]) == 2
    assert time.monotonic() - started < 5  # before the models load
    err = capsys.readouterr().err
    option = "--details" if extra else "--out"
    assert f"cannot write {option}" in err and "folder you can write to" in err, err


@pytest.mark.parametrize("args,message", [
    (["--time-budget", "nine hours"], "cannot read duration"),
    (["--frames", "0"], "at least 1"),
    (["--fallback-score", "2"], "fallback-score"),
])
def test_bad_options_stop_before_any_video(tiny_weights, bad_corpus, tmp_path, capsys, no_video_may_be_read,
                                           args, message):
    videos, _, _ = bad_corpus
    out = tmp_path / "submission.csv"
    assert predict.main([str(videos), "--weights", str(tiny_weights), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_asked_without_gpu(tiny_weights, bad_corpus, tmp_path, capsys, no_video_may_be_read):
    videos, _, _ = bad_corpus
    out = tmp_path / "submission.csv"
    assert predict.main([str(videos), "--weights", str(tiny_weights), "--out", str(out), "--device", "cuda"]) == 2
    assert "--device cpu" in capsys.readouterr().err and not out.exists()


def test_torchcodec_chain_answers_the_corpus_like_the_default_chain(bad_corpus):
    """With torchcodec first, every bad file still gets the same reason, and every good one the same frames."""
    from deepfake_kernel.pipeline.video import VideoReadError, torchcodec_status

    if torchcodec_status() is not None:
        pytest.skip(f"torchcodec unusable here: {torchcodec_status()}")
    videos, _, expect = bad_corpus

    def outcome(reader, name):
        try:
            batch = reader.read(videos / name, 8)
            return batch.indices, batch.frames.shape
        except VideoReadError as error:
            return error.reason

    default, codec_first = FrameReader(timeout=30), FrameReader(reader="torchcodec", timeout=30)
    assert codec_first.primary.name == "torchcodec"
    for name in expect:
        assert outcome(codec_first, name) == outcome(default, name), name
    assert codec_first.primary.name == "torchcodec"  # bad files that defeat every reader do not demote it
