"""The one training core every trainer uses: processes, optimiser set-up, the epoch loop (which weights it keeps:
``--epoch-choice``) with checkpoint/resume, video-level validation metrics and the export step.

A trainer supplies what differs — how one epoch's batches are made and stepped (``run_epoch``) and how the model
is validated (``validate``) — and :func:`fit` does the rest, the same way for every member.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import metrics
from ..config import config_options, load_config
from ..detectors import SequenceClassifier, get_spec
from ..detectors.weights import decode_state_dict, encode_state_dict, export_member
from ..device import resolve_device
from ..files import atomic_path
from ..pipeline import ensemble
from .augment import AugmentConfig
from .data import FaceSamples

log = logging.getLogger("deepfake_kernel.train")


# ---------------------------------------------------------------------------------------------- processes
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Single process, or DDP when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    if world <= 1:
        return Dist(0, 1, device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world, device)


def barrier(env: Dist) -> None:
    if env.world > 1:
        import torch.distributed as dist
        dist.barrier()


def single_process(env: Dist, name: str) -> None:
    if env.world > 1:
        raise ValueError(f"{name} trains in one process: run train without torchrun for it")


# ---------------------------------------------------------------------------------------------- the job
@dataclass
class Job:
    """What every trainer of one ``train`` run shares: its options, augmentations, processes and provenance."""

    config: object  # run.TrainConfig
    augment: AugmentConfig
    env: Dist
    command: str
    data_fingerprint: str

    def recipe(self, member: str):
        return self.config.recipe(member)

    def member_dir(self, member: str, stage: str = "") -> Path:
        path = Path(self.config.work_dir) / member / stage
        path.mkdir(parents=True, exist_ok=True)
        return path


# ---------------------------------------------------------------------------------------------- optimisation
def split_body_head(network: torch.nn.Module, head: torch.nn.Module) -> tuple[list, list]:
    """Parameters of ``network`` outside ``head``, and those of ``head``."""
    head_params = list(head.parameters())
    head_ids = {id(p) for p in head_params}
    return [p for p in network.parameters() if id(p) not in head_ids], head_params


def one_cycle(body: list, head: list, recipe, weight_decay: float, total_steps: int):
    """AdamW with the body at ``recipe.body_lr_mult`` × the head's rate, under a one-cycle schedule."""
    rates = [recipe.lr * recipe.body_lr_mult, recipe.lr]
    groups = [{"params": params, "lr": lr} for params, lr in zip((body, head), rates) if params]
    optimizer = torch.optim.AdamW(groups, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in groups],
                                                    total_steps=max(1, total_steps), pct_start=0.2)
    return optimizer, scheduler


def optimizer_step(loss: torch.Tensor, optimizer, scheduler=None) -> float:
    """Backpropagate ``loss``, step the optimizer and the schedule (if any); return the loss value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


def sam_step(batch_loss: Callable[[], tuple], module: torch.nn.Module, optimizer, scheduler, rho: float) -> tuple:
    """One sharpness-aware minimisation step (Foret et al. 2021): the gradient at ``w``, a move to
    ``w + rho * g / ||g||`` (the worst point of that radius to first order), the gradient there, back to ``w``, and
    ``optimizer`` steps with that second gradient. ``batch_loss()`` runs ``module`` and returns a tuple whose first
    item is the loss; the first pass's tuple is returned (the loss at ``w``, what plain training would report).
    BatchNorm layers update their running statistics in the first pass only."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    first = batch_loss()
    first[0].backward()
    with torch.no_grad():
        grads = [(p, p.grad) for p in params if p.grad is not None]
        norm = float(torch.norm(torch.stack([g.norm(2) for _, g in grads]), 2)) if grads else 0.0
        moves = [(p, g * (rho / (norm + 1e-12))) for p, g in grads]
        for p, move in moves:
            p.add_(move)
    optimizer.zero_grad(set_to_none=True)
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: this pass leaves the statistics as they are
    try:
        batch_loss()[0].backward()
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    with torch.no_grad():
        for p, move in moves:
            p.sub_(move)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return first


