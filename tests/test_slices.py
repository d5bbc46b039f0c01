"""Specification of 2-D loss slices: planes, the vectorised chunked grid, projections."""

import copy
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from landscapes import slices
from landscapes.nets.models import TanhMLP
from landscapes.networks import make_network
from landscapes.slices import (
    LOOP_MIN_PARAMS,
    loss_grid,
    min_curvature_plane,
    pca_plane,
    project_onto_plane,
    random_plane,
)

torch.set_num_threads(1)


def shifted(center, d1, d2, a, b):
    return {k: center[k] + a * d1[k] + b * d2[k] for k in center}


@pytest.fixture(scope="module")
def moons():
    return make_network("two_moons", hidden=4)


def test_grid_equals_the_per_point_loop_in_float64(moons):
    center = moons.params0(0.5, seed=3)
    d1, d2 = random_plane(center, seed=1)
    alphas, betas, Z = loss_grid(moons, center, d1, d2, radius=2.0, n=9, chunk=10)
    np.testing.assert_array_equal(alphas, np.linspace(-2, 2, 9))
    np.testing.assert_array_equal(betas, alphas)
    loop = np.array([[moons.loss(shifted(center, d1, d2, a, b), moons.batch(0)).item() for a in alphas]
                     for b in betas])
    np.testing.assert_allclose(Z, loop, rtol=1e-12, atol=0)
    assert Z[4, 4] == pytest.approx(moons.loss(center, moons.batch(0)).item(), rel=1e-12)  # the center


def test_chunk_size_does_not_change_the_grid(moons):
    center = moons.params0(0.5, seed=0)
    d1, d2 = random_plane(center, seed=2)
    grids = [loss_grid(moons, center, d1, d2, n=7, chunk=c)[2] for c in (1, 5, 49, 1000)]
    for Z in grids[1:]:
        np.testing.assert_allclose(Z, grids[0], rtol=1e-13, atol=0)


def test_grid_accepts_flat_directions_and_reports_its_metadata(moons):
    center = moons.params0(0.5)
    d1, d2 = random_plane(center, seed=4)
    grid = loss_grid(moons, center, moons.flatten(d1).numpy(), moons.flatten(d2), radius=0.5, n=5)
    np.testing.assert_allclose(grid[2], loss_grid(moons, center, d1, d2, radius=0.5, n=5)[2], rtol=1e-13)
    assert grid.meta["radius"] == 0.5 and grid.meta["n"] == 5
    assert grid.meta["norms"][0] == pytest.approx(moons.flatten(d1).norm().item())
    with pytest.raises(ValueError, match="radius must be > 0"):
        loss_grid(moons, center, d1, d2, radius=0.0)
    with pytest.raises(ValueError, match="d = 17"):
        loss_grid(moons, center, np.ones(3), d2)


def test_grid_vectorises_through_the_tiny_transformer():
    problem = make_network("tiny_transformer", n_sequences=8)
    center = problem.params0()
    d1, d2 = random_plane(center, seed=0)
    alphas, betas, Z = loss_grid(problem, center, d1, d2, n=3, chunk=4, method="vmap")
    loop = np.array([[problem.loss(shifted(center, d1, d2, a, b), problem.batch(0)).item() for a in alphas]
                     for b in betas])
    np.testing.assert_allclose(Z, loop, rtol=1e-5)  # float32 model
    by_loop = loss_grid(problem, center, d1, d2, n=3)  # auto: d = 12 992 evaluates point by point
    assert by_loop.meta["method"] == "loop"
    np.testing.assert_array_equal(by_loop[2], loop)  # the same calls, bit for bit


@pytest.mark.parametrize("method", ["vmap", "loop"])
def test_both_ways_give_the_grid_and_report_progress_to_the_end(moons, method):
    center = moons.params0(0.5, seed=3)
    d1, d2 = random_plane(center, seed=1)
    seen = []
    grid = loss_grid(moons, center, d1, d2, n=6, chunk=8, method=method, progress=seen.append)
    reference = loss_grid(moons, center, d1, d2, n=6, chunk=8, method="vmap")[2]
    np.testing.assert_allclose(grid[2], reference, rtol=1e-13, atol=0)
    assert grid.meta["method"] == method
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0 < seen[0] < 1
    assert len(seen) == (5 if method == "vmap" else 6)  # per chunk of 8 of 36 points / per grid row


