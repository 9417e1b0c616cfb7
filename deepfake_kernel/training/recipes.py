"""Training recipes: one table, member by member and preset by preset, that refuses a member it has no recipe for."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DEFAULT_MEMBERS = ["efficientnet_lite0", "resnet50", "xception"]


@dataclass(frozen=True)
class MemberRecipe:
    """Per-member training settings of a preset."""

    input_size: int
    epochs: int
    samples_per_epoch: int  # 0: every training crop once per epoch
    batch_size: int
    lr: float
    body_lr_mult: float  # body learning rate = lr × this (discriminative learning rates)


_ENSEMBLE: dict[str, dict[str, MemberRecipe]] = {
    # sized to finish on a 2-core CPU inside a working session (docs/cross_family.md has the measured wall time)
    "cpu": {
        "efficientnet_lite0": MemberRecipe(224, 3, 2048, 32, 1e-3, 0.5),
        "efficientnet_lite1": MemberRecipe(224, 3, 2048, 32, 1e-3, 0.5),
        "efficientnet_lite2": MemberRecipe(224, 3, 1024, 32, 1e-3, 0.5),
        "efficientnet_lite0_patch": MemberRecipe(224, 3, 2048, 32, 1e-3, 0.5),
        "efficientnet_lite0_srm": MemberRecipe(224, 3, 2048, 32, 1e-3, 0.5),
        "resnet50": MemberRecipe(96, 2, 800, 32, 1e-3, 1.0),
        "xception": MemberRecipe(96, 2, 640, 32, 1e-3, 1.0),
    },
    "gpu": {
        "efficientnet_lite0": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "efficientnet_lite1": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "efficientnet_lite2": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "efficientnet_lite0_patch": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "efficientnet_lite0_srm": MemberRecipe(224, 20, 0, 64, 1e-3, 0.25),
        "resnet50": MemberRecipe(224, 30, 0, 64, 1e-3, 1.0),
        "xception": MemberRecipe(299, 30, 0, 48, 1e-3, 1.0),
    },
}

# The reference detectors' recipes (fields of MemberRecipe). For sequence members,
# samples_per_epoch and batch_size count windows; epochs is the embedder's for temporal_* (the head then trains
# for sequence.HEAD_EPOCHS). The linear baselines ignore everything but input_size.
_ZOO: dict[str, dict[str, dict]] = {
    "cpu": {  # sized for a 2-core CPU: all rows in ~15 min when the machine is otherwise idle (see docs/)
        "meso4": dict(input_size=160, epochs=8, samples_per_epoch=1600, batch_size=32, lr=1e-3, body_lr_mult=1.0),
        "mesoinception4": dict(input_size=160, epochs=8, samples_per_epoch=1600, batch_size=32, lr=1e-3,
                               body_lr_mult=1.0),
        "compact_cnn": dict(input_size=252, epochs=8, samples_per_epoch=1600, batch_size=32, lr=1e-3,
                            body_lr_mult=1.0),
        "efficientnet_mlp": dict(input_size=128, epochs=5, samples_per_epoch=2000, batch_size=32, lr=1e-3,
                                 body_lr_mult=0.1),
        "efficientnet_b5_mlp": dict(input_size=128, epochs=3, samples_per_epoch=1000, batch_size=16, lr=1e-3,
                                    body_lr_mult=0.1),
        "logreg": dict(input_size=32, epochs=1, samples_per_epoch=0, batch_size=256, lr=0.0, body_lr_mult=1.0),
        "linear_svm": dict(input_size=32, epochs=1, samples_per_epoch=0, batch_size=256, lr=0.0, body_lr_mult=1.0),
        "temporal_lstm": dict(input_size=96, epochs=3, samples_per_epoch=0, batch_size=6, lr=1e-3, body_lr_mult=0.25),
        "temporal_mlp": dict(input_size=96, epochs=3, samples_per_epoch=0, batch_size=6, lr=1e-3, body_lr_mult=0.25),
        "resnet3d": dict(input_size=96, epochs=10, samples_per_epoch=0, batch_size=8, lr=1e-3, body_lr_mult=1.0),
        "stacked_xception": dict(input_size=112, epochs=8, samples_per_epoch=0, batch_size=8, lr=1e-3,
                                 body_lr_mult=1.0),
    },
    "gpu": {
        "meso4": dict(input_size=256, epochs=40, samples_per_epoch=0, batch_size=64, lr=1e-3, body_lr_mult=1.0),
        "mesoinception4": dict(input_size=256, epochs=40, samples_per_epoch=0, batch_size=64, lr=1e-3,
                               body_lr_mult=1.0),
        "compact_cnn": dict(input_size=252, epochs=40, samples_per_epoch=0, batch_size=64, lr=5e-4, body_lr_mult=1.0),
        "efficientnet_mlp": dict(input_size=224, epochs=20, samples_per_epoch=0, batch_size=64, lr=1e-3,
                                 body_lr_mult=0.1),
        "efficientnet_b5_mlp": dict(input_size=456, epochs=20, samples_per_epoch=0, batch_size=16, lr=1e-3,
                                    body_lr_mult=0.1),
        "logreg": dict(input_size=32, epochs=1, samples_per_epoch=0, batch_size=256, lr=0.0, body_lr_mult=1.0),
        "linear_svm": dict(input_size=32, epochs=1, samples_per_epoch=0, batch_size=256, lr=0.0, body_lr_mult=1.0),
        "temporal_lstm": dict(input_size=224, epochs=20, samples_per_epoch=0, batch_size=8, lr=1e-3,
                              body_lr_mult=0.25),
        "temporal_mlp": dict(input_size=224, epochs=20, samples_per_epoch=0, batch_size=8, lr=1e-3, body_lr_mult=0.25),
        "resnet3d": dict(input_size=112, epochs=40, samples_per_epoch=0, batch_size=16, lr=1e-3, body_lr_mult=1.0),
        "stacked_xception": dict(input_size=224, epochs=30, samples_per_epoch=0, batch_size=16, lr=1e-3,
                                 body_lr_mult=1.0),
    },
}


def _build_presets() -> dict[str, dict[str, MemberRecipe]]:
    presets = {name: dict(table) for name, table in _ENSEMBLE.items()}
    for name, table in _ZOO.items():
        presets[name].update({member: MemberRecipe(**fields) for member, fields in table.items()})
    # for tests and smoke runs: every member small
    presets["tiny"] = {member: MemberRecipe(48, 2, 64, 16, 1e-3, 1.0) for member in presets["cpu"]}
    return presets


PRESETS: dict[str, dict[str, MemberRecipe]] = _build_presets()


def recipe_for(preset: str, member: str, **overrides) -> MemberRecipe:
    """``member``'s recipe in ``preset`` with ``overrides`` (fields of :class:`MemberRecipe`) applied.

    An unknown preset or a member without a recipe there is a configuration error, not a silent default."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
    if member not in PRESETS[preset]:
        raise ValueError(f"no {preset!r} recipe for detector {member!r}; recipes exist for "
                         f"{', '.join(sorted(PRESETS[preset]))} (add one to deepfake_kernel/training/recipes.py)")
    return dataclasses.replace(PRESETS[preset][member], **overrides)
