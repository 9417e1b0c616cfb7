"""Checkpoints: export members to safetensors, describe them in ``manifest.json``, verify and load them.

``manifest.json`` lists the ensemble members (registry name, timm architecture, input size, normalisation,
file, sha256, storage dtype, training command, metrics, ensemble weight) and the post-processing (clip range,
calibration). Storage is ``float32``, ``float16`` or ``int8`` (symmetric, per output channel, with a float32
scale per channel), which keeps the three members small enough to ship in the repository.
Loading verifies every sha256 first and never touches the network.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_bytes
from .classifier import FaceClassifier
from .factory import create_model
from .registry import get_spec

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
STORAGE_DTYPES = ("float32", "float16", "int8")
_SCALE_SUFFIX = "::int8_scale"
# int8 storage keeps weights of fewer values in float16: quantised, the learned-cue network's first depthwise
# convolution (288 weights) alone moved its cue 0.39 logit on average (docs/cross_family.md, thirty-eighth session)
INT8_MIN_ELEMENTS = 4096
GET_WEIGHTS_HINT = ("Use the weights shipped in the repository's weights/ folder (--weights PATH/TO/weights), "
                    "or rebuild them with `python -m deepfake_kernel.train` (see README, 'Training').")


class WeightsError(RuntimeError):
    """A weights folder that cannot be used; the message says what to do."""


@dataclass
class MemberEntry:
    """One ensemble member as recorded in the manifest."""

    name: str
    detector: str
    arch: str
    input_size: int
    mean: list[float]
    std: list[float]
    file: str
    sha256: str
    storage_dtype: str
    ensemble_weight: float = 1.0
    training_command: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # per-video normalisation of the stem and this many blocks (FaceClassifier.set_video_norm); None: off
    video_norm_blocks: int | None = None
    # test-set BatchNorm statistics of the stem and this many blocks, re-estimated by predict on faces of the
    # videos it scores before scoring them (FaceClassifier.adapt_batchnorm); None: off
    test_set_norm_blocks: int | None = None
    # what the network reads: "face" crops (an ensemble member), or "residual" images of face pairs (the learned
    # temporal cue's network, pipeline.temporal.residual_image; loaded through calibration["temporal_cue"] only)
    input: str = "face"


@dataclass
class Manifest:
    """The contents of ``manifest.json``."""

    members: list[MemberEntry] = field(default_factory=list)
    clip: dict[str, float] = field(default_factory=lambda: {"lo": 0.01, "hi": 0.99})
    calibration: dict[str, float] = field(default_factory=lambda: {"temperature": 1.0, "bias": 0.0})
    # calibration and clip for runs with fewer members (the light preset, --models): key "a+b", names sorted
    calibration_by_members: dict[str, dict[str, Any]] = field(default_factory=dict)
    stacking: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def member(self, name: str) -> MemberEntry:
        for entry in self.members:
            if entry.name == name:
                return entry
        raise KeyError(f"no member {name!r}; members: {', '.join(m.name for m in self.members)}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        data = dict(data)
        members = [MemberEntry(**m) for m in data.pop("members", [])]
        return cls(members=members, **data)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encode_state_dict(state: dict[str, torch.Tensor], storage_dtype: str) -> dict[str, torch.Tensor]:
    """Convert float tensors to the storage dtype. int8 quantises each weight of ≥ 2 dims and at least
    ``INT8_MIN_ELEMENTS`` values with one scale per output channel; smaller weights stay float16, 1-d tensors float32."""
    if storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"storage dtype must be one of {STORAGE_DTYPES}, not {storage_dtype!r}")
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        if not tensor.is_floating_point() or storage_dtype == "float32":
            out[key] = tensor
        elif storage_dtype == "float16":
            out[key] = tensor.to(torch.float16)
        elif tensor.ndim < 2:
            out[key] = tensor.float()  # int8 storage keeps 1-d tensors (biases, norms) in float32: they are tiny
        elif tensor.numel() < INT8_MIN_ELEMENTS:
            out[key] = tensor.to(torch.float16)  # and weights too small to be worth quantising in float16
        else:
            flat = tensor.float().reshape(tensor.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            out[key] = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(tensor.shape)
            out[key + _SCALE_SUFFIX] = scale
    return out


def decode_state_dict(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_state_dict`: float32 tensors (int8 tensors dequantised)."""
    out = {}
    for key, tensor in stored.items():
        if key.endswith(_SCALE_SUFFIX):
            continue
        scale = stored.get(key + _SCALE_SUFFIX)
        if scale is not None:
            shape = tensor.shape
            out[key] = (tensor.reshape(shape[0], -1).float() * scale[:, None].float()).reshape(shape)
        elif tensor.is_floating_point():
            out[key] = tensor.float()
        else:
            out[key] = tensor
    return out


