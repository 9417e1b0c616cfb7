import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest

from deepfake_kernel import predict
from deepfake_kernel.pipeline.adapt import evenly_spaced


def raw_scores(path):
    with open(path, newline="") as handle:
        return {r["filename"]: (r["raw_score"], r["reason"]) for r in csv.DictReader(handle)}


def test_evenly_spaced_keeps_the_ends_and_everything_when_short():
    assert evenly_spaced(list(range(10)), 4) == [0, 3, 6, 9]
    assert evenly_spaced([1, 2], 8) == [1, 2]
    picked = evenly_spaced(np.arange(33), 8)
    assert isinstance(picked, np.ndarray) and len(set(picked.tolist())) == 8 and picked[-1] == 32


def _run(video_dir, weights, tmp_path, tag, *extra):
    out, details = tmp_path / f"{tag}.csv", tmp_path / f"{tag}_details.csv"
    summary = predict.run(predict.PredictConfig(
        video_dir=str(video_dir), weights=str(weights), out=str(out), details=str(details), frames=4,
        detect_long_side=480, progress=False, models=["efficientnet_lite0"], prefetch=False, **dict(extra)))
    return summary, raw_scores(details)


def test_predict_rescores_with_the_test_sets_batchnorm_statistics(video_dir, tiny_weights, tmp_path):
    plain_summary, plain = _run(video_dir, tiny_weights, tmp_path, "plain")
    assert "test_set_norm" not in plain_summary
    summary, adapted = _run(video_dir, tiny_weights, tmp_path, "adapted", ("test_set_norm_blocks", 2),
                            ("adapt_min_videos", 2))
    info = summary["test_set_norm"]
    # the corrupt file fails and the noise clip has no face: two videos give faces, none crashes the run
    assert info["videos_tried"] == 4 and info["videos_used"] == 2 and info["failed"] == 1
    assert 2 <= info["faces"] <= 16 and info["members"]["efficientnet_lite0"] > 1 and "reason" not in info
    assert set(adapted) == set(plain) and adapted["corrupt.mp4"] == plain["corrupt.mp4"]
    assert abs(float(adapted["one_face.mp4"][0]) - float(plain["one_face.mp4"][0])) > 1e-4
    # too few usable videos: the training statistics stay, and so do the scores
    summary, kept = _run(video_dir, tiny_weights, tmp_path, "kept", ("test_set_norm_blocks", 2),
                         ("adapt_min_videos", 3))
    assert "fewer than 3" in summary["test_set_norm"]["reason"] and not summary["test_set_norm"]["members"]
    assert kept == plain
    summary, _ = _run(video_dir, tiny_weights, tmp_path, "small", ("test_set_norm_blocks", 2),
                      ("adapt_min_videos", 5))
    assert summary["test_set_norm"]["videos_tried"] == 0  # a run smaller than the minimum reads nothing extra
    assert "only 4 videos (fewer than 5)" in summary["test_set_norm"]["reason"]


