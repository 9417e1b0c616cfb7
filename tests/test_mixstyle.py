import numpy as np
import pytest
import torch

from deepfake_kernel.detectors import create_model
from deepfake_kernel.training.mixstyle import MixStyle, mix_styles
from deepfake_kernel.training.trainers import style_stages


def channel_stats(x):
    return x.mean(dim=(2, 3)), x.std(dim=(2, 3), unbiased=False)


def test_each_image_gets_the_mixed_statistics_of_its_partner():
    x = torch.randn(3, 5, 8, 8) * torch.tensor([1.0, 3.0, 0.5]).view(3, 1, 1, 1) + torch.arange(3.0).view(3, 1, 1, 1)
    mu, sigma = channel_stats(x)
    lam, partner = np.array([1.0, 0.0, 0.25]), np.array([2, 0, 1])
    out = mix_styles(x, lam, partner)
    out_mu, out_sigma = channel_stats(out)
    for i in range(3):
        j = partner[i]
        torch.testing.assert_close(out_mu[i], lam[i] * mu[i] + (1 - lam[i]) * mu[j], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out_sigma[i], lam[i] * sigma[i] + (1 - lam[i]) * sigma[j], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[0], x[0], atol=1e-4, rtol=1e-4)  # lam 1: its own statistics
    # the spatial pattern inside each channel is kept: only mean and scale change
    normed = lambda t: (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(normed(out), normed(x), atol=1e-3, rtol=1e-3)


def test_hooks_mix_in_training_only_repeatably_per_epoch_and_not_in_the_weights():
    model = create_model("efficientnet_lite0", input_size=64)
    network = model.network
    stages = style_stages(network)
    assert stages == [network.blocks[1], network.blocks[2], network.blocks[3]]
    assert style_stages(create_model("resnet50", input_size=64).network)[0] is not None
    x = torch.randn(4, 3, 64, 64)
    network.eval()
    with torch.no_grad():
        plain = network(x)
    styles = MixStyle(network, stages, p=1.0, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(network(x), plain)  # eval: untouched
    network.train()
    reference = {k: v.clone() for k, v in network.state_dict().items()}
    styles.start_epoch(2)
    first = network(x)
    network.load_state_dict(reference)  # training forward passes move BatchNorm's running statistics
    styles.start_epoch(2)
    torch.testing.assert_close(network(x), first)  # same seed and epoch: same mix
    network.load_state_dict(reference)
    styles.start_epoch(3)
    assert not torch.allclose(network(x), first)
    network.load_state_dict(reference)
    styles.remove()
    unmixed = network(x)
    assert not torch.allclose(unmixed, first)
    assert set(network.state_dict()) == set(reference)  # nothing of MixStyle is stored


def test_off_attaches_nothing():
    network = create_model("efficientnet_lite0", input_size=64).network
    assert MixStyle(network, style_stages(network), p=0.0).handles == []
