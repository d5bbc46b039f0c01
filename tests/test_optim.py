"""DEO optimizer: the specification of DEO.md (acceptance 3–8) and the closure protocol."""

import io
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from deo.dimer import batched_dot
from deo.optim import DEO, LIST_DOT_CAT, _list_dot

A = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64))


def quadratic_closure(opt, x, matrix=A):
    """½ xᵀAx with gradient Ax (rows of a batch are independent problems)."""

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x @ matrix * x).sum()
        loss.backward()
        return loss

    return closure


def tiny_net():
    """A 2-layer tanh net on fixed data, float64: a non-quadratic loss with several tensors."""
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    target = torch.randn(16, 1, generator=gen, dtype=torch.float64)
    w1 = torch.randn(3, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    b1 = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(5, 1, generator=gen, dtype=torch.float64).requires_grad_(True)
    params = [w1, b1, w2]

    def loss_fn():
        return ((torch.tanh(data @ w1 + b1) @ w2 - target) ** 2).mean()

    return params, loss_fn


def make_closure(opt, loss_fn):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


# --------------------------------------------------------------------------- acceptance 3
@pytest.mark.parametrize("alpha", [1.0, -1.0, 2.0, 0.5])
def test_modified_gradient_component_along_n_is_one_minus_alpha(alpha):
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.1, alpha=alpha, rotate_every=1, seed=3)
    g = A @ x.detach()
    opt.step(quadratic_closure(opt, x))
    n = opt.diagnostics()["direction"]
    g_mod = x.grad  # what the base optimizer received
    assert torch.dot(g_mod, n).item() == pytest.approx((1 - alpha) * torch.dot(g, n).item(), abs=1e-12)
    assert torch.allclose(g_mod - g, -alpha * torch.dot(g, n) * n, atol=1e-14)


def test_gate_leaves_gradient_unchanged_where_curvature_is_above_it():
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.1, rotate_every=1, gate=-10.0, seed=3)  # C >= λ_min = -2 > gate
    g = A @ x.detach()
    opt.step(quadratic_closure(opt, x))
    assert torch.equal(x.grad, g)


def test_target_update_removes_motion_along_n_under_adam():
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="adam", lr=0.1, rotate_every=1, rotations=2, target="update", seed=3)
    before = x.detach().clone()
    opt.step(quadratic_closure(opt, x))
    n = opt.diagnostics()["direction"]
    assert torch.dot(x.detach() - before, n).item() == pytest.approx(0.0, abs=1e-15)


def test_curvature_of_an_event_is_n_a_n_on_a_quadratic():
    # finite differences are exact on a quadratic: C = NᵀAN at the reported N
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.0, rotate_every=1, rotations=1, seed=5)
    opt.step(quadratic_closure(opt, x))
    diag = opt.diagnostics()
    n = diag["direction"]
    assert diag["curvature"] == pytest.approx((n @ A @ n).item(), abs=1e-9)
    assert torch.linalg.vector_norm(n).item() == pytest.approx(1.0, abs=1e-14)


def test_rotations_turn_n_to_the_min_mode_with_warm_start():
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.0, rotate_every=1, rotations=1, seed=5)
    closure = quadratic_closure(opt, x)
    for _ in range(10):
        opt.step(closure)
    diag = opt.diagnostics()
    assert abs(diag["direction"][2].item()) > 0.999
    assert diag["curvature"] == pytest.approx(-2.0, abs=1e-3 * 5)


# --------------------------------------------------------------------------- acceptance 4
@pytest.mark.parametrize("scheme, c", [("forward", 1), ("central", 2)])
@pytest.mark.parametrize("rotation", ["sd", "fourier"])
def test_grad_evals_count_the_algorithm_cost_exactly(scheme, c, rotation):
    steps, rotate_every, rotations = 23, 5, 2
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO(
        [x], base="adam", lr=0.01, rotate_every=rotate_every, rotations=rotations, rotation=rotation,
        scheme=scheme, rotation_step=0.1, seed=0,
    )  # fmt: skip
    calls = []

    def closure():
        calls.append(1)
        return quadratic_closure(opt, x)()

    for _ in range(steps):
        opt.step(closure)
    events = math.ceil(steps / rotate_every)
    diag = opt.diagnostics()
    assert diag["rotation_events"] == events
    # one probe of the warm-started N + one probe per rotation iteration, c gradients each
    assert diag["grad_evals"] == steps + events * (rotations + 1) * c
    assert diag["grad_evals"] == len(calls)


