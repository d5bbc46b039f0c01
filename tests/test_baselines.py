"""PGD (Jin et al. 2017) and the reproduction of the authors' published dimer optimizer."""

import io

import pytest
import torch

from deo.baselines import PGD, PublishedDimer

H = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64))


def closure_for(opt, x, f):
    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    return closure


def saddle(xy):
    return (xy[..., 0] ** 2 - xy[..., 1] ** 2).sum()


def quadratic(x):
    return 0.5 * x @ H @ x


# --------------------------------------------------------------------------- PGD
def test_gd_does_not_move_from_exactly_on_the_saddle():
    xy = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([xy], lr=0.01)
    for _ in range(100):
        opt.step(closure_for(opt, xy, saddle))
    assert torch.equal(xy.detach(), torch.zeros(2, dtype=torch.float64))


def test_pgd_escapes_from_exactly_on_the_saddle():
    xy = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = PGD([xy], lr=0.01, g_thres=1e-3, t_thres=10, radius=1e-2, seed=0)
    closure = closure_for(opt, xy, saddle)
    for _ in range(2000):
        loss = opt.step(closure)
        if loss.item() <= -1.0:
            break
    assert loss.item() <= -1.0
    diag = opt.diagnostics()
    assert diag["perturbations"] >= 1
    assert diag["last_perturbation"] == 0  # kicked at once, never again once the gradient is large
    assert diag["grad_evals"] == diag["step"] + diag["perturbations"]


def test_pgd_perturbation_is_inside_the_ball_and_waits_t_thres():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = PGD([x], lr=0.0, g_thres=100.0, t_thres=4, radius=0.5, seed=1)  # lr 0: only kicks move x
    closure = closure_for(opt, x, lambda v: (v**2).sum())
    positions = []
    for _ in range(11):
        opt.step(closure)
        positions.append(x.detach().clone())
    kicks = [t for t in range(11) if not torch.equal(positions[t], positions[t - 1] if t else torch.zeros(3))]
    assert kicks == [0, 5, 10]  # t − t_noise > t_thres
    assert torch.linalg.vector_norm(positions[0]).item() <= 0.5


def test_pgd_batched_rows_are_perturbed_independently():
    xy = torch.tensor([[0.0, 0.0], [1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    opt = PGD([xy], lr=0.0, g_thres=1e-3, radius=1e-2, seed=0, batch_dims=1)
    opt.step(closure_for(opt, xy, saddle))
    assert not torch.equal(xy[0].detach(), torch.zeros(2, dtype=torch.float64))  # ‖g‖ = 0: kicked
    assert torch.equal(xy[1].detach(), torch.tensor([1.0, 0.5], dtype=torch.float64))  # ‖g‖ large
    assert opt.diagnostics()["perturbations"].tolist() == [1, 0]


def test_pgd_state_dict_round_trip_continues_identically():
    def fresh():
        xy = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        return xy, PGD([xy], lr=0.01, t_thres=3, seed=5)

    xy, opt = fresh()
    for _ in range(5):
        opt.step(closure_for(opt, xy, saddle))
    state, saved = opt.state_dict(), xy.detach().clone()
    xy2, opt2 = fresh()
    with torch.no_grad():
        xy2.copy_(saved)
    opt2.load_state_dict(state)
    for _ in range(20):
        opt.step(closure_for(opt, xy, saddle))
        opt2.step(closure_for(opt2, xy2, saddle))
    assert torch.equal(xy, xy2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -1.0}, "lr"),
        ({"radius": 0.0}, "radius"),
        ({"t_thres": -1}, "t_thres"),
        ({"batch_dims": 3}, "batch_dims"),
    ],
)
def test_pgd_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGD([torch.zeros(2, requires_grad=True)], **kwargs)


