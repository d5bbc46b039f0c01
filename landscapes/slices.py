"""2-D slices of a network's loss: planes through a point, the loss on a grid, trajectories projected.

A plane through θc is spanned by two directions δ₁, δ₂ (dicts shaped like the parameters, or flat
(d,) vectors in the parameters' order); the slice is f(α, β) = L(θc + α δ₁ + β δ₂). Three planes:

- :func:`random_plane` — two seeded Gaussian directions, filter-normalised (Li et al. 2018): the
  same plane for every optimizer, so trajectories are comparable. The default.
- :func:`min_curvature_plane` — the two lowest Hessian eigenvectors at θc: the plane of the min mode
  the dimer hunts.
- :func:`pca_plane` — PCA of all optimizers' trajectories concatenated, about θc.

:func:`loss_grid` evaluates f on an n×n grid: a one-hidden-layer tanh network in closed form (every
point of a chunk at once), other small models by ``torch.func.vmap`` over chunks of grid points (each
chunk's parameters built inside the chunk: memory O(chunk·d), never O(n²·d)), larger ones one forward
per point, where a plain matrix product per layer beats vmap's batched ones.
:func:`project_onto_plane` maps a trajectory to plane coordinates by least squares.

The returned pairs are :class:`Plane` / :class:`Grid` tuples that unpack like plain tuples and
carry ``meta`` (kind, seed, normalisation, radius, …) for the figure's caption. A 2-D slice of a
high-dimensional loss can mislead: the projected point's contour value is not the trajectory's loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import Tensor
from torch.func import vmap

from deo.hessian import exact_eigh

Params = Mapping[str, Tensor]
EXACT_HESSIAN_MAX_PARAMS = 2000
GRID_METHODS = ("auto", "vmap", "loop", "mlp")
# loss_grid's "auto": one forward per point from this many parameters on (benchmarks/slices.py,
# 1 thread, 21×21 grid, loop vs vmap: spirals d = 603 158 vs 247 ms, tiny_transformer d = 12 992
# 1.6 vs 4.2 s; teacher_student d = 400 219 vs 195 ms, two_moons d = 17 46 vs 9 ms)
LOOP_MIN_PARAMS = 500
# "mlp": hidden values (grid points × samples × units) per batched product; 2¹⁸ float64 values
# (2 MB) was the fastest of 2¹⁵ … 2²⁰ on two_moons and spirals, 51×51, one thread (medians of 5
# interleaved rounds, buffers reused: two_moons 4.8 ms against 5.3 at 2¹⁷ and 6.0 at 2²⁰; spirals 186 ms)
MLP_CHUNK_VALUES = 2**18


class Plane(tuple):
    """(δ₁, δ₂) with ``meta``: a dict describing how the plane was made."""

    meta: dict

    def __new__(cls, d1, d2, meta: dict) -> Plane:
        plane = super().__new__(cls, (d1, d2))
        plane.meta = meta
        return plane

    def __getnewargs__(self) -> tuple:  # pickling (st.cache_data) and deepcopy
        return (*self, self.meta)


class Grid(tuple):
    """(alphas (n,), betas (n,), Z (n, n)) with ``meta`` (radius, n, chunk, direction norms)."""

    meta: dict

    def __new__(cls, alphas: np.ndarray, betas: np.ndarray, Z: np.ndarray, meta: dict) -> Grid:
        grid = super().__new__(cls, (alphas, betas, Z))
        grid.meta = meta
        return grid

    def __getnewargs__(self) -> tuple:
        return (*self, self.meta)


def _flat(v) -> Tensor:
    """A dict of tensors (in its own order) or an array -> one flat tensor."""
    if isinstance(v, Mapping):
        return torch.cat([t.detach().reshape(-1) for t in v.values()])
    return torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v).reshape(-1)


def _as_dict(v, like: Params) -> dict[str, Tensor]:
    """A direction as a dict shaped like ``like`` (a flat (d,) vector is split in ``like``'s order)."""
    if isinstance(v, Mapping):
        if set(v) != set(like):
            raise ValueError(f"direction names {sorted(v)} do not match the parameters {sorted(like)}")
        return {k: v[k].detach().to(like[k].dtype) for k in like}
    flat = _flat(v)
    d = sum(t.numel() for t in like.values())
    if flat.numel() != d:
        raise ValueError(f"a flat direction must have d = {d} entries, got {flat.numel()}")
    pieces = torch.split(flat, [t.numel() for t in like.values()])
    return {k: p.reshape(t.shape).to(t.dtype) for (k, t), p in zip(like.items(), pieces)}


def random_plane(params: Params, seed: int = 0, filter_normalize: bool = True) -> Plane:
    """Two random directions δ₁, δ₂ ~ N(0, I), shaped like ``params``, from ``torch.Generator(seed)``.

    filter_normalize (Li et al. 2018): each row (filter) δ[i] of a weight of dim ≥ 2 is rescaled to
    ‖θ[i]‖, the norm of the matching row of the weights, and biases and other 1-D parameters
    (including layer norms) are set to 0, so the slice's scale follows the weights'. Without it each
    direction is scaled to unit norm over all parameters (plane coordinates are then distances).
    """
    g = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(2):
        raw = {
            k: torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype) for k, t in params.items()
        }
        if filter_normalize:
            d = {}
            for k, t in params.items():
                if t.dim() <= 1:
                    d[k] = torch.zeros_like(t)
                else:
                    w = t.detach().reshape(t.shape[0], -1).norm(dim=1)
                    r = raw[k].reshape(t.shape[0], -1)
                    d[k] = (r * (w / r.norm(dim=1)).unsqueeze(1)).reshape(t.shape)
            if all(not v.any() for v in d.values()):
                raise ValueError(
                    "filter normalisation needs non-zero weight rows (the parameters are all zero); "
                    "use filter_normalize=False at the origin"
                )
        else:
            norm = _flat(raw).norm()
            d = {k: v / norm for k, v in raw.items()}
        directions.append(d)
    meta = {"kind": "random", "seed": seed, "normalisation": "filter" if filter_normalize else "unit norm"}
    return Plane(directions[0], directions[1], meta)