def read_manifest(weights_dir: str | Path) -> Manifest:
    """Parse ``manifest.json``; raise :class:`WeightsError` with advice when it is missing or malformed."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise WeightsError(f"weights folder {weights_dir} does not exist. {GET_WEIGHTS_HINT}")
    path = weights_dir / MANIFEST_NAME
    if not path.is_file():
        raise WeightsError(f"{weights_dir} has no {MANIFEST_NAME}, so it holds no usable checkpoints. "
                           f"{GET_WEIGHTS_HINT}")
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise WeightsError(f"{path} is not a valid manifest ({exc}). Restore it from the repository or "
                           f"re-export the members with `python -m deepfake_kernel.train`.") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise WeightsError(f"{path} has format version {manifest.format_version}; this deepfake_kernel reads "
                           f"version {FORMAT_VERSION}. Use weights exported by the same release.")
    return manifest


def write_manifest(manifest: Manifest, weights_dir: str | Path) -> None:
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(weights_dir / MANIFEST_NAME, manifest.to_json().encode())


def export_member(model: FaceClassifier, weights_dir: str | Path, name: str | None = None,
                  storage_dtype: str = "float16", ensemble_weight: float = 1.0, training_command: str = "",
                  metrics: dict | None = None, training: dict | None = None, reads: str = "face") -> MemberEntry:
    """Save ``model`` as ``<name>.safetensors`` and add (or replace) its entry in the folder's manifest (``reads``:
    the entry's ``input``, "residual" for the learned temporal cue's network)."""
    from safetensors.torch import save

    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    name = name or spec.name
    state = {k: v for k, v in model.network.state_dict().items()}
    payload = save(encode_state_dict(state, storage_dtype),
                   # one key: safetensors writes metadata in hash order, and the file must be reproducible
                   metadata={"deepfake_kernel": json.dumps({"detector": spec.name, "arch": spec.arch,
                                                            "storage_dtype": storage_dtype}, sort_keys=True)})
    file_name = f"{name}.safetensors"
    atomic_write_bytes(weights_dir / file_name, payload)
    entry = MemberEntry(name=name, detector=spec.name, arch=spec.arch, input_size=spec.input_size,
                        mean=list(spec.mean), std=list(spec.std), file=file_name,
                        sha256=hashlib.sha256(payload).hexdigest(), storage_dtype=storage_dtype,
                        ensemble_weight=float(ensemble_weight), training_command=training_command,
                        metrics=dict(metrics or {}), training=dict(training or {}), input=reads)
    manifest = read_manifest(weights_dir) if (weights_dir / MANIFEST_NAME).is_file() else Manifest()
    previous = next((m for m in manifest.members if m.name == name), None)
    if previous is None or previous.sha256 != entry.sha256:
        forget_fits(manifest, name)
    else:  # the same bytes: the fits kept were made with its test-time setting, which stays too
        entry.video_norm_blocks = previous.video_norm_blocks
        entry.test_set_norm_blocks = previous.test_set_norm_blocks
    manifest.members = [m for m in manifest.members if m.name != name] + [entry]
    write_manifest(manifest, weights_dir)
    return entry


def forget_fits(manifest: Manifest, name: str) -> None:
    """Drop what ``evaluate`` fitted on the scores of member ``name`` (a new or changed checkpoint): the main
    calibration and clip (fitted for every member together), the fits of member sets holding ``name``, and a
    stacker that reads it. Re-exporting identical bytes keeps them."""
    manifest.calibration = {"temperature": 1.0, "bias": 0.0}
    manifest.clip = {"lo": 0.01, "hi": 0.99}
    manifest.calibration_by_members = {key: fit for key, fit in manifest.calibration_by_members.items()
                                       if name not in key.split("+")}
    if manifest.stacking and name in manifest.stacking.get("members", []):
        manifest.stacking = None


def check_member(entry: MemberEntry, weights_dir: str | Path) -> Path:
    """Verify that a member's file exists, matches its sha256 and names a known detector."""
    path = Path(weights_dir) / entry.file
    try:
        spec = get_spec(entry.detector)
    except KeyError as exc:
        raise WeightsError(f"manifest member {entry.name!r} names {exc.args[0]} Update deepfake_kernel or "
                           f"remove the member from {MANIFEST_NAME}.") from exc
    if spec.arch != entry.arch:
        raise WeightsError(f"manifest member {entry.name!r} says architecture {entry.arch!r}, but detector "
                           f"{entry.detector!r} is {spec.arch!r}; the checkpoint belongs to another release.")
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} (member {entry.name!r}) is missing. {GET_WEIGHTS_HINT}")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise WeightsError(f"checkpoint {path} fails its sha256 check (manifest {entry.sha256[:12]}…, file "
                           f"{actual[:12]}…): the file is corrupt or was replaced. Restore it (git checkout "
                           f"weights/) or re-export it with `python -m deepfake_kernel.train`.")
    return path


