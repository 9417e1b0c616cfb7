import json

import numpy as np
import pytest
import torch

from deepfake_kernel.detectors import create_model
from deepfake_kernel.detectors.weights import (WeightsError, decode_state_dict, encode_state_dict, export_member,
                                               load_member, read_manifest, select_members)
from tests import synthetic


@pytest.fixture
def crops():
    return np.stack([synthetic.face_crop(64), synthetic.noise_frames(1, 64, 64)[0]])


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-6), ("float16", 2e-3), ("int8", 2e-2)])
def test_export_load_roundtrip(tmp_path, crops, dtype, tolerance):
    torch.manual_seed(1)
    model = create_model("resnet50", input_size=64).eval()
    entry = export_member(model, tmp_path, storage_dtype=dtype, ensemble_weight=2.0, metrics={"auc": 0.5})
    manifest = read_manifest(tmp_path)
    assert manifest.member("resnet50").sha256 == entry.sha256 and entry.storage_dtype == dtype
    assert manifest.member("resnet50").ensemble_weight == 2.0 and manifest.clip == {"lo": 0.01, "hi": 0.99}
    loaded = load_member(entry, tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(crops), model.predict_proba(crops), atol=tolerance)


def test_int8_storage_is_a_quarter_and_close():
    weight = torch.randn(64, 32, 3, 3)
    stored = encode_state_dict({"w": weight, "b": torch.randn(64)}, "int8")
    assert stored["w"].dtype == torch.int8
    back = decode_state_dict(stored)
    assert (back["w"] - weight).abs().max() <= weight.abs().amax(dim=(1, 2, 3)).max() / 127 / 2 + 1e-6


def test_int8_storage_keeps_small_weights_in_float16():
    depthwise = torch.randn(32, 1, 3, 3)  # 288 weights: quantised, a first depthwise layer moved a cue most
    norm = torch.randn(32)
    stored = encode_state_dict({"dw": depthwise, "bn": norm, "pw": torch.randn(64, 96, 1, 1)}, "int8")
    assert stored["dw"].dtype == torch.float16 and "dw::int8_scale" not in stored
    assert stored["bn"].dtype == torch.float32 and stored["pw"].dtype == torch.int8
    back = decode_state_dict(stored)
    assert back["dw"].dtype == torch.float32
    np.testing.assert_allclose(back["dw"], depthwise, rtol=1e-3, atol=1e-4)
    assert torch.equal(back["bn"], norm)


def test_tampered_checkpoint_is_rejected(tiny_weights, tmp_path):
    import shutil

    copy = tmp_path / "w"
    shutil.copytree(tiny_weights, copy)
    entry = read_manifest(copy).member("efficientnet_lite0")
    data = bytearray((copy / entry.file).read_bytes())
    data[-10] ^= 0xFF
    (copy / entry.file).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_member(entry, copy)


def test_missing_folder_manifest_and_file(tmp_path, tiny_weights):
    with pytest.raises(WeightsError, match="does not exist.*train"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(WeightsError, match="no manifest.json"):
        read_manifest(tmp_path)
    manifest = read_manifest(tiny_weights)
    entry = manifest.member("resnet50")
    with pytest.raises(WeightsError, match="missing"):
        load_member(entry, tmp_path)
    with pytest.raises(WeightsError, match="--models"):
        select_members(manifest, ["resnet51"])


def test_unknown_architecture_is_rejected(tmp_path):
    export_member(create_model("efficientnet_lite0", input_size=32), tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["members"][0]["detector"] = "mystery_net"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="mystery_net"):
        load_member(read_manifest(tmp_path).members[0], tmp_path)


def test_a_changed_checkpoint_drops_the_fits_made_on_the_old_one(tmp_path):
    from deepfake_kernel.detectors.weights import write_manifest

    torch.manual_seed(0)
    first = create_model("efficientnet_lite0", input_size=32)
    other = create_model("resnet50", input_size=32)
    export_member(first, tmp_path, storage_dtype="float32")
    export_member(other, tmp_path, storage_dtype="float32")
    manifest = read_manifest(tmp_path)
    manifest.calibration, manifest.clip = {"temperature": 0.3, "bias": -1.0}, {"lo": 0.005, "hi": 0.995}
    manifest.calibration_by_members = {"efficientnet_lite0": {"temperature": 1.5, "bias": 0.0},
                                       "resnet50": {"temperature": 2.0, "bias": 0.1}}
    manifest.stacking = {"members": ["efficientnet_lite0", "resnet50"], "use": True}
    write_manifest(manifest, tmp_path)
    export_member(first, tmp_path, storage_dtype="float32")  # the same bytes again (a deterministic re-run)
    kept = read_manifest(tmp_path)
    assert kept.calibration["temperature"] == 0.3 and len(kept.calibration_by_members) == 2 and kept.stacking
    with torch.no_grad():
        next(first.parameters()).add_(1.0)  # a retrained checkpoint
    export_member(first, tmp_path, storage_dtype="float32")
    reset = read_manifest(tmp_path)
    assert reset.calibration == {"temperature": 1.0, "bias": 0.0} and reset.clip == {"lo": 0.01, "hi": 0.99}
    assert set(reset.calibration_by_members) == {"resnet50"} and reset.stacking is None


def test_the_manifest_carries_per_video_normalisation(tmp_path):
    from deepfake_kernel.detectors.weights import write_manifest

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", input_size=32)
    export_member(model, tmp_path, storage_dtype="float32")
    assert load_member(read_manifest(tmp_path).member("efficientnet_lite0"), tmp_path).video_norm_blocks is None
    manifest = read_manifest(tmp_path)
    manifest.member("efficientnet_lite0").video_norm_blocks = 2
    manifest.calibration = {"temperature": 5.0, "bias": 0.0}  # fitted on scores made with it
    write_manifest(manifest, tmp_path)
    loaded = load_member(read_manifest(tmp_path).member("efficientnet_lite0"), tmp_path)
    assert loaded.video_norm_blocks == 2 and len(loaded.video_norm_layers()) > 1
    export_member(model, tmp_path, storage_dtype="float32")  # the same bytes: the setting stays with its fit
    assert read_manifest(tmp_path).member("efficientnet_lite0").video_norm_blocks == 2
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    export_member(model, tmp_path, storage_dtype="float32")  # retrained: fit and setting go
    assert read_manifest(tmp_path).member("efficientnet_lite0").video_norm_blocks is None
    export_member(create_model("resnet50", input_size=32), tmp_path, storage_dtype="float32")
    manifest = read_manifest(tmp_path)
    manifest.member("resnet50").video_norm_blocks = 1
    write_manifest(manifest, tmp_path)
    with pytest.raises(WeightsError, match="video_norm_blocks"):
        load_member(read_manifest(tmp_path).member("resnet50"), tmp_path)
