"""Issue 10: DEO as a torch.optim citizen.

Hyperparameters in ``defaults`` / ``param_groups`` (per group where that makes sense), torch's
lr schedulers, ``add_param_group``, the state in ``Optimizer.state_dict()`` across a pickle,
``max_grad_norm`` and the modified gradient in ``diagnostics()``, and the generic checks torch's
own optimizer tests apply to every optimizer (param groups, state_dict, zero_grad, closures,
float32/float64, foreach, hooks, deepcopy). DEO inside a real Lightning ``Trainer`` is in
``test_lightning.py``.
"""

import copy
import math
import pickle

import pytest
import torch

from deo.optim import DEO

SETTINGS = dict(base="adam", lr=0.05, rotate_every=2, rotations=2, seed=3)


def net(seed=0, dtype=torch.float64):
    """A 2-layer tanh net on fixed data: a non-quadratic loss over three tensors (drawn in float64,
    then cast, so the float32 net is the float64 one rounded)."""
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(16, 3, generator=gen, dtype=torch.float64).to(dtype)
    target = torch.randn(16, 1, generator=gen, dtype=torch.float64).to(dtype)
    w1 = torch.randn(3, 5, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
    b1 = torch.zeros(5, dtype=dtype, requires_grad=True)
    w2 = torch.randn(5, 1, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)

    def loss_fn():
        return ((torch.tanh(data @ w1 + b1) @ w2 - target) ** 2).mean()

    return [w1, b1, w2], loss_fn


def closure_of(opt, loss_fn):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


# --------------------------------------------------------------------------- hyperparameters
def test_every_hyperparameter_is_in_defaults_and_in_every_group():
    params, _ = net()
    opt = DEO([{"params": params[:2]}, {"params": params[2:], "alpha": -1.0}], **SETTINGS, betas=(0.8, 0.9))
    keys = ("lr", "dimer_length", "rotate_every", "rotations", "rotation", "scheme", "rotation_step", "alpha")
    keys += ("gate", "target", "nc_step", "direction", "redraw_every", "max_grad_norm", "betas", "eps")
    for key in keys:
        assert key in opt.defaults
        assert all(key in group for group in opt.param_groups)
    assert opt.param_groups[0]["alpha"] == 1.0 and opt.param_groups[1]["alpha"] == -1.0
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.base.param_groups is opt.param_groups
    assert opt.rotate_every == 2 and opt.rotations == 2
    opt.rotate_every = 4  # the attribute writes every group
    assert [group["rotate_every"] for group in opt.param_groups] == [4, 4]
    with pytest.raises(ValueError, match="rotate_every"):
        opt.rotate_every = 0
    assert opt.rotate_every == 4


def test_per_group_alpha_is_applied_block_wise():
    x = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.5, 0.1], dtype=torch.float64, requires_grad=True)
    opt = DEO(
        [{"params": [x], "alpha": 1.0}, {"params": [y], "alpha": 0.0}],
        base="sgd",
        lr=0.0,
        rotate_every=1,
        seed=1,
    )
    a = torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=torch.float64)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (a * torch.cat([x, y]) ** 2).sum()
        loss.backward()
        return loss

    g = a * torch.cat([x, y]).detach()
    opt.step(closure)
    n = opt.diagnostics()["direction"]
    along = torch.dot(g, n)
    expected = torch.cat([g[:2] - along * n[:2], g[2:]])
    assert torch.allclose(flat([x.grad, y.grad]), expected, atol=1e-15)
    assert torch.allclose(opt.diagnostics()["modified_grad"], expected, atol=1e-15)


def test_per_group_lr_moves_each_group_at_its_own_rate():
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    y = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = DEO([{"params": [x], "lr": 0.1}, {"params": [y], "lr": 0.01}], base="sgd", alpha=0.0, seed=0)
    opt.step(closure_of(opt, lambda: 0.5 * (x**2).sum() + 0.5 * (y**2).sum()))
    assert torch.equal(x.detach(), torch.full((2,), 0.9, dtype=torch.float64))
    assert torch.equal(y.detach(), torch.full((2,), 0.99, dtype=torch.float64))


