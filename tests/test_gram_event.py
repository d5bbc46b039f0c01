"""Issue 10 / issue 9: the rotation event of one problem (``batch_dims=0``, Fourier rotation) runs on the Gram
matrix of a few d-vectors (``DEO._gram_event``, ``deo.dimer.fourier_gram_event``). It must give the
vector event's results (same formulas, other rounding), cost the same gradients, leave θ's storage
alone and stay all or nothing."""

import pytest
import torch

from deo.dimer import SMALL_D
from deo.optim import DEO


class Boom(Exception):
    pass


def quadratic(seed=0, d=96):
    """½θᵀAθ + a cubic term over two parameters (a matrix and a vector), A with a negative eigenvalue;
    d ≥ SMALL_D: an 8×8 matrix and the rest, below: a 1×2 matrix and the rest (a surface's size)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    spectrum = torch.linspace(0.5, 3.0, d, dtype=torch.float64)
    spectrum[0] = -1.0
    a = q @ torch.diag(spectrum) @ q.T
    rows, columns = (8, 8) if d >= SMALL_D else (1, 2)
    w = torch.randn(rows, columns, generator=gen, dtype=torch.float64).requires_grad_(True)
    b = torch.randn(d - rows * columns, generator=gen, dtype=torch.float64).requires_grad_(True)
    return a, [w, b]


def make_closure(a, params, opt, fail_at=None):
    calls = {"n": 0}

    def closure():
        opt.zero_grad()
        theta = torch.cat([p.reshape(-1) for p in params])
        loss = 0.5 * theta @ a @ theta + 0.05 * (theta**3).sum() + 0.0 * torch.randn(())
        loss.backward()
        calls["n"] += 1
        if fail_at is not None and calls["n"] - 1 == fail_at:
            raise Boom()
        return loss

    return closure, calls


def assert_equals_an_unbroken_run(params, opt, settings, seed, steps):
    """θ and N equal those of a run of ``steps`` steps in which no step failed, bit for bit."""
    a, reference_params = quadratic()
    reference = DEO(reference_params, seed=seed, **settings)
    reference_closure, _ = make_closure(a, reference_params, reference)
    for _ in range(steps):
        reference.step(reference_closure)
    assert all(torch.equal(p.detach(), q.detach()) for p, q in zip(params, reference_params))
    assert torch.equal(opt.dimer["direction"], reference.dimer["direction"])


def run(settings, steps, vector_event=False, d=96):
    a, params = quadratic(d=d)
    opt = DEO(params, seed=2, **settings)
    if vector_event:
        opt._gram_event_fits = lambda hp, params: False
    closure, calls = make_closure(a, params, opt)
    history = []
    for _ in range(steps):
        opt.step(closure)
        diag = opt.diagnostics()
        history.append((torch.cat([p.detach().reshape(-1) for p in params]), diag))
    return history, calls["n"], opt


SETTINGS = [
    dict(base="adam", lr=0.02, rotate_every=1, rotations=1, scheme="forward"),
    dict(base="sgd", lr=0.02, rotate_every=2, rotations=3, scheme="central", alpha=-1.0, gate=0.0),
    dict(base="adam", lr=0.02, rotate_every=1, rotations=0, scheme="forward"),
    dict(base="sgd", lr=0.02, rotate_every=2, rotations=1, direction="random", redraw_every=4, nc_step=0.01),
]


@pytest.mark.parametrize("d", [96, 3])
@pytest.mark.parametrize("settings", SETTINGS)
def test_the_gram_event_gives_the_vector_event_results(settings, d):
    gram, gram_calls, opt = run(settings, 12, d=d)
    assert opt._per_parameter() and opt._gram_event_fits(opt._settings(), opt._params())
    assert opt.dimer["direction"].shape[-1] == d
    vector, vector_calls, _ = run(settings, 12, vector_event=True, d=d)
    assert gram_calls == vector_calls
    for (theta, diag), (theta_ref, ref) in zip(gram, vector):
        torch.testing.assert_close(theta, theta_ref, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(diag["direction"], ref["direction"], rtol=1e-8, atol=1e-10)
        for key in ("curvature", "torque", "removed_fraction"):
            assert diag[key] == pytest.approx(ref[key], rel=1e-8, abs=1e-10), key
        assert diag["grad_evals"] == ref["grad_evals"] and diag["grad_evals_spent"] == ref["grad_evals_spent"]


@pytest.mark.parametrize("d", [200, 3])
def test_the_gram_event_turns_n_to_the_min_mode(d):
    a, params = quadratic(d=d)
    opt = DEO(params, base="sgd", lr=0.0, rotate_every=1, rotations=2, seed=0)
    closure, _ = make_closure(a, params, opt)
    for _ in range(60):
        opt.step(closure)
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    hessian = a + 0.3 * torch.diag(theta)  # of ½θᵀAθ + 0.05Σθ³
    lam, vectors = torch.linalg.eigh(hessian)
    diag = opt.diagnostics()
    assert abs(float(diag["direction"] @ vectors[:, 0])) > 0.999
    assert diag["curvature"] == pytest.approx(float(lam[0]), abs=1e-3 * float(lam[-1] - lam[0]))


@pytest.mark.parametrize("scheme, rotations", [("forward", 1), ("central", 2)])
def test_a_failure_at_any_call_of_a_gram_event_leaves_everything_as_before(scheme, rotations):
    settings = dict(base="adam", lr=0.05, rotate_every=1, rotations=rotations, scheme=scheme)
    c = 1 if scheme == "forward" else 2
    for fail in range(1 + (rotations + 1) * c):
        a, params = quadratic()
        opt = DEO(params, seed=3, **settings)
        closure, _ = make_closure(a, params, opt)
        for _ in range(2):
            opt.step(closure)
        storage = [p.data_ptr() for p in params]
        theta = [p.detach().clone() for p in params]
        before = {key: value.clone() if isinstance(value, torch.Tensor) else value
                  for key, value in opt.dimer.items() if key != "sign_draws"}  # fmt: skip
        rng = torch.get_rng_state()
        failing, calls = make_closure(a, params, opt, fail_at=fail)
        with pytest.raises(Boom):
            opt.step(failing)
        assert calls["n"] == fail + 1
        assert [p.data_ptr() for p in params] == storage, "θ's storage was swapped for good"
        assert all(torch.equal(p.detach(), t) for p, t in zip(params, theta))
        assert all(p.grad is None for p in params)
        for key, value in before.items():
            now = opt.dimer[key]
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(now, value, rtol=0, atol=0, equal_nan=True, msg=key)
            else:
                assert now == value, key
        assert torch.equal(torch.get_rng_state(), rng)
        opt.step(closure)  # the retried step is the step that never failed
        assert_equals_an_unbroken_run(params, opt, settings, seed=3, steps=3)


def test_the_gram_event_keeps_theta_in_place():
    a, params = quadratic()
    opt = DEO(params, base="adam", lr=0.05, rotate_every=1, seed=0)
    closure, _ = make_closure(a, params, opt)
    storage = [p.data.data_ptr() for p in params]
    for _ in range(3):
        opt.step(closure)
    assert [p.data.data_ptr() for p in params] == storage


def test_the_gram_event_writes_n_over_in_place_and_a_later_failure_restores_it(monkeypatch):
    """N is written over in place at a Gram event (no new d-vector, whose first write costs a page
    fault per page); a failure later in the same step (here: the check of g·N at the new N) puts
    N₀ back, and the retried step equals a run that never failed."""
    import deo.optim as optim

    settings = dict(base="adam", lr=0.05, rotate_every=1, rotations=1)
    a, params = quadratic()
    opt = DEO(params, seed=4, **settings)
    closure, _ = make_closure(a, params, opt)
    opt.step(closure)
    n = opt.dimer["direction"]
    pointer, n0 = n.data_ptr(), n.clone()
    opt.step(closure)
    assert opt.dimer["direction"] is n and n.data_ptr() == pointer, "a new N tensor was allocated"
    assert not torch.equal(n, n0), "the event did not rotate N"
    n1 = n.clone()

    real = optim._check_gradient
    monkeypatch.setattr(optim, "_check_gradient", lambda along, step: (_ for _ in ()).throw(Boom()))
    with pytest.raises(Boom):
        opt.step(closure)
    assert torch.equal(opt.dimer["direction"], n1), "N was left rotated by the failed step"
    monkeypatch.setattr(optim, "_check_gradient", real)
    opt.step(closure)

    assert_equals_an_unbroken_run(params, opt, settings, seed=4, steps=3)