def _flat_loss(problem, params: Params, batch):
    """f(θ flat) = problem.loss(θ as a dict, batch), θ in ``params``' order."""
    names = list(params)
    shapes = [params[k].shape for k in names]
    sizes = [params[k].numel() for k in names]

    def f(theta: Tensor) -> Tensor:
        pieces = torch.split(theta, sizes)
        return problem.loss({k: p.reshape(s) for k, p, s in zip(names, pieces, shapes)}, batch)

    return f


def min_curvature_plane(
    problem, params: Params, batch=None, method: str = "auto", tol: float = 1e-8
) -> Plane:
    """The two lowest eigenvectors v₁, v₂ of the Hessian ∇²L(θ; batch) at θ = ``params`` (unit norm).

    method "exact": the full Hessian (``deo.hessian.exact_eigh``, float64); "lanczos":
    ``scipy.sparse.linalg.eigsh`` (which="SA", k=2, ``tol``) on exact Hessian-vector products (double
    backward); "auto": exact for d ≤ 2000, else Lanczos. ``batch`` defaults to ``problem.batch(0)``.
    ``meta["eigenvalues"]`` holds λ₁ ≤ λ₂; ``meta["hvps"]`` the HVPs Lanczos used.
    """
    if method not in ("auto", "exact", "lanczos"):
        raise ValueError(f"method must be 'auto', 'exact' or 'lanczos', got {method!r}")
    batch = problem.batch(0) if batch is None else batch
    f = _flat_loss(problem, params, batch)
    theta = _flat(params).clone()
    d = theta.numel()
    if method == "exact" or (method == "auto" and d <= EXACT_HESSIAN_MAX_PARAMS):
        lam, vecs = exact_eigh(f, theta)
        values, v1, v2, method, hvps = lam[:2].tolist(), vecs[:, 0], vecs[:, 1], "exact", 0
    else:
        counter = {"hvps": 0}

        def hvp(v: np.ndarray) -> np.ndarray:
            counter["hvps"] += 1
            x = theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(f(x), x, create_graph=True)
            u = torch.as_tensor(np.asarray(v).reshape(-1), dtype=theta.dtype)
            (hv,) = torch.autograd.grad(g @ u, x)
            return hv.detach().to(torch.float64).numpy()

        op = sla.LinearOperator((d, d), matvec=hvp, dtype=np.float64)
        lam, vecs = sla.eigsh(op, k=2, which="SA", tol=tol)
        order = np.argsort(lam)
        values = lam[order].tolist()
        v1, v2 = (torch.from_numpy(vecs[:, i].copy()) for i in order)
        method, hvps = "lanczos", counter["hvps"]
    meta = {
        "kind": "min_curvature",
        "eigenvalues": values,
        "method": method,
        "hvps": hvps,
        "normalisation": "unit eigenvectors",
    }
    return Plane(_as_dict(v1, params), _as_dict(v2, params), meta)