def test_groups_that_disagree_on_a_dimer_setting_are_refused_at_the_step():
    params, loss_fn = net()
    opt = DEO([{"params": params[:2]}, {"params": params[2:]}], **SETTINGS)
    opt.param_groups[1]["dimer_length"] = 1e-2
    with pytest.raises(ValueError, match="dimer_length is a setting of the one dimer"):
        opt.step(closure_of(opt, loss_fn))


# --------------------------------------------------------------------------- lr schedulers
SCHEDULERS = {
    "StepLR": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),
    "CosineAnnealingLR": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=1e-3),
    "OneCycleLR": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=12),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_lr_schedulers_act_on_deo_as_on_adam_and_equal_a_hand_written_schedule(name):
    steps = 12

    def run(make_opt, scheduled=True, schedule=None):
        params, loss_fn = net()
        opt = make_opt(params)
        closure = closure_of(opt, loss_fn)
        scheduler = SCHEDULERS[name](opt) if scheduled else None
        lrs, betas = [], []
        for t in range(steps):
            if schedule is not None:
                for group in opt.param_groups:
                    group["lr"], group["betas"] = schedule[0][t], schedule[1][t]
            lrs.append(opt.param_groups[0]["lr"])
            betas.append(opt.param_groups[0]["betas"])
            opt.step(closure)
            if scheduler is not None:
                scheduler.step()
        return flat(params), lrs, betas, opt

    _, adam_lrs, adam_betas, _ = run(lambda p: torch.optim.Adam(p, lr=0.05))
    deo_theta, deo_lrs, deo_betas, opt = run(lambda p: DEO(p, **SETTINGS))
    assert deo_lrs == adam_lrs and deo_betas == adam_betas
    assert len(set(deo_lrs)) > 2  # the schedule did change the learning rate
    by_hand, _, _, _ = run(lambda p: DEO(p, **SETTINGS), scheduled=False, schedule=(deo_lrs, deo_betas))
    assert torch.equal(deo_theta, by_hand)
    assert opt.base.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# --------------------------------------------------------------------------- add_param_group
def test_add_param_group_before_the_first_step_equals_constructing_with_both_groups():
    params, loss_fn = net()
    opt = DEO([{"params": params[:2]}], **SETTINGS)
    opt.add_param_group({"params": params[2:], "lr": 0.01})
    closure = closure_of(opt, loss_fn)
    for _ in range(5):
        opt.step(closure)

    params2, loss_fn2 = net()
    opt2 = DEO([{"params": params2[:2]}, {"params": params2[2:], "lr": 0.01}], **SETTINGS)
    closure2 = closure_of(opt2, loss_fn2)
    for _ in range(5):
        opt2.step(closure2)
    assert torch.equal(flat(params), flat(params2))
    assert torch.equal(opt.diagnostics()["direction"], opt2.diagnostics()["direction"])


