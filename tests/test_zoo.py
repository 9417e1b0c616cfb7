"""The reference studies' detectors (deepfake_kernel.detectors.zoo): each builds, has its stated size, runs, trains one step
and survives export/load; sequence members keep the per-crop contract; train picks their trainers and recipes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepfake_kernel import train
from deepfake_kernel.detectors import SequenceClassifier, create_model, get_spec, list_detectors, zoo
from deepfake_kernel.detectors.classifier import sequence_windows
from deepfake_kernel.detectors.weights import export_member, load_member
from deepfake_kernel.training import recipes, sequence, trainers

SIZE = 32  # tiny inputs keep the whole file fast on two loaded cores
PER_FACE = ["meso4", "mesoinception4", "compact_cnn", "efficientnet_mlp"]
LINEAR = ["logreg", "linear_svm"]
SEQUENCE = ["temporal_lstm", "temporal_mlp", "resnet3d", "stacked_xception"]
ALL = PER_FACE + LINEAR + SEQUENCE
# efficientnet_b5_mlp (the study's own backbone) shares efficientnet_mlp's code; only its build is checked here,
# since a 30 M-parameter step and export would triple this file's time on two cores


def crops(n: int, seed: int = 0, side: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def n_params(model) -> int:
    return sum(p.numel() for p in model.network.parameters())


def test_all_seven_entries_are_registered():
    assert set(ALL + ["efficientnet_b5_mlp"]) == set(zoo.ZOO_DETECTORS) <= set(list_detectors())
    for name in SEQUENCE:
        assert get_spec(name).sequence_length == 16 and trainers.trainer_for(name) is sequence.train_sequence_member
    for name in LINEAR:
        assert trainers.trainer_for(name) is trainers.train_sklearn_member
    assert trainers.trainer_for("meso4") is trainers.train_frame_member
    assert train.TrainConfig(preset="cpu").recipe("compact_cnn").input_size == 252
    assert train.TrainConfig(preset="cpu").recipe("xception") == recipes.PRESETS["cpu"]["xception"]
    with pytest.raises(ValueError, match="no 'cpu' recipe for detector 'efficientnet_b0'"):
        train.TrainConfig(preset="cpu").recipe("efficientnet_b0")  # no silent default recipe


@pytest.mark.parametrize("name, expected", [("meso4", 27_977), ("mesoinception4", 28_615), ("compact_cnn", 562_901)])
def test_sizes_stated_by_the_studies(name, expected):
    model = create_model(name)  # registered size: 256 px (MesoNet), 252 px (compact CNN)
    assert abs(n_params(model) - expected) <= 0.1 * expected
    assert n_params(model) == expected  # layer for layer


def test_stated_layer_shapes():
    net = create_model("compact_cnn").network
    assert net.features(torch.zeros(1, 3, 252, 252)).shape == (1, 2500)  # 10 × 10 × 25, as in the study
    lstm = create_model("temporal_lstm", input_size=SIZE).network.head.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.dropout) == (512, 512, 4, 0.3)
    assert create_model("temporal_mlp", input_size=SIZE).network.embedder.proj.out_features == 512
    conv3d = [m for m in create_model("resnet3d", input_size=SIZE).network.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(m.kernel_size in ((3, 3, 3), (1, 1, 1)) for m in conv3d) and conv3d[0].kernel_size == (3, 3, 3)
    assert create_model("stacked_xception", input_size=SIZE).network.net.conv1.in_channels == 48
    for name, features in (("efficientnet_mlp", 1280), ("efficientnet_b5_mlp", 2048)):
        head = create_model(name, input_size=SIZE).network.classifier
        assert (head.fc1.in_features, head.fc1.out_features, head.fc2.out_features) == (features, 1024, 2)


def _inputs(model, seed=0):
    if isinstance(model, SequenceClassifier):  # windows of 16 crops of a track: 16 frames fill a 2D batch
        windows = 1 if isinstance(model.network, zoo.TemporalNet) else 2
        t = model.sequence_length
        return model.preprocess(crops(windows * t, seed).reshape(windows, t, 40, 40, 3))
    return model.preprocess(crops(2, seed))


@pytest.mark.parametrize("name", PER_FACE + SEQUENCE)
def test_entry_runs_takes_a_training_step_and_round_trips_through_export(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, input_size=SIZE)
    inputs = _inputs(model)
    before = {k: v.detach().clone() for k, v in model.network.state_dict().items()}
    model.train()
    logits = model(inputs)
    assert logits.shape == (len(inputs),) and torch.isfinite(logits).all()
    loss = F.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1.0][:len(inputs)]))
    optimizer = torch.optim.SGD(model.network.parameters(), lr=0.1)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = model.network.state_dict()
    assert any(before[k].is_floating_point() and not torch.equal(before[k], after[k]) for k in before), "no weight moved"
    head = {id(p) for p in model.network.get_classifier().parameters()}
    assert head and len(head) < len(list(model.network.parameters()))
    # predict (P(FAKE) per crop), export, load: the same outputs
    model.eval()
    faces = crops(20, 3)
    expected = model.predict_proba(faces)
    assert expected.shape == (20,) and np.all((expected >= 0) & (expected <= 1))
    entry = export_member(model, tmp_path, storage_dtype="float32")
    loaded = load_member(entry, tmp_path)
    assert type(loaded) is type(model) and loaded.input_size == SIZE and entry.detector == name
    assert np.allclose(loaded.predict_proba(faces), expected, atol=1e-6)


def test_temporal_hinge_loss_trains_the_embedder():
    torch.manual_seed(0)
    model = create_model("temporal_lstm", input_size=SIZE)
    embedder = model.network.embedder
    x = _inputs(model)
    emb = torch.randn(2, 4, 8)
    # adjacent frames identical: a REAL window costs nothing, a FAKE one the whole margin
    same = emb[:, :1].expand(2, 4, 8)
    assert zoo.cosine_hinge_loss(same, torch.tensor([0, 0])).item() == pytest.approx(0, abs=1e-6)
    assert zoo.cosine_hinge_loss(same, torch.tensor([1, 1])).item() == pytest.approx(1, abs=1e-6)
    before = embedder.proj.weight.detach().clone()
    loss = zoo.cosine_hinge_loss(embedder(x), torch.zeros(len(x)))  # a REAL window: pulled together
    loss.backward()
    torch.optim.SGD(embedder.parameters(), lr=0.1).step()
    assert not torch.equal(before, embedder.proj.weight)


@pytest.mark.parametrize("name", LINEAR)
def test_linear_baselines_fit_with_sklearn_and_match_it(name, tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = create_model(name, input_size=8)
    rng = np.random.default_rng(0)
    images = crops(80, 1, 8)
    labels = (np.arange(80) % 2).astype(int)
    images[labels == 1, :, :4] = np.clip(images[labels == 1, :, :4].astype(int) + 60, 0, 255)  # a learnable trace
    x = model.preprocess(images)
    groups = rng.integers(0, 8, 80)
    before = model.network.linear.weight.detach().clone()
    info = model.network.fit_sklearn(x, labels, groups)
    assert not torch.equal(before, model.network.linear.weight) and info["C"] in zoo.LinearBaseline.GRIDS[model.network.kind]
    probs = model.predict_proba(images)
    assert probs.shape == (80,) and np.mean((probs > 0.5) == labels) > 0.8
    entry = export_member(model, tmp_path, storage_dtype="float32")
    assert np.allclose(load_member(entry, tmp_path).predict_proba(images), probs, atol=1e-6)
    if name == "logreg":  # the copied module reproduces scikit-learn's probabilities
        flat = x.reshape(80, -1).numpy().astype(np.float64)
        z = (flat - flat.mean(0)) / (flat.std(0) + 1e-6)
        reference = LogisticRegression(C=info["C"], max_iter=3000, class_weight="balanced").fit(z, labels)
        assert np.allclose(probs, reference.predict_proba(z)[:, 1], atol=1e-4)


def test_sequence_members_keep_the_per_crop_contract():
    torch.manual_seed(0)
    model = create_model("resnet3d", input_size=SIZE).eval()
    assert sequence_windows(5, 16)[0].tolist() == [0, 1, 2, 3, 4] * 3 + [0]
    assert [w[0] for w in sequence_windows(40, 16)] == [0, 16, 24]
    faces = crops(20 + 7, 5)
    ids = np.array([0] * 20 + [1] * 7)
    probs = model.predict_proba(faces, batch_size=32, track_ids=ids)
    assert probs.shape == (27,) and np.all((probs > 0) & (probs < 1))
    assert np.allclose(probs[20:], probs[20])  # one window for the short track: one value for its crops
    # a track scored alone gives what it gets beside another
    assert np.allclose(model.predict_proba(faces[20:]), probs[20:], atol=1e-6)
    assert np.allclose(model.predict_proba(faces[:20]), probs[:20], atol=1e-6)


def test_detector_gives_sequence_members_the_track_of_every_crop(tmp_path, video_dir):
    """Two faces: a sequence member must see which crops belong to which track (windows never mix faces)."""
    from deepfake_kernel.detectors import create_model
    from deepfake_kernel.detectors.weights import export_member
    from deepfake_kernel.pipeline.detector import Detector

    export_member(create_model("resnet3d", input_size=32), tmp_path, storage_dtype="float16")
    detector = Detector.from_weights(tmp_path, device="cpu", frames=4, detect_long_side=480)
    member = detector.members["resnet3d"]
    seen = {}
    original = member.predict_proba

    def spy(crops, batch_size=16, track_ids=None):
        seen["track_ids"] = None if track_ids is None else list(track_ids)
        return original(crops, batch_size, track_ids=track_ids)

    member.predict_proba = spy
    result = detector.predict_video(video_dir / "two_faces.mp4")
    assert result.reason is None and len(result.tracks) == 2
    assert seen["track_ids"] == [0] * len(result.tracks[0].frames) + [1] * len(result.tracks[1].frames)


def test_sequence_trainers_run_end_to_end_and_repeat_exactly(tmp_path, training_videos):
    """train --members temporal_mlp,resnet3d (tiny preset): the embedder stage, the temporal head and the
    end-to-end 3D CNN train on track windows, export, and a second run gives the same checkpoints."""
    from deepfake_kernel import train
    from deepfake_kernel.detectors.weights import read_manifest

    def run(name):
        config = train.TrainConfig(videos=[str(training_videos[0])], members=["temporal_mlp", "resnet3d"],
                                   preset="tiny", out=str(tmp_path / name / "weights"),
                                   work_dir=str(tmp_path / name / "work"), cache_dir=str(tmp_path / "cache"),
                                   cache_frames=4, cache_size=64, val_fraction=0.5, storage_dtype="float16",
                                   progress=False)
        report = train.run(config, command="python -m deepfake_kernel.train (test)")
        return report, read_manifest(config.out)

    report, manifest = run("a")
    history = report["members"]["temporal_mlp"]["history"]
    assert any(h.get("stage") == "embedder" for h in history)
    assert report["members"]["resnet3d"]["history"] and all("val_auc" in h for h in report["members"]["resnet3d"]["history"])
    _, again = run("b")
    assert {m.name: m.sha256 for m in again.members} == {m.name: m.sha256 for m in manifest.members}
