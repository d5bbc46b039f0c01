"""Issue 13: the optimizer never loses or corrupts the model.

A closure that raises mid-rotation leaves θ bit-identical and the optimizer as before the step;
``load_state_dict`` refuses what does not fit before changing anything; arguments that cannot work
are refused at construction with a sentence; bfloat16 / float16 models get a working dimer;
``min_mode`` never reports a convergence it did not resolve; constant gradients give a zero Hessian;
checkpoints through ``torch.save`` / ``torch.load(weights_only=True)`` continue bit for bit.
"""

import io
import math

import pytest
import torch

import deo
from deo.baselines import PGD, PublishedDimer
from deo.dimer import min_mode
from deo.hessian import exact_eigh, exact_min_eig
from deo.optim import DEO
from deo.race import EscapeCriterion

H = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5], dtype=torch.float64))


class Boom(Exception):
    """The closure's failure (a data-loader error, an OOM...)."""


def problem(batch_dims):
    """A quadratic ½θᵀHθ + a cubic term (so the gradient is not linear), one row or three."""
    start = torch.tensor([0.7, -0.4, 0.3, 0.9], dtype=torch.float64)
    if batch_dims:
        start = torch.stack([start, 0.5 * start, -start])
    return start


def loss_of(x):
    return 0.5 * ((x @ H) * x).sum() + 0.1 * (x**3).sum()


def make_closure(opt, x, fail_at=None, error=Boom):
    """A closure counting its calls; call number ``fail_at`` (0 = the first of the run) raises after
    its backward (the worst moment: ``.grad`` is written, θ possibly shifted)."""
    calls = {"n": 0}

    def closure():
        opt.zero_grad()
        noise = torch.randn(())  # consumes the global RNG like a dropout mask
        loss = loss_of(x) + 0.0 * noise
        loss.backward()
        calls["n"] += 1
        if fail_at is not None and calls["n"] - 1 == fail_at:
            raise error("closure failed")
        return loss

    return closure, calls


def snapshot(opt):
    diag = opt.diagnostics()
    return {
        "direction": diag["direction"].clone(),
        "curvature": torch.as_tensor(diag["curvature"]).clone(),
        "grad_evals": diag["grad_evals"],
        "step": diag["step"],
        "rotation_events": diag["rotation_events"],
    }


def same(a, b):
    assert torch.equal(a["direction"], b["direction"])
    assert torch.equal(a["curvature"], b["curvature"]) or (
        bool(a["curvature"].isnan().all()) and bool(b["curvature"].isnan().all())
    )
    assert (a["grad_evals"], a["step"], a["rotation_events"]) == (
        b["grad_evals"],
        b["step"],
        b["rotation_events"],
    )


@pytest.mark.parametrize("batch_dims", [0, 1])
@pytest.mark.parametrize("base", ["sgd", "adam"])
@pytest.mark.parametrize("scheme", ["forward", "central"])
@pytest.mark.parametrize("rotations", [0, 1, 2, 3])
def test_a_closure_failing_at_any_probe_leaves_theta_and_the_optimizer_as_before(
    rotations, scheme, base, batch_dims
):
    settings = dict(base=base, lr=0.05, rotate_every=1, rotations=rotations, scheme=scheme, seed=3)
    settings["batch_dims"] = batch_dims
    c = 1 if scheme == "forward" else 2
    calls_per_event = 1 + (rotations + 1) * c
    for fail in range(calls_per_event):  # 0: the gradient at θ; 1..: every dimer end of the event
        torch.manual_seed(0)
        x = problem(batch_dims).clone().requires_grad_(True)
        opt = DEO([x], **settings)
        closure, _ = make_closure(opt, x)
        for _ in range(2):
            opt.step(closure)
        theta = x.detach().clone()
        before = snapshot(opt)
        rng = torch.get_rng_state()
        failing, calls = make_closure(opt, x, fail_at=fail)
        with pytest.raises(Boom):
            opt.step(failing)
        assert calls["n"] == fail + 1
        assert torch.equal(x.detach(), theta), f"θ displaced after a failure at call {fail}"
        same(snapshot(opt), before)
        assert torch.equal(torch.get_rng_state(), rng)
        # the retried step is the step that never failed
        opt.step(closure)
        torch.manual_seed(0)
        y = problem(batch_dims).clone().requires_grad_(True)
        reference = DEO([y], **settings)
        ref_closure, _ = make_closure(reference, y)
        for _ in range(3):
            reference.step(ref_closure)
        assert torch.equal(x.detach(), y.detach())
        same(snapshot(opt), snapshot(reference))