def test_add_param_group_mid_run_extends_n_and_trains_the_new_parameters():
    params, loss_fn = net()
    w1, b1, w2 = params
    frozen = w2.detach().clone()
    opt = DEO([w1, b1], **SETTINGS)
    closure = closure_of(opt, loss_fn)
    for _ in range(3):
        opt.step(closure)
    n_before = opt.diagnostics()["direction"].clone()
    assert torch.equal(w2.detach(), frozen)
    opt.add_param_group({"params": (p for p in [w2]), "alpha": 0.5})  # a generator, like model.parameters()
    n = opt.diagnostics()["direction"]
    assert torch.equal(n[: n_before.numel()], n_before) and torch.equal(
        n[n_before.numel() :], torch.zeros(5, dtype=n.dtype)
    )
    assert opt.param_groups[1]["betas"] == (0.9, 0.999)  # the base's defaults
    for _ in range(4):
        opt.step(closure)
    assert not torch.equal(w2.detach(), frozen)
    assert torch.linalg.vector_norm(opt.diagnostics()["direction"]).item() == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        opt.add_param_group(
            {"params": [torch.zeros(2, dtype=torch.float64, requires_grad=True)], "alpha": math.nan}
        )
    assert len(opt.param_groups) == 2


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("base", ["sgd", "momentum", "adam", "adamw"])
def test_state_lives_in_optimizer_state_and_round_trips_bit_for_bit_across_a_pickle(base):
    settings = {**SETTINGS, "base": base, "gate": 0.5, "nc_step": 1e-3, "max_grad_norm": 0.5}
    params, loss_fn = net()
    opt = DEO([{"params": params[:2]}, {"params": params[2:], "alpha": -1.0}], **settings)
    closure = closure_of(opt, loss_fn)
    for _ in range(5):
        opt.step(closure)
    assert "dimer" in opt.state and opt.base.state is opt.state
    generic = torch.optim.Optimizer.state_dict(opt)  # torch's own state_dict carries the dimer
    assert torch.equal(generic["state"]["dimer"]["direction"], opt.dimer["direction"])
    blob = pickle.dumps(opt.state_dict())
    saved_params = [p.detach().clone() for p in params]
    for _ in range(6):
        opt.step(closure)

    params2, loss_fn2 = net()
    with torch.no_grad():
        for p, value in zip(params2, saved_params):
            p.copy_(value)
    opt2 = DEO([{"params": params2[:2]}, {"params": params2[2:]}], **{**settings, "seed": 99, "lr": 1.0})
    opt2.load_state_dict(pickle.loads(blob))
    assert opt2.param_groups[0]["lr"] == settings["lr"] and opt2.param_groups[1]["alpha"] == -1.0
    assert opt2.base.param_groups is opt2.param_groups and opt2.base.state is opt2.state
    closure2 = closure_of(opt2, loss_fn2)
    for _ in range(6):
        opt2.step(closure2)
    assert torch.equal(flat(params), flat(params2))
    assert torch.equal(opt.diagnostics()["direction"], opt2.diagnostics()["direction"])
    assert opt.diagnostics()["grad_evals"] == opt2.diagnostics()["grad_evals"]


def test_a_state_saved_without_a_scheduler_loads_into_a_scheduled_optimizer():
    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    opt.step(closure_of(opt, loss_fn))
    saved = opt.state_dict()
    params2, _ = net()
    opt2 = DEO(params2, **SETTINGS)
    torch.optim.lr_scheduler.StepLR(opt2, step_size=3)  # adds initial_lr to the groups
    opt2.load_state_dict(saved)
    assert opt2.dimer["step"] == 1


def test_state_dict_is_a_snapshot_not_a_live_view():
    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    closure = closure_of(opt, loss_fn)
    opt.step(closure)
    saved = opt.state_dict()
    evals, direction = saved["state"]["dimer"]["grad_evals"], saved["state"]["dimer"]["direction"].clone()
    for _ in range(3):
        opt.step(closure)
    assert saved["state"]["dimer"]["grad_evals"] == evals
    assert torch.equal(saved["state"]["dimer"]["direction"], direction)


# --------------------------------------------------------------------------- clipping, diagnostics
class ClippedAdam(torch.optim.Adam):
    """What the race and the paper benchmark did by hand: clip p.grad inside the base's step."""

    max_norm = 0.05

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(grads, self.max_norm)
        return super().step(closure)