# --------------------------------------------------------------------------- acceptance 5
def test_step_without_closure_is_refused():
    x = torch.zeros(2, requires_grad=True)
    opt = DEO([x])
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def test_closure_without_backward_is_refused():
    x = torch.ones(2, requires_grad=True)
    opt = DEO([x])
    (x**2).sum().backward()  # a stale gradient must not hide the missing backward

    def forward_only():
        return (x**2).sum()

    with pytest.raises(RuntimeError, match="backward"):
        opt.step(forward_only)


def test_dimer_end_gradient_differs_from_midpoint_when_hn_nonzero():
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.0, rotate_every=1, rotations=0, seed=2)
    n0 = opt.diagnostics()["direction"]
    ends = []

    def closure():
        loss = quadratic_closure(opt, x)()
        ends.append(x.grad.clone())
        return loss

    opt.step(closure)
    assert len(ends) == 2
    assert torch.allclose(ends[1] - ends[0], 1e-3 * A @ n0, atol=1e-15)
    assert not torch.equal(ends[1], ends[0])


# --------------------------------------------------------------------------- acceptance 6
@pytest.mark.parametrize("base", ["adam", "sgd", "momentum", "adamw"])
def test_state_dict_round_trip_continues_bit_for_bit(base):
    settings = dict(base=base, lr=0.05, rotate_every=3, rotations=2, gate=0.5, nc_step=1e-3, seed=11)
    params, loss_fn = tiny_net()
    opt = DEO(params, **settings)
    closure = make_closure(opt, loss_fn)
    for _ in range(7):
        opt.step(closure)
    saved_params = [p.detach().clone() for p in params]
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)  # a real round trip: the live state keeps changing
    buffer.seek(0)
    saved_state = torch.load(buffer)
    for _ in range(8):
        opt.step(closure)

    params2, loss_fn2 = tiny_net()
    with torch.no_grad():
        for p, value in zip(params2, saved_params):
            p.copy_(value)
    opt2 = DEO(params2, **{**settings, "seed": 99})
    opt2.load_state_dict(saved_state)
    closure2 = make_closure(opt2, loss_fn2)
    for _ in range(8):
        opt2.step(closure2)
    for p, q in zip(params, params2):
        assert torch.equal(p, q)
    d1, d2 = opt.diagnostics(), opt2.diagnostics()
    assert torch.equal(d1["direction"], d2["direction"])
    assert d1["grad_evals"] == d2["grad_evals"]
    assert d1["rotation_events"] == d2["rotation_events"]


def test_lr_schedule_on_deo_reaches_the_base_optimizer():
    x = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.1, alpha=0.0, rotate_every=100)
    opt.param_groups[0]["lr"] = 0.0
    before = x.detach().clone()
    opt.step(quadratic_closure(opt, x, torch.eye(2, dtype=torch.float64)))
    assert torch.equal(x.detach(), before)