@pytest.mark.parametrize("error", [KeyboardInterrupt, MemoryError, RuntimeError])
def test_keyboard_interrupt_mid_rotation_restores_theta(error):
    x = problem(0).clone().requires_grad_(True)
    opt = DEO([x], base="adam", lr=0.05, rotate_every=1, rotations=2, scheme="central", seed=1)
    theta = x.detach().clone()
    failing, _ = make_closure(opt, x, fail_at=3, error=error)
    with pytest.raises(error):
        opt.step(failing)
    assert torch.equal(x.detach(), theta)
    assert opt.diagnostics()["grad_evals"] == 0 and opt.diagnostics()["step"] == 0


def test_pgd_failing_after_its_kick_restores_theta_and_its_state():
    x = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # ‖g‖ = 0: PGD kicks at step 0
    opt = PGD([x], lr=0.1, g_thres=1.0, t_thres=0, radius=0.5, seed=0)

    def failing_second():
        failing_second.calls += 1
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        if failing_second.calls == 2:  # the re-evaluation at the kicked point
            raise Boom("closure failed")
        return loss

    failing_second.calls = 0
    generator = opt.generator.get_state()
    with pytest.raises(Boom):
        opt.step(failing_second)
    assert torch.equal(x.detach(), torch.zeros(2, dtype=torch.float64))
    diag = opt.diagnostics()
    assert (diag["grad_evals"], diag["perturbations"], diag["step"]) == (0, 0, 0)
    assert torch.equal(opt.generator.get_state(), generator)


@pytest.mark.parametrize("variant", ["v4", "v7"])
def test_published_dimer_failing_at_its_shifted_call_restores_theta(variant):
    x = problem(0).clone().requires_grad_(True)
    opt = PublishedDimer([x], base="adam", lr=0.01, variant=variant, rotation_interval=1, seed=0)
    theta = x.detach().clone()
    shifted_call = 1  # v4: G1 then the end; v7: the step's gradient then the end
    failing, _ = make_closure(opt, x, fail_at=shifted_call)
    n0 = opt.diagnostics()["direction"].clone()
    with pytest.raises(Boom):
        opt.step(failing)
    assert torch.equal(x.detach(), theta)
    diag = opt.diagnostics()
    assert (diag["step"], diag["grad_evals"], diag["closure_calls"], diag["rotation_events"]) == (0, 0, 0, 0)
    assert torch.equal(diag["direction"], n0)


# --------------------------------------------------------------------------- load_state_dict
def tiny(d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(d, generator=gen, dtype=torch.float64).requires_grad_(True)]


def trained(params, steps=3, **settings):
    opt = DEO(params, **{"lr": 0.01, "rotate_every": 1, "seed": 0, **settings})

    def closure():
        opt.zero_grad()
        loss = sum(loss_of(p[:4]) if p.numel() >= 4 else (p**2).sum() for p in params)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return opt


def refused(opt, state, match):
    params = [p.detach().clone() for group in opt.param_groups for p in group["params"]]
    before = opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state)
    after = opt.state_dict()
    assert torch.equal(before["state"]["dimer"]["direction"], after["state"]["dimer"]["direction"])
    assert before["param_groups"] == after["param_groups"]
    assert str(before["state"]) == str(after["state"])
    for p, q in zip(params, [p for group in opt.param_groups for p in group["params"]]):
        assert torch.equal(p, q)


def test_a_state_from_another_model_with_as_many_tensors_is_refused():
    saved = trained(tiny(4), base="adam").state_dict()
    here = trained(tiny(5), base="adam")
    refused(here, saved, "shape")


