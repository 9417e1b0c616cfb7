"""The one training core: early stopping picks and restores the best epoch, a killed run resumes from its last
epoch with the same result, a changed recipe starts over."""
from types import SimpleNamespace

import pytest
import torch

from deepfake_kernel.training import engine
from deepfake_kernel.training.augment import AugmentConfig
from deepfake_kernel.training.recipes import MemberRecipe


def job(tmp_path, resume=False, patience=2, keep_epochs=False, epoch_choice="monitor"):
    config = SimpleNamespace(work_dir=str(tmp_path), patience=patience, resume=resume, keep_epochs=keep_epochs,
                             epoch_choice=epoch_choice, recipe=lambda name: MemberRecipe(8, 4, 0, 4, 0.1, 1.0))
    return engine.Job(config, AugmentConfig(), engine.Dist(), "test", "data")


def trainer(losses):
    """A linear module whose validation log loss follows ``losses`` epoch by epoch."""
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    seen = []

    def run_epoch(epoch):
        loss = module(torch.ones(4, 3)).pow(2).mean()
        engine.optimizer_step(loss, optimizer)
        return {"train_loss": float(loss.detach())}

    def validate():
        seen.append(module.weight.detach().clone())
        return {"log_loss": losses[len(seen) - 1]}

    return module, optimizer, run_epoch, validate, seen


def test_early_stopping_restores_the_best_epoch(tmp_path):
    module, optimizer, run_epoch, validate, seen = trainer([0.6, 0.5, 0.55, 0.58, 0.4])
    fitted = engine.fit("m", module, optimizer, None, 5, run_epoch, validate, job(tmp_path))
    assert fitted.epochs_run == 4 and fitted.best_epoch == 2  # two epochs without improvement: stop
    assert [r["epoch"] for r in fitted.history] == [1, 2, 3, 4]
    assert torch.equal(module.weight, seen[1])  # the module is left at its best epoch


def test_epoch_choice_last_keeps_the_schedules_last_epoch_and_still_records_val(tmp_path):
    module, optimizer, run_epoch, validate, seen = trainer([0.6, 0.5, 0.55, 0.58, 0.7])
    fitted = engine.fit("m", module, optimizer, None, 5, run_epoch, validate, job(tmp_path, epoch_choice="last"))
    assert fitted.epochs_run == 5 and fitted.best_epoch == 5  # no early stop, no pick by the monitor
    assert [r["val_log_loss"] for r in fitted.history] == [0.6, 0.5, 0.55, 0.58, 0.7]
    assert torch.equal(module.weight, seen[4])


def test_without_validation_every_epoch_runs_and_the_last_is_kept(tmp_path):
    module, optimizer, run_epoch, _, _ = trainer([])
    fitted = engine.fit("m", module, optimizer, None, 3, run_epoch, None, job(tmp_path), stage="embedder")
    assert fitted.epochs_run == 3 and fitted.best_epoch == 3
    assert (tmp_path / "m" / "embedder" / "last.pt").is_file()


def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    losses = [0.6, 0.5, 0.45, 0.44]
    module, optimizer, run_epoch, validate, _ = trainer(losses)
    reference = engine.fit("ref", module, optimizer, None, 4, run_epoch, validate, job(tmp_path))

    module, optimizer, run_epoch, validate, seen = trainer(losses)

    def killed(epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return run_epoch(epoch)

    with pytest.raises(KeyboardInterrupt):
        engine.fit("m", module, optimizer, None, 4, killed, validate, job(tmp_path), resume_key={"lr": 0.1})
    module, optimizer, run_epoch, validate, seen = trainer(losses[2:])
    resumed = engine.fit("m", module, optimizer, None, 4, run_epoch, validate, job(tmp_path, resume=True),
                         resume_key={"lr": 0.1})
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4] and len(seen) == 2  # only epochs 3 and 4 ran
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in reference.history])

    module, optimizer, run_epoch, validate, seen = trainer(losses)
    again = engine.fit("m", module, optimizer, None, 4, run_epoch, validate, job(tmp_path, resume=True),
                       resume_key={"lr": 0.2})  # another recipe: the checkpoint is not reused
    assert len(seen) == 4 and again.epochs_run == 4