def load_member(entry: MemberEntry, weights_dir: str | Path, device: str | torch.device = "cpu") -> FaceClassifier:
    """Verify and load one member into an eval-mode :class:`FaceClassifier` on ``device``."""
    from safetensors.torch import load_file

    path = check_member(entry, weights_dir)
    model = create_model(entry.detector, input_size=entry.input_size)
    try:
        state = decode_state_dict(load_file(str(path)))
        model.network.load_state_dict(state)
    except Exception as exc:  # safetensors / torch raise several types for a mismatched file
        raise WeightsError(f"checkpoint {path} does not fit detector {entry.detector!r}: {exc}") from exc
    try:
        model.set_video_norm(entry.video_norm_blocks)
    except ValueError as exc:
        raise WeightsError(f"manifest member {entry.name!r}: video_norm_blocks: {exc}") from exc
    if entry.test_set_norm_blocks is not None:
        try:
            model.early_norm_layers(entry.test_set_norm_blocks)
        except ValueError as exc:
            raise WeightsError(f"manifest member {entry.name!r}: test_set_norm_blocks: {exc}") from exc
    return model.to(device).eval()


def select_members(manifest: Manifest, names: list[str] | None) -> list[MemberEntry]:
    """The members named in ``names``, with a clear error for unknown names; when ``None``, every member with a
    positive ensemble weight (a zero-weight member adds nothing to the score, so it is not even loaded; name it
    in ``names`` to run it anyway), or all of them if none has weight."""
    faces = [m for m in manifest.members if m.input == "face"]
    if not faces:
        raise WeightsError(f"the manifest lists no members. {GET_WEIGHTS_HINT}")
    if not names:
        weighted = [m for m in faces if m.ensemble_weight > 0]
        return weighted or faces
    known = {m.name: m for m in faces}
    missing = [n for n in names if n not in known]
    if missing:
        cue = [n for n in missing if n in {m.name for m in manifest.members}]
        if cue:
            raise WeightsError(f"--models names {cue}: the learned temporal cue's network, which reads face pairs, "
                               f"not faces (the manifest's temporal cue runs it); members: {sorted(known)}.")
        raise WeightsError(f"--models names {missing}, but the weights hold {sorted(known)}.")
    return [known[n] for n in names]