# --------------------------------------------------------------------------- acceptance 7
def test_batched_rows_match_separate_runs():
    """B independent 2-D problems f_b = x² − y² + y⁴/4 + c_b·x·y; row b of the batch is seeded seed + b.

    A row's result does not depend on the batch it is in: bit for bit the same as a batch of that
    row alone (``batch_dims=1``, B = 1). A separate run (``batch_dims=0``) takes the single-problem
    path (per-parameter step, Gram-matrix rotation event) and agrees to rounding."""
    starts = [[1.0, 1e-3], [0.5, -0.2], [0.0, 0.0], [-0.3, 0.7], [2.0, 0.1]]
    starts = torch.tensor(starts, dtype=torch.float64)
    coupling = torch.tensor([0.0, 0.3, 0.0, -0.5, 0.2], dtype=torch.float64)
    settings = dict(base="adam", lr=0.02, rotate_every=2, rotations=1, gate=0.0, nc_step=1e-3, alpha=-1.0)

    def f(xy, c):
        x, y = xy[..., 0], xy[..., 1]
        return x**2 - y**2 + y**4 / 4 + c * x * y

    def run(xy0, c, batch_dims, seed, steps=25):
        xy = xy0.clone().requires_grad_(True)
        opt = DEO([xy], batch_dims=batch_dims, seed=seed, **settings)
        path, curvatures = [], []

        def closure():
            opt.zero_grad()
            loss = f(xy, c).sum()
            loss.backward()
            return loss

        for _ in range(steps):
            opt.step(closure)
            path.append(xy.detach().clone())
            curvatures.append(torch.as_tensor(opt.diagnostics()["curvature"], dtype=torch.float64))
        return torch.stack(path), torch.stack(curvatures), opt.diagnostics()["direction"]

    path, curv, direction = run(starts, coupling, batch_dims=1, seed=40)
    for b in range(len(starts)):
        alone, curv_alone, direction_alone = run(starts[b : b + 1], coupling[b : b + 1], 1, seed=40 + b)
        assert torch.equal(path[:, b], alone[:, 0])
        assert torch.equal(curv[:, b], curv_alone[:, 0])
        assert torch.equal(direction[b], direction_alone[0])
        path_b, curv_b, direction_b = run(starts[b], coupling[b], batch_dims=0, seed=40 + b)
        # rounding (≈ 1e-13 here), grown by the saddle's instability for row 2, which starts on it
        torch.testing.assert_close(path_b, path[:, b], rtol=0, atol=1e-10)
        torch.testing.assert_close(curv_b, curv[:, b], rtol=0, atol=1e-11)
        torch.testing.assert_close(direction_b, direction[b], rtol=0, atol=1e-11)
    assert not torch.equal(path[-1, 2], starts[2])  # row 2 starts on the saddle: nc_step moved it


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -0.1}, "lr"),
        ({"dimer_length": 0.0}, "dimer_length"),
        ({"dimer_length": -1e-3}, "dimer_length"),
        ({"rotate_every": 0}, "rotate_every"),
        ({"rotations": -1}, "rotations"),
        ({"base": "lion"}, "base"),
        ({"rotation": "newton"}, "rotation"),
        ({"rotation": "sd"}, "rotation_step"),
        ({"scheme": "backward"}, "scheme"),
        ({"target": "loss"}, "target"),
        ({"batch_dims": 2}, "batch_dims"),
        ({"nc_step": -1.0}, "nc_step"),
    ],
)
def test_invalid_arguments_are_refused_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DEO([torch.zeros(2, requires_grad=True)], **kwargs)


def test_batch_dims_needs_a_common_first_dim():
    with pytest.raises(ValueError, match="first dim"):
        DEO([torch.zeros(3, 2, requires_grad=True), torch.zeros(4, requires_grad=True)], batch_dims=1)


def test_nan_loss_is_a_value_error():
    x = torch.ones(2, requires_grad=True)
    opt = DEO([x])

    def closure():
        opt.zero_grad()
        loss = (x**2).sum() * float("nan")
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="non-finite loss"):
        opt.step(closure)


def test_nan_end_gradient_keeps_the_previous_direction():
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.01, rotate_every=1, seed=1)
    home = {}

    def closure():
        loss = quadratic_closure(opt, x)()
        if not torch.equal(x.detach(), home["x"]):  # a dimer end
            x.grad.fill_(float("nan"))
        return loss

    n0 = opt.diagnostics()["direction"]
    for _ in range(3):
        home["x"] = x.detach().clone()
        opt.step(closure)
    diag = opt.diagnostics()
    assert torch.equal(diag["direction"], n0)
    assert torch.isfinite(x).all()