def test_auto_picks_the_closed_form_for_tanh_mlps_and_loops_only_for_many_parameters(moons):
    center = moons.params0(0.5)
    d1, d2 = random_plane(center, seed=4)
    assert loss_grid(moons, center, d1, d2, n=3).meta["method"] == "mlp"
    with pytest.raises(ValueError, match="method must be one of"):
        loss_grid(moons, center, d1, d2, method="scan")
    spirals = make_network("spirals")
    assert spirals.n_params >= LOOP_MIN_PARAMS
    center = spirals.params0()
    assert loss_grid(spirals, center, *random_plane(center, seed=0), n=3).meta["method"] == "mlp"
    committee = make_network("teacher_student")  # a soft committee: the closed form too
    center = committee.params0()
    assert loss_grid(committee, center, *random_plane(center, seed=0), n=3).meta["method"] == "mlp"
    deep = make_network("deep_linear")  # no tanh layer, d < LOOP_MIN_PARAMS
    assert deep.n_params < LOOP_MIN_PARAMS
    center = deep.params0()
    assert loss_grid(deep, center, *random_plane(center, seed=0), n=3).meta["method"] == "vmap"


@pytest.mark.parametrize(
    "key, options, dtype, rtol",
    [
        ("two_moons", {}, torch.float64, 1e-13),
        ("xor", {}, torch.float64, 1e-13),
        ("spirals", {}, torch.float64, 1e-13),  # K = 3 outputs, cross-entropy
        ("teacher_student", {}, torch.float64, 1e-13),  # the soft committee: fixed output, scaled input
        ("two_moons", {"dtype": torch.float32}, torch.float32, 1e-5),
    ],
)
def test_closed_form_equals_a_forward_per_point(key, options, dtype, rtol):
    problem = make_network(key, **options)
    for radius, seed, scale in ((1.0, 0, None), (8.0, 1, 1.0)):  # 8: tanh saturates over much of the plane
        center = problem.params0(scale, seed=seed)
        d1, d2 = random_plane(center, seed=seed + 2)
        grid = loss_grid(problem, center, d1, d2, radius=radius, n=7, method="mlp")
        batch = problem.batch(0)
        loop = np.array([[problem.loss(shifted(center, d1, d2, a, b), batch).item() for a in grid[0]]
                         for b in grid[1]])  # fmt: skip
        assert grid.meta["method"] == "mlp" and grid[2].dtype == np.float64
        np.testing.assert_allclose(grid[2], loop, rtol=rtol, atol=0)


def test_closed_form_chunks_the_points_and_reports_progress(moons, monkeypatch):
    center = moons.params0(0.5, seed=3)
    d1, d2 = random_plane(center, seed=1)
    whole = loss_grid(moons, center, d1, d2, n=6, method="mlp")[2]
    monkeypatch.setattr(slices, "MLP_CHUNK_VALUES", 5 * 200 * 4)  # 5 points of 200 samples × 4 units
    seen = []
    chunked = loss_grid(moons, center, d1, d2, n=6, method="mlp", progress=seen.append)
    # the same values whatever the chunk (a chunk's batched products may round the last bit otherwise)
    np.testing.assert_allclose(chunked[2], whole, rtol=1e-14, atol=0)
    assert len(seen) == 8 and seen == sorted(seen) and seen[-1] == 1.0  # 36 points, 5 a chunk


def test_closed_form_refuses_what_it_does_not_know():
    class Wider(TanhMLP):  # a subclass may compute something else
        def forward(self, x):
            return 2 * super().forward(x)

    problem = make_network("two_moons")
    center = problem.params0(0.5)
    plane = random_plane(center, seed=0)
    problem.model = Wider(2, 4, 1).double()
    assert loss_grid(problem, center, *plane, n=3).meta["method"] == "vmap"
    transformer = make_network("tiny_transformer", n_sequences=8)
    center = transformer.params0()
    with pytest.raises(ValueError, match='method="mlp" needs a problem whose model is a TanhMLP or a'):
        loss_grid(transformer, center, *random_plane(center, seed=0), n=3, method="mlp")


def test_filter_normalisation_matches_each_row_norm_and_zeroes_1d_parameters(moons):
    params = moons.params0(0.7, seed=5)
    plane = random_plane(params, seed=0)
    for direction in plane:
        for name, p in params.items():
            if p.dim() == 1:
                assert not direction[name].any(), name
            else:
                torch.testing.assert_close(direction[name].norm(dim=1), p.norm(dim=1))
    assert plane.meta == {"kind": "random", "seed": 0, "normalisation": "filter"}
    again = random_plane(params, seed=0)
    assert all(torch.equal(again[0][k], plane[0][k]) for k in params)
    unit = random_plane(params, seed=0, filter_normalize=False)
    for direction in unit:
        assert moons.flatten(direction).norm().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="filter_normalize=False"):
        random_plane({k: torch.zeros_like(v) for k, v in params.items()})


