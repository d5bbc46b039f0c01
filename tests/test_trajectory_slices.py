"""The Networks page's slice as library calls (``landscapes.trajectory_slices``): the plane chosen
before the race, the loss on it and the trajectories projected, checked on points built in the plane."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import landscapes
from landscapes.trajectory_slices import (
    FIT_MARGIN,
    SLICE_PLANES,
    slice_plan,
    slice_values,
    start_plane,
    trajectory_slice,
)

INIT, SEED = 0.5, 3


def flat(directions) -> np.ndarray:
    return torch.cat([t.reshape(-1) for t in directions.values()]).double().numpy()


@pytest.fixture(scope="module")
def moons():
    return landscapes.make_network("two_moons")


def test_slice_plan_keeps_the_plane_while_trajectories_are_recorded_and_else_projects_randomly():
    for plane in SLICE_PLANES:
        small = slice_plan(plane, 17, 4096, 5, False)
        assert (small.plane, small.projection, small.recorded, small.replaced) == (plane, None, True, False)
        large = slice_plan(plane, 12992, 4096, 5, False)
        assert (large.plane, large.projection, large.recorded) == ("random", (5, False), False)
        assert large.replaced == (plane != "random")
    assert slice_plan("pca", 4096, 4096).recorded  # the limit itself is still recorded
    with pytest.raises(ValueError, match="plane must be one of"):
        slice_plan("hessian", 17, 4096)


def test_slice_values_are_bilinear_in_the_grid_and_nan_outside():
    alphas, betas = np.linspace(-1, 1, 11), np.linspace(-2, 2, 21)
    z = 3.0 * alphas[None, :] - 2.0 * betas[:, None] + 1.0  # a plane is reproduced exactly
    points = np.array([[0.33, -1.1], [-0.91, 1.77], [5.0, 0.0]])
    got = slice_values(alphas, betas, z, points)
    np.testing.assert_allclose(got[:2], 3.0 * points[:2, 0] - 2.0 * points[:2, 1] + 1.0)
    assert np.isnan(got[2])


def test_trajectories_in_the_random_plane_project_exactly_and_the_grid_is_the_loss(moons):
    params0, (d1, d2) = start_plane(moons, INIT, SEED, 7, True)
    expected = landscapes.random_plane(moons.params0(init_scale=INIT, seed=SEED), seed=7)
    for got, want in zip((d1, d2), expected):
        np.testing.assert_array_equal(flat(got), flat(want))
    theta0, u, v = flat(params0), flat(d1), flat(d2)
    coords = [np.array([[0.0, 0.0], [0.2, -0.4], [0.8, 0.4]]), np.array([[0.0, 0.0], [-0.6, 0.2]])]
    positions = [theta0 + c[:, :1] * u + c[:, 1:] * v for c in coords]
    traces = [SimpleNamespace(position=p, position_2d=None) for p in positions]
    sl = trajectory_slice(moons, INIT, SEED, "random", traces, plane_seed=7, resolution=11)
    for path, c in zip(sl.paths, coords):
        np.testing.assert_allclose(path, c, atol=1e-10)
    assert sl.radius == pytest.approx(FIT_MARGIN * 0.8)  # radius 0 fits the largest coordinate
    np.testing.assert_allclose(sl.alphas, np.linspace(-sl.radius, sl.radius, 11), atol=1e-15)
    batch = moons.batch(0)
    for i, j in ((0, 0), (3, 8), (10, 5)):  # z[i, j] = L(θ₀ + αⱼδ₁ + βᵢδ₂)
        point = {k: params0[k] + sl.alphas[j] * d1[k] + sl.betas[i] * d2[k] for k in params0}
        assert sl.z[i, j] == pytest.approx(float(moons.loss(point, batch)), rel=1e-5)
    np.testing.assert_array_equal(sl.path_losses[0], slice_values(sl.alphas, sl.betas, sl.z, sl.paths[0]))
    assert sl.path_losses[0][0] == pytest.approx(sl.z[5, 5])  # θ₀ is the grid's centre node
    assert sl.description.startswith("random plane (filter-normalised directions, seed 7)")


def test_a_diverged_run_leaves_the_fitted_window_instead_of_blowing_it_up(moons):
    calm = SimpleNamespace(position=None, position_2d=np.array([[0.0, 0.0], [0.5, -1.0]]), status="stopped")
    gone = SimpleNamespace(
        position=None, position_2d=np.array([[0.0, 0.0], [3e151, 1e152]]), status="diverged"
    )
    sl = trajectory_slice(moons, INIT, SEED, "random", [calm, gone], resolution=5)
    assert sl.radius == pytest.approx(FIT_MARGIN * 1.0)  # the calm run's largest coordinate
    np.testing.assert_array_equal(sl.paths[1], gone.position_2d)  # still drawn (leaving the window)
    alone = trajectory_slice(moons, INIT, SEED, "random", [gone], resolution=5)
    assert alone.radius == pytest.approx(FIT_MARGIN * 1e152)  # every run diverged: fitted to them


def test_a_diverged_run_is_left_out_of_the_pca_plane(moons):
    theta0 = flat(moons.params0(init_scale=INIT, seed=SEED))
    rng = np.random.default_rng(1)
    steps = rng.normal(size=(6, theta0.size)) * 0.05
    calm = SimpleNamespace(position=theta0 + np.cumsum(steps, axis=0), position_2d=None, status="stopped")
    far = np.zeros((3, theta0.size))
    far[:, 0] = [0.0, 1e6, 1e150]  # a run that blew up along the first weight
    gone = SimpleNamespace(position=theta0 + far, position_2d=None, status="diverged")
    with_it = trajectory_slice(moons, INIT, SEED, "pca", [calm, gone], resolution=5)
    alone = trajectory_slice(moons, INIT, SEED, "pca", [calm], resolution=5)
    np.testing.assert_allclose(with_it.paths[0], alone.paths[0], atol=1e-12)  # the same plane
    assert with_it.radius == pytest.approx(alone.radius)
    assert with_it.description.startswith("PCA plane of the runs that did not diverge (explained")
    assert alone.description.startswith("PCA plane of all trajectories (explained")


def test_unrecorded_trajectories_use_the_races_own_plane_coordinates_and_only_the_random_plane(moons):
    recorded = np.array([[0.0, 0.0], [0.5, -1.0]])
    traces = [SimpleNamespace(position=None, position_2d=recorded)]
    sl = trajectory_slice(moons, INIT, SEED, "random", traces, radius=2.0, resolution=5)
    np.testing.assert_array_equal(sl.paths[0], recorded)
    assert sl.radius == 2.0 and sl.z.shape == (5, 5)
    with pytest.raises(ValueError, match="only the random plane"):
        trajectory_slice(moons, INIT, SEED, "pca", traces, resolution=5)


def test_min_curvature_and_pca_slices_describe_their_planes(moons):
    theta0 = flat(moons.params0(init_scale=INIT, seed=SEED))
    rng = np.random.default_rng(0)
    position = theta0 + np.cumsum(rng.normal(size=(6, theta0.size)) * 0.05, axis=0)
    traces = [SimpleNamespace(position=position, position_2d=None)]
    pca = trajectory_slice(moons, INIT, SEED, "pca", traces, resolution=5)
    assert pca.plane == "pca" and pca.description.startswith("PCA plane of all trajectories (explained")
    curvature = trajectory_slice(moons, INIT, SEED, "min_curvature", traces, resolution=5)
    assert curvature.description.startswith("min-curvature plane (two lowest Hessian eigenvectors")


def test_the_worker_job_reports_the_grids_progress_point_by_point():
    from pages.workers import network_slice_job

    traces = [SimpleNamespace(position=None, position_2d=np.array([[0.0, 0.0], [0.3, -0.2]]))]
    seen = []
    sl = network_slice_job(
        "two_moons", INIT, SEED, "random", 0, True, 0.0, 7, traces, progress=lambda f, m: seen.append((f, m))
    )
    assert sl.z.shape == (7, 7)
    assert seen[0] == (0.0, "0 of 49 points") and seen[-1] == (1.0, "49 of 49 points")
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