def test_truncated_state_dicts_are_refused_naming_what_is_missing():
    opt = trained(tiny(), base="adam")
    full = opt.state_dict()
    for key in ("state", "param_groups"):
        refused(opt, {k: v for k, v in full.items() if k != key}, key)
    state = full["state"]
    refused(opt, {**full, "state": {k: v for k, v in state.items() if k != "dimer"}}, "dimer")
    for key in ("direction", "grad_evals", "seed"):
        dimer = {k: v for k, v in state["dimer"].items() if k != key}
        refused(opt, {**full, "state": {**state, "dimer": dimer}}, key)
    group = full["param_groups"][0]
    refused(opt, {**full, "param_groups": [{k: v for k, v in group.items() if k != "alpha"}]}, "alpha")
    refused(opt, {**full, "param_groups": [{**group, "rotate_every": 0}]}, "rotate_every")
    refused(opt, {**full, "param_groups": []}, "groups")
    refused(opt, "not a dict", "dict")


def test_an_adam_state_into_an_sgd_deo_is_refused():
    saved = trained(tiny(), base="adam").state_dict()
    refused(trained(tiny(), base="sgd"), saved, "base")
    saved_sgd = trained(tiny(), base="momentum").state_dict()
    refused(trained(tiny(), base="adam"), saved_sgd, "base")


def test_batch_dims_mismatch_is_refused():
    rows = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)]
    flat = [torch.zeros(12, dtype=torch.float64, requires_grad=True)]
    saved = DEO(rows, batch_dims=1, seed=0).state_dict()
    refused(DEO(flat, batch_dims=0, seed=0), saved, "batch_dims")
    saved0 = DEO([torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)], seed=0).state_dict()
    refused(DEO(rows, batch_dims=1, seed=0), saved0, "batch_dims")


def test_direction_size_and_dtype_mismatch_is_refused():
    opt = trained(tiny(), base="sgd")
    full = opt.state_dict()
    state, direction = full["state"], full["state"]["dimer"]["direction"]
    shorter = {**full, "state": {**state, "dimer": {**state["dimer"], "direction": direction[:, :3]}}}
    refused(opt, shorter, "shape")
    single = {**full, "state": {**state, "dimer": {**state["dimer"], "direction": direction.float()}}}
    refused(opt, single, "float32")