def test_projection_of_points_in_the_plane_is_exact(moons):
    center = moons.flatten(moons.params0(0.5)).numpy()
    rng = np.random.default_rng(0)
    d1, d2 = rng.normal(size=17), rng.normal(size=17)  # not orthogonal, not unit
    coords = rng.normal(size=(30, 2))
    points = center + coords[:, :1] * d1 + coords[:, 1:] * d2
    np.testing.assert_allclose(project_onto_plane(points, center, d1, d2), coords, atol=1e-12)
    with pytest.raises(ValueError, match="linearly dependent"):
        project_onto_plane(points, center, d1, 2 * d1)


def test_min_curvature_plane_at_the_two_moons_origin_lies_in_the_minus_0_945_eigenspace(moons):
    origin = {k: torch.zeros_like(v) for k, v in moons.params0().items()}
    plane = min_curvature_plane(moons, origin)
    X, y = moons.data
    lam_min = -(y[:, None] * X).mean(0).norm().item()
    assert plane.meta["eigenvalues"] == pytest.approx([lam_min, lam_min], abs=1e-12)
    assert lam_min == pytest.approx(-0.945, abs=0.015)
    H = torch.func.hessian(lambda t: moons.flat_loss(t, moons.batch(0)))(moons.flatten(origin))
    for direction in plane:
        v = moons.flatten(direction)
        assert v.norm().item() == pytest.approx(1.0)
        torch.testing.assert_close(H @ v, lam_min * v, atol=1e-12, rtol=0)  # an eigenvector of λ_min


def test_lanczos_and_exact_min_curvature_planes_agree():
    problem = make_network("two_moons", hidden=16)
    params = problem.params0(0.8, seed=1)
    exact = min_curvature_plane(problem, params, method="exact")
    lanczos = min_curvature_plane(problem, params, method="lanczos", tol=1e-12)
    assert lanczos.meta["method"] == "lanczos" and lanczos.meta["hvps"] > 0
    np.testing.assert_allclose(lanczos.meta["eigenvalues"], exact.meta["eigenvalues"], atol=1e-8)
    E = torch.stack([problem.flatten(d) for d in exact])
    L = torch.stack([problem.flatten(d) for d in lanczos])
    torch.testing.assert_close(torch.linalg.svdvals(E @ L.T), torch.ones(2, dtype=E.dtype), atol=1e-6, rtol=0)


def test_pca_plane_of_trajectories_in_a_plane_recovers_that_plane():
    rng = np.random.default_rng(1)
    center = rng.normal(size=40)
    basis = np.linalg.qr(rng.normal(size=(40, 2)))[0].T
    trajectories = [center + rng.normal(size=(t, 2)) @ basis for t in (5, 12, 30)]
    plane = pca_plane(trajectories, center)
    found = np.stack(plane)
    np.testing.assert_allclose(np.linalg.svd(found @ basis.T, compute_uv=False), [1.0, 1.0], atol=1e-10)
    assert sum(plane.meta["explained"]) == pytest.approx(1.0)
    for t in trajectories:  # their points project exactly and reconstruct
        coords = project_onto_plane(t, center, *plane)
        np.testing.assert_allclose(center + coords @ found, t, atol=1e-10)
    with pytest.raises(ValueError, match="at least one trajectory"):
        pca_plane([], center)


def test_planes_and_grids_survive_pickling_with_their_metadata(moons):
    center = moons.params0(0.5)
    plane = random_plane(center, seed=3)
    grid = loss_grid(moons, center, *plane, n=3)
    for obj in (plane, grid):
        for restored in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
            assert type(restored) is type(obj) and restored.meta == obj.meta and len(restored) == len(obj)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(grid))[2], grid[2])


def test_the_loop_calls_problem_loss_for_a_problem_without_a_module(moons):
    center = moons.params0(0.5, seed=2)
    d1, d2 = random_plane(center, seed=3)
    functional = SimpleNamespace(loss=moons.loss, batch=moons.batch)  # no model, no module_loss
    grid = loss_grid(functional, center, d1, d2, n=4, method="loop")
    np.testing.assert_array_equal(grid[2], loss_grid(moons, center, d1, d2, n=4, method="loop")[2])
    np.testing.assert_allclose(grid[2], loss_grid(moons, center, d1, d2, n=4, method="vmap")[2], rtol=1e-13)