def _save(obj, path: Path) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(obj, tmp)


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class FitResult:
    history: list = field(default_factory=list)
    best_epoch: int = -1
    epochs_run: int = 0
    averaged_steps: int = 0  # with ``--epoch-choice average``: how many optimizer steps' weights were averaged


class WeightAverage:
    """Running mean of a module's floating-point weights and buffers, one update per optimizer step (stochastic
    weight averaging, Izmailov et al. 2018; dense over the late schedule as in SWAD, Cha et al. 2021). Integer
    buffers (BatchNorm's step counters) are not averaged: the module's current ones are kept."""

    def __init__(self):
        self.mean: dict[str, torch.Tensor] = {}
        self.count = 0

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.count += 1
        for key, value in module.state_dict().items():
            if not value.is_floating_point():
                continue
            if key not in self.mean:
                self.mean[key] = value.detach().clone()
            else:
                self.mean[key].add_(value.detach() - self.mean[key], alpha=1.0 / self.count)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.count = dict(state["mean"]), int(state["count"])

    def averaged(self, module: torch.nn.Module) -> dict:
        """``module``'s state dict with the averaged tensors in place of its own."""
        return {key: self.mean.get(key, value) for key, value in module.state_dict().items()}


def fit(name: str, module: torch.nn.Module, optimizer, scheduler, epochs: int, run_epoch: Callable[[int], dict],
        validate: Callable[[], dict] | None, job: Job, stage: str = "", patience: int | None = None,
        resume_key: dict | None = None) -> FitResult:
    """Train ``module`` for up to ``epochs`` epochs and leave it at the weights ``config.epoch_choice`` names.

    ``run_epoch(epoch)`` trains one epoch and returns its statistics (e.g. ``{"train_loss": ...}``);
    ``validate()`` returns video-level metrics, recorded per epoch. ``config.epoch_choice`` says which weights the
    module is left at: ``"last"`` (default) the schedule's last epoch; ``"monitor"`` the epoch with the best val
    ``log_loss``, stopping after ``patience`` epochs without improvement (without ``validate``, the last);
    ``"average"`` the mean of the weights after every optimizer step of the last ``config.average_epochs`` epochs
    (validation scores the raw weights). Every epoch ends
    with a checkpoint (``last.pt``: module, optimiser, schedule, history, RNG); with ``--resume`` a run killed
    mid-way continues from it, provided ``resume_key`` (default: the member's recipe) is unchanged. With
    ``config.keep_epochs`` each epoch's weights also stay (``epoch_NNN.pt``), for out-of-family learning curves.
    """
    env, config = job.env, job.config
    resume_key = dataclasses.asdict(job.recipe(name)) if resume_key is None else resume_key
    patience = config.patience if patience is None else patience
    folder = job.member_dir(name, stage)
    label = f"{name} {stage}".strip()
    state = {"epoch": 0, "history": [], "best_log_loss": float("inf"), "best_epoch": -1, "bad_epochs": 0}
    last, best = folder / "last.pt", folder / "best.pt"
    choice = getattr(config, "epoch_choice", "last")
    average = WeightAverage() if choice == "average" else None
    first_averaged_epoch = max(0, epochs - getattr(config, "average_epochs", 2))
    if config.resume and last.is_file():
        saved = torch.load(last, map_location="cpu", weights_only=False)
        saved_average = saved.get("average") or {}
        average_lost = (average is not None and saved["state"]["epoch"] > first_averaged_epoch
                        and saved_average.get("first_epoch") != first_averaged_epoch)
        if average_lost:
            log.warning("%s: %s lacks the weight average from epoch %d on; starting over", label, last,
                        first_averaged_epoch + 1)
        elif saved.get("key") == resume_key:
            module.load_state_dict(saved["model"])
            if average is not None and saved_average.get("first_epoch") == first_averaged_epoch:
                average.load_state_dict(saved_average)
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(saved["scheduler"])
            state = saved["state"]
            torch.set_rng_state(saved["torch_rng"])
            log.info("%s: resumed after epoch %d", label, state["epoch"])
        else:
            log.warning("%s: %s was made with another recipe; starting over", label, last)
    keep_last = choice in ("last", "average")
    stopped = not keep_last and state["bad_epochs"] >= patience  # a resumed run that had already stopped early
    averaging = [False]  # read by the step hook: is this epoch inside the averaged window?
    hook = None
    if average is not None:
        hook = optimizer.register_step_post_hook(lambda *_: average.update(module) if averaging[0] else None)
    while state["epoch"] < epochs and not stopped:
        epoch = state["epoch"]
        started = time.perf_counter()
        averaging[0] = average is not None and epoch >= first_averaged_epoch
        record = {"epoch": epoch + 1, **({"stage": stage} if stage else {}), **run_epoch(epoch)}
        averaging[0] = False
        val = validate() if validate is not None else None
        record["seconds"] = round(time.perf_counter() - started, 1)
        record.update({f"val_{k}": v for k, v in (val or {}).items()})
        state["history"].append(record)
        if env.main:
            log.warning("%s epoch %d/%d: %s", label, epoch + 1, epochs, json.dumps(record))
        if val is None or keep_last or val["log_loss"] < state["best_log_loss"]:
            state.update(best_log_loss=val["log_loss"] if val and not keep_last else state["best_log_loss"],
                         best_epoch=epoch + 1, bad_epochs=0)
            if env.main:
                _save(module.state_dict(), best)
        else:
            state["bad_epochs"] += 1
            stopped = state["bad_epochs"] >= patience
        state["epoch"] = epoch + 1
        if env.main and config.keep_epochs:
            _save(module.state_dict(), folder / f"epoch_{epoch + 1:03d}.pt")
        if env.main:
            _save({"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict() if scheduler is not None else None,
                               "state": state, "key": resume_key, "torch_rng": torch.get_rng_state(),
                               "command": job.command,
                               "average": {**average.state_dict(), "first_epoch": first_averaged_epoch}
                               if average is not None else None}, last)
        barrier(env)
    if hook is not None:
        hook.remove()
    if average is not None and average.count:
        if env.main:
            _save(average.averaged(module), best)
        barrier(env)
    if best.is_file():
        module.load_state_dict(torch.load(best, map_location=env.device, weights_only=True))
    return FitResult(state["history"], state["best_epoch"], state["epoch"],
                     averaged_steps=average.count if average is not None else 0)


