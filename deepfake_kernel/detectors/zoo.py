"""The reference studies' detectors, registered on import (``deepfake_kernel.detectors`` imports this module).

Per face (plain :class:`~.classifier.FaceClassifier` members, trained by the frame trainer of
:mod:`deepfake_kernel.training.trainers`):

* ``meso4``, ``mesoinception4``: MesoNet (Afchar et al. 2018), 256 × 256 faces, ~28 k parameters;
* ``compact_cnn``: the from-scratch CNN of the Boston University study (conv 75 → 50 → 25, dense 200 → 100 → 1,
  562 901 parameters on 252 × 252 faces);
* ``efficientnet_mlp`` (EfficientNet-Lite0) and ``efficientnet_b5_mlp``: an EfficientNet whose classifier is
  replaced by features → 1024 (ReLU) → 2, read as one FAKE logit ``z_fake - z_real``;
* ``logreg``, ``linear_svm``: logistic regression and a linear SVM (scikit-learn) on flattened 32 × 32 faces,
  copied into an ``nn.Linear`` so that they export and load like any member (training fits them with
  :meth:`LinearBaseline.fit_sklearn`).

Per track (:class:`~.classifier.SequenceClassifier` members; ``spec.sequence_length`` consecutive crops of one face
track per sample, trained by :mod:`deepfake_kernel.training.sequence`):

* ``temporal_lstm``, ``temporal_mlp``: per-frame EfficientNet-Lite0 embeddings (512-d) trained with a cosine
  hinge loss on adjacent frames, then a 4-layer LSTM (512 hidden, dropout 0.3) or a 4-layer per-frame MLP
  averaged over the frames (the order-blind control);
* ``resnet3d``: a 3D ResNet-10 (3 × 3 × 3 kernels) over 16-frame face clips;
* ``stacked_xception``: Xception reading 16 frames stacked on the channel axis (48 channels).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import (IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, LITE_MEAN, LITE_STD, DetectorSpec,
                       register_detector)


def _flat_size(features: nn.Module, channels: int, size: int) -> int:
    """Number of features ``features`` gives for one ``channels × size × size`` input."""
    with torch.no_grad():
        return int(features(torch.zeros(1, channels, size, size)).numel())


# ---------------------------------------------------------------------------------------------- MesoNet
class _ConvBN(nn.Sequential):
    """Keras' ``Conv2D(padding='same', activation='relu')`` → ``BatchNormalization`` → ``MaxPooling2D('same')``."""

    def __init__(self, cin: int, cout: int, kernel: int, pool: int):
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True),
                         nn.BatchNorm2d(cout), nn.MaxPool2d(pool, pool, ceil_mode=True))


