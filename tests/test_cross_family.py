import csv

import numpy as np
import pytest

from deepfake_kernel import cross_family, predict
from deepfake_kernel.evaluation import calibration
from deepfake_kernel.evaluation.cross_family import add_learned_cue, read_predictions, video_norm_of


@pytest.fixture(scope="module")
def family_csv(training_videos):
    """The 8 training clips as two families of two groups each."""
    csv_path, root = training_videos
    rows = list(csv.DictReader(open(csv_path)))
    out = root / "families.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "group", "family"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "family": "alpha" if row["group"] in ("g0", "g1") else "beta"})
    return out


@pytest.fixture(scope="module")
def crossed(family_csv, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xfam")
    argv = ["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(tmp / "out"), "--preset", "tiny",
            "--members", "efficientnet_lite0", "--cache-dir", str(tmp / "cache"), "--cache-frames", "4",
            "--cache-size", "48", "--val-fraction", "0.5", "--fake-source", "sbi+real", "--no-imagenet",
            "--aug-face-feature-mask", "0", "--no-progress", "--bootstrap", "50", "--fit-calibration",
            "--device", "cpu",
            # these 2-epoch from-scratch folds can end at P(FAKE) ≈ 1 for every crop, where no rescoring (per-video
            # normalisation below) moves a score visibly; the monitor's epoch does not saturate
            "--epoch-choice", "monitor"]
    assert cross_family.main(argv) == 0
    return tmp


def test_every_video_is_scored_by_the_fold_that_never_saw_its_family(crossed):
    rows = list(csv.DictReader(open(crossed / "out" / "predictions.csv")))
    assert len(rows) == 8
    assert {(r["family"], r["fold"]) for r in rows} == {("alpha", "alpha"), ("beta", "beta")}
    split = (crossed / "out" / "alpha" / "work" / "split.json").read_text()
    assert '"held_out_families": [\n    "alpha"' in split and '"families": [\n    "beta"' in split
    table = (crossed / "out" / "table.md").read_text()
    assert "| alpha | alpha | 4 (2/2) |" in table and "**mean**" in table


def test_cached_scoring_is_what_predict_gives(crossed, family_csv, tmp_path):
    """The fold's scores from the shared crops equal a real predict run on those videos with that fold's weights."""
    rows = {r["path"]: r for r in csv.DictReader(open(crossed / "out" / "predictions.csv")) if r["fold"] == "beta"}
    folder = family_csv.parent
    template = tmp_path / "template.csv"
    names = [p.split("/")[-1] for p in rows]
    template.write_text("filename,label\n" + "".join(f"{n},0.5\n" for n in names))
    details = tmp_path / "details.csv"
    predict.run(predict.PredictConfig(video_dir=str(folder), template=str(template), out=str(tmp_path / "s.csv"),
                                      details=str(details), weights=str(crossed / "out" / "beta" / "weights"),
                                      frames=4, device="cpu", progress=False, prefetch=False))
    predicted = {r["filename"]: float(r["raw_score"]) for r in csv.DictReader(open(details))}
    for path, row in rows.items():
        assert float(row["raw"]) == pytest.approx(predicted[path.split("/")[-1]], abs=1e-4)


def test_out_of_family_calibration_never_beats_the_constant_in_sample(crossed):
    import json

    report = json.loads((crossed / "out" / "report.json").read_text())
    fitted = report["calibration"]
    # the flattest fit allowed keeps the ranking at a small cost over the constant: the tiny models' raw scores sit
    # near 0.9999 (logit ~10, varying with the machine's arithmetic), which slope 0.02 still moves by ~0.2 in logit
    assert fitted["fit"]["worst_family_log_loss"] <= calibration.CONSTANT_LOG_LOSS + 0.02
    # and it is the minimax point of the grid: no other slope and clip does better on the worst family
    rows = read_predictions(crossed / "out" / "predictions.csv")
    raw = np.array([r["raw"] for r in rows])
    labels = np.array([r["label"] for r in rows], float)
    families = np.array([r["family"] for r in rows])
    worst = min(max(calibration.family_losses(raw, labels, families, s, 0.0, c).values())
                for s in calibration.SLOPES for c in calibration.CLIPS)
    assert fitted["fit"]["worst_family_log_loss"] == pytest.approx(worst, abs=1e-6)
    assert set(fitted["leave_one_fold_out"]["families"]) == {"alpha", "beta"}


def test_unknown_family_fails_early(family_csv, tmp_path, capsys):
    code = cross_family.main(["--videos", str(family_csv), "--folds", "gamma", "--out", str(tmp_path / "o")])
    assert code == 2 and "gamma" in capsys.readouterr().err


def test_resume_reuses_finished_folds_and_from_predictions_rebuilds_the_table(crossed, family_csv, monkeypatch):
    from deepfake_kernel.training import run as training

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(training, "run", no_training)
    before = (crossed / "out" / "predictions.csv").read_text()
    argv = ["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(crossed / "out"), "--preset", "tiny",
            "--members", "efficientnet_lite0", "--cache-dir", str(crossed / "cache"), "--cache-frames", "4",
            "--cache-size", "48", "--no-progress", "--bootstrap", "50", "--device", "cpu", "--resume"]
    assert cross_family.main(argv) == 0
    assert (crossed / "out" / "predictions.csv").read_text() == before
    assert cross_family.main(["--out", str(crossed / "out"), "--from-predictions", "--fit-calibration"]) == 0
    assert "calibration" in (crossed / "out" / "report.json").read_text()


def test_per_video_normalisation_is_scored_fitted_and_shipped_together(crossed, family_csv, tmp_path):
    """Fold weights rescored with --video-norm-blocks; the fit stored with that setting; predict then gives the
    fold's scores again from the shipped manifest alone."""
    import json
    import shutil

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    shipped = tmp_path / "shipped"
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)  # stands in for the all-family model
    base = ["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(out), "--preset", "tiny",
            "--members", "efficientnet_lite0", "--cache-dir", str(crossed / "cache"), "--cache-frames", "4",
            "--cache-size", "48", "--no-progress", "--bootstrap", "50", "--device", "cpu"]
    assert cross_family.main(base + ["--resume", "--video-norm-blocks", "1"]) == 2  # reused folds scored without
    assert cross_family.main(base + ["--score-only", "--video-norm-blocks", "1", "--fit-calibration",
                                     "--calibrate-weights", str(shipped)]) == 0
    before = {r["path"]: float(r["raw"]) for r in csv.DictReader(open(crossed / "out" / "predictions.csv"))}
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert {r["video_norm"] for r in rows} == {"efficientnet_lite0=1"}
    assert max(abs(float(r["raw"]) - before[r["path"]]) for r in rows) > 1e-4
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["members"][0]["video_norm_blocks"] == 1
    beta = {r["path"].split("/")[-1]: float(r["raw"]) for r in rows if r["fold"] == "beta"}
    template = tmp_path / "template.csv"
    template.write_text("filename,label\n" + "".join(f"{n},0.5\n" for n in beta))
    details = tmp_path / "details.csv"
    predict.run(predict.PredictConfig(video_dir=str(family_csv.parent), template=str(template),
                                      out=str(tmp_path / "s.csv"), details=str(details), weights=str(shipped),
                                      frames=4, device="cpu", progress=False, prefetch=False))
    for r in csv.DictReader(open(details)):
        assert float(r["raw_score"]) == pytest.approx(beta[r["filename"]], abs=1e-4)
    rows[0]["video_norm"] = "efficientnet_lite0=2"
    with pytest.raises(ValueError, match="different per-video normalisation"):
        video_norm_of(rows)


