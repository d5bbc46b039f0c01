"""The 2-D slice of a network race: which plane, the loss on it, every trajectory projected on it.

The plane passes through the common start θ₀ = ``net.params0(init_scale, seed)`` (``landscapes.slices``):
random (seeded, optionally filter-normalised), min curvature (the two lowest Hessian eigenvectors at
θ₀) or PCA of all trajectories. A race records whole trajectories θ_t only up to a parameter count
(the race's ``VECTOR_MAX_DIM``); above it the race records each row's coordinates in the random
plane as it runs (``position_2d``), so that plane is the only one a slice can show. :func:`slice_plan`
makes that choice before the race; :func:`trajectory_slice` computes the slice after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy import ndarray
from scipy.interpolate import RegularGridInterpolator

from landscapes.slices import Grid, Plane, loss_grid, min_curvature_plane, pca_plane, project_onto_plane
from landscapes.slices import random_plane as _random_directions

SLICE_PLANES = ("random", "min_curvature", "pca")
FIT_MARGIN = 1.15  # radius 0: the window is this × the trajectories' largest plane coordinate


@dataclass(frozen=True)
class SlicePlan:
    """The plane a race's slice uses, fixed before the race.

    ``requested`` the plane asked for; ``plane`` the one used (the random plane when trajectories
    are not recorded whole); ``projection`` the race's ``(plane seed, filter-normalise)`` to record
    ``position_2d`` during the race, or None when trajectories are recorded whole.
    """

    requested: str
    plane: str
    projection: tuple[int, bool] | None

    @property
    def recorded(self) -> bool:
        """Whole trajectories are recorded (any plane can be drawn after the race)."""
        return self.projection is None

    @property
    def replaced(self) -> bool:
        """The requested plane is not available and the random plane is used instead."""
        return self.plane != self.requested


def slice_plan(
    plane: str, n_params: int, recorded_max_params: int, plane_seed: int = 0, filter_normalize: bool = True
) -> SlicePlan:
    """The slice plane of a race on ``n_params`` parameters whose trajectories are recorded whole up
    to ``recorded_max_params`` (``deo.race.VECTOR_MAX_DIM``); above it, the random plane of
    (``plane_seed``, ``filter_normalize``), projected during the race."""
    if plane not in SLICE_PLANES:
        raise ValueError(f"plane must be one of {list(SLICE_PLANES)}, got {plane!r}")
    if n_params <= recorded_max_params:
        return SlicePlan(plane, plane, None)
    return SlicePlan(plane, "random", (int(plane_seed), bool(filter_normalize)))


def start_plane(net, init_scale: float | None, seed: int, plane_seed: int, filter_normalize: bool):
    """``(θ₀, (δ₁, δ₂))``: the start of the race and the random plane through it (``random_plane``)."""
    params0 = net.params0(init_scale=init_scale, seed=seed)
    return params0, _random_directions(params0, seed=plane_seed, filter_normalize=filter_normalize)


def describe_slice(plane: Plane, grid: Grid, fitted: str = "all trajectories") -> str:
    """The plane (kind, normalisation, seed / eigenvalues / explained variance) and the radius;
    ``fitted``: the trajectories a PCA plane was fitted to, in words."""
    meta = plane.meta
    if meta["kind"] == "random":
        norm = "filter-normalised" if meta["normalisation"] == "filter" else "unit-norm"
        text = f"random plane ({norm} directions, seed {meta['seed']})"
    elif meta["kind"] == "min_curvature":
        text = "min-curvature plane (two lowest Hessian eigenvectors at θ₀, λ = "
        text += ", ".join(f"{v:.3g}" for v in meta["eigenvalues"]) + ")"
    else:
        text = f"PCA plane of {fitted} (explained " + ", ".join(f"{100 * v:.0f} %" for v in meta["explained"])
        text += ")"
    return f"{text}; through the common start θ₀; radius {grid.meta['radius']:.3g}"


@dataclass(frozen=True)
class TrajectorySlice:
    """The loss on a plane through θ₀ and the trajectories in its coordinates.

    ``alphas`` (n,), ``betas`` (n,), ``z`` (n, n) with z[i, j] = L(θ₀ + αⱼδ₁ + βᵢδ₂); ``paths`` one
    (T_k, 2) array of plane coordinates per trajectory and ``path_losses`` the slice's loss at each of
    its points (T_k,) (where it differs from the trace's loss, the trajectory has left the plane);
    ``radius`` the half-width used; ``description`` the plane and radius in words.
    """

    plane: str
    alphas: ndarray
    betas: ndarray
    z: ndarray
    paths: tuple[ndarray, ...]
    path_losses: tuple[ndarray, ...]
    radius: float
    description: str


def slice_values(alphas: ndarray, betas: ndarray, z: ndarray, points: ndarray) -> ndarray:
    """The slice's loss at projected points (bilinear in the grid; NaN outside it): ``(T, 2) -> (T,)``.

    ``z`` has shape ``(len(betas), len(alphas))`` (rows along β, the plane's second direction).
    """
    points = np.asarray(points, dtype=np.float64)
    interp = RegularGridInterpolator(
        (np.asarray(betas, float), np.asarray(alphas, float)),
        np.asarray(z, float),
        bounds_error=False,
        fill_value=np.nan,
    )
    return interp(points[:, ::-1])


def trajectory_slice(
    net,
    init_scale: float | None,
    seed: int,
    plane: str,
    traces: Sequence,
    plane_seed: int = 0,
    filter_normalize: bool = True,
    radius: float = 0.0,
    resolution: int = 31,
    progress: Callable[[float], None] | None = None,
) -> TrajectorySlice:
    """The loss of ``net`` on ``plane`` through θ₀ and each trace's trajectory projected on it.

    Trajectories come from ``trace.position`` (T, d), projected by least squares, or, when a trace
    has none (a race too large to record them), from its ``position_2d`` recorded in the random plane
    of (``plane_seed``, ``filter_normalize``) during the race. ``radius`` 0 fits the window to the
    projected trajectories (``FIT_MARGIN`` × their largest coordinate) of the runs that did not
    diverge (of all when every run did): a diverged run leaves the window instead of blowing it up
    (GD at lr 10 on xor put the other runs in one pixel of a window of radius 1.8·10¹⁵²); the PCA
    plane is fitted to the same runs.
    ``progress(fraction)``: the grid's evaluation (:func:`landscapes.slices.loss_grid`), the part
    that takes the time.
    """
    if plane not in SLICE_PLANES:
        raise ValueError(f"plane must be one of {list(SLICE_PLANES)}, got {plane!r}")
    batch = net.batch(0)
    # the runs the window and a PCA plane are fitted to: those that did not diverge (all when every
    # run did); a diverged run is still projected and drawn, leaving the window
    calm = [getattr(t, "status", None) != "diverged" for t in traces]
    some_diverged = not all(calm) and any(calm)
    calm = calm if any(calm) else [True] * len(traces)
    if any(t.position is None for t in traces):
        if plane != "random":
            raise ValueError(
                f"{net.n_params} parameters: only the random plane is available for this network"
            )
        params0, directions = start_plane(net, init_scale, seed, plane_seed, filter_normalize)
        paths = [np.asarray(t.position_2d) for t in traces]
    else:
        params0 = net.params0(init_scale=init_scale, seed=seed)
        if plane == "random":
            directions = _random_directions(params0, seed=plane_seed, filter_normalize=filter_normalize)
        elif plane == "min_curvature":
            directions = min_curvature_plane(net, params0, batch)
        else:  # fitted to the runs that did not diverge, as the window is (below)
            directions = pca_plane([t.position for t, keep in zip(traces, calm) if keep], params0)
        paths = [np.asarray(project_onto_plane(t.position, params0, *directions)) for t in traces]
    if radius <= 0:  # fitted to the runs that did not diverge (one that did went ~1e152 away)
        kept = [p for p, keep in zip(paths, calm) if keep]
        extent = max((float(np.nanmax(np.abs(p))) for p in kept if p.size), default=0.0)
        radius = FIT_MARGIN * extent if extent > 0 else 1.0
    grid = loss_grid(net, params0, *directions, radius=radius, n=resolution, batch=batch, progress=progress)
    alphas, betas, z = (np.asarray(a) for a in grid)
    return TrajectorySlice(
        plane=plane,
        alphas=alphas,
        betas=betas,
        z=z,
        paths=tuple(paths),
        path_losses=tuple(slice_values(alphas, betas, z, p) for p in paths),
        radius=float(radius),
        description=describe_slice(
            directions, grid, "the runs that did not diverge" if some_diverged else "all trajectories"
        ),
    )