@pytest.mark.parametrize("target", ["gradient", "update"])
def test_max_grad_norm_clips_what_the_base_receives_never_the_dimer_ends(target):
    def run(**extra):
        params, loss_fn = net()
        opt = DEO(params, **{**SETTINGS, "target": target, **extra})
        closure = closure_of(opt, loss_fn)
        curvatures, scales = [], []
        for _ in range(8):
            opt.step(closure)
            curvatures.append(opt.diagnostics()["curvature"])
            scales.append(opt.diagnostics()["clip_scale"])
        return flat(params), curvatures, scales, opt

    own, curvatures, scales, opt = run(max_grad_norm=0.05)
    patched, curvatures_patched, _, _ = run(base=ClippedAdam)
    unclipped, curvatures_raw, _, _ = run()
    assert torch.allclose(own, patched, rtol=0, atol=1e-12)
    assert not torch.allclose(own, unclipped, atol=1e-6)
    assert min(scales) < 1.0
    assert opt.diagnostics()["modified_grad_norm"] <= 0.05 + 1e-12
    assert curvatures[0] == curvatures_raw[0]  # the first event's ends are raw gradients at the same θ
    assert curvatures == pytest.approx(curvatures_patched, abs=1e-9)


def test_max_grad_norm_is_per_row_when_batched():
    starts = torch.tensor([[1.0, 1e-3], [30.0, -20.0], [0.01, 0.02]], dtype=torch.float64)
    settings = dict(base="sgd", lr=0.1, rotate_every=1, alpha=-1.0, max_grad_norm=1.0)

    def run(xy0, batch_dims, seed):
        xy = xy0.clone().requires_grad_(True)
        opt = DEO([xy], batch_dims=batch_dims, seed=seed, **settings)
        closure = closure_of(opt, lambda: (xy[..., 0] ** 2 - xy[..., 1] ** 2).sum())
        for _ in range(5):
            opt.step(closure)
        return xy.detach(), opt.diagnostics()["clip_scale"]

    batch, scales = run(starts, 1, 0)
    assert scales[1].item() < 1.0 and scales[2].item() == 1.0
    for b in range(3):
        row, scale = run(starts[b : b + 1], 1, b)  # a batch of that row alone: the same bits
        assert torch.equal(batch[b], row[0]) and torch.equal(scales[b], scale[0])
        alone, _ = run(starts[b], 0, b)  # one problem (per-parameter step, Gram event): to rounding
        torch.testing.assert_close(alone, batch[b], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("target", ["gradient", "update"])
def test_diagnostics_give_the_modified_gradient_and_what_was_removed(target):
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64)
    opt = DEO([x], base="sgd", lr=0.1, rotate_every=1, alpha=0.7, target=target, seed=2)
    assert opt.diagnostics()["modified_grad"] is None and opt.diagnostics()["removed"] is None
    closure = closure_of(opt, lambda: 0.5 * (a * x**2).sum())
    before = x.detach().clone()
    g = a * before
    opt.step(closure)
    diag = opt.diagnostics()
    n = diag["direction"]
    if target == "gradient":
        assert torch.allclose(diag["removed"], 0.7 * torch.dot(g, n) * n, atol=1e-15)
        assert torch.allclose(diag["modified_grad"] + diag["removed"], g, atol=1e-15)
    else:  # the base received g; its update u = −lr·g lost 0.7(u·N)N
        u = -0.1 * g
        assert torch.equal(diag["modified_grad"], g)
        assert torch.allclose(diag["removed"], 0.7 * torch.dot(u, n) * n, atol=1e-15)
        assert torch.allclose(x.detach() - before, u - diag["removed"], atol=1e-15)


def test_step_without_a_closure_explains_how_to_write_one():
    opt = DEO([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError) as error:
        opt.step()
    message = str(error.value)
    assert "def closure():" in message and "loss.backward()" in message and "opt.step(closure)" in message


def test_maximize_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="return -f"):
        DEO([torch.zeros(2, requires_grad=True)], maximize=True)


# --------------------------------------------------------------------------- generic optimizer checks
def test_step_returns_the_loss_of_the_first_closure_call():
    params, loss_fn = net()
    opt = DEO(params, **{**SETTINGS, "rotate_every": 1})
    expected = loss_fn().item()
    assert opt.step(closure_of(opt, loss_fn)).item() == expected