# ---------------------------------------------------------------------------------------------- metrics
def video_metrics(face_probs: np.ndarray, samples: FaceSamples) -> tuple[dict, np.ndarray, np.ndarray]:
    """Video-level metrics with the predict rule (bystanders' faces left out); also the per-video labels and
    scores."""
    scored = samples.scored_by_predict()
    scores = ensemble.aggregate_videos(face_probs[scored], samples.video[scored], samples.track[scored])
    ids = sorted(scores)
    labels = np.array([samples.videos[i].label for i in ids])
    probs = np.array([scores[i] for i in ids])
    return metrics.summarize(labels, probs, clip=(0.01, 0.99)), labels, probs


def track_ids(samples: FaceSamples) -> np.ndarray:
    """One id per crop naming its (video, track); what :meth:`SequenceClassifier.predict_proba` groups by."""
    return samples.video * 100_000 + samples.track


def face_probabilities(model, samples: FaceSamples) -> np.ndarray:
    """P(FAKE) per crop of ``samples`` (a sequence member reads each track's windows)."""
    model.eval()
    if isinstance(model, SequenceClassifier):
        return model.predict_proba(samples.crops, batch_size=4 * model.sequence_length, track_ids=track_ids(samples))
    return model.predict_proba(samples.crops, batch_size=64)


def validator(model, val: FaceSamples) -> Callable[[], dict]:
    """``validate`` for :func:`fit`: the video metrics of ``model`` on the val crops."""
    return lambda: video_metrics(face_probabilities(model, val), val)[0]


