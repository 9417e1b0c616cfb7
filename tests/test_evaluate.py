import csv
import json
import shutil

import numpy as np
import pytest

from deepfake_kernel import evaluate, metrics
from deepfake_kernel.evaluation import labelled
from deepfake_kernel.detectors.weights import read_manifest
from deepfake_kernel.pipeline import runner


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, training_videos, tiny_weights):
    tmp_path = tmp_path_factory.mktemp("evaluate")
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    config = labelled.EvaluateConfig(labels=str(training_videos[0]), weights=str(weights),
                                     out_dir=str(tmp_path / "report"), frames=4, bootstrap=200, folds=2,
                                     fit_calibration=True, fit_stacking=True, thumbnails=3, device="cpu")
    return tmp_path, labelled.evaluate(config)


def test_metrics_intervals_and_breakdown(evaluated):
    tmp_path, report = evaluated
    assert report["videos"] == 8 and report["fake"] == 4
    submitted = report["as_submitted"]
    low, high = submitted["log_loss_95ci"]
    assert low <= submitted["log_loss"] <= high
    assert sum(submitted["confusion"].values()) == 8
    assert set(report["members"]) == {"xception", "resnet50", "efficientnet_lite0"}
    assert report["breakdown"]["dataset"]["-"]["n"] == 8