def test_zero_grad_sets_to_none_by_default_and_zeros_on_request():
    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    opt.step(closure_of(opt, loss_fn))
    assert all(p.grad is not None for p in params)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_a_parameter_without_a_gradient_is_left_alone_by_sgd():
    params, loss_fn = net()
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = DEO([*params, unused], base="sgd", lr=0.1, rotate_every=1, alpha=0.0, seed=0)
    for _ in range(3):
        opt.step(closure_of(opt, loss_fn))
    assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))


FROZEN_SETTINGS = [
    dict(base="adamw", weight_decay=0.1),
    dict(base="adam", target="update", nc_step=0.01),
    dict(base="momentum", rotation="lanczos", rotations=2, scheme="central"),
    dict(base="adam", rotation="sd", rotation_step=0.1),
    dict(base="adam", direction="random", redraw_every=2),
    dict(base="adam", batch_dims=1),
]


@pytest.mark.parametrize("settings", FROZEN_SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_frozen_and_unused_parameters_are_left_alone(settings):
    """As torch.optim does: a parameter with ``requires_grad=False`` or one the loss does not use
    (no ``.grad``) is never moved, gets no ``.grad`` and no base state. Before, N had components
    on them, so g − α(g·N)N, the update projection and the nc step moved them (Adam: ≈ lr a step;
    a frozen layer moved 0.12 in 20 steps) and AdamW decayed an unused one."""
    batched = settings.get("batch_dims", 0) == 1
    params, loss_fn = net()
    if batched:  # two rows: each parameter gets a leading row dim
        params = [p.detach().unsqueeze(0).repeat(2, *([1] * p.dim())).requires_grad_(True) for p in params]
        w1, b1, w2 = params

        def loss_fn():
            gen = torch.Generator().manual_seed(0)
            data = torch.randn(16, 3, generator=gen, dtype=torch.float64)
            target = torch.randn(16, 1, generator=gen, dtype=torch.float64)
            return ((torch.tanh(data @ w1 + b1.unsqueeze(1)) @ w2 - target) ** 2).mean(dim=(1, 2)).sum()

    frozen = params[0].requires_grad_(False)
    unused = torch.ones((2, 4) if batched else (4,), dtype=torch.float64, requires_grad=True)
    before = frozen.detach().clone()
    opt = DEO([*params, unused], lr=0.05, rotate_every=2, seed=3, **{"rotations": 1, **settings})
    closure = closure_of(opt, loss_fn)
    for _ in range(8):
        opt.step(closure)
    assert torch.equal(frozen, before) and torch.equal(unused.detach(), torch.ones_like(unused))
    assert frozen.grad is None and unused.grad is None
    assert frozen not in opt.state and unused not in opt.state  # no Adam moments, no momentum
    assert not torch.equal(params[1].detach(), net()[0][1].detach().expand_as(params[1]))  # the rest trains
    n = opt.diagnostics()["direction"].reshape(2 if batched else 1, -1)
    d_frozen = before[0].numel() if batched else before.numel()
    assert torch.equal(n[:, :d_frozen], torch.zeros_like(n[:, :d_frozen]))
    assert torch.allclose(torch.linalg.vector_norm(n, dim=-1), torch.ones(n.shape[0], dtype=n.dtype))


def test_a_parameter_unfrozen_later_trains():
    params, loss_fn = net()
    params[0].requires_grad_(False)
    opt = DEO(params, base="adam", lr=0.05, rotate_every=2, seed=3)
    closure = closure_of(opt, loss_fn)
    for _ in range(4):
        opt.step(closure)
    before = params[0].detach().clone()
    params[0].requires_grad_(True)
    for _ in range(4):
        opt.step(closure)
    assert not torch.equal(params[0].detach(), before) and params[0] in opt.state


def test_float32_follows_float64():
    def run(dtype):
        params, loss_fn = net(dtype=dtype)
        opt = DEO(params, **SETTINGS)
        closure = closure_of(opt, loss_fn)
        for _ in range(10):
            opt.step(closure)
        return flat(params).to(torch.float64), opt.diagnostics()

    theta64, diag64 = run(torch.float64)
    theta32, diag32 = run(torch.float32)
    assert diag32["direction"].dtype == torch.float32 and diag64["direction"].dtype == torch.float64
    assert torch.allclose(theta32, theta64, atol=1e-3)


@pytest.mark.parametrize("base", ["adam", "adamw", "momentum"])
def test_foreach_and_for_loop_bases_agree(base):
    def run(foreach):
        params, loss_fn = net()
        opt = DEO(params, **{**SETTINGS, "base": base}, foreach=foreach)
        closure = closure_of(opt, loss_fn)
        for _ in range(10):
            opt.step(closure)
        return flat(params)

    assert torch.allclose(run(True), run(False), rtol=0, atol=1e-13)


def test_step_hooks_run_once_per_step():
    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    calls = []
    opt.register_step_pre_hook(lambda optimizer, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda optimizer, args, kwargs: calls.append("post"))
    opt.step(closure_of(opt, loss_fn))
    assert calls == ["pre", "post"]


def test_deepcopy_gives_an_independent_optimizer_that_continues_identically():
    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    closure = closure_of(opt, loss_fn)
    for _ in range(3):
        opt.step(closure)
    twin_params, twin = copy.deepcopy((params, opt))  # the model goes with it
    assert twin.base.param_groups is twin.param_groups and twin.base.state is twin.state
    gen = torch.Generator().manual_seed(0)  # net()'s data
    data = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    target = torch.randn(16, 1, generator=gen, dtype=torch.float64)
    w1, b1, w2 = twin_params
    twin_closure = closure_of(twin, lambda: ((torch.tanh(data @ w1 + b1) @ w2 - target) ** 2).mean())
    for _ in range(4):
        opt.step(closure)
        twin.step(twin_closure)
    assert torch.equal(flat(params), flat(twin_params))
    assert all(p is not q for p, q in zip(params, twin_params))
    assert torch.equal(opt.diagnostics()["direction"], twin.diagnostics()["direction"])


def test_a_pickled_optimizer_keeps_its_base_and_state():
    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    opt.step(closure_of(opt, loss_fn))
    twin = pickle.loads(pickle.dumps(opt))
    assert isinstance(twin.base, torch.optim.Adam) and twin.base.state is twin.state
    assert torch.equal(twin.dimer["direction"], opt.dimer["direction"])


def test_repr_names_the_hyperparameters():
    text = repr(DEO([torch.zeros(2, requires_grad=True)], **SETTINGS))
    assert "DEO" in text and "dimer_length" in text and "rotate_every" in text


# --------------------------------------------------------------------------- training loops
class AutomaticOptimizationLoop:
    """The closure protocol of PyTorch Lightning's automatic optimization (lightning 2.6,
    ``loops/optimization/automatic.py``): the closure runs ``training_step``, then ``zero_grad``,
    then ``backward``, and returns the loss; the loop calls ``optimizer.step(closure=closure)``
    (keyword) and wraps the closure in the precision plugin's ``_wrap_closure`` (closure, then the
    ``on_before_optimizer_step`` hook). ``tests/test_lightning.py`` runs DEO inside a real
    ``lightning.Trainer`` too."""

    def __init__(self, module, optimizer):
        self.module, self.optimizer = module, optimizer
        self.training_steps, self.hooks = 0, 0

    def run(self, batches):
        losses = []
        for batch in batches:

            def closure(batch=batch):
                loss = self.module.training_step(batch)
                self.training_steps += 1
                self.optimizer.zero_grad()
                loss.backward()
                return loss

            def wrapped():
                result = closure()
                self.hooks += 1  # on_before_optimizer_step
                return result

            losses.append(self.optimizer.step(closure=wrapped).item())
        return losses


def test_deo_trains_under_lightnings_automatic_optimization_protocol():
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])).tanh()

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

        def training_step(self, batch):
            return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

    module = Module()
    opt = DEO(module.parameters(), base="adam", lr=0.02, rotate_every=2, seed=0, max_grad_norm=1.0)
    loop = AutomaticOptimizationLoop(module, opt)
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)] * 5
    losses = loop.run(batches)
    diag = opt.diagnostics()
    assert diag["step"] == 40 and diag["grad_evals"] == loop.training_steps == loop.hooks == 80
    assert losses[-1] < 0.5 * losses[0]
    assert math.isfinite(diag["curvature"])


