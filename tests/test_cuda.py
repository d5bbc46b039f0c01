"""CPU/CUDA parity of ``deo.DEO`` (issue 10, "A torch.optim citizen": CPU/CUDA parity, ``foreach``).

Every case runs the same problem — a small tanh MLP on fixed data, parameters and data drawn on
the CPU and then moved — on the CPU and on a CUDA device, and compares the parameters, the losses
and the dimer's state after a few steps:

* float64: ``atol=1e-10`` on the parameters. CPU and CUDA differ only in the order of reductions
  (matmul, dot products), ~1e-16 relative per operation; the dimer's finite difference divides
  gradient differences by ΔR = 1e-3, which amplifies that to ~1e-13, still far below 1e-10 over
  8 steps.
* float32: the same amplification makes a fixed tolerance guesswork (rounding ~1e-7 relative,
  divided by ΔR, then fed through the rotation and Adam's normalisation: on the CPU float32 Adam
  runs end ~1e-4 from float64 ones), so the tolerance is calibrated per case: the CUDA float32
  run must lie within ``5×`` the distance between the CPU
  float32 run and the CPU float64 run of the same case (plus 1e-5): it may differ from the CPU
  float32 run by rounding, by about as much as float32 rounding itself moves the run, but not
  by a bug (a bug moves parameters by ~lr = 1e-2).

TF32 matmuls are switched off for the CUDA runs (``torch.backends.cuda.matmul.allow_tf32``), as
TF32 is not float32.

Only ``torch``, ``pytest`` and ``deo`` are imported (``lightning`` optionally), so the file runs
on a GPU machine without the app's dependencies:
``PYTHONPATH=. python3 -m pytest tests/test_cuda.py -m cuda``. The helpers (:func:`run_case`,
:func:`assert_parity`) are exercised on the CPU by the one test here that is not marked ``cuda``.
"""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from deo.optim import DEO

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
LR = 0.01
STEPS = 8
# d = 21 (< SMALL_D) and 161; one problem takes the per-parameter step and the Gram event at both,
# batch_dims=1 cases the flat path
WIDTHS = {"tiny": (3, 4), "mlp": (8, 16)}
ROWS = 3  # problems of a batch_dims=1 case