# ---------------------------------------------------------------------------------------------- export
def storage_dtype_for(name: str, config) -> str:
    """``auto``: int8 per channel, except EfficientNet-Lite, whose int8 copy moved some val crops' P(FAKE) by up
    to 0.96 (measured: runs/train/report.json, storage_max_abs_prob_diff); float16 keeps it within 1e-3."""
    if config.storage_dtype != "auto":
        return config.storage_dtype
    # by architecture, so that detectors built on an EfficientNet-Lite (zoo's efficientnet_mlp, temporal_*) follow
    return "float16" if get_spec(name).arch.startswith("efficientnet_lite") else "int8"


def init_record(target: str, config_class: type) -> dict:
    """Where a member started (``--init NAME=TARGET``), for its manifest: the file's path and sha256 and, for a
    checkpoint of this tool (``work/MEMBER/last.pt``), the command that trained it — saved in the checkpoint, or
    rebuilt from its run's ``train_config.json`` — so that a model trained in stages names every stage."""
    if target == "hub":
        return {"source": "timm hub (pretrained download)"}
    path = Path(target)
    record = {"path": path.as_posix(), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    config_file, augment_file = path.parent.parent / "train_config.json", path.parent.parent / "augment_config.json"
    saved = None
    if path.suffix in (".pt", ".pth"):
        try:  # unpickled in full only inside this tool's own work folder; anything else as plain tensors
            saved = torch.load(path, map_location="cpu", weights_only=not config_file.is_file())
        except Exception:  # noqa: BLE001 - not a checkpoint of this tool: path and sha256 are the record
            saved = None
    command = saved.get("command") if isinstance(saved, dict) else None
    if not command and isinstance(saved, dict) and "key" in saved and config_file.is_file():
        options = config_options(load_config(config_class, config_file), skip=("resume", "keep_epochs"))
        if augment_file.is_file():
            options += config_options(load_config(AugmentConfig, augment_file), prefix="aug")
        command = "python -m deepfake_kernel.train " + shlex.join(options)
        record["command_from"] = config_file.parent.as_posix()
    if command:
        record["command"] = command
    if isinstance(saved, dict) and "state" in saved:
        record["epochs"] = saved["state"].get("epoch")
    return record


def finish_member(model, name: str, job: Job, val: FaceSamples, fitted: FitResult, extra: dict | None = None) -> dict:
    """Score the trained member on val in float32 and as stored, export it, save its val face probabilities."""
    config, recipe = job.config, job.recipe(name)
    fp32_probs = face_probabilities(model, val)
    fp32_metrics, _, _ = video_metrics(fp32_probs, val)
    storage_dtype = storage_dtype_for(name, config)
    model.network.load_state_dict(decode_state_dict(encode_state_dict(model.network.state_dict(), storage_dtype)))
    stored_probs = face_probabilities(model, val)
    stored_metrics, _, _ = video_metrics(stored_probs, val)
    provenance = {"averaged_steps": fitted.averaged_steps} if fitted.averaged_steps else {}
    inits = dict(item.split("=", 1) for item in getattr(config, "init", []))
    if name in inits:
        provenance["init"] = init_record(inits[name], type(config))
    report = {"member": name, "recipe": dataclasses.asdict(recipe), "best_epoch": fitted.best_epoch,
              "epochs_run": fitted.epochs_run, **provenance, "history": fitted.history, "val": stored_metrics,
              "val_float32": fp32_metrics,
              "storage_max_abs_prob_diff": round(float(np.abs(stored_probs - fp32_probs).max()), 6),
              "parameters": int(sum(p.numel() for p in model.network.parameters())), **(extra or {})}
    if job.env.main:
        export_member(model, config.out, name=name + config.member_suffix, storage_dtype=storage_dtype,
                      training_command=job.command,
                      metrics={"val_video": stored_metrics, "val_video_float32": fp32_metrics},
                      training={"preset": config.preset, "recipe": report["recipe"], "seed": config.seed,
                                "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs_run, **provenance,
                                "data_fingerprint": job.data_fingerprint, "history": fitted.history,
                                "augment": dataclasses.asdict(job.augment), **(extra or {})})
        np.save(job.member_dir(name) / "val_face_probs.npy", stored_probs)
    return report