def test_keep_epochs_keeps_each_epochs_weights_and_changes_nothing(tmp_path):
    losses = [0.6, 0.5, 0.55, 0.58, 0.4]
    module, optimizer, run_epoch, validate, seen = trainer(losses)
    kept = engine.fit("m", module, optimizer, None, 5, run_epoch, validate, job(tmp_path / "kept", keep_epochs=True))
    files = sorted((tmp_path / "kept" / "m").glob("epoch_*.pt"))
    assert [f.name for f in files] == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt", "epoch_004.pt"]
    for weights, file in zip(seen, files):  # each file holds that epoch's weights, not the best ones
        assert torch.equal(torch.load(file, weights_only=True)["weight"], weights)
    module2, optimizer2, run_epoch2, validate2, _ = trainer(losses)
    plain = engine.fit("m", module2, optimizer2, None, 5, run_epoch2, validate2, job(tmp_path / "plain"))
    assert not list((tmp_path / "plain" / "m").glob("epoch_*.pt"))
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in f.history] for f in (plain, kept)]
    assert untimed[0] == untimed[1] and plain.best_epoch == kept.best_epoch == 2
    assert torch.equal(module.weight, module2.weight)


def stepping_trainer(steps_per_epoch=3):
    """A linear module trained by several SGD steps an epoch; ``after_step`` holds its weights after each step."""
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    after_step = []

    def run_epoch(epoch):
        for step in range(steps_per_epoch):
            loss = (module(torch.ones(4, 3) * (1 + step)) - epoch).pow(2).mean()
            engine.optimizer_step(loss, optimizer)
            after_step.append(module.weight.detach().clone())
        return {"train_loss": float(loss.detach())}

    return module, optimizer, run_epoch, (lambda: {"log_loss": 0.5}), after_step


def test_epoch_choice_average_leaves_the_mean_of_the_last_epochs_steps(tmp_path):
    module, optimizer, run_epoch, validate, after_step = stepping_trainer()
    config = job(tmp_path, epoch_choice="average")
    config.config.average_epochs = 2
    fitted = engine.fit("m", module, optimizer, None, 4, run_epoch, validate, config)
    assert fitted.epochs_run == 4 and fitted.averaged_steps == 6  # epochs 3 and 4, three steps each
    expected = torch.stack(after_step[6:]).mean(0)
    assert torch.allclose(module.weight, expected, atol=1e-6)
    assert not torch.allclose(module.weight, after_step[-1])  # not the last step's weights
    assert torch.equal(torch.load(tmp_path / "m" / "best.pt", weights_only=True)["weight"], module.weight)


def test_an_averaged_run_killed_mid_way_resumes_to_the_same_average(tmp_path):
    module, optimizer, run_epoch, validate, _ = stepping_trainer()
    reference = job(tmp_path / "ref", epoch_choice="average")
    engine.fit("m", module, optimizer, None, 4, run_epoch, validate, reference)
    expected = module.weight.detach().clone()

    module, optimizer, run_epoch, validate, _ = stepping_trainer()

    def killed(epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return run_epoch(epoch)

    with pytest.raises(KeyboardInterrupt):  # killed inside the averaged window (epochs 3 and 4)
        engine.fit("m", module, optimizer, None, 4, killed, validate, job(tmp_path, epoch_choice="average"))
    module, optimizer, run_epoch, validate, _ = stepping_trainer()
    resumed = engine.fit("m", module, optimizer, None, 4, run_epoch, validate,
                         job(tmp_path, resume=True, epoch_choice="average"))
    assert resumed.averaged_steps == 6
    assert torch.allclose(module.weight, expected, atol=1e-6)


def test_weight_average_averages_floats_and_keeps_the_current_step_counters():
    average = engine.WeightAverage()
    norm = torch.nn.BatchNorm1d(2)
    for shift in (0.0, 2.0):
        norm.train()
        norm(torch.randn(8, 2) + shift)
        average.update(norm)
    merged = average.averaged(norm)
    assert merged["num_batches_tracked"] == 2  # the module's own counter, not an average
    assert torch.allclose(merged["running_mean"], average.mean["running_mean"])
    assert not torch.allclose(merged["running_mean"], norm.running_mean)


def test_sam_step_descends_with_the_gradient_at_the_perturbed_weights():
    """loss = w^4 / 4 at w = 1, rho = 0.5: the plain gradient is 1; SAM moves to w = 1.5 and steps with 1.5^3.
    BatchNorm statistics move in the first pass only."""
    w = torch.nn.Parameter(torch.tensor([1.0]))
    norm = torch.nn.BatchNorm1d(1).train()
    module = torch.nn.ModuleDict({"norm": norm})
    optimizer = torch.optim.SGD([w], lr=0.1)
    batch = torch.tensor([[2.0], [4.0]])

    def batch_loss():
        norm(batch)
        loss = (w ** 4).sum() / 4
        return loss, "first" if w.item() == 1.0 else "second"

    loss, which = engine.sam_step(batch_loss, module, optimizer, None, rho=0.5)
    assert which == "first" and float(loss.detach()) == pytest.approx(0.25)
    assert float(w.detach()) == pytest.approx(1.0 - 0.1 * 1.5 ** 3)
    assert float(norm.running_mean) == pytest.approx(0.1 * 3.0)  # one update with momentum 0.1, not two
    assert norm.momentum == 0.1
