import csv
import time

import pytest

from deepfake_kernel import predict
from deepfake_kernel.pipeline import runner
from tests import synthetic


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_writes_every_row(video_dir, tiny_weights, tmp_path, capsys):
    out, details = tmp_path / "submission.csv", tmp_path / "details.csv"
    code = predict.main([str(video_dir), "--weights", str(tiny_weights), "--out", str(out), "--frames", "4",
                         "--details", str(details), "--detect-long-side", "480", "--no-progress"])
    assert code == 0
    submission = rows(out)
    assert [r["filename"] for r in submission] == ["corrupt.mp4", "no_face.mp4", "one_face.mp4", "two_faces.mp4"]
    labels = {r["filename"]: float(r["label"]) for r in submission}
    assert labels["corrupt.mp4"] == labels["no_face.mp4"] == 0.5
    assert all(0.01 <= v <= 0.99 for v in labels.values())
    reasons = {r["filename"]: r["reason"] for r in rows(details)}
    assert reasons == {"corrupt.mp4": "decode_failed", "no_face.mp4": "no_face", "one_face.mp4": "",
                       "two_faces.mp4": ""}
    assert {r["filename"]: r["tracks"] for r in rows(details)}["two_faces.mp4"] == "2"
    printed = capsys.readouterr().out
    assert "4 rows, 2 scored" in printed and "fallback no_face: 1" in printed


def test_template_order_and_missing_files(video_dir, tiny_weights, tmp_path):
    template = tmp_path / "sample_submission.csv"
    template.write_text("filename,label\ntwo_faces.mp4,0.5\nghost.mp4,0.5\none_face.mp4,0.5\n")
    out, details = tmp_path / "sub.csv", tmp_path / "d.csv"
    config = predict.PredictConfig(video_dir=str(video_dir), weights=str(tiny_weights), out=str(out),
                                   template=str(template), frames=3, details=str(details),
                                   detect_long_side=480, progress=False, models=["efficientnet_lite0"])
    summary = predict.run(config)
    assert [r["filename"] for r in rows(out)] == ["two_faces.mp4", "ghost.mp4", "one_face.mp4"]
    assert summary["fallbacks"] == {"missing_file": 1}
    assert rows(details)[0]["models"] == "efficientnet_lite0"