# --------------------------------------------------------------------------- construction
BAD = [
    ({"dimer_length": math.inf}, ValueError, "dimer_length"),
    ({"dimer_length": math.nan}, ValueError, "dimer_length"),
    ({"dimer_length": 1e300}, ValueError, "dimer_length"),
    ({"dimer_length": 1e-300}, ValueError, "resolution"),
    ({"rotation_step": math.inf}, ValueError, "rotation_step"),
    ({"alpha": 1e300}, ValueError, "alpha"),
    ({"alpha": math.nan}, ValueError, "alpha"),
    ({"lr": "0.1"}, TypeError, "lr"),
    ({"lr": None}, TypeError, "lr"),
    ({"lr": math.inf}, ValueError, "lr"),
    ({"lr": math.nan}, ValueError, "lr"),
    ({"seed": 1.5}, ValueError, "seed"),
    ({"seed": "a"}, TypeError, "seed"),
    ({"base": torch.optim.LBFGS}, ValueError, "LBFGS needs its own closure"),
    ({"rotate_every": math.inf}, ValueError, "rotate_every"),
    ({"rotate_every": 0}, ValueError, "rotate_every"),
    ({"rotate_every": 1.5}, ValueError, "rotate_every"),
    ({"rotations": math.nan}, ValueError, "rotations"),
    ({"gate": math.nan}, ValueError, "gate"),
    ({"nc_step": math.inf}, ValueError, "nc_step"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD)
def test_unusable_arguments_are_refused_with_a_sentence(kwargs, error, match):
    with pytest.raises(error, match=match):
        DEO([torch.zeros(3, requires_grad=True)], **kwargs)


def test_resolution_is_judged_in_the_probe_dtype():
    DEO([torch.zeros(3, dtype=torch.float64, requires_grad=True)], dimer_length=1e-12)  # fine in float64
    with pytest.raises(ValueError, match="resolution"):
        DEO([torch.zeros(3, dtype=torch.float32, requires_grad=True)], dimer_length=1e-12)
    with pytest.raises(ValueError, match="resolution"):  # bf16 probes run in float32
        DEO([torch.zeros(3, dtype=torch.bfloat16, requires_grad=True)], dimer_length=1e-9)


def test_complex_parameters_are_refused():
    with pytest.raises(TypeError, match="complex"):
        DEO([torch.zeros(3, dtype=torch.complex64, requires_grad=True)])


def test_a_closure_returning_a_string_gets_a_clear_error():
    x = torch.ones(3, requires_grad=True)
    opt = DEO([x])

    def closure():
        opt.zero_grad()
        (x**2).sum().backward()
        return "loss"

    with pytest.raises(TypeError, match="must return the loss"):
        opt.step(closure)
    assert torch.equal(x.detach(), torch.ones(3))


def test_sparse_gradients_are_refused_naming_them():
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    opt = DEO(embedding.parameters(), base="sgd", lr=0.1)

    def closure():
        opt.zero_grad()
        loss = embedding(torch.tensor([1, 2])).sum()
        loss.backward()
        return loss

    before = embedding.weight.detach().clone()
    with pytest.raises(TypeError, match="sparse gradient"):
        opt.step(closure)
    assert torch.equal(embedding.weight.detach(), before)


def test_escape_criterion_refuses_nan():
    with pytest.raises(ValueError, match="loss_below"):
        EscapeCriterion(center=torch.zeros(2), loss_below=math.nan)


# --------------------------------------------------------------------------- low precision
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_models_find_the_min_mode(dtype):
    """Issue 13's reproducer: H = diag(3, 1, −2, .5), p in bf16/fp16, loss ½qᵀHq with q = p.float()."""
    h = torch.diag(torch.tensor([3.0, 1.0, -2.0, 0.5]))
    p = torch.tensor([0.7, -0.4, 0.3, 0.9], dtype=dtype).requires_grad_(True)
    dimer_length = 1e-3 if dtype == torch.bfloat16 else 1e-5
    opt = DEO([p], base="sgd", lr=1e-3, rotate_every=1, rotations=3, dimer_length=dimer_length, seed=0)

    def closure():
        opt.zero_grad()
        q = p.float()
        loss = 0.5 * (q @ h @ q)
        loss.backward()
        return loss

    n0 = opt.diagnostics()["direction"].clone()
    for _ in range(30):
        opt.step(closure)
        assert p.dtype == dtype and p.grad.dtype == dtype
    diag = opt.diagnostics()
    assert diag["curvature"] == pytest.approx(-2.0, abs=2e-2)
    assert abs(diag["direction"][2].item()) > 0.999
    assert not torch.equal(diag["direction"], n0)


def test_low_precision_model_that_cannot_take_float32_gets_a_how_to():
    layer = torch.nn.Linear(3, 1).to(torch.bfloat16)
    data = torch.ones(2, 3, dtype=torch.bfloat16)
    opt = DEO(layer.parameters(), base="sgd", lr=0.1, rotate_every=1)
    before = [p.detach().clone() for p in layer.parameters()]

    def closure():
        opt.zero_grad()
        loss = layer(data).float().sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="autocast"):
        opt.step(closure)
    for p, q in zip(layer.parameters(), before):
        assert p.dtype == torch.bfloat16 and torch.equal(p.detach(), q)

    def autocast_closure():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = layer(data).float().sum()
        loss.backward()
        return loss

    opt.step(autocast_closure)  # the how-to works
    assert all(p.dtype == torch.bfloat16 for p in layer.parameters())


# --------------------------------------------------------------------------- min_mode
def quadratic_grad(x):
    return x @ H.to(x.dtype)


def test_min_mode_refuses_a_zero_or_non_finite_start():
    x = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    with pytest.raises(ValueError, match="n0"):
        min_mode(quadratic_grad, x, n0=torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="n0"):
        min_mode(quadratic_grad, x, n0=torch.tensor([1.0, math.nan, 0.0, 0.0], dtype=torch.float64))


def test_min_mode_refuses_a_length_below_the_dtype_resolution():
    x = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    with pytest.raises(ValueError, match="resolution"):
        min_mode(quadratic_grad, x, length=1e-300)
    with pytest.raises(ValueError, match="resolution"):
        min_mode(quadratic_grad, x.float(), length=1e-9)
    with pytest.raises(ValueError, match="max_iterations"):
        min_mode(quadratic_grad, x, max_iterations=math.nan)