class _MesoInceptionLayer(nn.Module):
    """MesoInception block: 1×1; 1×1→3×3; 1×1→3×3 dilated 2; 1×1→3×3 dilated 3; concatenated (ReLU everywhere)."""

    def __init__(self, cin: int, a: int, b: int, c: int, d: int):
        super().__init__()

        def branch(cout: int, dilation: int | None) -> nn.Sequential:
            layers = [nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True)]
            if dilation:
                layers += [nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
            return nn.Sequential(*layers)

        self.branches = nn.ModuleList([branch(a, None), branch(b, 1), branch(c, 2), branch(d, 3)])
        self.out_channels = a + b + c + d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class _MesoHead(nn.Sequential):
    """Flatten → Dropout 0.5 → Dense 16 → LeakyReLU 0.1 → Dropout 0.5 → Dense 1."""

    def __init__(self, features: int):
        super().__init__(nn.Flatten(), nn.Dropout(0.5), nn.Linear(features, 16), nn.LeakyReLU(0.1),
                         nn.Dropout(0.5), nn.Linear(16, 1))


class _FeaturesThenHead(nn.Module):
    """A convolutional ``features`` stack, then a dense ``head`` (the classifier that ``get_classifier`` names)."""

    features: nn.Module
    head: nn.Module

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Meso4(_FeaturesThenHead):
    """Meso-4 (Afchar et al. 2018): 27 977 parameters at 256 × 256."""

    def __init__(self, input_size: int = 256):
        super().__init__()
        self.features = nn.Sequential(_ConvBN(3, 8, 3, 2), _ConvBN(8, 8, 5, 2), _ConvBN(8, 16, 5, 2),
                                      _ConvBN(16, 16, 5, 4))
        self.head = _MesoHead(_flat_size(self.features, 3, input_size))


class MesoInception4(_FeaturesThenHead):
    """MesoInception-4 (Afchar et al. 2018): 28 615 parameters at 256 × 256."""

    def __init__(self, input_size: int = 256):
        super().__init__()
        first = _MesoInceptionLayer(3, 1, 4, 4, 2)
        second = _MesoInceptionLayer(first.out_channels, 2, 4, 4, 2)
        self.features = nn.Sequential(
            first, nn.BatchNorm2d(first.out_channels), nn.MaxPool2d(2, 2, ceil_mode=True),
            second, nn.BatchNorm2d(second.out_channels), nn.MaxPool2d(2, 2, ceil_mode=True),
            _ConvBN(second.out_channels, 16, 5, 2), _ConvBN(16, 16, 5, 4))
        self.head = _MesoHead(_flat_size(self.features, 3, input_size))


# ---------------------------------------------------------------------------------------------- compact CNN
class CompactCNN(_FeaturesThenHead):
    """The Boston University study's CNN from scratch (its Fig. 2): large first kernels and strides, then narrower.

    At 252 × 252: conv 75 (4×4, stride 3) → 86², conv 50 (3×3, stride 2) → 43², max-pool → 21², dropout,
    conv 25 (2×2, 'same') → 21², max-pool → 10², dropout, dense 200 → 100 → 1 with dropout: 562 901 parameters,
    layer for layer as in the study. The study does not give the dropout rates; 0.25 (conv) and 0.5 (dense) here.
    """

    def __init__(self, input_size: int = 252, conv_dropout: float = 0.25, dense_dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 75, 4, stride=3, padding=4), nn.ReLU(inplace=True),
            nn.Conv2d(75, 50, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Dropout(conv_dropout),
            nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(50, 25, 2), nn.ReLU(inplace=True),  # Keras 'same' for an even kernel
            nn.MaxPool2d(2), nn.Dropout(conv_dropout), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(_flat_size(self.features, 3, input_size), 200), nn.ReLU(inplace=True), nn.Dropout(dense_dropout),
            nn.Linear(200, 100), nn.ReLU(inplace=True), nn.Dropout(dense_dropout), nn.Linear(100, 1))


# ---------------------------------------------------------------------------------------------- EfficientNet + MLP
class TwoWayMLPHead(nn.Module):
    """features → ``hidden`` (ReLU) → 2 classes (REAL, FAKE), returned as one FAKE logit ``z_fake - z_real``
    (the same softmax probability of FAKE, in the registry's one-logit-per-face contract)."""

    def __init__(self, features: int, hidden: int = 1024):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc2(F.relu(self.fc1(x)))
        return z[:, 1:2] - z[:, 0:1]


def efficientnet_mlp(arch: str, hidden: int = 1024) -> nn.Module:
    """A timm EfficientNet with its classifier replaced by :class:`TwoWayMLPHead` (kept under ``classifier.`` so
    that ImageNet starts, which skip ``classifier.*``, and ``get_classifier()`` work unchanged)."""
    import timm

    network = timm.create_model(arch, pretrained=False, num_classes=1)
    network.classifier = TwoWayMLPHead(network.num_features, hidden)
    return network


# ---------------------------------------------------------------------------------------------- linear baselines
class LinearBaseline(nn.Module):
    """A linear model on the flattened, normalised ``input_size²`` face (logistic regression or linear SVM).

    Trained by :meth:`fit_sklearn` (scikit-learn), whose coefficients, with the feature standardisation and (for
    the SVM) the Platt scaling folded in, are copied into ``linear``: the member is an ordinary ``nn.Module`` that
    exports to safetensors and loads like any other.
    """

    def __init__(self, input_size: int = 32, kind: str = "logreg"):
        super().__init__()
        if kind not in ("logreg", "svm"):
            raise ValueError(f"kind must be 'logreg' or 'svm', not {kind!r}")
        self.kind = kind
        self.linear = nn.Linear(3 * input_size * input_size, 1)

    def get_classifier(self) -> nn.Module:
        return self.linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(x.shape[0], -1))

    GRIDS = {"logreg": (1e-6, 1e-5, 1e-4, 1e-3), "svm": (1e-5, 1e-4, 1e-3, 1e-2)}

    def fit_sklearn(self, images: np.ndarray | torch.Tensor, labels: np.ndarray, groups: np.ndarray | None = None,
                    grid: tuple[float, ...] | None = None, folds: int = 3) -> dict:
        """Fit on preprocessed ``(N, 3, S, S)`` images; pick ``C`` from ``grid`` (default :attr:`GRIDS`) by group
        cross-validated log loss (a single ``C`` when ``grid`` has one value), then refit on everything.
        Returns what was chosen."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
        from sklearn.svm import LinearSVC

        grid = tuple(grid or self.GRIDS[self.kind])
        x = torch.as_tensor(images).float().reshape(len(labels), -1).cpu().numpy().astype(np.float64)
        y = np.asarray(labels).astype(int)
        if x.shape[1] != self.linear.in_features:
            raise ValueError(f"expected {self.linear.in_features} features per image, got {x.shape[1]}")
        mean, scale = x.mean(0), x.std(0) + 1e-6
        z = (x - mean) / scale
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)

        def fit(c: float, rows: np.ndarray):
            if self.kind == "logreg":
                model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
            else:
                model = LinearSVC(C=c, max_iter=5000, class_weight="balanced")
            return model.fit(z[rows], y[rows])

        def cv_decisions(c: float) -> np.ndarray:
            out = np.zeros(len(y))
            splits = GroupKFold(n_splits=min(folds, len(np.unique(groups))))
            for train_rows, test_rows in splits.split(z, y, groups):
                out[test_rows] = fit(c, train_rows).decision_function(z[test_rows])
            return out

        def platt(decisions: np.ndarray) -> tuple[float, float]:
            model = LogisticRegression(C=1e6, max_iter=1000).fit(decisions[:, None], y)
            return float(model.coef_[0, 0]), float(model.intercept_[0])

        def log_loss(decisions: np.ndarray) -> float:
            a, b = platt(decisions) if self.kind == "svm" else (1.0, 0.0)
            p = np.clip(1 / (1 + np.exp(-(a * decisions + b))), 1e-7, 1 - 1e-7)
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

        scores = {}
        if len(grid) > 1 and len(np.unique(groups)) >= 2:
            decisions = {c: cv_decisions(c) for c in grid}
            scores = {c: log_loss(d) for c, d in decisions.items()}
            best = min(scores, key=scores.get)
        else:
            best, decisions = grid[0], None
        model = fit(best, np.arange(len(y)))
        coef, intercept = model.coef_.reshape(-1).astype(np.float64), float(np.ravel(model.intercept_)[0])
        slope, offset = 1.0, 0.0
        if self.kind == "svm":  # Platt scaling on out-of-fold decision values when there are some
            slope, offset = platt(decisions[best] if decisions is not None else model.decision_function(z))
        weight = slope * coef / scale
        bias = slope * (intercept - float(np.dot(coef, mean / scale))) + offset
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).view(1, -1))
            self.linear.bias.fill_(float(bias))
        return {"C": best, "cv_log_loss": {str(c): round(v, 5) for c, v in scores.items()},
                "platt": [slope, offset] if self.kind == "svm" else None}


class FrameEmbedder(nn.Module):
    """A timm backbone's pooled features → ``dim``-d embedding per frame."""

    def __init__(self, arch: str = "efficientnet_lite0", dim: int = 512):
        super().__init__()
        import timm

        self.backbone = timm.create_model(arch, pretrained=False, num_classes=0)
        self.proj = nn.Linear(self.backbone.num_features, dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``(N, T, 3, S, S)`` → ``(N, T, dim)``."""
        n, t = frames.shape[:2]
        return self.proj(self.backbone(frames.reshape(n * t, *frames.shape[2:]))).reshape(n, t, -1)


def cosine_hinge_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """The temporal study's extraction loss on adjacent frames: with ``d = 1 - cos(e_t, e_t+1)``, REAL windows
    pay ``d`` (pulled towards cosine 1), FAKE windows pay ``max(0, margin - d)`` (pushed to cosine ≤ 1 - margin).
    ``embeddings``: ``(N, T, D)``; ``labels``: ``(N,)`` with 1 = FAKE."""
    distance = 1 - F.cosine_similarity(embeddings[:, 1:], embeddings[:, :-1], dim=-1)  # (N, T - 1)
    fake = labels.float().view(-1, 1)
    return ((1 - fake) * distance + fake * F.relu(margin - distance)).mean()


class LSTMHead(nn.Module):
    """4-layer LSTM (512 hidden, dropout 0.3) over the frame embeddings; the last step's output → 1 logit."""

    def __init__(self, dim: int = 512, hidden: int = 512, layers: int = 4, dropout: float = 0.3):
        super().__init__()
        self.lstm = nn.LSTM(dim, hidden, num_layers=layers, dropout=dropout, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(embeddings)
        return self.out(output[:, -1])


class FrameMLPHead(nn.Module):
    """The order-blind control: a 4-layer MLP on each frame's embedding, logits averaged over the frames."""

    def __init__(self, dim: int = 512, hidden: int = 512, layers: int = 4, dropout: float = 0.3):
        super().__init__()
        blocks, width = [], dim
        for _ in range(layers - 1):
            blocks += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = hidden
        self.mlp = nn.Sequential(*blocks, nn.Linear(width, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.mlp(embeddings).mean(dim=1)


class TemporalNet(nn.Module):
    """Frame embedder + sequence head. The head reads the embeddings L2-normalised and scaled by √dim (the hinge
    loss shapes only their directions)."""

    def __init__(self, arch: str = "efficientnet_lite0", head: str = "lstm", dim: int = 512):
        super().__init__()
        self.embedder = FrameEmbedder(arch, dim)
        self.head = LSTMHead(dim) if head == "lstm" else FrameMLPHead(dim)
        self.scale = math.sqrt(dim)

    def get_classifier(self) -> nn.Module:
        return self.head

    def head_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(embeddings, dim=-1) * self.scale)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head_logits(self.embedder(frames))


class _BasicBlock3d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.shortcut is None else self.shortcut(x)), inplace=True)


class ResNet3D(nn.Module):
    """A 3D ResNet (basic blocks, 3 × 3 × 3 kernels throughout) over ``(N, T, 3, S, S)`` clips.

    Stem: 3×3×3 conv, stride (1, 2, 2), and a (1, 3, 3) max-pool; then ``layers`` blocks per stage at widths
    ``width × (1, 2, 4, 8)``, stages 2-4 halving time and space; global average pool; dropout; one logit.
    ``layers=(1, 1, 1, 1)`` is a 3D ResNet-10, ``(2, 2, 2, 2)`` with ``width=64`` a 3D ResNet-18.
    """

    def __init__(self, layers: tuple[int, ...] = (1, 1, 1, 1), width: int = 32, dropout: float = 0.3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(3, width, 3, stride=(1, 2, 2), padding=1, bias=False),
                                  nn.BatchNorm3d(width), nn.ReLU(inplace=True),
                                  nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        blocks, cin = [], width
        for stage, count in enumerate(layers):
            cout = width * 2 ** stage
            for i in range(count):
                blocks.append(_BasicBlock3d(cin, cout, 2 if (stage > 0 and i == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, 1))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(clips.permute(0, 2, 1, 3, 4)))  # (N, T, C, H, W) → (N, C, T, H, W)
        return self.fc(x.mean(dim=(2, 3, 4)))


class StackedFrames(nn.Module):
    """A 2D network reading ``frames`` crops stacked on the channel axis (``3 × frames`` input channels)."""

    def __init__(self, arch: str = "legacy_xception", frames: int = 16):
        super().__init__()
        import timm

        self.frames = frames
        self.net = timm.create_model(arch, pretrained=False, num_classes=1, in_chans=3 * frames)

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        n, t = clips.shape[:2]
        return self.net(clips.reshape(n, t * clips.shape[2], *clips.shape[3:]))


# ---------------------------------------------------------------------------------------------- registry
SEQUENCE_LENGTH = 16  # the training cache holds 16 frames per video

_ENTRIES = [
    (DetectorSpec("meso4", "meso4", 256, IMAGENET_MEAN, IMAGENET_STD,
                  "Meso-4 (Afchar et al. 2018), 27 977 parameters at 256 px"),
     lambda spec: Meso4(spec.input_size)),
    (DetectorSpec("mesoinception4", "mesoinception4", 256, IMAGENET_MEAN, IMAGENET_STD,
                  "MesoInception-4 (Afchar et al. 2018), 28 615 parameters at 256 px"),
     lambda spec: MesoInception4(spec.input_size)),
    (DetectorSpec("compact_cnn", "compact_cnn", 252, IMAGENET_MEAN, IMAGENET_STD,
                  "CNN from scratch (conv 75-50-25, dense 200-100-1), 562 901 parameters at 252 px"),
     lambda spec: CompactCNN(spec.input_size)),
    (DetectorSpec("efficientnet_mlp", "efficientnet_lite0", 224, LITE_MEAN, LITE_STD,
                  "EfficientNet-Lite0 features → 1024 (ReLU) → 2 (logit = z_fake - z_real); ImageNet start"),
     lambda spec: efficientnet_mlp(spec.arch)),
    (DetectorSpec("efficientnet_b5_mlp", "efficientnet_b5", 456, IMAGENET_MEAN, IMAGENET_STD,
                  "EfficientNet-B5 features → 1024 (ReLU) → 2, the study's own backbone (no local ImageNet start)"),
     lambda spec: efficientnet_mlp(spec.arch)),
    (DetectorSpec("logreg", "linear_logreg", 32, IMAGENET_MEAN, IMAGENET_STD,
                  "logistic regression on the flattened 32 × 32 face (scikit-learn)"),
     lambda spec: LinearBaseline(spec.input_size, "logreg")),
    (DetectorSpec("linear_svm", "linear_svm", 32, IMAGENET_MEAN, IMAGENET_STD,
                  "linear SVM on the flattened 32 × 32 face (scikit-learn), Platt-scaled"),
     lambda spec: LinearBaseline(spec.input_size, "svm")),
    (DetectorSpec("temporal_lstm", "efficientnet_lite0+lstm4x512", 112, LITE_MEAN, LITE_STD,
                  "EfficientNet-Lite0 512-d frame embeddings (cosine hinge loss) → 4-layer LSTM, 16-frame windows",
                  sequence_length=SEQUENCE_LENGTH),
     lambda spec: TemporalNet(spec.arch.split("+")[0], "lstm")),
    (DetectorSpec("temporal_mlp", "efficientnet_lite0+mlp4x512", 112, LITE_MEAN, LITE_STD,
                  "the same embeddings → 4-layer per-frame MLP averaged over frames (temporal_lstm's control)",
                  sequence_length=SEQUENCE_LENGTH),
     lambda spec: TemporalNet(spec.arch.split("+")[0], "mlp")),
    (DetectorSpec("resnet3d", "r3d10_w32", 112, IMAGENET_MEAN, IMAGENET_STD,
                  "3D ResNet-10 (3×3×3 kernels, width 32) over 16-frame face clips",
                  sequence_length=SEQUENCE_LENGTH),
     lambda spec: ResNet3D((1, 1, 1, 1), 32)),
    (DetectorSpec("stacked_xception", "legacy_xception_stack16", 128, INCEPTION_MEAN, INCEPTION_STD,
                  "Xception reading 16 frames stacked on the channel axis (48 channels)",
                  sequence_length=SEQUENCE_LENGTH),
     lambda spec: StackedFrames("legacy_xception", spec.sequence_length)),
]

for _spec, _builder in _ENTRIES:
    register_detector(_spec)(_builder)

ZOO_DETECTORS = [spec.name for spec, _ in _ENTRIES]