# --------------------------------------------------------------------------- helpers
def make_problem(device, dtype, width="mlp", batch_dims=0, samples=24):
    """(params, closure_factory): an MLP ``in → hidden (tanh) → 1`` with biases and fixed data;
    with ``batch_dims=1`` ``ROWS`` independent copies (first dim of every parameter)."""
    n_in, hidden = WIDTHS[width]
    gen = torch.Generator().manual_seed(0)
    lead = (ROWS,) if batch_dims else ()
    shapes = [(*lead, n_in, hidden), (*lead, hidden), (*lead, hidden, 1), (*lead, 1)]
    params = [
        (0.5 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(device=device, dtype=dtype)
        for shape in shapes
    ]
    params = [p.requires_grad_(True) for p in params]
    x = torch.randn(samples, n_in, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    y = torch.randn(samples, 1, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    def loss_fn():
        w1, b1, w2, b2 = params
        if batch_dims:
            h = torch.tanh(torch.einsum("ni,bih->bnh", x, w1) + b1[:, None, :])
            out = torch.einsum("bnh,bho->bno", h, w2) + b2[:, None, :]
            return ((out - y) ** 2).mean(dim=(1, 2)).sum()
        return ((torch.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2).mean()

    return params, loss_fn


def run_case(
    device,
    *,
    base="adam",
    foreach=False,
    dtype=torch.float64,
    width="mlp",
    rotation="fourier",
    scheme="forward",
    rotate_every=2,
    rotations=2,
    max_grad_norm=None,
    target="gradient",
    groups=False,
    scheduler=None,
    direction="dimer",
    redraw_every=None,
    nc_step=0.0,
    gate=None,
    batch_dims=0,
    steps=STEPS,
):
    """Run DEO ``steps`` steps on :func:`make_problem` on ``device``; return everything to compare,
    on the CPU: parameters, the loss and clip scale of every step, the final diagnostics."""
    params, loss_fn = make_problem(device, dtype, width, batch_dims)
    start = [p.detach().double().cpu().clone() for p in params]
    if groups:  # two groups: different lr and α
        arg = [{"params": params[:2]}, {"params": params[2:], "lr": 0.3 * LR, "alpha": 0.5}]
    else:
        arg = params
    extra = {"rotation_step": 0.05} if rotation == "sd" else {}
    opt = DEO(
        arg, base=base, lr=LR, rotate_every=rotate_every, rotations=rotations, rotation=rotation,
        scheme=scheme, max_grad_norm=max_grad_norm, target=target, direction=direction,
        redraw_every=redraw_every, nc_step=nc_step, gate=gate, batch_dims=batch_dims, seed=4,
        foreach=foreach, **extra,
    )  # fmt: skip
    if scheduler == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    elif scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    else:
        sched = None

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    losses, clip_scales, lrs = [], [], []
    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
        diag = opt.diagnostics()
        clip_scales.append(torch.as_tensor(diag["clip_scale"]).double().cpu())
        lrs.append([group["lr"] for group in opt.param_groups])
        if sched is not None:
            sched.step()
    diag = opt.diagnostics()
    return {
        "params": [p.detach().double().cpu() for p in params],
        "motion": max(float((p.detach().double().cpu() - q).abs().max()) for p, q in zip(params, start)),
        "losses": torch.tensor(losses, dtype=torch.float64),
        "clip_scales": torch.stack(clip_scales),
        "lrs": lrs,
        "direction": diag["direction"].double().cpu(),
        "curvature": torch.as_tensor(diag["curvature"]).double().cpu(),
        "modified_grad": diag["modified_grad"].double().cpu(),
        "counts": {k: diag[k] for k in ("grad_evals", "grad_evals_spent", "rotation_events", "step")},
    }


def distance(a, b):
    """Largest absolute difference between two :func:`run_case` results' parameters."""
    return max(float((p - q).abs().max()) for p, q in zip(a["params"], b["params"]))


def assert_parity(a, b, atol):
    """``b`` equals ``a`` up to ``atol`` on the parameters (and proportionally on the rest);
    counters exactly."""
    assert a["counts"] == b["counts"]
    assert a["lrs"] == b["lrs"]
    assert distance(a, b) <= atol, f"parameters differ by {distance(a, b):.3g} > {atol:.3g}"
    scale = 1e3 * atol  # the dimer's N and C are finite differences over ΔR = 1e-3
    torch.testing.assert_close(b["losses"], a["losses"], rtol=0, atol=scale)
    torch.testing.assert_close(b["clip_scales"], a["clip_scales"], rtol=0, atol=scale)
    torch.testing.assert_close(b["curvature"], a["curvature"], rtol=scale, atol=scale)
    # N is defined up to its sign only in principle; DEO keeps the warm-started sign, so compare as is
    torch.testing.assert_close(b["direction"], a["direction"], rtol=0, atol=scale)
    torch.testing.assert_close(b["modified_grad"], a["modified_grad"], rtol=0, atol=scale)


def float32_tolerance(case):
    """(CPU float32 run, tolerance, motion): the CUDA float32 run may differ from the CPU float32
    run by 5× as much as float32 rounding moves the CPU run away from float64, plus 1e-5 (see the
    module docstring); ``motion`` is how far the float64 run moved the parameters."""
    reference = run_case("cpu", **{**case, "dtype": torch.float64})
    cpu32 = run_case("cpu", **{**case, "dtype": torch.float32})
    return cpu32, 5 * distance(cpu32, reference) + 1e-5, reference["motion"]


@pytest.fixture
def no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = before


# --------------------------------------------------------------------------- the CPU check of the helpers
def test_parity_helpers_are_deterministic_on_the_cpu():
    """The code path of the CUDA cases, on the CPU: the same case twice is bit for bit the same run,
    and :func:`assert_parity` accepts it at atol 0 (and rejects a run with another rotation)."""
    for case in (
        {"base": "adam", "foreach": True},
        {"base": "momentum", "rotation": "lanczos", "scheme": "central"},
    ):
        first, second = run_case("cpu", **case, steps=4), run_case("cpu", **case, steps=4)
        assert all(torch.equal(p, q) for p, q in zip(first["params"], second["params"]))
        assert torch.equal(first["losses"], second["losses"])
        assert first["counts"]["rotation_events"] == 2 and first["counts"]["step"] == 4
        assert_parity(first, second, atol=0.0)
    other = run_case("cpu", base="momentum", rotation="lanczos", scheme="central", steps=4, scheduler="step")
    assert other["lrs"][2] == [LR] and other["lrs"][3] == [0.5 * LR]  # StepLR acts on DEO's groups
    with pytest.raises(AssertionError):
        assert_parity(
            first, run_case("cpu", base="momentum", rotation="sd", scheme="central", steps=4), atol=1e-10
        )


# --------------------------------------------------------------------------- parity cases
BASE_CASES = [
    pytest.param({"base": base, "foreach": foreach}, id=f"{base}-foreach{foreach}")
    for base in ("sgd", "momentum", "adam", "adamw")
    for foreach in (False, True)
]
VARIANT_CASES = [
    pytest.param({"rotation": rotation, "scheme": scheme, "width": width}, id=f"{rotation}-{scheme}-{width}")
    for rotation, width in (("fourier", "mlp"), ("fourier", "tiny"), ("lanczos", "mlp"), ("sd", "mlp"))
    for scheme in ("forward", "central")
] + [
    pytest.param({"rotate_every": 1, "rotations": 1}, id="rotate_every1"),
    pytest.param({"rotate_every": 3, "rotations": 3, "rotation": "lanczos"}, id="rotate_every3-lanczos"),
    pytest.param({"rotate_every": 1, "rotations": 0}, id="rotations0"),
    pytest.param({"max_grad_norm": 0.05}, id="clip-gradient"),
    pytest.param({"max_grad_norm": 0.05, "target": "update"}, id="clip-update"),
    pytest.param({"groups": True}, id="groups"),
    pytest.param({"groups": True, "scheduler": "step", "base": "adamw"}, id="groups-steplr"),
    pytest.param({"scheduler": "onecycle", "foreach": True}, id="onecycle"),
    pytest.param({"direction": "random", "redraw_every": 2}, id="random-control"),
    pytest.param({"batch_dims": 1, "rotation": "lanczos"}, id="batch_dims1"),
    pytest.param({"batch_dims": 1, "max_grad_norm": 0.05, "foreach": True}, id="batch_dims1-clip"),
]
FLOAT32_CASES = [
    *BASE_CASES,
    pytest.param({"rotation": "lanczos", "scheme": "central"}, id="lanczos-central"),
    pytest.param({"width": "tiny", "scheme": "central"}, id="fourier-central-tiny"),
    pytest.param({"max_grad_norm": 0.05, "groups": True}, id="clip-groups"),
]


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("case", BASE_CASES + VARIANT_CASES)
def test_float64_cuda_matches_cpu(case, no_tf32):
    cpu, gpu = run_case("cpu", **case), run_case("cuda", **case)
    assert_parity(cpu, gpu, atol=1e-10)
    if case.get("max_grad_norm"):
        assert float(cpu["clip_scales"].min()) < 1.0  # the clip was active


@pytest.mark.cuda
@CUDA
def test_float64_cuda_matches_cpu_with_gate_and_negative_curvature_step(no_tf32):
    case = {"gate": 1.0, "nc_step": 1e-3, "base": "adam"}
    cpu, gpu = run_case("cpu", **case), run_case("cuda", **case)
    assert_parity(cpu, gpu, atol=1e-10)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("case", FLOAT32_CASES)
def test_float32_cuda_matches_cpu_within_float32_rounding(case, no_tf32):
    case = {**case, "dtype": torch.float32}
    cpu32, tolerance, motion = float32_tolerance(case)
    gpu32 = run_case("cuda", **case)
    assert cpu32["counts"] == gpu32["counts"]
    assert distance(cpu32, gpu32) <= tolerance, f"{distance(cpu32, gpu32):.3g} > {tolerance:.3g}"
    assert tolerance < 0.1 * motion  # float32 rounding, not a different run


# --------------------------------------------------------------------------- state dict and devices
def _opt_on(params, lr=LR, **kwargs):
    return DEO(params, base="adam", lr=lr, rotate_every=3, rotations=2, seed=4, **kwargs)


def _closure(opt, loss_fn):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


def _tensors_of(state):
    for key, entry in state.items():
        values = entry.items() if isinstance(entry, dict) else [(key, entry)]
        for name, value in values:
            if isinstance(value, torch.Tensor):
                yield key, name, value


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("foreach", [False, True])
def test_cuda_state_dict_round_trip_continues_bit_for_bit(foreach):
    params, loss_fn = make_problem("cuda", torch.float64)
    opt = _opt_on(params, foreach=foreach)
    for _ in range(4):  # stops mid-interval (events at steps 0 and 3)
        opt.step(_closure(opt, loss_fn))
    buffer = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "params": [p.detach().clone() for p in params]}, buffer)
    for _ in range(5):
        opt.step(_closure(opt, loss_fn))
    expected = [p.detach().clone() for p in params]

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    params2, loss_fn2 = make_problem("cuda", torch.float64)
    with torch.no_grad():
        for p, q in zip(params2, saved["params"]):
            p.copy_(q)
    opt2 = _opt_on(params2, foreach=foreach, lr=0.5)  # the hyperparameters come from the state dict
    opt2.load_state_dict(saved["opt"])
    for _ in range(5):
        opt2.step(_closure(opt2, loss_fn2))
    assert all(torch.equal(p.detach(), q) for p, q in zip(params2, expected))
    assert opt2.diagnostics()["grad_evals"] == opt.diagnostics()["grad_evals"]


@pytest.mark.cuda
@CUDA
def test_cuda_state_dict_loads_into_a_cpu_optimizer_and_back(no_tf32):
    """torch.optim semantics: on load, per-parameter state follows its parameter's device (Adam's
    ``step`` stays a CPU scalar unless capturable/fused); the dimer's state follows the parameters."""
    params, loss_fn = make_problem("cuda", torch.float64)
    opt = _opt_on(params)
    for _ in range(4):
        opt.step(_closure(opt, loss_fn))
    state = copy.deepcopy(opt.state_dict())
    start = [p.detach().cpu().clone() for p in params]
    for _ in range(5):
        opt.step(_closure(opt, loss_fn))
    on_cuda = [p.detach().cpu().clone() for p in params]

    cpu_params, cpu_loss = make_problem("cpu", torch.float64)
    with torch.no_grad():
        for p, q in zip(cpu_params, start):
            p.copy_(q)
    cpu_opt = _opt_on(cpu_params)
    cpu_opt.load_state_dict(state)
    for key, name, value in _tensors_of(cpu_opt.state):
        assert value.device.type == "cpu", (key, name)
    for _ in range(5):
        cpu_opt.step(_closure(cpu_opt, cpu_loss))
    assert max(float((p.detach() - q).abs().max()) for p, q in zip(cpu_params, on_cuda)) <= 1e-10

    back, back_loss = make_problem("cuda", torch.float64)
    with torch.no_grad():
        for p, q in zip(back, cpu_params):
            p.copy_(q.detach())
    back_opt = _opt_on(back)
    back_opt.load_state_dict(copy.deepcopy(cpu_opt.state_dict()))  # cpu_opt steps on
    for key, name, value in _tensors_of(back_opt.state):
        expected = "cpu" if name == "step" else "cuda"
        assert value.device.type == expected, (key, name, value.device)
    for _ in range(3):
        back_opt.step(_closure(back_opt, back_loss))
        cpu_opt.step(_closure(cpu_opt, cpu_loss))
    assert max(float((p.detach().cpu() - q.detach()).abs().max()) for p, q in zip(back, cpu_params)) <= 1e-10


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("batch_dims", [0, 1])
def test_cuda_state_and_diagnostics_live_on_the_device(batch_dims):
    params, loss_fn = make_problem("cuda", torch.float32, batch_dims=batch_dims)
    opt = _opt_on(params, batch_dims=batch_dims, max_grad_norm=1.0)
    for _ in range(3):
        opt.step(_closure(opt, loss_fn))
    for key, name, value in _tensors_of(opt.state):
        assert value.device.type == ("cpu" if name == "step" else "cuda"), (key, name)
    diag = opt.diagnostics()
    for name in ("direction", "modified_grad", "removed"):
        assert diag[name].device.type == "cuda", name
        assert diag[name].dtype == torch.float32, name
    for name in ("curvature", "torque", "grad_norm", "modified_grad_norm", "removed_fraction", "clip_scale"):
        if batch_dims:
            assert diag[name].device.type == "cuda" and diag[name].shape == (ROWS,), name
        else:
            assert isinstance(diag[name], float) and math.isfinite(diag[name]), name


# --------------------------------------------------------------------------- closure RNG on CUDA
@pytest.mark.cuda
@CUDA
def test_cuda_dimer_ends_replay_the_closure_cuda_rng_state():
    """The CUDA twin of ``test_dimer_ends_replay_the_closure_rng_state_like_a_fixed_dropout_mask``:
    f = ‖x‖² + ξ·x with ξ drawn on the CUDA generator inside the closure. With the same ξ at the
    ends D = 2N exactly and C = 2; the CUDA stream advances by one closure only."""
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, device="cuda", requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.0, rotate_every=1, rotations=0, seed=0)

    def closure():
        opt.zero_grad()
        noise = torch.randn(3, dtype=torch.float64, device="cuda")
        loss = (x**2).sum() + (noise * x).sum()
        loss.backward()
        return loss

    torch.cuda.manual_seed(7)
    opt.step(closure)
    after_step = torch.rand(1, device="cuda")
    torch.cuda.manual_seed(7)
    torch.randn(3, dtype=torch.float64, device="cuda")
    assert torch.equal(after_step, torch.rand(1, device="cuda"))
    assert opt.diagnostics()["curvature"] == pytest.approx(2.0, abs=1e-9)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_cuda_dropout_mask_is_the_same_at_theta_and_at_every_dimer_end(scheme):
    """A dropout layer on CUDA (p = 0.5): every closure call of a rotation event sees the mask of
    the call at θ, so the probe measures the Hessian of that one mask, f = Σ dropout(x)² →
    C = Nᵀ diag(8m) N exactly; one problem's Gram-event path included (d = 100)."""
    d = 100
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(d, generator=gen, dtype=torch.float64).cuda().requires_grad_(True)
    opt = DEO([x], base="sgd", lr=0.0, rotate_every=1, rotations=0, scheme=scheme, seed=0)
    masks = []

    def closure():
        opt.zero_grad()
        dropped = torch.nn.functional.dropout(x, p=0.5, training=True)
        masks.append((dropped != 0).detach().clone())
        loss = (dropped**2).sum()
        loss.backward()
        return loss

    torch.cuda.manual_seed(3)
    n0 = opt.diagnostics()["direction"].clone()
    opt.step(closure)
    assert len(masks) == (2 if scheme == "forward" else 3)
    assert all(torch.equal(mask, masks[0]) for mask in masks[1:])
    expected = float((8.0 * masks[0].double() * n0 * n0).sum())
    assert opt.diagnostics()["curvature"] == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- Lightning on CUDA
@pytest.mark.cuda
@CUDA
def test_deo_trains_inside_lightning_automatic_optimization_on_cuda(tmp_path):
    """DEO in a real ``lightning.Trainer(accelerator="gpu")``: Lightning passes the closure to
    ``optimizer.step``; every training_step call is a gradient evaluation DEO counts."""
    lightning = pytest.importorskip("lightning")
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = (x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])).tanh()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    calls, losses, optimizers = [0], [], []

    class Module(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

        def training_step(self, batch, batch_idx):
            calls[0] += 1
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            opt = DEO(self.parameters(), base="adam", lr=0.02, rotate_every=2, seed=0, max_grad_norm=1.0)
            optimizers.append(opt)
            return opt

    module = Module()
    trainer = lightning.Trainer(
        accelerator="gpu", devices=1, max_epochs=5, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, loader)
    diag = optimizers[0].diagnostics()
    assert diag["step"] == 40 and diag["grad_evals"] == calls[0] == 80
    assert diag["direction"].device.type == "cuda"
    assert math.isfinite(diag["curvature"])
    assert sum(losses[-8:]) < 0.5 * sum(losses[:8])
