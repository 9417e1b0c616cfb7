"""The detectors' common module: :class:`FaceClassifier` (uint8 face crops in, one FAKE logit per face out) and
:class:`SequenceClassifier` (reads consecutive crops of one face track at once)."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .registry import DetectorSpec

log = logging.getLogger(__name__)


class FaceClassifier(nn.Module):
    """A registered network plus its input contract; ``forward`` takes normalised NCHW, returns ``(B,)`` logits."""

    _compiled = None  # set by compile_network()
    video_norm_blocks: int | None = None  # set by set_video_norm()

    def __init__(self, spec: DetectorSpec, network: nn.Module):
        super().__init__()
        self.spec = spec
        self.network = network
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def preprocess(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` RGB crops → normalised float ``(N, 3, S, S)`` on the model's device."""
        device = self.mean.device
        images = torch.as_tensor(crops).to(device, non_blocking=True)
        images = images.permute(0, 3, 1, 2).float().div_(255.0)
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        images = (images - self.mean) / self.std
        return images.contiguous(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        network = self._compiled if self._compiled is not None else self.network
        return network(images).reshape(images.shape[0], -1)[:, 0]

    def set_video_norm(self, blocks: int | None) -> "FaceClassifier":
        """Per-video normalisation (test-time AdaBN): the BatchNorm layers of the stem and of the first ``blocks``
        blocks normalise with the statistics of the crops passed together to :meth:`predict_proba` (one video's
        faces) instead of their training statistics; ``None`` turns it off. Only the early layers adapt: they hold
        the source's colour, noise and compression, which shift a whole source's scores, while the later layers
        keep what was learnt. EfficientNet-style networks (``conv_stem``, ``bn1``, ``blocks``) only."""
        if blocks is None or blocks < 0:
            self.video_norm_blocks = None
            return self
        try:
            self.early_norm_layers(blocks)
        except ValueError as exc:
            raise ValueError(f"per-video normalisation: {exc}; leave video_norm_blocks unset for this member") from None
        self.video_norm_blocks = int(blocks)
        return self

    def video_norm_layers(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm layers that per-video normalisation adapts (empty when it is off)."""
        if self.video_norm_blocks is None:
            return []
        return self.early_norm_layers(self.video_norm_blocks)

    def early_norm_layers(self, blocks: int) -> list[nn.BatchNorm2d]:
        """The BatchNorm layers of the stem and of the first ``blocks`` blocks (EfficientNet-style networks)."""
        if getattr(self.spec, "sequence_length", 0) or not all(
                hasattr(self.network, a) for a in ("conv_stem", "bn1", "blocks")):
            raise ValueError(f"{self.spec.name}: adapting the early BatchNorm layers needs an EfficientNet-style "
                             f"network (conv_stem, bn1, blocks)")
        if not 0 <= blocks <= len(self.network.blocks):
            raise ValueError(f"{self.spec.name} has {len(self.network.blocks)} blocks: give 0 to "
                             f"{len(self.network.blocks)}, not {blocks}")
        modules = [self.network.bn1] + list(self.network.blocks)[:blocks]
        return [m for module in modules for m in module.modules() if isinstance(m, nn.BatchNorm2d)]

    @torch.no_grad()
    def adapt_batchnorm(self, crops: np.ndarray, blocks: int | None, batch_size: int = 32, seed: int = 0) -> int:
        """Test-set BatchNorm statistics (AdaBN, Li et al. 2016): the running mean and variance of the stem's and
        the first ``blocks`` blocks' BatchNorm layers (``None``: every BatchNorm layer, any architecture) become
        their average over ``crops``, faces of many videos of the set to be scored, so what those videos share
        (the source's camera, compression, light) is taken out while the differences between them stay; unlike
        per-video normalisation the statistics are fixed afterwards. Each layer's statistics are the average of
        its batches' (shuffled batches of ``batch_size``), as BatchNorm's cumulative running average computes
        them. Returns how many layers were re-estimated (none without crops)."""
        layers = (self.early_norm_layers(blocks) if blocks is not None
                  else [m for m in self.network.modules() if isinstance(m, nn.BatchNorm2d)])
        if len(crops) == 0 or not layers:
            return 0
        saved = [(m.momentum, m.training) for m in layers]
        self.eval()
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
            m.train()
        try:
            order = np.random.default_rng(seed).permutation(len(crops))
            for start in range(0, len(order), batch_size):
                self.network(self.preprocess(crops[np.sort(order[start:start + batch_size])]))
        finally:
            for m, (momentum, training) in zip(layers, saved):
                m.momentum = momentum
                m.train(training)
        return len(layers)

    @contextmanager
    def _video_statistics(self):
        """Inside: the adapted layers use the batch's own statistics and leave their running statistics alone."""
        layers = self.video_norm_layers()
        saved = [(m.training, m.track_running_stats) for m in layers]
        for m in layers:
            m.train()
            m.track_running_stats = False
        try:
            yield
        finally:
            for m, (training, tracking) in zip(layers, saved):
                m.train(training)
                m.track_running_stats = tracking

    def compile_network(self, mode: str | None = None) -> "FaceClassifier":
        """Run the network through ``torch.compile`` from the next call on (compiled once, at the first batch).

        Batches are then padded to one fixed size, so the graph is built once; if compiling fails (no C++
        compiler, an unsupported op), the member logs why and runs eagerly, with the same answer.
        """
        # kept out of the module tree, so state_dict() and export see only the plain network
        if self.video_norm_blocks is not None:  # padding a batch would change its statistics
            log.warning("%s: per-video normalisation runs eagerly, not compiled", self.spec.name)
            return self
        self.__dict__["_compiled"] = torch.compile(self.network, mode=mode, dynamic=False)
        return self

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """P(FAKE) for each crop. With per-video normalisation (:meth:`set_video_norm`) ``crops`` are one video's
        faces and go through in one batch, whatever ``batch_size``: its statistics are the video's."""
        self.eval()
        out = []
        on_gpu = self.mean.device.type == "cuda"
        if self.video_norm_blocks is not None and len(crops):
            with self._video_statistics(), torch.autocast("cuda", dtype=torch.float16, enabled=on_gpu):
                return torch.sigmoid(self(self.preprocess(crops)).float()).cpu().numpy()
        for start in range(0, len(crops), batch_size):
            chunk = crops[start:start + batch_size]
            with torch.autocast("cuda", dtype=torch.float16, enabled=on_gpu):  # fp16 on GPU, float32 on CPU
                logits = self._logits(self.preprocess(chunk), batch_size)
            out.append(torch.sigmoid(logits.float()).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)

    def _logits(self, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``forward``; a compiled network gets every batch padded to ``batch_size`` (one graph for all)."""
        if self._compiled is None:
            return self(images)
        count = images.shape[0]
        if count < batch_size:
            pad = images[-1:].expand(batch_size - count, *images.shape[1:])
            images = torch.cat([images, pad]).contiguous(memory_format=torch.channels_last)
        try:
            return self(images)[:count]
        except Exception as exc:  # torch._dynamo / inductor errors surface at the first call
            log.warning("torch.compile failed for %s (%s: %s); running it eagerly", self.spec.name,
                        type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            self.__dict__["_compiled"] = None
            return self(images)[:count]


# ---------------------------------------------------------------------------------------------- sequences
def sequence_windows(length: int, size: int) -> list[np.ndarray]:
    """Positions of consecutive ``size``-crop windows covering a track of ``length`` crops: back to back, the last
    one ending at the track's end (overlapping its neighbour); a shorter track is repeated to fill one window."""
    if length <= 0:
        return []
    if length <= size:
        return [np.arange(size) % length]
    starts = list(range(0, length - size + 1, size))
    if starts[-1] + size < length:
        starts.append(length - size)
    return [np.arange(s, s + size) for s in starts]


def window_plan(track_ids: np.ndarray, size: int) -> list[np.ndarray]:
    """Crop indices of every window, track by track (a track's crops in their given order)."""
    track_ids = np.asarray(track_ids)
    _, first = np.unique(track_ids, return_index=True)
    plan = []
    for track in track_ids[np.sort(first)]:
        rows = np.flatnonzero(track_ids == track)
        plan += [rows[w] for w in sequence_windows(len(rows), size)]
    return plan


def spread_window_probs(count: int, windows: list[np.ndarray], probs: np.ndarray) -> np.ndarray:
    """Per-crop probability: the mean over the windows that hold the crop (each window counted once per crop)."""
    total, hits = np.zeros(count), np.zeros(count)
    for rows, p in zip(windows, probs):
        rows = np.unique(rows)
        total[rows] += p
        hits[rows] += 1
    return (total / np.maximum(hits, 1)).astype(np.float32)


class SequenceClassifier(FaceClassifier):
    """A detector reading ``spec.sequence_length`` consecutive crops of one face track at once.

    ``forward`` takes normalised ``(N, T, 3, S, S)`` windows and returns one logit per window.
    :meth:`predict_proba` keeps the registry's per-crop contract: crops are cut into windows (per track when
    ``track_ids`` is given, else all crops are taken as one track), and each crop gets the probability of the
    window(s) holding it, so that the usual face → track → video rule applies unchanged.
    """

    @property
    def sequence_length(self) -> int:
        return self.spec.sequence_length

    def preprocess(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W, 3)`` crops → ``(N, 3, S, S)``, or ``(N, T, H, W, 3)`` windows → ``(N, T, 3, S, S)``."""
        crops = torch.as_tensor(crops)
        if crops.ndim == 5:
            n, t = crops.shape[:2]
            images = super().preprocess(crops.reshape(n * t, *crops.shape[2:]))
            return images.contiguous().reshape(n, t, *images.shape[1:])
        return super().preprocess(crops).contiguous()

    @torch.inference_mode()
    def predict_proba(self, crops: np.ndarray, batch_size: int = 16, track_ids: np.ndarray | None = None) -> np.ndarray:
        """P(FAKE) for each crop, from the windows of its track (``track_ids``: one id per crop, crops of a track
        in frame order; ``None``: all crops are one track)."""
        self.eval()
        if len(crops) == 0:
            return np.zeros(0, dtype=np.float32)
        track_ids = np.zeros(len(crops), np.int64) if track_ids is None else np.asarray(track_ids)
        windows = window_plan(track_ids, self.sequence_length)
        per_batch = max(1, batch_size // self.sequence_length)
        probs = []
        for start in range(0, len(windows), per_batch):
            chunk = np.stack([crops[w] for w in windows[start:start + per_batch]])
            probs.append(torch.sigmoid(self(self.preprocess(chunk))).float().cpu())
        return spread_window_probs(len(crops), windows, torch.cat(probs).numpy())