def test_test_set_batchnorm_statistics_rescore_the_folds(crossed, family_csv, tmp_path):
    """--test-set-norm-blocks rescores each fold with BatchNorm statistics taken from its held-out family's crops;
    a reused fold scored otherwise is refused."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    base = ["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(out), "--preset", "tiny",
            "--members", "efficientnet_lite0", "--cache-dir", str(crossed / "cache"), "--cache-frames", "4",
            "--cache-size", "48", "--no-progress", "--bootstrap", "50", "--device", "cpu"]
    assert cross_family.main(base + ["--resume", "--test-set-norm-blocks", "2"]) == 2
    assert cross_family.main(base + ["--score-only", "--test-set-norm-blocks", "2"]) == 0
    before = {r["path"]: float(r["raw"]) for r in csv.DictReader(open(crossed / "out" / "predictions.csv"))}
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert {r["set_norm"] for r in rows} == {"2"} and len(rows) == len(before)
    assert max(abs(float(r["raw"]) - before[r["path"]]) for r in rows) > 1e-4
    assert cross_family.main(base + ["--resume", "--test-set-norm-blocks", "2"]) == 0  # same setting: reused
    assert cross_family.main(base + ["--resume"]) == 2
    shipped = tmp_path / "shipped"  # the fit is stored with the setting it was made with, which predict then uses
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)
    assert cross_family.main(["--out", str(out), "--from-predictions", "--fit-calibration",
                              "--calibrate-weights", str(shipped)]) == 0
    from deepfake_kernel.detectors.weights import read_manifest
    assert read_manifest(shipped).member("efficientnet_lite0").test_set_norm_blocks == 2


def test_test_set_centring_is_fitted_judged_and_shipped(crossed, tmp_path, capsys):
    """--test-set-center fits the calibration on logits centred per test set (a fold's videos) and stores that
    with the fit, which turns centring on in predict; without --fit-calibration it is refused."""
    import json
    import shutil

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    assert cross_family.main(["--out", str(out), "--from-predictions", "--test-set-center"]) == 2
    assert "--fit-calibration" in capsys.readouterr().err
    shipped = tmp_path / "shipped"
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)
    assert cross_family.main(["--out", str(out), "--from-predictions", "--fit-calibration", "--test-set-center",
                              "--calibrate-weights", str(shipped)]) == 0
    report = json.loads((out / "report.json").read_text())["calibration"]
    assert report["fit"]["center"] == "test_set_median"
    assert set(report["leave_one_fold_out"]["families"]) == {"alpha", "beta"}
    from deepfake_kernel.detectors.weights import read_manifest
    from deepfake_kernel.pipeline.detector import Detector
    assert read_manifest(shipped).calibration["center"] == "test_set_median"
    assert Detector.from_weights(shipped, device="cpu").test_set_center
    assert not Detector.from_weights(shipped, device="cpu", test_set_center=False).test_set_center


def test_a_calibration_target_is_fitted_judged_and_shipped(crossed, tmp_path):
    """--calibration-target: the fit and each fold's fit on the others are the least confident that meet it; the
    manifest records the rule and the target."""
    import json
    import shutil

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    shipped = tmp_path / "shipped"
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)
    assert cross_family.main(["--out", str(out), "--from-predictions", "--fit-calibration", "--calibration-target",
                              "0.69", "--calibrate-weights", str(shipped)]) == 0
    report = json.loads((out / "report.json").read_text())["calibration"]
    assert report["fit"]["target"] == 0.69 and "least confident" in report["fit"]["rule"]
    assert all(fit["target"] == 0.69 for fit in report["fits_without_each_fold"].values())
    if report["fit"]["target_met"]:
        assert report["fit"]["worst_family_log_loss"] <= 0.69
    from deepfake_kernel.detectors.weights import read_manifest
    stored = read_manifest(shipped).calibration
    assert stored["target"] == 0.69 and stored["rule"] == report["fit"]["rule"]
    assert stored["temperature"] == report["fit"]["temperature"]


def test_a_member_sets_own_out_of_family_fit_is_stored_beside_the_main_one(crossed, tmp_path, capsys):
    """--calibrate-member-set stores the fit as the calibration of exactly the scored members (the light preset's
    member scoring alone), leaves the main fit alone, survives a later main fit, and is refused where the manifest
    would score those members otherwise than the folds were scored."""
    import json
    import shutil

    from deepfake_kernel.detectors.weights import read_manifest, write_manifest
    from deepfake_kernel.pipeline.detector import Detector

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    shipped = tmp_path / "shipped"
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)
    base = ["--out", str(out), "--from-predictions", "--fit-calibration", "--test-set-center"]
    assert cross_family.main(base + ["--calibrate-member-set"]) == 2
    assert "--calibrate-weights" in capsys.readouterr().err
    assert cross_family.main(base + ["--calibrate-weights", str(shipped)]) == 0
    main_fit = read_manifest(shipped).calibration
    main_fit["temperature"] = 7.0  # stands in for the pair's fit, which the member set's must not touch
    manifest = read_manifest(shipped)
    manifest.calibration = main_fit
    write_manifest(manifest, shipped)
    assert cross_family.main(base + ["--calibrate-weights", str(shipped), "--calibrate-member-set"]) == 0
    manifest = read_manifest(shipped)
    fit = json.loads((out / "report.json").read_text())["calibration"]["fit"]
    entry = manifest.calibration_by_members["efficientnet_lite0"]
    assert manifest.calibration["temperature"] == 7.0
    assert entry["temperature"] == fit["temperature"] and entry["clip"] == fit["clip"]
    assert entry["center"] == "test_set_median" and entry["fitted_on"].startswith("out-of-family")
    assert "efficientnet_lite0" in Detector.from_weights(shipped, device="cpu").member_set_clippers
    assert cross_family.main(base + ["--calibrate-weights", str(shipped)]) == 0  # a main fit keeps it
    assert "efficientnet_lite0" in read_manifest(shipped).calibration_by_members
    # refused: fitted uncentred while the main fit centres; the manifest scoring the member with other statistics
    assert cross_family.main(["--out", str(out), "--from-predictions", "--fit-calibration", "--calibrate-weights",
                              str(shipped), "--calibrate-member-set"]) == 2
    assert "centring" in capsys.readouterr().err
    manifest.member("efficientnet_lite0").test_set_norm_blocks = 4
    write_manifest(manifest, shipped)
    assert cross_family.main(base + ["--calibrate-weights", str(shipped), "--calibrate-member-set"]) == 2
    assert "test-set BatchNorm" in capsys.readouterr().err
    # a main fit that changes how the member is scored drops the member set's fit made the other way
    assert cross_family.main(base + ["--calibrate-weights", str(shipped)]) == 0
    assert "efficientnet_lite0" not in read_manifest(shipped).calibration_by_members


def test_seeds_run_every_fold_per_seed_and_report_the_spread(crossed, family_csv, tmp_path):
    import json

    out = tmp_path / "seeds"
    argv = ["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(out), "--preset", "tiny",
            "--members", "efficientnet_lite0", "--cache-dir", str(crossed / "cache"), "--cache-frames", "4",
            "--cache-size", "48", "--val-fraction", "0.5", "--fake-source", "sbi+real", "--no-imagenet",
            "--aug-face-feature-mask", "0", "--no-progress", "--bootstrap", "50", "--fit-calibration",
            "--device", "cpu", "--epoch-choice", "monitor", "--seeds", "0,1"]  # the fixture's options
    assert cross_family.main(argv) == 0
    # seed 0 is the single run made with the same options: the same predictions, to the digit
    assert (out / "seed_0" / "predictions.csv").read_text() == (crossed / "out" / "predictions.csv").read_text()
    seed1 = json.loads((out / "seed_1" / "report.json").read_text())["table"]
    assert json.loads((out / "seed_1" / "alpha" / "work" / "split.json").read_text())["seed"] == 1
    report = json.loads((out / "report.json").read_text())
    alpha = report["over_seeds"]["families"]["alpha"]
    single = json.loads((crossed / "out" / "report.json").read_text())["table"]["families"]["alpha"]["auc"]
    assert alpha["auc"] == {"0": single, "1": seed1["families"]["alpha"]["auc"]}
    assert alpha["auc_over_seeds"]["mean"] == pytest.approx((single + seed1["families"]["alpha"]["auc"]) / 2, abs=1e-4)
    assert set(report["calibration"]["leave_one_fold_out"]["families"]) == {"alpha", "beta"}
    assert "AUC mean ± sd" in (out / "table.md").read_text()
    assert cross_family.main(["--out", str(out), "--from-predictions", "--seeds", "0,1"]) == 2


def test_init_from_starts_each_fold_from_the_same_fold_of_another_run(crossed, family_csv, tmp_path, monkeypatch):
    import torch

    from deepfake_kernel.detectors.factory import create_model
    from deepfake_kernel.detectors.pretrained import load_local_checkpoint
    from deepfake_kernel.training import run as training

    started = {}

    def record(config, augment=None, command=None):
        started[config.hold_out_family[0]] = list(config.init)
        raise ValueError("recorded")  # stop before training: only the fold's start is under test

    monkeypatch.setattr(training, "run", record)
    base = ["--videos", str(family_csv), "--folds", "alpha,beta", "--preset", "tiny", "--members",
            "efficientnet_lite0", "--cache-dir", str(crossed / "cache"), "--cache-frames", "4", "--cache-size", "48",
            "--no-progress", "--device", "cpu"]
    assert cross_family.main(base + ["--out", str(tmp_path / "a"), "--init-from", str(crossed / "out")]) == 2
    start = crossed / "out" / "alpha" / "work" / "efficientnet_lite0" / "last.pt"
    assert started == {"alpha": [f"efficientnet_lite0={start}"]}  # the first fold, from the fold that held alpha out
    # that checkpoint is a whole start: every tensor of the network loads from it
    network = create_model("efficientnet_lite0", input_size=48).network
    assert len(load_local_checkpoint(network, start)) == len(network.state_dict())
    saved = torch.load(start, map_location="cpu", weights_only=True)["model"]
    assert torch.equal(network.state_dict()["conv_stem.weight"], saved["conv_stem.weight"])

    # a run without that fold, or with that member also given --init, fails before anything trains
    started.clear()
    assert cross_family.main(base + ["--out", str(tmp_path / "b"), "--init-from", str(tmp_path / "none")]) == 2
    assert cross_family.main(base + ["--out", str(tmp_path / "c"), "--init-from", str(crossed / "out"),
                                     "--init", f"efficientnet_lite0={start}"]) == 2
    assert cross_family.main(base + ["--out", str(tmp_path / "d"), "--init-from", str(crossed / "out"),
                                     "--seeds", "0,1"]) == 2  # with --seeds it reads OUT/seed_S: none there
    assert started == {}


def test_the_temporal_cue_is_scored_fitted_and_shipped_together(crossed, family_csv, tmp_path):
    """--temporal-cue-weight reads each held-out video's frame pairs again and adds predict's cue to its logit;
    the fit stores the cue with the calibration, for the members that were scored with it."""
    import shutil

    from deepfake_kernel.detectors.weights import read_manifest
    from deepfake_kernel.pipeline.detector import Detector
    from deepfake_kernel.pipeline.ensemble import logit

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    base = ["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(out), "--preset", "tiny",
            "--members", "efficientnet_lite0", "--cache-dir", str(crossed / "cache"), "--cache-frames", "4",
            "--cache-size", "48", "--no-progress", "--bootstrap", "50", "--device", "cpu"]
    assert cross_family.main(base + ["--score-only", "--temporal-cue-weight", "1.5", "--temporal-cue-reference",
                                     "-1", "--temporal-cue-positions", "4"]) == 0
    rows = read_predictions(out / "predictions.csv")
    assert len(rows) == 8 and all(r["temporal_cue"] != "" for r in rows)
    assert len(list((crossed / "cache").rglob("*.cue_p4_m0.3_s0.85.json"))) == 8  # kept for every later fold and seed
    assert len({round(float(r["temporal_cue"]), 4) for r in rows}) > 4  # a measurement per video, not a constant
    for r in rows:
        assert logit(r["raw"]) - logit(float(r["network_raw"])) == pytest.approx(
            1.5 * (float(r["temporal_cue"]) + 1), abs=1e-3)
    shipped = tmp_path / "shipped"
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)
    assert cross_family.main(["--out", str(out), "--from-predictions", "--fit-calibration",
                              "--calibrate-weights", str(shipped)]) == 0
    entry = read_manifest(shipped).calibration["temporal_cue"]
    assert entry["weight"] == 1.5 and entry["positions"] == 4 and entry["members"] == ["efficientnet_lite0"]
    cue = Detector.from_weights(shipped, device="cpu").temporal_cue
    assert cue.weight == 1.5 and cue.applies_to(["efficientnet_lite0"])
    # a member set's own fit keeps the cue it was scored with, and predict takes that set's cue from it
    assert cross_family.main(["--out", str(out), "--from-predictions", "--fit-calibration", "--calibrate-weights",
                              str(shipped), "--calibrate-member-set"]) == 0
    own = read_manifest(shipped).calibration_by_members["efficientnet_lite0"]["temporal_cue"]
    assert own["weight"] == 1.5 and own["positions"] == 4 and own["members"] == ["efficientnet_lite0"]
    detector = Detector.from_weights(shipped, device="cpu")
    lite = ["efficientnet_lite0"]
    assert detector.cue_for(lite).positions == 4 and detector.reading(lite, 16) == (16, 4)
    assert Detector.from_weights(shipped, device="cpu", temporal_cue=False).reading(lite, 16) == (16, 0)


def test_the_learned_cue_of_the_folds_is_added_fitted_and_shipped_with_its_networks(crossed, family_csv, tmp_path):
    """--learned-cue-scores adds train_temporal_cue's held-out scores to the rows before the table and the fit, and
    --calibrate-weights stores the cue with the networks named, which predict then loads."""
    import json
    import shutil

    import torch

    from deepfake_kernel.detectors import create_model
    from deepfake_kernel.detectors.weights import export_member, read_manifest
    from deepfake_kernel.pipeline.detector import Detector
    from deepfake_kernel.pipeline.ensemble import logit

    out = tmp_path / "out"
    shutil.copytree(crossed / "out", out)
    assert cross_family.main(["--videos", str(family_csv), "--folds", "alpha,beta", "--out", str(out), "--preset",
                              "tiny", "--members", "efficientnet_lite0", "--cache-dir", str(crossed / "cache"),
                              "--cache-frames", "4", "--cache-size", "48", "--no-progress", "--bootstrap", "50",
                              "--device", "cpu", "--score-only", "--temporal-cue-weight", "1.5",
                              "--temporal-cue-positions", "4"]) == 0
    before = {r["path"]: r for r in read_predictions(out / "predictions.csv")}
    scores = tmp_path / "learned.csv"  # as train_temporal_cue --scores writes them: one fold's, one seed's
    with open(scores, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "family", "label", "learned_cue"])
        writer.writeheader()
        for k, (path, row) in enumerate(sorted(before.items())):
            writer.writerow({"path": path, "family": row["family"], "label": row["label"], "learned_cue": k - 3.5})
    shipped = tmp_path / "shipped"
    shutil.copytree(crossed / "out" / "beta" / "weights", shipped)
    refit = ["--out", str(out), "--from-predictions", "--fit-calibration", "--learned-cue-scores", str(scores),
             "--learned-cue-weight", "0.5", "--calibrate-weights", str(shipped)]
    assert cross_family.main(refit) == 2  # which networks the fit is for: not said
    assert cross_family.main(refit + ["--learned-cue-networks", "tcue"]) == 2  # not in the manifest yet
    torch.manual_seed(0)
    export_member(create_model("temporal_residual_lite0"), shipped, name="tcue", ensemble_weight=0.0, reads="residual")
    assert cross_family.main(refit + ["--learned-cue-networks", "tcue"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["learned_cue"]["reference"] == 0.0 and report["learned_cue"]["videos"] == 8  # the median of -3.5…3.5
    assert report["calibration"]["fit"]["temperature"] > 0
    entry = read_manifest(shipped).calibration["temporal_cue"]
    assert entry["networks"] == ["tcue"] and entry["network_weight"] == 0.5 and entry["network_reference"] == 0.0
    assert entry["weight"] == 1.5 and read_manifest(shipped).member("tcue").ensemble_weight == 0.0
    detector = Detector.from_weights(shipped, device="cpu")
    assert list(detector.cue_networks) == ["tcue"] and list(detector.members) == ["efficientnet_lite0"]
    # each row moves by the learned term alone; the predictions file keeps the folds' own scores
    moved, reference = add_learned_cue(list(before.values()), [str(scores)], 0.5)
    for row in moved:
        assert logit(row["raw"]) - logit(before[row["path"]]["raw"]) == pytest.approx(
            0.5 * (row["learned_cue"] - reference), abs=1e-6)
    assert {r["path"]: r["raw"] for r in read_predictions(out / "predictions.csv")} == {
        path: row["raw"] for path, row in before.items()}


def test_an_unknown_calibration_rule_or_one_without_a_fit_fails_early(tmp_path, capsys):
    base = ["--out", str(tmp_path), "--from-predictions"]
    assert cross_family.main(base + ["--calibration-minimax-over", "fold"]) == 2
    assert "add --fit-calibration" in capsys.readouterr().err
    assert cross_family.main(base + ["--fit-calibration", "--calibration-minimax-over", "seed"]) == 2
    assert "choose one of family, fold" in capsys.readouterr().err
    assert cross_family.main(base + ["--calibration-target", "0.65"]) == 2
    assert "add --fit-calibration" in capsys.readouterr().err
    assert cross_family.main(base + ["--fit-calibration", "--calibration-target", "0.8"]) == 2
    assert "between 0 and the constant's 0.693" in capsys.readouterr().err
