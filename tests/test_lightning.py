"""Issue 10: DEO inside a real PyTorch Lightning ``Trainer`` (automatic optimization, CPU).

Lightning passes a closure to ``optimizer.step`` (training_step, zero_grad, backward); DEO calls it
once at θ and again at every dimer end, so every ``training_step`` call is a gradient evaluation DEO
counts. The run must equal the same steps written by hand (``test_optim_citizen``'s loop of
Lightning's protocol), and a run stopped at a checkpoint and resumed must end where the run without
the stop ends (the optimizer state travels in Lightning's checkpoint through ``state_dict``). The
Trainer's own gradient clipping reaches the dimer ends: clip with DEO's ``max_grad_norm``.
"""

import math
import warnings

import lightning  # a dev requirement (requirements-dev.txt)
import torch

from deo.optim import DEO

SETTINGS = dict(base="adam", lr=0.02, rotate_every=2, seed=0, max_grad_norm=1.0)
BATCH, SAMPLES = 32, 256


def data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, 4, generator=gen)
    y = (x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])).tanh()
    return x, y


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


class Module(lightning.LightningModule):
    def __init__(self, **settings):
        super().__init__()
        self.net = net()
        self.settings = {**SETTINGS, **settings}
        self.calls, self.losses, self.optimizers_made = 0, [], []

    def training_step(self, batch, batch_idx):
        self.calls += 1
        loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        opt = DEO(self.parameters(), **self.settings)
        self.optimizers_made.append(opt)
        return opt


def fit(module: Module, epochs: int, root, ckpt_path=None, **trainer_options):
    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
        num_sanity_val_steps=0, **trainer_options,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice (num_workers, ...) is not the test's subject
        trainer.fit(module, loader, ckpt_path=ckpt_path)
    return trainer


def by_hand(epochs: int) -> tuple[torch.nn.Module, DEO, int]:
    """The same run without Lightning: the protocol of its automatic optimization, written out."""
    model = net()
    opt = DEO(model.parameters(), **SETTINGS)
    x, y = data()
    calls = 0
    for _ in range(epochs):
        for i in range(0, SAMPLES, BATCH):

            def closure(i=i):
                nonlocal calls
                calls += 1
                loss = torch.nn.functional.mse_loss(model(x[i : i + BATCH]), y[i : i + BATCH])
                opt.zero_grad()
                loss.backward()
                return loss

            opt.step(closure=closure)
    return model, opt, calls


def test_deo_trains_inside_a_lightning_trainer_and_counts_every_training_step(tmp_path):
    module = Module()
    fit(module, 5, tmp_path)
    (opt,) = module.optimizers_made
    diag = opt.diagnostics()
    steps = 5 * SAMPLES // BATCH
    # one gradient per step, and at every rotation event (every second step) one probe of N plus
    # one per rotation (forward differences)
    per_event = 1 + opt.param_groups[0]["rotations"]
    assert diag["step"] == steps
    assert diag["grad_evals"] == module.calls == steps + per_event * steps // 2
    assert math.isfinite(diag["curvature"])
    assert sum(module.losses[-8:]) < 0.5 * sum(module.losses[:8])
    # the same run written by hand, bit for bit
    model, hand, calls = by_hand(5)
    assert calls == module.calls
    assert all(torch.equal(a, b) for a, b in zip(module.net.parameters(), model.parameters()))
    assert torch.equal(opt.dimer["direction"], hand.dimer["direction"])


def test_a_lightning_run_resumed_from_its_checkpoint_ends_where_the_unbroken_run_ends(tmp_path):
    first = Module()
    trainer = fit(first, 2, tmp_path)
    checkpoint = tmp_path / "two_epochs.ckpt"
    trainer.save_checkpoint(checkpoint)
    resumed = Module()
    fit(resumed, 5, tmp_path, ckpt_path=str(checkpoint))  # a new process would do the same
    unbroken = Module()
    fit(unbroken, 5, tmp_path)
    assert first.calls + resumed.calls == unbroken.calls
    assert all(torch.equal(a, b) for a, b in zip(resumed.net.parameters(), unbroken.net.parameters()))
    resumed_opt, unbroken_opt = resumed.optimizers_made[-1], unbroken.optimizers_made[-1]
    for key in ("step", "grad_evals", "rotation_events"):
        assert resumed_opt.dimer[key] == unbroken_opt.dimer[key], key
    assert torch.equal(resumed_opt.dimer["direction"], unbroken_opt.dimer["direction"])


def test_clip_with_max_grad_norm_not_the_trainers_gradient_clip_val(tmp_path):
    """docs/API.md's advice, pinned: Lightning clips ``.grad`` after every call of the closure it
    hands to ``optimizer.step``, so ``Trainer(gradient_clip_val=...)`` clips the dimer ends' gradients
    too and the curvature estimate collapses toward 0; DEO's ``max_grad_norm`` clips only the
    modified gradient the base optimizer receives, and the first event's curvature is unchanged."""

    def first_curvature(settings, **trainer_options):
        module = Module(**settings)
        fit(module, 1, tmp_path, max_steps=1, **trainer_options)
        (opt,) = module.optimizers_made
        assert opt.dimer["rotation_events"] == 1
        return opt.diagnostics()["curvature"]

    free = first_curvature({"max_grad_norm": None})
    assert first_curvature({"max_grad_norm": 1e-3}) == free
    clipped = first_curvature({"max_grad_norm": None}, gradient_clip_val=1e-3)
    assert free < -0.1 and abs(clipped) < 0.05 * abs(free)
