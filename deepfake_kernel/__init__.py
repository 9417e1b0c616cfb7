"""deepfake_kernel: an offline DFDC-style deepfake video detector.

Pipeline, one module per stage: :mod:`.video` (frame reader) → :mod:`.faces` (MTCNN face cropper and tracks)
→ :mod:`.models` (detector registry) with :mod:`.weights` (checkpoints and manifest) → :mod:`.ensemble`
(video score and clipper) → :mod:`.submission`, paced by :mod:`.budget`. :class:`Detector` ties them together.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Detector": "detector", "VideoPrediction": "detector",
    "create_model": "models", "list_detectors": "models", "register_detector": "models",
    "export_member": "weights", "read_manifest": "weights", "WeightsError": "weights",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    """Import submodules on first use, so ``import deepfake_kernel`` stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