def test_report_files(evaluated):
    tmp_path, report = evaluated
    out = tmp_path / "report"
    for name in ("report.md", "report.json", "per_video.csv", "roc.png", "reliability.png", "histogram.png",
                 "mistakes.png", "details.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "per_video.csv")))
    losses = [float(r["log_loss"]) for r in rows]
    assert losses == sorted(losses, reverse=True) and len(rows) == 8
    assert "![roc](roc.png)" in (out / "report.md").read_text()


def test_calibration_and_stacking_land_in_the_manifest(evaluated):
    tmp_path, report = evaluated
    manifest = read_manifest(tmp_path / "weights")
    assert manifest.calibration["temperature"] == pytest.approx(report["calibration"]["temperature"], rel=1e-3)
    assert manifest.clip == {"lo": report["calibration"]["clip"][0], "hi": report["calibration"]["clip"][1]}
    assert manifest.stacking["use"] == report["stacking"]["kept"]
    assert len(manifest.stacking["coef"]) == 3 + 3
    # one calibration per single member, used when a video runs with that member alone (the light preset)
    assert set(manifest.calibration_by_members) == {"xception", "resnet50", "efficientnet_lite0"}
    lite = manifest.calibration_by_members["efficientnet_lite0"]
    assert lite["temperature"] == report["calibration"]["by_members"]["efficientnet_lite0"]["temperature"]
    assert len(lite["clip"]) == 2


def test_a_single_member_run_uses_its_own_calibration(evaluated):
    from deepfake_kernel.pipeline.detector import Detector

    tmp_path, _ = evaluated
    detector = Detector.from_weights(tmp_path / "weights", device="cpu")
    manifest = detector.manifest
    lite = manifest.calibration_by_members["efficientnet_lite0"]
    alone = detector.clipper_for(["efficientnet_lite0"])
    assert (alone.temperature, alone.bias, [alone.lo, alone.hi]) == (lite["temperature"], lite["bias"], lite["clip"])
    everyone = detector.clipper_for(detector.member_names)
    assert (everyone.temperature, everyone.bias) == (manifest.calibration["temperature"], manifest.calibration["bias"])
    assert detector.clipper_for(["xception", "resnet50"]) is detector.clipper  # no fit for that pair: the main one


def test_existing_submission_can_be_scored(evaluated, training_videos, tmp_path):
    out = evaluated[0] / "report"
    config = labelled.EvaluateConfig(labels=str(training_videos[0]), submission=str(out / "submission.csv"),
                                     out_dir=str(tmp_path / "r2"), bootstrap=50, thumbnails=0)
    report = labelled.evaluate(config)
    assert report["as_submitted"]["log_loss"] == pytest.approx(evaluated[1]["as_submitted"]["log_loss"], abs=1e-4)
    assert json.loads((tmp_path / "r2" / "report.json").read_text())["videos"] == 8


def test_light_preset_is_measured_but_never_fitted(evaluated, training_videos, tmp_path):
    weights = evaluated[0] / "weights"
    config = labelled.EvaluateConfig(labels=str(training_videos[0]), weights=str(weights), out_dir=str(tmp_path / "l"),
                                     preset="light", bootstrap=50, thumbnails=0, device="cpu")
    report = labelled.evaluate(config)
    assert report["videos"] == 8 and set(report["members"]) == {"efficientnet_lite0"}  # the light member only
    with pytest.raises(ValueError, match="--preset full"):
        labelled.evaluate(labelled.EvaluateConfig(labels=str(training_videos[0]), weights=str(weights),
                                                  preset="light", fit_calibration=True))


def test_strict_evaluate_stops_at_a_stage_exception(training_videos, tiny_weights, tmp_path, monkeypatch):
    from deepfake_kernel.detectors import FaceClassifier

    def broken(self, crops, batch_size=64):
        raise RuntimeError("bug in a member under development")

    monkeypatch.setattr(FaceClassifier, "predict_proba", broken)
    argv = [str(training_videos[0]), "--weights", str(tiny_weights), "--out-dir", str(tmp_path / "r"),
            "--frames", "3", "--device", "cpu", "--strict"]
    with pytest.raises(runner.StrictStop) as stopped:
        evaluate.main(argv)
    assert "bug in a member under development" in str(stopped.value.__cause__)


def test_fit_calibration_keeps_an_out_of_family_calibration_unless_told(training_videos, tiny_weights, tmp_path):
    from deepfake_kernel.detectors.weights import write_manifest

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    manifest = read_manifest(weights)
    manifest.calibration = {"temperature": 50.0, "bias": 0.0, "fitted_on": "out-of-family predictions of runs/x"}
    write_manifest(manifest, weights)
    config = labelled.EvaluateConfig(labels=str(training_videos[0]), weights=str(weights), out_dir=str(tmp_path / "r"),
                                     fit_calibration=True, device="cpu")
    with pytest.raises(ValueError, match="--replace-out-of-family-calibration"):
        labelled.evaluate(config)
    assert not (tmp_path / "r").exists()  # refused before any video was scored
    labelled.check_calibration_replaceable(manifest.calibration, allowed=True)
    labelled.check_calibration_replaceable({"temperature": 0.3, "fitted_on": "val split"}, allowed=False)


def test_an_in_domain_refit_replaces_centring_and_judges_the_old_fit_as_predict_applied_it(tiny_weights, tmp_path):
    from deepfake_kernel.detectors.weights import write_manifest
    from deepfake_kernel.pipeline import ensemble

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    manifest = read_manifest(weights)
    manifest.calibration = {"temperature": 2.0, "bias": 0.0, "center": "test_set_median"}
    write_manifest(manifest, weights)
    rng = np.random.default_rng(0)
    labels = np.repeat([0.0, 1.0], 10)
    raw = ensemble.sigmoid(3.0 + labels + rng.normal(0, 0.5, 20))  # every video fakish: centring matters
    result = labelled.fit_calibration(raw, labels, np.arange(20) % 4, read_manifest(weights), str(weights))
    centred = ensemble.ProbabilityClipper(0.01, 0.99, 2.0, shift=ensemble.test_set_shift(raw))(raw)
    uncentred = ensemble.ProbabilityClipper(0.01, 0.99, 2.0)(raw)
    before = result["log_loss_before (manifest as it was)"]
    assert before == round(metrics.log_loss(labels, centred), 4) != round(metrics.log_loss(labels, uncentred), 4)
    assert "center" not in read_manifest(weights).calibration  # the new fit was made on uncentred scores


def test_an_in_domain_refit_keeps_the_temporal_cue_its_scores_were_made_with(tiny_weights, tmp_path):
    """The scores a refit is made on include the cue's term, so predict must go on adding it; the old fit is judged
    centred on the members' scores before the cue, as predict centres."""
    from deepfake_kernel.detectors.weights import write_manifest
    from deepfake_kernel.pipeline import ensemble
    from deepfake_kernel.pipeline.temporal import TemporalCue

    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    manifest = read_manifest(weights)
    cue = TemporalCue(2.0, -1.0, 8, ("efficientnet_lite0",)).entry()
    manifest.calibration = {"temperature": 2.0, "bias": 0.0, "center": "test_set_median", "temporal_cue": cue}
    write_manifest(manifest, weights)
    rng = np.random.default_rng(0)
    labels = np.repeat([0.0, 1.0], 10)
    network = ensemble.sigmoid(1.0 + labels + rng.normal(0, 0.5, 20))
    raw = ensemble.sigmoid(ensemble.logit(network) + 1.5)  # every video's cue pushed it up by 1.5
    result = labelled.fit_calibration(raw, labels, np.arange(20) % 4, read_manifest(weights), str(weights),
                                      network=network)
    on_members = ensemble.ProbabilityClipper(0.01, 0.99, 2.0, shift=ensemble.test_set_shift(network))(raw)
    on_raw = ensemble.ProbabilityClipper(0.01, 0.99, 2.0, shift=ensemble.test_set_shift(raw))(raw)
    before = result["log_loss_before (manifest as it was)"]
    assert before == round(metrics.log_loss(labels, on_members), 4) != round(metrics.log_loss(labels, on_raw), 4)
    stored = read_manifest(weights).calibration
    assert stored["temporal_cue"] == cue and "center" not in stored