def test_missing_weights_stop_before_any_video(video_dir, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    code = predict.main([str(video_dir), "--weights", str(tmp_path / "empty"), "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "python -m deepfake_kernel.train" in capsys.readouterr().err


def test_missing_video_dir(tiny_weights, tmp_path, capsys):
    assert predict.main([str(tmp_path / "nope"), "--weights", str(tiny_weights)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_tiny_time_budget_still_writes_every_row(video_dir, tiny_weights, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    for i in range(120):  # far more than fit in the budget on any machine
        (many / f"v{i:03d}.mp4").symlink_to(video_dir / "one_face.mp4")
    out, details = tmp_path / "submission.csv", tmp_path / "details.csv"
    started = time.monotonic()
    summary = predict.run(predict.PredictConfig(video_dir=str(many), weights=str(tiny_weights),
                                                out=str(out), frames=4, time_budget="6s", progress=False,
                                                details=str(details), detect_long_side=480))
    elapsed = time.monotonic() - started
    assert len(rows(out)) == 120
    assert elapsed < 6 + 2.5  # budget plus a small margin
    assert summary["fallbacks"].get("time_budget", 0) >= 1
    assert any(r["reason"] == "time_budget" for r in rows(details))


def test_shards_merge_into_the_single_process_submission(video_dir, shipped_weights, tmp_path):
    common = dict(video_dir=str(video_dir), weights=str(shipped_weights), frames=3, detect_long_side=480,
                  progress=False, models=["efficientnet_lite0"])
    predict.run(predict.PredictConfig(out=str(tmp_path / "single.csv"), **common))
    parts = []
    for k in range(2):
        parts.append(str(tmp_path / f"part{k}.csv"))
        predict.run(predict.PredictConfig(out=parts[-1], shard=f"{k}/2", **common))
    assert len(rows(parts[0])) == 2 and len(rows(parts[1])) == 2
    out = tmp_path / "merged.csv"
    assert predict.main([str(video_dir), "--out", str(out), "--merge", ",".join(parts)]) == 0
    assert rows(out) == rows(tmp_path / "single.csv")
    with pytest.raises(predict.ConfigError):
        runner.parse_shard("2/2")


def test_torchrun_shards_and_merges(video_dir, shipped_weights, tmp_path):
    import os
    import subprocess
    import sys

    common = ["--weights", str(shipped_weights), "--frames", "3", "--detect-long-side", "480", "--no-progress",
              "--models", "efficientnet_lite0", "--threads", "1"]
    assert predict.main([str(video_dir), "--out", str(tmp_path / "single.csv")] + common) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               "-m", "deepfake_kernel.predict", str(video_dir), "--shard", "auto",
               "--out", str(tmp_path / "merged.csv")] + common
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows(tmp_path / "merged.csv") == rows(tmp_path / "single.csv")


def test_the_budget_falls_to_the_light_preset_with_its_detection_settings(video_dir, tiny_weights, monkeypatch):
    """When the asked-for level does not fit, the video runs at the light preset: its member, its frames, and
    MTCNN on every 4th frame at 640 px (the budget switches detection settings, not only frames and models)."""
    import collections

    from deepfake_kernel.pipeline.budget import TimeBudget, default_ladder
    from deepfake_kernel.pipeline.detector import Detector

    detector = Detector.from_weights(tiny_weights, device="cpu")
    calls = []
    real_detect = detector.cropper.detect
    monkeypatch.setattr(detector.cropper, "detect",
                        lambda frames, long_side=None: calls.append((len(frames), long_side)) or
                        real_detect(frames, long_side))
    config = predict.PredictConfig(video_dir=str(video_dir), weights=str(tiny_weights), progress=False)
    top, light = runner.top_and_light(config, detector)
    assert top.frames == 32 and len(top.models) == 3 and top.detect_every == 1
    now = [0.0]
    budget = TimeBudget(1000.0, 100, default_ladder(top, light), clock=lambda: now[0])
    budget.record(top, 20.0)  # 20 s a video at the top level: the 99 videos left cannot all run at it
    now[0] = 20.0
    scores, details, reasons, levels = {}, {}, collections.Counter(), collections.Counter()
    runner._predict_one("one_face.mp4", video_dir, config, detector, budget, scores, details, reasons, levels)
    assert list(levels) == [light.describe()] and "detection every 4 at 640px" in light.describe()
    row = dict(zip(runner.DETAIL_COLUMNS, details["one_face.mp4"]))
    assert row["reason"] == "" and row["models"] == detector.lightest_member() == "efficientnet_lite0"
    assert row["frames_requested"] == 16 and row["frames_read"] == 16
    assert calls == [(5, 640)]  # keyframes 0, 4, 8, 12 and the last of the 16 frames


@pytest.mark.parametrize("options, batches", [(["--preset", "light"], [2, 2, 1]), ([], [1, 1, 1]),
                                                (["--preset", "light", "--no-prefetch"], []),
                                                (["--decode-ahead", "3"], [3, 2, 1])],
                         ids=["light", "full", "no-prefetch", "decode-ahead"])
def test_the_preset_says_how_many_videos_are_decoded_ahead(video_dir, tiny_weights, tmp_path, monkeypatch,
                                                           options, batches):
    """light: the next two videos (decoding dominates it); full: the next one; --no-prefetch: none."""
    from deepfake_kernel.pipeline.detector import Detector

    asked, real = [], Detector.prefetch
    monkeypatch.setattr(Detector, "prefetch", lambda self, paths, *rest: asked.append(len(paths)) or
                        real(self, paths, *rest))
    out = tmp_path / "sub.csv"
    assert predict.main([str(video_dir), "--weights", str(tiny_weights), "--out", str(out), "--no-progress",
                         "--frames", "8", *options]) == 0
    assert len(rows(out)) == 4 and asked == batches


def test_light_preset_and_bad_options_are_checked(video_dir, tiny_weights, tmp_path, capsys):
    out, details = tmp_path / "sub.csv", tmp_path / "details.csv"
    assert predict.main([str(video_dir), "--weights", str(tiny_weights), "--out", str(out), "--preset", "light",
                         "--details", str(details), "--no-progress"]) == 0
    scored = [r for r in rows(details) if not r["reason"]]
    assert {r["models"] for r in scored} == {"efficientnet_lite0"} and {r["frames_requested"] for r in scored} == {"16"}
    printed = capsys.readouterr().out
    assert "level 16 frames x 1 models, detection every 4 at 640px: 4 videos" in printed
    assert "decoding: decord\n" in printed + "\n"  # on a CPU, auto decodes with decord
    for bad in (["--preset", "fast"], ["--detect-every", "0"], ["--compile", "turbo"], ["--reader", "opencv"],
                ["--min-face-size", "5"], ["--bystander-ratio", "1.5"], ["--decode-ahead", "0"]):
        assert predict.main([str(video_dir), "--weights", str(tiny_weights), "--out", str(out)] + bad) == 2, bad


def test_min_face_size_reaches_mtcnn(video_dir, tiny_weights, tmp_path):
    """A smallest-face size above the clip's face finds nothing; the default finds it."""
    details = {}
    for size in (24, 400):
        out, detail = tmp_path / f"sub{size}.csv", tmp_path / f"details{size}.csv"
        predict.run(predict.PredictConfig(video_dir=str(video_dir), weights=str(tiny_weights), out=str(out),
                                          details=str(detail), frames=3, progress=False, min_face_size=size,
                                          models=["efficientnet_lite0"]))
        details[size] = {r["filename"]: r["reason"] for r in rows(detail)}
    assert details[24]["one_face.mp4"] == "" and details[400]["one_face.mp4"] == "no_face"


def test_a_bystander_track_is_dropped_unless_asked_to_keep_it(tiny_weights, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    synthetic.write_video(folder / "bystander.mp4", synthetic.bystander_frames(n=12))
    tracks = {}
    for preset in ("full", "light"):  # light: detection on every 4th frame at 640 px, boxes interpolated
        for ratio in (0.0, 0.5):
            detail = tmp_path / f"details{preset}{ratio}.csv"
            predict.run(predict.PredictConfig(video_dir=str(folder), weights=str(tiny_weights),
                                              out=str(tmp_path / "s.csv"), details=str(detail), frames=8,
                                              progress=False, bystander_ratio=ratio, preset=preset,
                                              models=["efficientnet_lite0"]))
            tracks[preset, ratio] = rows(detail)[0]["tracks"]
    assert tracks == {("full", 0.0): "2", ("full", 0.5): "1", ("light", 0.0): "2", ("light", 0.5): "1"}


def _break_members(monkeypatch):
    from deepfake_kernel.detectors import FaceClassifier

    def broken(self, crops, batch_size=64):
        raise RuntimeError("bug in a member under development")

    monkeypatch.setattr(FaceClassifier, "predict_proba", broken)


def test_a_stage_exception_becomes_a_fallback_row_by_default(video_dir, tiny_weights, tmp_path, monkeypatch):
    _break_members(monkeypatch)
    out, details = tmp_path / "sub.csv", tmp_path / "d.csv"
    summary = predict.run(predict.PredictConfig(video_dir=str(video_dir), weights=str(tiny_weights), out=str(out),
                                                details=str(details), frames=3, detect_long_side=480,
                                                progress=False, models=["efficientnet_lite0"]))
    reasons = {r["filename"]: r["reason"] for r in rows(details)}
    assert reasons["one_face.mp4"] == reasons["two_faces.mp4"] == "error:RuntimeError"
    assert summary["fallbacks"]["error:RuntimeError"] == 2 and len(rows(out)) == 4


def test_strict_stops_at_the_first_stage_exception_with_its_cause(video_dir, tiny_weights, tmp_path, monkeypatch,
                                                                  capsys):
    _break_members(monkeypatch)
    out = tmp_path / "sub.csv"
    argv = [str(video_dir), "--weights", str(tiny_weights), "--out", str(out), "--frames", "3",
            "--detect-long-side", "480", "--no-progress", "--models", "efficientnet_lite0", "--strict"]
    with pytest.raises(runner.StrictStop, match="one_face.mp4") as stopped:
        predict.main(argv)
    assert isinstance(stopped.value.__cause__, RuntimeError)
    assert "bug in a member under development" in str(stopped.value.__cause__)
    # the rows before the failure (and fallbacks for the rest) are still on disk
    assert [r["filename"] for r in rows(out)] == ["corrupt.mp4", "no_face.mp4", "one_face.mp4", "two_faces.mp4"]