def test_base_can_be_an_optimizer_class_with_its_own_kwargs():
    x = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base=torch.optim.Adagrad, lr=0.01, rotate_every=1, lr_decay=0.5)
    opt.step(quadratic_closure(opt, x, torch.eye(2, dtype=torch.float64)))
    assert isinstance(opt.base, torch.optim.Adagrad)
    assert opt.base.param_groups[0]["lr_decay"] == 0.5


@pytest.mark.parametrize("base", [torch.optim.RMSprop, torch.optim.ASGD])
def test_a_base_with_its_own_alpha_is_refused(base):
    """RMSprop's and ASGD's ``alpha`` would share the param-group key with DEO's α: RMSprop ran with
    smoothing α = 1 (its running average stayed 0, |θ| reached 5e18 in three steps)."""
    x = torch.tensor([1.0, -1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"own hyperparameter\(s\) \['alpha'\]"):
        DEO([x], base=base, lr=0.01)


# --------------------------------------------------------------------------- acceptance 8
# Escape table of DEO.md: lr 0.01, escaped when f ≤ −1 (x²−y²+y⁴/4: f ≤ −0.9).
SURFACES = [  # (f, grad, Hessian (hxx, hxy, hyy)), start, threshold, GD, Adam, DEO α=−1 exact N
    ("saddle", (1.0, 1e-3), -1.0, 349, 80, 177),
    ("saddle", (1.0, 1e-6), -1.0, 698, 81, 353),
    ("plateau", (1.0, 1e-6), -0.9, 734, 101, 371),
    ("monkey", (0.5, 1e-3), -1.0, 804, 67, 277),
]


def f_value(kind, x, y):
    if kind == "saddle":
        return x**2 - y**2
    if kind == "plateau":
        return x**2 - y**2 + y**4 / 4
    return x**3 - 3 * x * y**2


def f_grad(kind, x, y):
    if kind == "saddle":
        return 2 * x, -2 * y
    if kind == "plateau":
        return 2 * x, -2 * y + y**3
    return 3 * x**2 - 3 * y**2, -6 * x * y


def v_min(kind, x, y):
    """Exact unit eigenvector of the smallest Hessian eigenvalue of a 2×2 symmetric Hessian."""
    if kind == "monkey":
        hxx, hxy, hyy = 6 * x, -6 * y, -6 * x
    else:
        hxx, hxy, hyy = 2.0, 0.0, -2.0 + (3 * y**2 if kind == "plateau" else 0.0)
    phi = 0.5 * math.atan2(2 * hxy, hxx - hyy)  # angle of the max eigenvector
    return -math.sin(phi), math.cos(phi)


def escape_step(kind, start, threshold, alpha=None, steps=20_000, lr=0.01):
    """GD (alpha None) or exact-N DEO on GD: θ ← θ − lr·(g − α(g·v)v); first t with f(θ_t) ≤ threshold."""
    x, y = start
    for t in range(steps + 1):
        if f_value(kind, x, y) <= threshold:
            return t
        gx, gy = f_grad(kind, x, y)
        if alpha is not None:
            vx, vy = v_min(kind, x, y)
            along = gx * vx + gy * vy
            gx, gy = gx - alpha * along * vx, gy - alpha * along * vy
        x, y = x - lr * gx, y - lr * gy
    return None


@pytest.mark.parametrize("kind, start, threshold, gd, adam, escape", SURFACES)
def test_escape_table_gd_and_exact_n_deo(kind, start, threshold, gd, adam, escape):
    assert abs(escape_step(kind, start, threshold) - gd) <= 2
    assert abs(escape_step(kind, start, threshold, alpha=-1.0) - escape) <= 2
    assert escape_step(kind, start, threshold, alpha=1.0) is None  # never within 20 000 steps


def test_gd_escape_time_matches_the_closed_form_on_x2_minus_y2():
    # y_t = y₀(1 + 2η)^t must reach |y| ≈ 1 (x_t → 0): ⌈ln(1/y₀)/ln(1.02)⌉ = 349
    assert math.ceil(math.log(1 / 1e-3) / math.log(1.02)) == 349


def batched_surfaces():
    kinds = [row[0] for row in SURFACES]
    starts = torch.tensor([row[1] for row in SURFACES], dtype=torch.float64)
    thresholds = torch.tensor([row[2] for row in SURFACES], dtype=torch.float64)
    masks = {kind: torch.tensor([k == kind for k in kinds], dtype=torch.float64) for kind in set(kinds)}

    def f(xy):
        x, y = xy[:, 0], xy[:, 1]
        return sum(masks[kind] * f_value(kind, x, y) for kind in masks)

    return starts, thresholds, f


def run_batched(make_opt, steps):
    """All four surfaces as rows of one (4, 2) tensor; escaped rows are frozen (zero loss)."""
    starts, thresholds, f = batched_surfaces()
    xy = starts.clone().requires_grad_(True)
    opt = make_opt([xy])
    escaped = torch.full((4,), -1)

    def closure():
        opt.zero_grad()
        loss = (f(xy) * (escaped < 0)).sum()
        loss.backward()
        return loss

    for t in range(steps + 1):
        with torch.no_grad():
            escaped[(f(xy) <= thresholds) & (escaped < 0)] = t
        if bool((escaped >= 0).all()):
            break
        opt.step(closure)
    return escaped.tolist()


def test_escape_table_adam():
    escaped = run_batched(lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999)), 200)
    for got, row in zip(escaped, SURFACES):
        assert abs(got - row[4]) <= 2