def test_pgd_needs_a_closure_with_backward():
    x = torch.zeros(2, requires_grad=True)
    opt = PGD([x])
    with pytest.raises(ValueError, match="closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="backward"):
        opt.step(lambda: (x**2).sum())


# --------------------------------------------------------------------------- published code
def rotate_only(variant, closure_mode="working", steps=300, displacement=None):
    """Rotation events only (lr 0, no dimer step) on ½xᵀHx, H = diag(3, 1, −2)."""
    x = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
    opt = PublishedDimer(
        [x], lr=0.0, variant=variant, rotation_interval=1, rotation_lr=0.1, dimer_strength=0.0,
        displacement=displacement, closure_mode=closure_mode, seed=1,
    )  # fmt: skip
    n0 = opt.diagnostics()["direction"].clone()
    for _ in range(steps):
        opt.step(closure_for(opt, x, quadratic))
    return n0, opt.diagnostics()["direction"]


def test_published_v7_rotation_climbs_to_the_maximum_curvature_direction():
    # N ← normalize(N + η·perp_N(g₁ − g₀)) is power iteration on I + ηΔR·H: it ends at the
    # eigenvector of λ_max = 3 (the min mode, λ = −2, is what the dimer should find)
    _, n = rotate_only("v7", displacement=1.0)
    assert abs(n[0].item()) > 0.999
    assert (n @ H @ n).item() == pytest.approx(3.0, abs=1e-3)


def test_published_v4_rotation_drifts_to_zero_curvature():
    # N − 2 sign(C)·N + η F_⊥: descends the curvature where C > 0, ascends where C < 0
    _, n = rotate_only("v4")
    assert abs((n @ H @ n).item()) < 0.05
    assert abs(n[2].item()) < 0.9  # not the min mode


@pytest.mark.parametrize("dimer_strength", [0.1, 5.0])  # the v4 file's default; the authors' train.py
def test_published_v4_forward_only_closure_nan_from_step_10_and_from_then_on_the_update_is_adams(
    dimer_strength,
):
    # Steps 1–9: N is finite and the "dimer step" θ += s(g·N)N fires wherever g·N < 0, so the run
    # is *not* Adam from the start for every seed. Step 10: 0/0 makes N NaN, `g·N < 0` is False for
    # ever, and from then on every update is exactly Adam's (continued from the optimizer's moments).
    fired_seeds, off = set(), {}
    for seed in range(10):
        x = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
        opt = PublishedDimer(
            [x], base="adam", lr=0.01, variant="v4", dimer_strength=dimer_strength,
            closure_mode="published", seed=seed,
        )  # fmt: skip
        y = x.detach().clone().requires_grad_(True)
        plain = torch.optim.Adam([y], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
        closure = closure_for(opt, x, quadratic)
        fired = False
        for _ in range(1, 10):
            n = opt.diagnostics()["direction"]
            fired |= bool((H @ x.detach()) @ n < 0)  # the dimer step's condition g·N < 0
            opt.step(closure)
            plain.step(closure_for(plain, y, quadratic))
            assert opt.diagnostics()["direction_finite"]
        off[seed] = (x - y).abs().max().item()
        if fired:
            fired_seeds.add(seed)
        else:
            assert off[seed] < 1e-12  # no dimer step fired: Adam so far
        # from step 10 on: torch's Adam continued from the published optimizer's own moments
        z = x.detach().clone().requires_grad_(True)
        adam = torch.optim.Adam([z], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
        moments = opt.state[x]
        adam.state[z] = {
            "step": torch.tensor(9.0, dtype=torch.float64),
            "exp_avg": moments["m"].clone(),
            "exp_avg_sq": moments["v"].clone(),
        }
        for _ in range(10, 31):
            opt.step(closure)
            adam.step(closure_for(adam, z, quadratic))
            assert not opt.diagnostics()["direction_finite"]  # NaN from step 10 on
            assert torch.allclose(x, z, rtol=0, atol=1e-12)
    assert fired_seeds == {4, 5, 6, 7, 9}  # the seeds where "equals plain Adam" fails
    assert all(off[s] > 1e-2 for s in fired_seeds)


def test_published_v4_dimer_step_moves_uphill_along_n():
    # θ += s(g·N)N when g·N < 0 is a step along −N with g·(−N) > 0: it *raises* the loss along N.
    x = torch.tensor([1.0, 1e-3], dtype=torch.float64, requires_grad=True)
    opt = PublishedDimer([x], lr=0.0, variant="v4", rotation_interval=10**6, dimer_strength=0.1, seed=0)
    opt.state[x]["n"] = torch.tensor([-0.6, 0.8], dtype=torch.float64)  # g·N = −1.2016 < 0 at the start
    closure = closure_for(opt, x, saddle)
    for _ in range(20):
        before = saddle(x).item()
        g = torch.tensor([2 * x[0].item(), -2 * x[1].item()], dtype=torch.float64)
        opt.step(closure)
        assert (g @ opt.state[x]["n"]).item() < 0  # the dimer step fired
        assert saddle(x).item() > before  # lr 0: only the dimer step moved θ, and it went uphill
    # with a working closure and Adam (lr 0.01, the file's defaults 0.1 / 1e-4) it climbs out of view
    x = torch.tensor([1.0, 1e-3], dtype=torch.float64, requires_grad=True)
    opt = PublishedDimer(
        [x], base="adam", lr=0.01, variant="v4", dimer_strength=0.1, displacement=1e-4, seed=0
    )
    closure = closure_for(opt, x, saddle)
    steps = next(t for t in range(1, 201) if opt.step(closure) is not None and x.abs().max().item() > 20)
    assert 50 <= steps <= 70  # ≈ 60 steps
    assert saddle(x).item() > 100  # uphill: f grew from 1 to > 100 (GD or Adam would make it fall)
    # the authors' train.py values (5.0 / 0.006): |θ| > 20 (or NaN) by step 11 for seeds 0–4
    for seed in range(5):
        x = torch.tensor([1.0, 1e-3], dtype=torch.float64, requires_grad=True)
        opt = PublishedDimer(
            [x], base="adam", lr=0.01, variant="v4", dimer_strength=5.0, displacement=0.006, seed=seed
        )
        closure = closure_for(opt, x, saddle)
        for _ in range(11):
            opt.step(closure)
        assert not x.abs().max().item() <= 20  # (NaN counts as out of view too)


def test_published_v7_forward_only_closure_freezes_n_at_its_random_start():
    n0, n = rotate_only("v7", closure_mode="published", steps=50)
    assert torch.allclose(n, n0, atol=1e-6)


def test_published_working_closure_rotates_and_counts_gradients():
    x = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
    opt = PublishedDimer([x], lr=0.01, variant="v4", rotation_interval=5, seed=0)
    n0 = opt.diagnostics()["direction"].clone()
    for _ in range(10):
        opt.step(closure_for(opt, x, quadratic))
    diag = opt.diagnostics()
    assert diag["rotation_events"] == 2
    assert diag["grad_evals"] == 10 + 2  # the rotation steps call the closure twice
    assert not torch.equal(diag["direction"], n0)


def test_published_tensors_have_their_own_unit_direction():
    a = torch.ones(2, 3, requires_grad=True)
    b = torch.ones(4, requires_grad=True)
    opt = PublishedDimer([a, b], seed=0)
    for p in (a, b):
        assert torch.linalg.vector_norm(opt.state[p]["n"]).item() == pytest.approx(1.0, abs=1e-6)


def test_published_batched_rows_match_separate_runs():
    starts = torch.tensor([[0.3, -0.2, 0.1], [0.1, 0.4, -0.3]], dtype=torch.float64)
    settings = dict(lr=0.01, variant="v4", rotation_interval=2)
    separate = []
    for b in range(2):
        x = starts[b].clone().requires_grad_(True)
        separate.append((x, PublishedDimer([x], seed=b, **settings)))
    xb = starts.clone().requires_grad_(True)
    batched = PublishedDimer([xb], batch_dims=1, **settings)
    batched.state[xb]["n"] = torch.stack([opt.state[x]["n"] for x, opt in separate])  # same start N
    for _ in range(12):
        batched.step(closure_for(batched, xb, lambda v: 0.5 * ((v @ H) * v).sum()))
        for x, opt in separate:
            opt.step(closure_for(opt, x, quadratic))
    for b, (x, _) in enumerate(separate):
        assert torch.allclose(xb[b], x, atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "v5"}, "variant"),
        ({"base": "adamw"}, "base"),
        ({"closure_mode": "lazy"}, "closure_mode"),
        ({"rotation_interval": 0}, "rotation_interval"),
        ({"displacement": 0.0}, "displacement"),
    ],
)
def test_published_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PublishedDimer([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pgd_cuda_matches_cpu():
    def run(device):
        xy = torch.zeros(2, dtype=torch.float64, device=device, requires_grad=True)
        opt = PGD([xy], lr=0.01, seed=3)
        for _ in range(50):
            opt.step(closure_for(opt, xy, saddle))
        return xy.detach().cpu()

    assert torch.allclose(run("cpu"), run("cuda"), atol=1e-12)


def test_published_state_dict_round_trip_continues_identically():
    def fresh():
        x = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
        return x, PublishedDimer([x], lr=0.01, rotation_interval=3, seed=2)

    x, opt = fresh()
    for _ in range(4):
        opt.step(closure_for(opt, x, quadratic))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = x.detach().clone()
    x2, opt2 = fresh()
    with torch.no_grad():
        x2.copy_(saved)
    opt2.load_state_dict(torch.load(buffer))
    for _ in range(7):
        opt.step(closure_for(opt, x, quadratic))
        opt2.step(closure_for(opt2, x2, quadratic))
    assert torch.equal(x, x2)
    assert opt.diagnostics()["rotation_events"] == opt2.diagnostics()["rotation_events"]