def pca_plane(trajectories: list[np.ndarray], center) -> Plane:
    """The two leading principal directions of all trajectories concatenated, about ``center``.

    Rows θ_t − θc of every trajectory (T_k, d) are stacked and the two leading right singular vectors
    returned as flat unit vectors (d,). The PCA is taken about θc rather than the mean, so the plane
    passes through θc. ``meta["explained"]``: the fraction of Σ‖θ_t − θc‖² each direction captures.
    """
    if not trajectories:
        raise ValueError("pca_plane needs at least one trajectory")
    c = _flat(center).numpy().astype(np.float64)
    rows = np.concatenate([np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in trajectories]) - c
    if rows.shape[1] != c.size:
        raise ValueError(f"trajectories have d = {rows.shape[1]} but center has d = {c.size}")
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    if len(s) < 2 or s[1] == 0:
        raise ValueError("the trajectories span fewer than 2 directions about center; no PCA plane")
    total = float((s**2).sum())
    meta = {
        "kind": "pca",
        "explained": [float(s[0] ** 2 / total), float(s[1] ** 2 / total)],
        "normalisation": "unit vectors",
        "n_points": int(rows.shape[0]),
    }
    return Plane(vt[0], vt[1], meta)


def loss_grid(
    problem,
    center: Params,
    d1,
    d2,
    radius: float = 1.0,
    n: int = 51,
    batch=None,
    chunk: int = 256,
    method: str = "auto",
    progress: Callable[[float], None] | None = None,
) -> Grid:
    """The loss on the plane: Z[i, j] = L(θc + αⱼ δ₁ + βᵢ δ₂; batch), α, β = linspace(−r, r, n).

    Row i is β (the plot's y), column j is α (x). No gradients are taken. Two ways to evaluate the
    n² points, the same values (to the last bit or two: a batched matmul may sum in another order):

    - ``"vmap"``: ``chunk`` points at a time with ``torch.func.vmap`` over ``problem.loss``; each
      chunk's parameters θc + α δ₁ + β δ₂ (chunk, *shape) are built inside the chunk, so memory is
      O(chunk·d) whatever n. Fast where one point is little arithmetic (the per-point dispatch
      overhead is what a loop would pay);
    - ``"loop"``: one forward per point — every layer one plain matrix product over the batch, which
      is faster than vmap's batched products of per-point weights once a point is real work
      (``benchmarks/slices.py``: tiny_transformer 2.6× faster than vmap, spirals 1.6×);
    - ``"mlp"``: for a :class:`~landscapes.nets.models.TanhMLP` (one tanh hidden layer: two_moons,
      spirals, xor) or a :class:`~landscapes.nets.models.SoftCommittee` (teacher_student) with a
      criterion, every point's forward at once in closed form (see
      :func:`_grid_by_mlp`): the same values to rounding (≤ 1e-15 relative), 3.5× faster than vmap
      on two_moons and 2.6× faster than the loop on spirals (51×51, one thread);
    - ``"auto"`` (default): ``"mlp"`` where it applies, else ``"loop"`` for d ≥
      :data:`LOOP_MIN_PARAMS`, else ``"vmap"``.

    ``progress(fraction)`` is called after every chunk (vmap, mlp) or grid row (loop), ending at 1.0.
    ``meta["method"]`` says which way ran.
    """
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if n < 2:
        raise ValueError(f"n must be >= 2 grid points per side, got {n}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if method not in GRID_METHODS:
        raise ValueError(f"method must be one of {list(GRID_METHODS)}, got {method!r}")
    batch = problem.batch(0) if batch is None else batch
    center = {k: t.detach() for k, t in center.items()}
    d1, d2 = _as_dict(d1, center), _as_dict(d2, center)
    dtype = next(iter(center.values())).dtype
    if method == "auto":
        d = sum(t.numel() for t in center.values())
        method = "mlp" if _has_closed_form(problem, center) else "loop" if d >= LOOP_MIN_PARAMS else "vmap"
    elif method == "mlp" and not _has_closed_form(problem, center):
        raise ValueError(
            'method="mlp" needs a problem whose model is a TanhMLP or a SoftCommittee with a criterion, '
            "and a plane over all its parameters in one dtype"
        )
    alphas = torch.linspace(-radius, radius, n, dtype=torch.float64)
    betas = torch.linspace(-radius, radius, n, dtype=torch.float64)
    a_all = alphas.repeat(n).to(dtype)  # point k = i·n + j has (α_j, β_i)
    b_all = betas.repeat_interleave(n).to(dtype)
    evaluate = {"vmap": _grid_by_vmap, "loop": _grid_by_loop, "mlp": _grid_by_mlp}[method]
    with torch.no_grad():
        Z = evaluate(problem, center, d1, d2, a_all, b_all, batch, chunk, n, progress).reshape(n, n).numpy()
    meta = {
        "radius": float(radius),
        "n": n,
        "chunk": chunk,
        "method": method,
        "norms": [float(_flat(d1).norm()), float(_flat(d2).norm())],
    }
    return Grid(alphas.numpy(), betas.numpy(), Z, meta)


def _grid_by_vmap(problem, center, d1, d2, a_all, b_all, batch, chunk, n, progress) -> Tensor:
    """The n² losses (float64), ``chunk`` points per ``vmap`` call."""
    batched_loss = vmap(lambda p: problem.loss(p, batch))
    values = []
    total = n * n
    for start in range(0, total, chunk):
        a, b = a_all[start : start + chunk], b_all[start : start + chunk]
        points = {}
        for k, c in center.items():
            shape = (-1,) + (1,) * c.dim()
            points[k] = c + a.reshape(shape) * d1[k] + b.reshape(shape) * d2[k]
        values.append(batched_loss(points).to(torch.float64))
        if progress is not None:
            progress(min(start + chunk, total) / total)
    return torch.cat(values)


def _has_closed_form(problem, center: Params) -> bool:
    """Whether :func:`_grid_by_mlp` applies: the problem's model class itself defines
    ``tanh_layer`` (:class:`~landscapes.nets.models.TanhMLP`,
    :class:`~landscapes.nets.models.SoftCommittee`; a subclass that does not override it may have
    another forward), its loss is ``criterion(model(inputs), targets)`` and the plane is over all
    the model's parameters, in one dtype."""
    model = getattr(problem, "model", None)
    return (
        "tanh_layer" in vars(type(model))
        and getattr(problem, "criterion", None) is not None
        and set(center) == {name for name, _ in model.named_parameters()}
        and len({t.dtype for t in center.values()}) == 1
    )


def _grid_by_mlp(problem, center, d1, d2, a_all, b_all, batch, chunk, n, progress) -> Tensor:
    """The n² losses (float64) of a one-hidden-layer tanh network f = W₂ tanh(W₁x + b₁) + b₂ (the
    soft committee: W₂ = 1, b₁ = b₂ = 0, W₁ scaled), all points of a chunk in three batched
    operations instead of a forward each (the model's ``tanh_layer`` gives P = W₁x + b₁, W₂ and
    b₂ of the center and of each direction). Two identities do it:

    - the hidden pre-activations are linear in the plane's coordinates, W₁(α, β)x + b₁(α, β) =
      P₀ + αP₁ + βP₂ with Pᵢ = Wᵢx + bᵢ for the center and the two directions: one (k, 3) × (3, S·H)
      product gives a chunk of k points, where a forward per point multiplies per-point weights;
    - tanh(z) = 2σ(2z) − 1, with the 2 folded into the Pᵢ and the 2 and −1 into the output
      weights and bias: on CPU torch's ``sigmoid`` is ≈ 7× faster than its ``tanh`` (2M values:
      1.2 vs 8.3 ms in float64, one thread), and the identity is exact (measured: ≤ 4e-16 absolute).

    The outputs go through ``problem.criterion`` under ``vmap`` (one loss per point). Each chunk holds
    ≈ :data:`MLP_CHUNK_VALUES` hidden values (points × samples × units), whatever ``chunk`` (the
    vmap's). Rounding differs from a forward's (sums in another order): the same values to ≈ 1e-15
    relative (tests/test_slices.py)."""
    inputs, targets = batch
    model = problem.model
    layers = [model.tanh_layer(member, inputs, direction=member is not center) for member in (center, d1, d2)]
    samples, hidden = layers[0][0].shape
    outputs = layers[0][1].shape[0]
    pre = 2 * torch.stack([layer[0] for layer in layers]).reshape(3, -1)  # 2P: tanh(P) = 2σ(2P) − 1
    out_weights = torch.stack([layer[1] for layer in layers]).reshape(3, -1)
    out_biases = torch.stack([layer[2] for layer in layers])
    loss = vmap(lambda output: problem.criterion(output, targets))
    total = n * n
    per_chunk = min(total, max(1, MLP_CHUNK_VALUES // (samples * max(hidden, outputs))))
    # every chunk writes into the same two buffers: a fresh multi-MB tensor per chunk would be a
    # fresh mapping from the OS whenever glibc returned the last one, a page fault per 4 KiB
    # (two_moons, 51×51: 5–6 ms this way, 5–14 ms with a new tensor per chunk)
    hidden_values = pre.new_empty(per_chunk, samples * hidden)
    output_values = pre.new_empty(per_chunk, samples, outputs)
    values = []
    for start in range(0, total, per_chunk):
        a, b = a_all[start : start + per_chunk], b_all[start : start + per_chunk]
        k = a.shape[0]
        coefficients = torch.stack((torch.ones_like(a), a, b), dim=1)  # (k, 3): 1, α, β per point
        sigma = torch.mm(coefficients, pre, out=hidden_values[:k]).view(k, samples, hidden).sigmoid_()
        weights = torch.mm(coefficients, out_weights).reshape(k, outputs, hidden)  # W₂ per point
        bias = torch.mm(coefficients, out_biases) - weights.sum(-1)  # b₂ − W₂·1: the −1 of 2σ − 1
        # (k, S, K) = (1 + tanh)/2 · 2W₂ᵀ + b₂ − W₂·1 = tanh · W₂ᵀ + b₂
        output = torch.baddbmm(bias.unsqueeze(1), sigma, 2 * weights.transpose(1, 2), out=output_values[:k])
        values.append(loss(output.squeeze(-1) if outputs == 1 else output).to(torch.float64))
        if progress is not None:
            progress(min(start + per_chunk, total) / total)
    return torch.cat(values)


def _grid_by_loop(problem, center, d1, d2, a_all, b_all, batch, chunk, n, progress) -> Tensor:
    """The n² losses (float64), one forward per point, the parameters built as vmap builds them
    (c + α·δ₁ + β·δ₂, in their dtype). A problem with a module (``problem.model`` and
    ``problem.module_loss``) runs a private copy of it whose parameters are views of one flat
    buffer: a point's parameters are then four elementwise operations over d instead of four per
    parameter tensor, the same values (tiny_transformer, 21×21, one thread, alternating medians of
    7: 1.33 → 1.22 ms a point). Any other problem calls ``problem.loss`` per point."""
    values = torch.empty(n * n, dtype=torch.float64)
    model = copy.deepcopy(problem.model) if hasattr(problem, "module_loss") else None
    if model is not None:
        slots = dict(model.named_parameters())
        dtypes = {c.dtype for c in center.values()} | {p.dtype for p in slots.values()}
        if set(slots) != set(center) or len(dtypes) != 1:
            model = None  # a plane over other tensors than the module's, or mixed dtypes: per point
    if model is not None:
        names = list(center)
        c_flat, d1_flat, d2_flat = (torch.cat([v[k].reshape(-1) for k in names]) for v in (center, d1, d2))
        flat, tmp = torch.empty_like(c_flat), torch.empty_like(c_flat)
        offset = 0
        for k in names:  # the copy's parameters become views of ``flat``
            size = center[k].numel()
            slots[k].data = flat[offset : offset + size].view(center[k].shape)
            offset += size
    for index, (a, b) in enumerate(zip(a_all.tolist(), b_all.tolist())):  # exact: α, β in θ's dtype
        if model is None:
            values[index] = problem.loss({k: c + a * d1[k] + b * d2[k] for k, c in center.items()}, batch)
        else:  # (c + a·δ₁) + b·δ₂ rounded as above, without allocating
            torch.add(c_flat, torch.mul(d1_flat, a, out=tmp), out=flat)
            flat.add_(torch.mul(d2_flat, b, out=tmp))
            values[index] = problem.module_loss(model, batch)
        if progress is not None and (index + 1) % n == 0:
            progress((index + 1) / (n * n))
    return values


def project_onto_plane(trajectory, center, d1, d2) -> np.ndarray:
    """Plane coordinates (T, 2) of θ_t (T, d): argmin_(α,β) ‖θ_t − θc − α δ₁ − β δ₂‖ (least squares).

    Exact for points in the plane; δ₁, δ₂ need not be orthogonal (they must be independent).
    """
    c = _flat(center).numpy().astype(np.float64)
    basis = np.stack([_flat(d1).numpy(), _flat(d2).numpy()], axis=1).astype(np.float64)  # (d, 2)
    if basis.shape[0] != c.size:
        raise ValueError(f"directions have d = {basis.shape[0]} but center has d = {c.size}")
    if np.linalg.matrix_rank(basis) < 2:
        raise ValueError("the two directions are linearly dependent; they do not span a plane")
    rows = np.asarray(trajectory, dtype=np.float64).reshape(-1, c.size) - c
    coords, *_ = np.linalg.lstsq(basis, rows.T, rcond=None)
    return coords.T