def engine(params, alpha, rotate_every):
    """DEO with its own dimer (not the exact eigenvector) on a GD base."""
    return DEO(params, base="sgd", lr=0.01, alpha=alpha, rotate_every=rotate_every, batch_dims=1, seed=0)


def test_engine_dimer_gives_the_same_picture_alpha_minus_one_escapes():
    escaped = run_batched(lambda p: engine(p, alpha=-1.0, rotate_every=1), 400)
    for got, row in zip(escaped, SURFACES):
        assert abs(got - row[5]) <= 2  # the dimer finds v_min: same as the exact eigenvector


def test_engine_dimer_gives_the_same_picture_alpha_one_is_stuck():
    # the paper's setting (a rotation every 10 steps); 850 steps > every GD escape time of the
    # table (≤ 804): the projection suppresses the escape
    escaped = run_batched(lambda p: engine(p, alpha=1.0, rotate_every=10), 850)
    assert escaped == [-1, -1, -1, -1]


def test_nc_step_escapes_from_exactly_on_the_saddle():
    xy = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = DEO([xy], base="sgd", lr=0.05, alpha=-1.0, gate=0.0, nc_step=0.05, rotate_every=1, seed=0)

    def closure():
        opt.zero_grad()
        loss = xy[0] ** 2 - xy[1] ** 2
        loss.backward()
        return loss

    for _ in range(40):
        loss = opt.step(closure)
    assert xy.grad.abs().max().item() > 0  # it left the stationary point
    assert loss.item() <= -1.0