def test_the_manifest_turns_it_on_and_the_command_line_off(video_dir, tiny_weights, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    manifest = json.loads((weights / "manifest.json").read_text())
    for entry in manifest["members"]:
        if entry["name"] == "efficientnet_lite0":
            entry["test_set_norm_blocks"] = 1
    (weights / "manifest.json").write_text(json.dumps(manifest))
    summary, _ = _run(video_dir, weights, tmp_path, "manifest", ("adapt_min_videos", 2))
    assert summary["test_set_norm"]["members"] == {"efficientnet_lite0": 3}  # stem + block 0: bn1 and 2 layers
    summary, _ = _run(video_dir, weights, tmp_path, "off", ("test_set_norm_blocks", -1))
    assert "test_set_norm" not in summary


def test_bad_settings_fail_before_any_video(video_dir, tiny_weights, tmp_path, capsys):
    out = tmp_path / "s.csv"
    base = [str(video_dir), "--weights", str(tiny_weights), "--out", str(out), "--no-progress"]
    assert predict.main(base + ["--test-set-norm-blocks", "-3"]) == 2
    assert predict.main(base + ["--adapt-videos", "0"]) == 2
    assert predict.main(base + ["--test-set-norm-blocks", "2", "--models", "resnet50"]) == 2
    assert "member resnet50" in capsys.readouterr().err and not out.exists()
    assert predict.main(base + ["--test-set-norm-blocks", "1", "--adapt-min-videos", "2", "--frames", "3",
                                "--models", "efficientnet_lite0", "--detect-long-side", "480"]) == 0
    assert "test-set BatchNorm statistics: " in capsys.readouterr().out and out.is_file()


def test_predict_centres_the_scores_on_the_runs_median_logit(video_dir, tiny_weights, tmp_path):
    import math

    from deepfake_kernel.detectors.weights import read_manifest
    from deepfake_kernel.pipeline.ensemble import ProbabilityClipper

    plain_summary, plain = _run(video_dir, tiny_weights, tmp_path, "plain")
    assert "test_set_center" not in plain_summary
    summary, centred = _run(video_dir, tiny_weights, tmp_path, "centred", ("test_set_center", True),
                            ("adapt_min_videos", 2))
    assert summary["test_set_center"]["videos"] == 2  # the corrupt file and the faceless clip take no part
    labels = {r["filename"]: float(r["label"]) for r in csv.DictReader(open(tmp_path / "centred.csv"))}
    assert labels["corrupt.mp4"] == 0.5 and labels["no_face.mp4"] == 0.5
    raws = {n: float(centred[n][0]) for n in ("one_face.mp4", "two_faces.mp4")}
    assert raws == {n: float(plain[n][0]) for n in raws}  # centring changes the label, not the raw score
    median = sum(math.log(r / (1 - r)) for r in raws.values()) / 2
    assert summary["test_set_center"]["median_logit"] == round(median, 4)
    manifest = read_manifest(tiny_weights)
    clipper = ProbabilityClipper.from_manifest(manifest.clip, manifest.calibration)
    for name, raw in raws.items():
        expected = ProbabilityClipper(clipper.lo, clipper.hi, clipper.temperature, clipper.bias, shift=median)(raw)
        assert abs(labels[name] - expected) < 1e-5  # the details round the raw score to 6 digits
        assert abs(labels[name] - clipper(raw)) > 1e-3
    submitted = {r["filename"]: float(r["label"]) for r in csv.DictReader(open(tmp_path / "centred_details.csv"))}
    assert submitted == labels  # the details say what the submission says
    # under the minimum, nothing is centred
    summary, _ = _run(video_dir, tiny_weights, tmp_path, "few", ("test_set_center", True), ("adapt_min_videos", 3))
    assert "fewer than 3" in summary["test_set_center"]["reason"]
    few = {r["filename"]: float(r["label"]) for r in csv.DictReader(open(tmp_path / "few.csv"))}
    assert few == {r["filename"]: float(r["label"]) for r in csv.DictReader(open(tmp_path / "plain.csv"))}


def test_the_manifests_calibration_turns_centring_on(video_dir, tiny_weights, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    manifest = json.loads((weights / "manifest.json").read_text())
    manifest["calibration"]["center"] = "test_set_median"
    (weights / "manifest.json").write_text(json.dumps(manifest))
    summary, _ = _run(video_dir, weights, tmp_path, "m", ("adapt_min_videos", 2))
    assert summary["test_set_center"]["videos"] == 2
    summary, _ = _run(video_dir, weights, tmp_path, "off", ("test_set_center", False), ("adapt_min_videos", 2))
    assert "test_set_center" not in summary


def test_videos_scored_by_another_member_set_are_centred_on_their_own_median():
    """A run the budget moved to the light preset mid-way: each member set's videos are centred on their own
    median logit once that set holds the minimum, else on the median of all, and through their own clipper."""
    from deepfake_kernel.pipeline.adapt import centre_scores
    from deepfake_kernel.pipeline.detector import VideoPrediction
    from deepfake_kernel.pipeline.ensemble import ProbabilityClipper, logit, sigmoid

    class Clippers:
        pair = ProbabilityClipper(0.01, 0.99, 2.0, 0.0)
        alone = ProbabilityClipper(0.1, 0.9, 4.0, 0.0)

        def clipper_for(self, models):
            return self.alone if list(models) == ["a"] else self.pair

    def scored(raws, models):
        return {f"{'+'.join(models)}{i}.mp4": VideoPrediction(path="x", score=0.5, raw_score=r, models=models)
                for i, r in enumerate(raws)}

    pair = scored([0.8, 0.85, 0.9, 0.95], ("a", "b"))
    alone = scored([0.2, 0.3, 0.4], ("a",))
    scores, summary = centre_scores(Clippers(), {**pair, **alone}, min_videos=3)
    assert summary["median_logit_by_members"] == {"a+b": round(float(np.median(logit([0.8, 0.85, 0.9, 0.95]))), 4),
                                                  "a": round(float(logit(0.3)), 4)}
    assert scores["a1.mp4"] == 0.5  # its own set's median video
    assert scores["a0.mp4"] == float(np.clip(sigmoid((logit(0.2) - logit(0.3)) / 4.0), 0.1, 0.9))
    assert abs(scores["a+b0.mp4"] - scores["a+b3.mp4"]) > 0.05 and min(scores.values()) >= 0.01
    # a set under the minimum takes the median of all
    scores, summary = centre_scores(Clippers(), {**pair, **alone}, min_videos=4)
    everything = float(np.median(logit([0.8, 0.85, 0.9, 0.95, 0.2, 0.3, 0.4])))
    assert summary["median_logit_by_members"]["a"] == round(everything, 4)
    assert scores["a1.mp4"] == float(np.clip(sigmoid((logit(0.3) - everything) / 4.0), 0.1, 0.9))


def test_the_temporal_cue_rides_on_top_of_the_centred_member_logits():
    """The median is taken over the members' scores before the cue: a test set whose cue reads high everywhere (a
    nearly one-class set of fakes) keeps that push instead of having it centred away."""
    from deepfake_kernel.pipeline.adapt import centre_scores
    from deepfake_kernel.pipeline.detector import VideoPrediction
    from deepfake_kernel.pipeline.ensemble import ProbabilityClipper, logit, sigmoid

    class Clippers:
        def clipper_for(self, models):
            return ProbabilityClipper(0.01, 0.99, 2.0, 0.0)

    network = [0.6, 0.7, 0.8, 0.9]
    with_cue = {f"v{i}.mp4": VideoPrediction(path="x", score=0.5, raw_score=float(sigmoid(logit(n) + 1.0)),
                                             models=("a",), temporal_cue=0.5, network_score=n)
                for i, n in enumerate(network)}
    scores, summary = centre_scores(Clippers(), with_cue, min_videos=3)
    median = float(np.median(logit(network)))
    assert summary["median_logit"] == round(median, 4)
    for name, p in with_cue.items():
        assert scores[name] == pytest.approx(float(sigmoid((logit(p.network_score) - median + 1.0) / 2.0)))
    assert np.median(list(scores.values())) > 0.6  # the cue's +1 survives centring
    # without a cue the same members' scores centre on 0.5
    plain = {k: dataclasses.replace(p, raw_score=p.network_score, network_score=None, temporal_cue=None)
             for k, p in with_cue.items()}
    assert np.median(list(centre_scores(Clippers(), plain, min_videos=3)[0].values())) == pytest.approx(0.5)
