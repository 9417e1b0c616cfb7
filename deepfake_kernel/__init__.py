"""deepfake_kernel: an offline DFDC-style deepfake video detector.

The tree is the pipeline:

* :mod:`.pipeline` — inference, one module per stage: ``video`` (frame reader) → ``faces`` (MTCNN cropper and
  tracks) → members → ``ensemble`` (video score and clipper) → ``submission``, paced by ``budget`` and guarded by
  ``watchdog``; ``detector`` ties the stages together, ``runner`` runs a folder of videos.
* :mod:`.detectors` — a leaf registry the detectors register themselves into, ``create_model``, checkpoints.
* :mod:`.training` — crop cache, augmentations, recipes, the one training core (``engine``) and its trainers.
* :mod:`.shipping` — the Kaggle utility dataset: resolver, notebook, offline venv, verification.
* Command lines, thin: ``predict``, ``train``, ``evaluate``, ``cross_family``, ``bench``, ``kaggle``, ``zoo_compare``.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Detector": "pipeline.detector", "VideoPrediction": "pipeline.detector",
    "create_model": "detectors", "list_detectors": "detectors", "register_detector": "detectors",
    "export_member": "detectors.weights", "read_manifest": "detectors.weights", "WeightsError": "detectors.weights",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    """Import submodules on first use, so ``import deepfake_kernel`` stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