# --------------------------------------------------------------------------- devices
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("base", ["adam", "sgd"])
def test_cuda_matches_cpu(base):
    def run(device):
        params, _ = tiny_net()
        params = [p.detach().to(device).requires_grad_(True) for p in params]
        gen = torch.Generator().manual_seed(0)
        data = torch.randn(16, 3, generator=gen, dtype=torch.float64).to(device)
        target = torch.randn(16, 1, generator=gen, dtype=torch.float64).to(device)
        w1, b1, w2 = params
        opt = DEO(params, base=base, lr=0.05, rotate_every=2, rotations=2, nc_step=1e-3, gate=1.0, seed=4)

        def closure():
            opt.zero_grad()
            loss = ((torch.tanh(data @ w1 + b1) @ w2 - target) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(6):
            opt.step(closure)
        return [p.detach().cpu() for p in params], opt.diagnostics()

    cpu_params, cpu_diag = run("cpu")
    gpu_params, gpu_diag = run("cuda")
    for p, q in zip(cpu_params, gpu_params):
        assert torch.allclose(p, q, atol=1e-10)
    assert torch.allclose(cpu_diag["direction"], gpu_diag["direction"].cpu(), atol=1e-8)
    assert cpu_diag["grad_evals"] == gpu_diag["grad_evals"]


def test_dimer_ends_replay_the_closure_rng_state_like_a_fixed_dropout_mask():
    # f = ‖x‖² + ξ·x with ξ ~ N(0, I) drawn inside the closure: with the same ξ at the ends,
    # D = (g₁ − g₀)/ΔR = 2N exactly and C = 2; the training RNG stream advances by one closure only
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="sgd", lr=0.0, rotate_every=1, rotations=0, seed=0)

    def closure():
        opt.zero_grad()
        noise = torch.randn(3, dtype=torch.float64)
        loss = (x**2).sum() + (noise * x).sum()
        loss.backward()
        return loss

    torch.manual_seed(7)
    opt.step(closure)
    after_step = torch.rand(1)
    torch.manual_seed(7)
    torch.randn(3, dtype=torch.float64)
    assert torch.equal(after_step, torch.rand(1))
    assert opt.diagnostics()["curvature"] == pytest.approx(2.0, abs=1e-9)


def test_nan_gradient_is_a_value_error():
    x = torch.ones(2, requires_grad=True)
    opt = DEO([x])

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        x.grad[1] = float("inf")
        return loss

    with pytest.raises(ValueError, match="non-finite gradient"):
        opt.step(closure)


# --------------------------------------------------------------------------- random-direction controls
def control_run(
    direction, redraw_every=None, steps=23, rotate_every=5, rotations=2, scheme="forward", seed=4
):
    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    opt = DEO(
        [x], base="adam", lr=0.01, rotate_every=rotate_every, rotations=rotations, scheme=scheme,
        direction=direction, redraw_every=redraw_every, seed=seed,
    )  # fmt: skip
    calls = []

    def closure():
        calls.append(1)
        return quadratic_closure(opt, x)()

    directions = []
    for _ in range(steps):
        opt.step(closure)
        directions.append(opt.diagnostics()["direction"].clone())
    return opt, directions, len(calls)


@pytest.mark.parametrize("scheme, c", [("forward", 1), ("central", 2)])
def test_random_fixed_direction_is_the_dimer_runs_start_never_rotated_at_the_same_charged_cost(scheme, c):
    steps, rotate_every, rotations = 23, 5, 2
    dimer, dimer_directions, dimer_calls = control_run("dimer", scheme=scheme)
    control, directions, calls = control_run("random", scheme=scheme)
    n0 = DEO([torch.zeros(3, dtype=torch.float64, requires_grad=True)], seed=4).diagnostics()["direction"]
    assert all(torch.equal(n, n0) for n in directions)  # drawn once, never rotated
    assert not torch.equal(dimer_directions[-1], n0)  # the dimer run did rotate
    events = math.ceil(steps / rotate_every)
    diag = control.diagnostics()
    assert diag["grad_evals"] == dimer.diagnostics()["grad_evals"] == steps + events * (rotations + 1) * c
    assert diag["grad_evals_spent"] == calls == steps + events * c  # one probe of N per event
    assert dimer.diagnostics()["grad_evals_spent"] == dimer_calls == dimer.diagnostics()["grad_evals"]
    assert diag["direction_mode"] == "random"
    assert diag["curvature"] == pytest.approx((n0 @ A @ n0).item(), abs=1e-9)  # C measured along N


def test_random_direction_redrawn_every_k_steps_changes_exactly_at_multiples_of_k():
    steps, k = 40, 10
    _, directions, _ = control_run("random", redraw_every=k, steps=steps, rotate_every=5)
    for t in range(1, steps):
        changed = not torch.equal(directions[t], directions[t - 1])
        assert changed == (t % k == 0), t
        assert torch.linalg.vector_norm(directions[t]).item() == pytest.approx(1.0, abs=1e-14)
    assert not torch.equal(directions[10], directions[30])


