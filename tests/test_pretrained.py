import numpy as np
import pytest
import torch

from deepfake_kernel.detectors import create_model
from deepfake_kernel.detectors.pretrained import load_efficientnet_lite_imagenet, load_local_checkpoint, map_by_position
from deepfake_kernel.training import recipes, trainers
from tests import synthetic

EGYPTIAN_CAT, TABBY, TIGER_CAT = 285, 281, 282


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_imagenet_mapping_classifies_a_cat(variant):
    import skimage.data
    import timm

    network = timm.create_model(f"efficientnet_lite{variant}", pretrained=False).eval()
    load_efficientnet_lite_imagenet(network, variant, keep_classifier=True)
    model = create_model(f"efficientnet_lite{variant}")  # for its preprocessing (input size, Lite normalisation)
    images = model.preprocess(skimage.data.chelsea()[None])
    with torch.inference_mode():
        top = network(images).softmax(1).topk(3).indices[0].tolist()
    assert top[0] in {EGYPTIAN_CAT, TABBY, TIGER_CAT}


def test_mapping_keeps_the_features_and_leaves_the_new_head():
    model = create_model("efficientnet_lite0", input_size=64)
    head_before = model.network.classifier.weight.clone()
    stem_before = model.network.conv_stem.weight.clone()
    load_efficientnet_lite_imagenet(model.network, 0)
    assert torch.equal(model.network.classifier.weight, head_before)
    assert not torch.equal(model.network.conv_stem.weight, stem_before)


def test_map_by_position_checks_shapes():
    with pytest.raises(ValueError, match="does not fit"):
        map_by_position({"a": torch.zeros(2)}, {"b": torch.zeros(3)})


def test_local_checkpoint_init(tmp_path):
    source = create_model("resnet50", input_size=32)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.network.state_dict().items()}}, tmp_path / "r.pth")
    target = create_model("resnet50", input_size=32)
    loaded = load_local_checkpoint(target.network, tmp_path / "r.pth")
    assert "conv1.weight" in loaded
    assert torch.equal(target.network.conv1.weight, source.network.conv1.weight)
    with pytest.raises(FileNotFoundError):
        load_local_checkpoint(target.network, tmp_path / "missing.pth")


def test_hub_init_offline_fails_with_what_to_do(monkeypatch):
    from deepfake_kernel.detectors.pretrained import PretrainedUnavailable, load_hub_pretrained

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("resnet50", input_size=32)
    with pytest.raises(PretrainedUnavailable, match="--init NAME=resnet50.pth"):
        load_hub_pretrained(model.network, "resnet50")


def test_train_init_paths_local_and_hub(tmp_path, monkeypatch, capsys):
    """--init NAME=PATH loads the checkpoint into the member; --init NAME=hub offline stops before any work."""
    from deepfake_kernel import train

    source = create_model("resnet50", input_size=32)
    torch.save(source.network.state_dict(), tmp_path / "resnet50.pth")
    config = train.TrainConfig(init=[f"resnet50={tmp_path / 'resnet50.pth'}"], imagenet=False)
    member = trainers.build_member("resnet50", recipes.MemberRecipe(32, 1, 8, 4, 1e-3, 1.0), config)
    assert torch.equal(member.network.conv1.weight, source.network.conv1.weight)
    assert torch.equal(member.network.fc.weight, source.network.fc.weight)  # a head that fits is kept

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "weights"
    code = train.main(["--videos", str(tmp_path / "none.csv"), "--init", "xception=hub", "--out", str(out),
                       "--work-dir", str(tmp_path / "work")])
    assert code == 2 and "HF_HUB_OFFLINE=1" in capsys.readouterr().err and not out.exists()
    assert train.main(["--init", "xception", "--out", str(out)]) == 2


def test_head_init_small_starts_a_pretrained_member_at_one_half():
    """timm's one-output head starts at logits of several units; on ImageNet features it must start near 0."""
    from deepfake_kernel import train

    config = train.TrainConfig(imagenet=True, head_init="small")
    face = synthetic.face_crop(224)
    torch.manual_seed(0)
    member = trainers.build_member("efficientnet_lite0", recipes.MemberRecipe(224, 1, 8, 4, 1e-3, 1.0), config)
    member.eval()
    crops = np.stack([face, face[:, ::-1]]).copy()
    with torch.no_grad():
        logits = member(member.preprocess(crops))
    assert logits.abs().max() < 0.5, logits
    assert float(member.network.get_classifier().weight.detach().std()) < 0.02
    torch.manual_seed(0)  # the default (the shipped recipe) keeps timm's head: far from 0.5
    default = trainers.build_member("efficientnet_lite0", recipes.MemberRecipe(224, 1, 8, 4, 1e-3, 1.0),
                                    train.TrainConfig(imagenet=True))
    assert float(default.network.get_classifier().weight.detach().std()) > 0.3
    with pytest.raises(ValueError, match="--head-init"):
        train.run(train.TrainConfig(head_init="zero", members=["efficientnet_lite0"]))
