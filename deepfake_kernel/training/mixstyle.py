"""MixStyle (Zhou et al., ICLR 2021), for training only: after early stages, each image's per-channel feature
statistics (mean and standard deviation over space) are mixed with those of another image of the batch, so a
source's global look (contrast, colour, compression) stops being a usable cue and what differs inside a face has
to carry the label. Attached as forward hooks, so nothing of it reaches the exported weights."""
from __future__ import annotations

import numpy as np
import torch


class MixStyle:
    """Hooks on ``stages`` of ``network``: with probability ``p`` per batch and stage, every image's feature
    statistics become a Beta(``alpha``, ``alpha``) mix of its own and a random other image's. Active only while
    ``network.training`` and gradients are on; the draws follow ``seed`` and the epoch (:meth:`start_epoch`), so a
    resumed run mixes as an uninterrupted one."""

    def __init__(self, network: torch.nn.Module, stages: list[torch.nn.Module], p: float, alpha: float = 0.1,
                 seed: int = 0):
        self.network, self.p, self.alpha, self.seed = network, p, alpha, seed
        self.start_epoch(0)
        self.handles = [stage.register_forward_hook(self._hook) for stage in stages] if p > 0 else []

    def start_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng([self.seed, epoch])

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _hook(self, module, inputs, output):
        if not (self.network.training and torch.is_grad_enabled()) or output.shape[0] < 2:
            return None
        if self.rng.random() >= self.p:
            return None
        n = output.shape[0]
        return mix_styles(output, self.rng.beta(self.alpha, self.alpha, n), self.rng.permutation(n))


def mix_styles(x: torch.Tensor, lam: np.ndarray, partner: np.ndarray, eps: float = 1e-6) -> torch.Tensor:
    """``x`` (N, C, H, W) normalised by its own per-image, per-channel mean and std (no gradient through them, as
    in the paper), then given ``lam[i]`` of its own statistics and ``1 - lam[i]`` of image ``partner[i]``'s."""
    mu = x.mean(dim=(2, 3), keepdim=True).detach()
    sigma = (x.var(dim=(2, 3), keepdim=True) + eps).sqrt().detach()
    lam_t = torch.as_tensor(lam, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
    index = torch.as_tensor(partner, device=x.device)
    mixed_mu = lam_t * mu + (1 - lam_t) * mu[index]
    mixed_sigma = lam_t * sigma + (1 - lam_t) * sigma[index]
    return (x - mu) / sigma * mixed_sigma + mixed_mu