def test_min_mode_never_reports_convergence_without_a_finite_curvature():
    x = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)

    def broken(z):
        return torch.full_like(z, math.nan)

    _, curvature, info = min_mode(broken, x, seed=0, max_iterations=5, rotation="fourier")
    assert not bool(info["converged"])
    _, curvature, info = min_mode(quadratic_grad, x, seed=0, max_iterations=50, rotation="fourier")
    assert bool(info["converged"]) and curvature.item() == pytest.approx(-2.0, abs=1e-6)


# --------------------------------------------------------------------------- constant gradients
@pytest.mark.parametrize(
    "f",
    [
        lambda p: p[0] + p[1],
        lambda p: p[0],
        lambda p: 2 * p[0],
        lambda p: p[0] + 1,
        lambda p: p[0] * 0 + 3.0,
    ],
    ids=["x+y", "x", "2*x", "x+1", "constant"],
)
def test_a_straight_line_formula_has_a_zero_hessian(f):
    x = torch.tensor([[0.3, -0.2], [1.0, 2.0]], dtype=torch.float64)
    eigenvalues, _ = exact_eigh(f, x)
    assert torch.equal(eigenvalues, torch.zeros(2, 2, dtype=torch.float64))
    lam, v = exact_min_eig(f, x[0])
    assert lam.item() == 0.0 and torch.linalg.vector_norm(v).item() == pytest.approx(1.0)


def test_a_partly_linear_formula_keeps_its_curvature():
    lam, _ = exact_min_eig(lambda p: p[0] - p[1] ** 2, torch.tensor([0.3, -0.2], dtype=torch.float64))
    assert lam.item() == pytest.approx(-2.0)


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("batch_dims", [0, 1])
@pytest.mark.parametrize("base", ["sgd", "momentum", "adam", "adamw"])
def test_checkpoint_through_torch_save_and_weights_only_load_continues_bit_for_bit(base, batch_dims):
    settings = dict(base=base, lr=0.05, rotate_every=2, rotations=2, gate=0.5, nc_step=1e-3, seed=5)
    settings["batch_dims"] = batch_dims

    def run(x, opt, steps):
        closure, _ = make_closure(opt, x)
        for _ in range(steps):
            opt.step(closure)

    torch.manual_seed(1)
    x = problem(batch_dims).clone().requires_grad_(True)
    opt = DEO([x], **settings)
    run(x, opt, 5)
    buffer = io.BytesIO()
    torch.save(
        {"model": x.detach().clone(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}, buffer
    )
    run(x, opt, 6)

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    torch.set_rng_state(checkpoint["rng"])
    y = checkpoint["model"].clone().requires_grad_(True)
    resumed = DEO([y], **{**settings, "seed": 77})
    resumed.load_state_dict(checkpoint["optimizer"])
    run(y, resumed, 6)
    assert torch.equal(x.detach(), y.detach())
    same(snapshot(opt), snapshot(resumed))


def test_the_public_names_still_resolve():
    assert deo.DEO is DEO and deo.min_mode is min_mode and deo.exact_min_eig is exact_min_eig


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": "0.1"}, TypeError, "lr"),
        ({"lr": math.inf}, ValueError, "lr"),
        ({"radius": math.nan}, ValueError, "radius"),
        ({"t_thres": math.inf}, ValueError, "t_thres"),
        ({"seed": 1.5}, ValueError, "seed"),
    ],
)
def test_pgd_refuses_unusable_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PGD([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"lr": None}, TypeError, "lr"),
        ({"displacement": math.inf}, ValueError, "displacement"),
        ({"displacement": 1e300}, ValueError, "displacement"),
        ({"dimer_strength": math.nan}, ValueError, "dimer_strength"),
        ({"rotation_interval": 1.5}, ValueError, "rotation_interval"),
        ({"beta2": 1.0}, ValueError, "beta2"),
        ({"seed": "a"}, TypeError, "seed"),
    ],
)
def test_published_dimer_refuses_unusable_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PublishedDimer([torch.zeros(2, requires_grad=True)], **kwargs)


def test_baselines_refuse_complex_parameters():
    for cls in (PGD, PublishedDimer):
        with pytest.raises(TypeError, match="complex"):
            cls([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