def test_lanczos_rotation_in_the_optimizer_finds_the_min_mode_at_the_fourier_cost():
    """rotation="lanczos": r + 1 probes per event like "fourier", N → the min eigenvector."""
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5, 2.0], dtype=torch.float64))
    runs = {}
    for rotation in ("fourier", "lanczos"):
        p = torch.nn.Parameter(torch.tensor([0.7, -0.4, 0.3, 0.9, 0.2], dtype=torch.float64))
        opt = DEO([p], base="sgd", lr=1e-3, rotate_every=5, rotations=3, rotation=rotation, seed=0)

        def closure(p=p, opt=opt):
            opt.zero_grad()
            loss = 0.5 * p @ h @ p
            loss.backward()
            return loss

        for _ in range(20):
            opt.step(closure)
        runs[rotation] = opt.diagnostics()
    lz = runs["lanczos"]
    assert lz["grad_evals"] == runs["fourier"]["grad_evals"] == 20 + 4 * 4
    assert abs(float(lz["curvature"]) + 2.0) < 1e-3
    assert abs(float(lz["direction"][2])) > 0.999


def test_an_optimizer_with_an_lr_scheduler_pickles_and_deep_copies_apart():
    """An lr scheduler wraps ``step`` on the optimizer instance; DEO's state kept that wrapper, so
    pickling failed and a deep copy's step stepped the original (torch's Optimizer drops it)."""
    import copy
    import pickle

    params, loss_fn = net()
    opt = DEO(params, **SETTINGS)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    opt.step(closure_of(opt, loss_fn))
    scheduler.step()
    pickle.loads(pickle.dumps(opt))
    twin = copy.deepcopy(opt)
    twin_params = [p for group in twin.param_groups for p in group["params"]]
    theta = flat(params)

    def twin_closure():
        twin.zero_grad()
        data, target = torch.ones(4, 3, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
        loss = ((torch.tanh(data @ twin_params[0] + twin_params[1]) @ twin_params[2] - target) ** 2).mean()
        loss.backward()
        return loss

    twin.step(twin_closure)
    assert (opt.dimer["step"], twin.dimer["step"]) == (1, 2)
    assert torch.equal(flat(params), theta)


@pytest.mark.parametrize("settings", [{}, {"target": "update"}, {"max_grad_norm": 0.5}, {"batch_dims": 1}])
def test_diagnostics_survive_zero_grad_without_set_to_none(settings):
    """The diagnostics are read from the tensors the base optimizer received (the ``.grad`` tensors):
    ``zero_grad(set_to_none=False)`` zeroed them in place, and ``modified_grad_norm`` read 0."""

    def run(set_to_none):
        params, loss_fn = net()
        if settings.get("batch_dims"):
            params = [p.detach().unsqueeze(0).requires_grad_(True) for p in params]
            w1, b1, w2 = params
            gen = torch.Generator().manual_seed(0)
            data = torch.randn(16, 3, generator=gen, dtype=torch.float64)

            def loss_fn():
                return (torch.tanh(data @ w1 + b1.unsqueeze(1)) @ w2).pow(2).mean()

        opt = DEO(params, **{**SETTINGS, **settings})
        opt.step(closure_of(opt, loss_fn))
        opt.zero_grad(set_to_none=set_to_none)
        return opt.diagnostics(), opt.state_dict()["state"]["dimer"]

    (kept, kept_state), (zeroed, zeroed_state) = run(True), run(False)
    for key in ("grad_norm", "modified_grad_norm", "removed_fraction"):
        assert kept[key] == zeroed[key] and kept[key] != 0
        assert torch.equal(kept_state[key], zeroed_state[key])
    assert torch.equal(kept["modified_grad"], zeroed["modified_grad"])
    assert zeroed["modified_grad"].abs().sum() > 0


@pytest.mark.parametrize("settings", [{}, {"target": "update"}, {"max_grad_norm": 0.5}])
@pytest.mark.parametrize("change", ["module zero_grad(set_to_none=False)", "a backward outside the closure"])
def test_gradients_changed_in_place_after_a_step_give_a_warning_not_wrong_diagnostics(settings, change):
    """The diagnostics read the g and g_mod a step kept (the ``.grad`` tensors): changed in place
    before they were read, they gave ‖g_mod‖ = 0 and removed_fraction 1 as if measured. Now the
    vectors are dropped, and norms not yet worked out are NaN (a clipped step works them out
    before its clip: those stay)."""
    params, loss_fn = net()
    opt = DEO(params, **{**SETTINGS, **settings})
    opt.step(closure_of(opt, loss_fn))
    if change.startswith("module"):
        for p in params:
            p.grad.zero_()  # what nn.Module.zero_grad(set_to_none=False) does
    else:
        loss_fn().backward()  # accumulates into .grad in place
    with pytest.warns(RuntimeWarning, match="changed in place before its diagnostics were read"):
        diagnostics = opt.diagnostics()
    measured = "max_grad_norm" in settings
    for key in ("grad_norm", "modified_grad_norm", "removed_fraction"):
        assert math.isfinite(diagnostics[key]) == measured and diagnostics[key] != 0
    assert diagnostics["modified_grad"] is None
    opt.step(closure_of(opt, loss_fn))  # the next step measures again
    assert math.isfinite(opt.diagnostics()["modified_grad_norm"])


def test_a_group_added_later_takes_the_dimer_settings_in_force():
    """After ``opt.rotate_every = 2`` (or a loaded state with 2), a new group took the constructor's
    10 and the next step refused the disagreeing groups."""
    params, loss_fn = net()
    extra = torch.ones(3, dtype=torch.float64, requires_grad=True)

    def loss():
        return loss_fn() + (extra**2).sum()

    opt = DEO(params, base="adam", lr=0.05, seed=1)
    opt.rotate_every = 2
    opt.step(closure_of(opt, loss))
    opt.add_param_group({"params": [extra]})
    assert [g["rotate_every"] for g in opt.param_groups] == [2, 2]
    opt.step(closure_of(opt, loss))
    source = DEO(net()[0], base="adam", lr=0.05, rotate_every=3, seed=1)
    loaded = DEO(params, base="adam", lr=0.05, seed=1)
    loaded.load_state_dict(source.state_dict())
    loaded.add_param_group({"params": [extra], "lr": 0.1})
    assert [g["rotate_every"] for g in loaded.param_groups] == [3, 3] and loaded.param_groups[1]["lr"] == 0.1
    loaded.step(closure_of(loaded, loss))


def test_a_dimer_length_below_the_resolution_is_refused_however_it_is_set():
    """The constructor refused ΔR = 1e-9 on float32 parameters of scale ~1; the setter, a loaded
    state and a new group took it, and C came out 0.0."""
    params, _ = net(dtype=torch.float32)
    with pytest.raises(ValueError, match="below the resolution"):
        DEO(params, dimer_length=1e-9)
    opt = DEO(params, dimer_length=1e-3)
    with pytest.raises(ValueError, match="below the resolution"):
        opt.dimer_length = 1e-9
    assert opt.dimer_length == 1e-3
    state = opt.state_dict()
    for group in state["param_groups"]:
        group["dimer_length"] = 1e-9
    with pytest.raises(ValueError, match="load_state_dict: dimer_length=1e-09 is below"):
        opt.load_state_dict(state)
    big = torch.full((2,), 1e5, dtype=torch.float32, requires_grad=True)  # 1e-3 rounds away at 1e5
    with pytest.raises(ValueError, match="below the resolution"):
        opt.add_param_group({"params": [big]})
    assert len(opt.param_groups) == 1
