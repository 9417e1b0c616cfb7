"""Exploration (fifteenth session): test-time training on the held-out family's own faces, no labels.

After the shipped test-set BatchNorm statistics (stem and 4 blocks), the BatchNorm scales and shifts of the whole
network are trained for a few passes over the statistics' faces (8 a video) to minimise either the mean binary
entropy of the faces' predictions (TENT, Wang et al. 2021) or the information-maximisation loss of SHOT (Liang et
al. 2020): mean entropy minus the entropy of the mean prediction, which keeps the test set from collapsing onto
one class (it assumes a balanced test set, like the test-set centring). Printed per fold weights: video AUC
(predict's rule) with the test-set statistics alone and after each loss. Run from the repository root:
    python docs/xfam_set_infomax.py runs/xfam/sbi12ft_ffpp/seed_0/ffpp/weights --family ffpp
"""
import copy

import numpy as np
import torch

from deepfake_kernel.detectors.weights import load_member, read_manifest
from xfam_set_adabn import family_faces, family_parser, video_aucs  # beside this script in docs/


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def test_time_trained(model, pool: np.ndarray, loss_name: str, epochs: int, lr: float, batch: int, seed: int):
    """A copy of ``model`` whose BatchNorm affine parameters minimise ``loss_name`` on ``pool`` (statistics fixed)."""
    model = copy.deepcopy(model).eval()
    network = model.network
    params = []
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            params += [p for p in (module.weight, module.bias) if p is not None]
    for p in network.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(pool))
        for start in range(0, len(order) - batch + 1, batch):
            inputs = model.preprocess(pool[order[start:start + batch]])
            probs = torch.sigmoid(network(inputs).float().reshape(-1))
            loss = binary_entropy(probs).mean()
            if loss_name == "infomax":
                loss = loss - binary_entropy(probs.mean())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for p in params:
        p.requires_grad_(False)
    return model


def main():
    parser = family_parser(__doc__)
    parser.add_argument("--per-video", type=int, default=8)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--losses", default="tent,infomax")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    videos, labels, pool = family_faces(args.family, args.videos, args.cache_dir, args.per_video)
    print(f"{args.family}: {len(videos)} videos ({labels.sum()} fake), {len(pool)} faces for adaptation", flush=True)
    for weights in args.weights:
        base = load_member(read_manifest(weights).members[0], weights).eval()
        base.adapt_batchnorm(pool, args.blocks)
        variants = {"test-set statistics": base}
        for loss_name in args.losses.split(","):
            variants[loss_name] = test_time_trained(base, pool, loss_name, args.epochs, args.lr, args.batch, 0)
        print(f"{weights}: " + video_aucs(variants, videos, labels), flush=True)


if __name__ == "__main__":
    main()
