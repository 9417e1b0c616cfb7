"""Face detectors: a leaf registry (:mod:`.registry`), the classifier contract (:mod:`.classifier`), the factory
(:func:`create_model`), checkpoints (:mod:`.weights`) and the detectors, which register themselves on import:
:mod:`.backbones` (the ensemble's timm members) and :mod:`.zoo` (the reference studies' detectors)."""
from . import backbones, zoo  # noqa: F401  (they register themselves on import)
from .classifier import FaceClassifier, SequenceClassifier
from .factory import create_model
from .registry import DetectorSpec, get_spec, list_detectors, register_detector

__all__ = ["DetectorSpec", "FaceClassifier", "SequenceClassifier", "create_model", "get_spec", "list_detectors",
           "register_detector"]