def test_random_direction_rows_of_a_batch_equal_separate_runs():
    starts = torch.tensor([[1.0, 1e-3], [0.5, -0.2], [-0.3, 0.7]], dtype=torch.float64)
    settings = dict(base="sgd", lr=0.02, rotate_every=2, gate=0.0, nc_step=1e-3, alpha=-1.0)
    settings.update(direction="random", redraw_every=4)

    def run(xy0, batch_dims, seed):
        xy = xy0.clone().requires_grad_(True)
        opt = DEO([xy], batch_dims=batch_dims, seed=seed, **settings)

        def closure():
            opt.zero_grad()
            loss = (xy[..., 0] ** 2 - xy[..., 1] ** 2).sum()
            loss.backward()
            return loss

        for _ in range(13):
            opt.step(closure)
        return xy.detach(), opt.diagnostics()["direction"]

    batch, directions = run(starts, 1, 20)
    for b in range(len(starts)):
        alone, direction = run(starts[b], 0, 20 + b)
        assert torch.equal(batch[b], alone)
        assert torch.equal(directions[b], direction)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"direction": "sideways"}, "direction"),
        ({"redraw_every": 10}, "direction='random'"),
        ({"direction": "random", "redraw_every": 0}, "redraw_every"),
        ({"direction": "random", "redraw_every": 15, "rotate_every": 10}, "multiple of rotate_every"),
    ],
)
def test_direction_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DEO([torch.zeros(2, requires_grad=True)], **kwargs)


def test_per_parameter_step_equals_the_flat_step():
    """A single problem takes the per-parameter path (g·N and g_mod from p.grad,
    no flat copy of g); forced onto the flat path, the run agrees to rounding, diagnostics included
    (float64: in float32 the dimer's finite differences amplify a summation-order rounding ~1e3×)."""

    def run(flat):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        x, y = torch.randn(32, 6, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
        opt = DEO(model.parameters(), base="sgd", lr=0.1, rotate_every=3, gate=10.0, seed=1)
        if flat:
            opt._per_parameter = lambda: False
        diagnostics = []

        def closure():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            return loss

        for _ in range(10):
            opt.step(closure)
            diagnostics.append(opt.diagnostics())
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), diagnostics

    theta, per_parameter = run(flat=False)
    theta_flat, flat = run(flat=True)
    assert torch.allclose(theta, theta_flat, rtol=1e-10, atol=1e-12)
    for ours, reference in zip(per_parameter, flat):
        for key in ("grad_norm", "modified_grad_norm", "removed_fraction", "curvature", "torque"):
            assert ours[key] == pytest.approx(reference[key], rel=1e-8, abs=1e-12)
        assert torch.allclose(ours["modified_grad"], reference["modified_grad"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hidden", [16, 2])  # d = 129 (‖g‖ recovered from g_mod), 17 (< SMALL_D: measured)
@pytest.mark.parametrize("kwargs", [{"alpha": 1.0}, {"alpha": -1.0}, {"alpha": 5.0}, {"gate": -1e9}])
def test_per_parameter_step_writes_g_mod_over_the_gradient_and_reports_the_raw_gradient_norm(kwargs, hidden):
    """One problem (``batch_dims=0``): g_mod = g − α(g·N)N is written over the closure's .grad tensors
    (in place), and ‖g‖, (g·N)²/‖g‖² in diagnostics() are those of the raw g the closure produced
    (recovered from g_mod, g·N and N, or, for |α| > 2, measured before g is overwritten)."""
    torch.manual_seed(0)
    layers = torch.nn.Linear(6, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    model = torch.nn.Sequential(*layers).double()
    x, y = torch.randn(32, 6, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    opt = DEO(model.parameters(), base="sgd", lr=0.1, rotate_every=3, seed=1, **kwargs)
    assert opt._per_parameter()
    raw = {}

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        raw["g"] = torch.cat([p.grad.reshape(-1).clone() for p in model.parameters()])
        raw["tensors"] = [p.grad for p in model.parameters()]
        return loss

    for _ in range(5):
        n = opt.diagnostics()["direction"]
        opt.step(closure)  # step 4 has no rotation event: N is the one read before it
    g, diag = raw["g"], opt.diagnostics()
    alpha = 0.0 if "gate" in kwargs else kwargs["alpha"]
    expected = g - alpha * torch.dot(g, n) * n
    torch.testing.assert_close(diag["modified_grad"], expected, rtol=1e-12, atol=1e-15)
    for p, tensor in zip(model.parameters(), raw["tensors"]):
        assert p.grad is tensor  # the base optimizer read g_mod from the closure's own tensors
    written = torch.cat([t.reshape(-1) for t in raw["tensors"]])
    torch.testing.assert_close(written, expected, rtol=1e-12, atol=1e-15)
    assert diag["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-12)
    assert diag["modified_grad_norm"] == pytest.approx(float(expected.norm()), rel=1e-12)
    assert diag["removed_fraction"] == pytest.approx(float(torch.dot(g, n) ** 2 / g.norm() ** 2), rel=1e-9)


def test_base_optimizer_step_hooks_fire_and_global_hooks_fire_once_per_step():
    """DEO calls its base optimizer's inner step (without torch's second profiler wrapper): hooks
    registered on DEO and the global optimizer hooks fire once per DEO step, hooks registered on the
    base optimizer itself still fire."""
    x = torch.tensor([0.5, 1e-3, 0.2], dtype=torch.float64, requires_grad=True)
    opt = DEO([x], base="adam", lr=0.01, rotate_every=2, seed=0)
    calls = {"deo": 0, "global": 0, "base": 0}
    handles = [
        opt.register_step_post_hook(lambda *_: calls.__setitem__("deo", calls["deo"] + 1)),
        register_optimizer_step_post_hook(lambda *_: calls.__setitem__("global", calls["global"] + 1)),
    ]
    closure = quadratic_closure(opt, x)
    try:
        for _ in range(3):
            opt.step(closure)
        assert calls == {"deo": 3, "global": 3, "base": 0}
        on_base = opt.base.register_step_post_hook(lambda *_: calls.__setitem__("base", calls["base"] + 1))
        handles.append(on_base)
        opt.step(closure)
        assert calls == {"deo": 4, "global": 5, "base": 1}
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("sizes", [[40, 30, 1], [LIST_DOT_CAT // 2, LIST_DOT_CAT // 2, 3]])
def test_list_dot_of_parameter_blocks_is_the_flat_dot(sizes):
    """``_list_dot`` over per-parameter blocks (the per-parameter path of one problem): below
    LIST_DOT_CAT one dot of the concatenated blocks, the flat path's own ``batched_dot`` bit for bit;
    above it one dot per block (equal to rounding). Given the flat row of b (N), the same bits,
    with or without b's blocks (the step passes them only where they are dotted one by one)."""
    gen = torch.Generator().manual_seed(0)
    a = [torch.randn(size, generator=gen, dtype=torch.float64) for size in sizes]
    b = [torch.randn(size, generator=gen, dtype=torch.float64) for size in sizes]
    flat = batched_dot(torch.cat(a).unsqueeze(0), torch.cat(b).unsqueeze(0))
    ours = _list_dot(a, b)
    assert ours.shape == (1,)
    # N's own row instead of its blocks (the step's g·N): the same value, bit for bit
    assert _list_dot(a, b, torch.cat(b).unsqueeze(0)).item() == ours.item()
    assert _list_dot(a, None, torch.cat(b).unsqueeze(0)).item() == ours.item()
    if sum(sizes) < LIST_DOT_CAT:
        assert ours.item() == flat.item()
        row = torch.cat(a).unsqueeze(0)
        assert _list_dot(a, a).item() == batched_dot(row, row).item()
    else:
        assert ours.item() == pytest.approx(flat.item(), rel=1e-12)
