"""The DEO optimizer: a dimer-estimated minimum-curvature direction modifies a base optimizer's step.

Notation of ``DEO.md``. The maths of the dimer (probe, rotation, the gradient transformation)
lives in :mod:`deo.dimer`; this module only wires state, the closure protocol and the base
optimizer (torch's own SGD / Adam / AdamW, which keeps the moments).
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor
from torch.optim import LBFGS, SGD, Adam, AdamW, Optimizer

from deo.dimer import (
    ROTATIONS,
    SCHEMES,
    SMALL_D,
    DimerProbe,
    ShiftGradFn,
    batched_dot,
    difference_probe,
    fourier_gram_event,
    lanczos_rotation,
    normalize_,
    probe_shifted,
    rotate_fourier_shifted,
    rotate_sd,
)

BASES: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": SGD, "adam": Adam, "adamw": AdamW}
TARGETS = ("gradient", "update")
BATCH_DIMS = (0, 1)
LOW_PRECISION = (torch.bfloat16, torch.float16)  # widened to float32 for the dimer probes
# below this many elements, a dot over per-parameter blocks concatenates them first (one call
# instead of one per parameter: measured faster up to ~3·10⁴, benchmarks/engine_profile.py --list-dot)
LIST_DOT_CAT = 1 << 15
NO_CLOSURE = (
    "DEO.step needs a closure: the dimer evaluates gradients at shifted parameters, so it must be "
    "able to recompute the loss and its gradient. Instead of `loss = loss_fn(model(x), y); "
    "loss.backward(); opt.step()` write\n"
    "    def closure():\n"
    "        opt.zero_grad()\n"
    "        loss = loss_fn(model(x), y)\n"
    "        loss.backward()\n"
    "        return loss\n"
    "    loss = opt.step(closure)\n"
    "(the protocol of torch.optim.LBFGS; PyTorch Lightning's automatic optimization passes such a "
    "closure itself)."
)
NO_BACKWARD = (
    "the closure left every parameter's .grad as None: it must compute the loss AND call "
    "loss.backward() (like torch.optim.LBFGS). A forward-only closure makes the dimer's second "
    "gradient equal the first, so the dimer never rotates."
)


def flatten_rows(tensors: list[Tensor | None], params: list[Tensor], rows: int, dtype: torch.dtype) -> Tensor:
    """Concatenate per-parameter tensors (None → zeros) to ``(rows, d)``: each reshaped to
    ``(rows, -1)``, so with ``rows = B`` the first dim of every parameter is the problem index."""
    parts = [
        (torch.zeros_like(p) if t is None else t).reshape(rows, -1).to(dtype) for t, p in zip(tensors, params)
    ]
    if len(parts) == 1:  # one parameter: the copy torch.cat would make, without the concatenation
        return parts[0].clone(memory_format=torch.contiguous_format)
    return torch.cat(parts, dim=1)


def unflatten_rows(flat: Tensor, params: list[Tensor], rows: int) -> list[Tensor]:
    """Inverse of :func:`flatten_rows`: views of ``flat`` shaped like ``params``."""
    if len(params) == 1:  # the whole of ``flat`` (the view torch.split would give, without the split)
        return [flat.reshape(params[0].shape)]
    sizes = [p.numel() // rows for p in params]
    chunks = torch.split(flat.reshape(rows, -1), sizes, dim=1)
    return [chunk.reshape(p.shape) for chunk, p in zip(chunks, params)]


def evaluate_closure(closure: Callable[[], Any], params: list[Tensor], who: str) -> tuple[Any, list]:
    """Set every ``p.grad = None``, call the closure with grad enabled, return (loss, grads).

    Raises RuntimeError when the closure left every ``.grad`` None (it did no backward).
    """
    for p in params:
        p.grad = None
    with torch.enable_grad():
        loss = closure()
    if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (Tensor, numbers.Real))):
        raise TypeError(
            f"{who}: the closure must return the loss (a tensor or a number) or None, "
            f"got {type(loss).__name__} {loss!r:.80}"
        )
    grads = [p.grad for p in params]
    if all(g is None for g in grads):
        raise RuntimeError(f"{who}: {NO_BACKWARD}")
    if all(g is None or g.layout == torch.strided for g in grads):
        return loss, grads
    for index, g in enumerate(grads):
        if g is not None and g.layout != torch.strided:
            raise TypeError(
                f"{who}: parameter {index} {tuple(params[index].shape)} has a sparse gradient "
                f"({g.layout}), e.g. from nn.Embedding(sparse=True); the dimer needs dense gradients "
                "(shifted ends, dot products over all parameters): use sparse=False"
            )
    return loss, grads


def row_seed_stream(row_seed: int, draw: int, kind: str = "sign") -> torch.Generator:
    """A CPU generator for random draw number ``draw`` of the problem seeded ``row_seed``.

    Counter-based, so a row of a batch and the same problem run alone (seed ``seed + row``) draw
    the same numbers, and the state is two integers. ``kind`` separates the streams: ``"sign"``
    (the negative-curvature step's tie-breaking signs) and ``"direction"`` (re-drawn random N).
    """
    key = f"deo:{row_seed}:{draw}" if kind == "sign" else f"deo:{kind}:{row_seed}:{draw}"
    digest = hashlib.sha256(key.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))


def initial_direction(row_seeds: list[int], d: int) -> Tensor:
    """Initial unit orientations N, one per row, ``(len(row_seeds), d)`` float64 on the CPU.

    Row ``b`` is drawn from ``torch.Generator().manual_seed(row_seeds[b])``: a standard normal
    vector, normalised.
    """
    rows = []
    for row_seed in row_seeds:
        generator = torch.Generator().manual_seed(row_seed)
        v = torch.randn(d, generator=generator, dtype=torch.float64)
        rows.append(v / torch.linalg.vector_norm(v))
    return torch.stack(rows)


def _versions(last: dict[str, Any]) -> tuple[int, ...]:
    """The in-place version counters (``Tensor._version``, which every in-place operation bumps) of
    the g and g_mod tensors a step kept for its diagnostics."""
    tensors = []
    for key in ("grad", "modified"):
        value = last.get(key)
        tensors.extend(value if isinstance(value, list) else [] if value is None else [value])
    return tuple(t._version for t in tensors)


class DEO(Optimizer):
    r"""Dimer-Enhanced Optimization (Hu, Cao, Liu 2025), with the rotation sign corrected.

    θ is the flat vector of all parameters of all groups, ``(d,)``; with ``batch_dims=1`` the first
    dim of every parameter indexes B independent problems and θ is ``(B, d)`` (each parameter
    flattened to ``(B, -1)`` and concatenated), so every dot product, N, curvature, gate, clip and
    negative-curvature step below is per row. Step t (the closure gives :math:`g_t = \nabla L(θ_t)`):

    1. if :math:`t \bmod k = 0` (``k = rotate_every``), a rotation event: one dimer probe of the
       warm-started orientation N at θ, then ``rotations`` rotations
       (``"fourier"``: Kästner–Sherwood, ``"sd"``: :math:`N \leftarrow
       \mathrm{normalize}(N + η_{rot} F_R)`; ``"lanczos"``: the probe and r more finite-difference
       Hessian-vector products build a Krylov space from N, whose lowest Ritz vector is the new N —
       the same r + 1 probes), giving N, the curvature
       :math:`C ≈ N^\top H N` and torque :math:`\lVert F_R \rVert` at the final N. A Fourier
       rotation is skipped when its trial angle, ½·arctan(‖F_R‖/|C|) in the F_R plane, is below 10⁻³:
       an angle against |C|, so where the spectrum sits far from zero next to its spread (all
       curvatures ≈ 1000 ± 1) N does not rotate at all; ``"lanczos"`` always makes its r
       products (``deo.dimer.min_mode``'s ``phi_tol``);
    2. :math:`g_{mod} = g_t − α\,(g_t·N)\,N` when :math:`C < \text{gate}` (always when
       ``gate=None``); α and gate may differ per parameter group (then α is applied block-wise);
    3. ``max_grad_norm`` (optional): the gradient the base optimizer is about to receive —
       :math:`g_{mod}` (``target="gradient"``) or :math:`g_t` (``target="update"``), i.e. *after*
       the dimer's modification — is rescaled to global norm ≤ ``max_grad_norm`` with the rule of
       ``torch.nn.utils.clip_grad_norm_`` (scale ``min(1, max/(‖·‖ + 1e-6))``, per row when
       batched). The dimer ends are never clipped (they must be raw gradients). One mechanism, so
       a training loop does not patch the base optimizer;
    4. the base optimizer steps with :math:`g_{mod}` written into ``p.grad``
       (``target="gradient"``; for one problem, ``batch_dims=0``, over the ``.grad`` tensors the
       closure produced, in place), or with :math:`g_t` after which its update u is replaced by
       :math:`u − α\,(u·N)\,N` (``target="update"``: no motion along N whatever the
       preconditioner);
    5. when :math:`C < 0` and ``nc_step > 0``: :math:`θ \leftarrow θ − \text{nc\_step}·
       \mathrm{sign}(g_t·N)\,N` (a random sign when :math:`g_t·N = 0`).

    A ``torch.optim`` citizen: every hyperparameter is in ``defaults`` and in each param group
    (the constructor keywords fill them; ``opt.alpha`` etc. read group 0 and write every group)
    and is read from the groups at every step, so ``torch.optim.lr_scheduler`` schedules act on
    the base optimizer (the base shares the group dicts and the ``state``), ``add_param_group``
    works, and the dimer's own state lives in ``self.state["dimer"]`` so that
    ``Optimizer.state_dict()`` / ``load_state_dict()`` carry it. Per group: ``lr`` and the base's
    hyperparameters, ``alpha``, ``gate``, ``nc_step``. One dimer for all groups: ``dimer_length``,
    ``rotate_every``, ``rotations``, ``rotation``, ``rotation_step``, ``scheme``, ``target``,
    ``direction``, ``redraw_every`` and ``max_grad_norm`` must be equal in every group (a step
    refuses groups that disagree).

    The dimer ends are evaluated by shifting the parameters to θ ± ΔR·N, calling the closure (same
    RNG state as for :math:`g_t`, so dropout masks match) and reading the raw ``p.grad``. For one
    problem (``batch_dims=0``) with the Fourier rotation (or the random control) θ is never
    written: each ``p.data`` is swapped for a scratch tensor holding θ ± ΔR·v and swapped back on
    every exit, and the event runs on the Gram matrix of N and the end-gradient differences (see
    :meth:`_gram_event`: the same formulas, ~16 passes over d per event forward instead of ~37,
    and for a small d, a 2-D surface, a few torch calls instead of ~25 per rotation). Batched
    rows take the vector event, so a row gives the same bits whatever its batch; a single
    problem agrees with them to rounding. Otherwise the parameters are shifted in place and copied
    back exactly from a flat copy of θ kept for the event (one buffer, allocated once), on every
    exit. Probes run in float32 at least: for the whole rotation event (the gradient at θ
    included) bfloat16 / float16 parameters hold float32 copies of themselves, so the closure must
    accept float32 parameters there (a model that upcasts, or a forward under ``torch.autocast``;
    otherwise the step stops with a how-to).

    A step is all or nothing: when the closure raises (a data-loader error, an OOM,
    KeyboardInterrupt) at θ or at any dimer end, θ is restored bit for bit, the dimer state
    (step, N, C, counters) is as before the step, every ``.grad`` is None, and on a rotation event
    the global RNG is put back to where it was before the step (a retried step is the step that
    never failed).

    Cost in gradient evaluations: 1 per step, plus per event one probe (c) and one probe per
    rotation iteration (c), with c = 1 (forward) or 2 (central): the Fourier rotation's trial
    orientation is its probe and the next iteration reuses the interpolated end gradient. Over T
    steps with E events: ``grad_evals = T + E·(rotations + 1)·c``.

    Args:
        params: parameters or param groups (each group may set ``lr``, the base's hyperparameters,
            ``alpha``, ``gate``, ``nc_step``; the dimer is global over all of them).
        base: ``"sgd" | "momentum" | "adam" | "adamw"`` or a ``torch.optim.Optimizer`` subclass
            (not LBFGS, which needs its own closure; ``maximize`` is refused: negate the loss).
            ``"momentum"`` is SGD with ``momentum=0.9`` unless given.
        lr: learning rate of the base optimizer.
        dimer_length: ΔR, 0 < ΔR ≤ 1e6, resolvable in the probe dtype at the parameters' scale.
        rotate_every: k ≥ 1, steps between rotation events (1 = every step).
        rotations: rotation iterations per event (0: only re-probe the curvature).
        rotation: ``"fourier"``, ``"lanczos"`` (same cost per event; better per event when
            ``rotations`` > 1, identical at 1 — ``benchmarks/results/engine_accuracy.md``) or ``"sd"``
            (needs ``rotation_step``, stable for ``0 < rotation_step < 2/(λ_max − λ_min)``).
        scheme: ``"forward"`` (one end, O(ΔR)) or ``"central"`` (two ends, O(ΔR²)).
        alpha: α, |α| ≤ 1e6; 1 projects out the min-mode component (the paper), −1 doubles it,
            2 reflects it (saddle search).
        gate: modify only where C < gate; ``None`` always.
        target: ``"gradient"`` or ``"update"``.
        nc_step: length of the explicit negative-curvature step (0 = off).
        batch_dims: 0 or 1 (see above).
        seed: initial N of row b is a normal vector from ``torch.Generator().manual_seed(seed + b)``
            (so row b of a batch equals a separate run with ``seed + b``); ``None`` draws the
            seed from torch's global RNG.
        rotation_step: η_rot of the ``"sd"`` rotation.
        direction: ``"dimer"`` (default: N is the dimer's, rotated toward the min mode) or
            ``"random"``, the control that tells the rotation's effect from symmetry breaking:
            N is the dimer run's own initial N (the same seed gives the same N₀) and is never
            rotated; with ``redraw_every=k`` it is re-drawn every k steps (draw j at step j·k, from
            a counter-based stream of row b's seed ``seed + b``). The control runs the same step
            (α, gate, target, nc_step) and, at every rotation event, one probe of its N (c
            gradients) so that C — which the gate and ``nc_step`` use — is measured along it.
            Cost accounting: ``grad_evals`` charges the control exactly what the dimer run with the
            same settings spends (``T + E·(rotations + 1)·c``), so both sit at the same x-position
            of a loss-vs-gradient-evaluations plot; ``diagnostics()["grad_evals_spent"]`` counts the
            gradients it really evaluated (``T + E·c``). For ``direction="dimer"`` the two are equal.
        redraw_every: ``None`` (the random N is drawn once) or k ≥ 1, a multiple of
            ``rotate_every`` (only with ``direction="random"``).
        max_grad_norm: ``None`` (no clipping) or > 0: see step 3.
        **base_kwargs: passed to the base optimizer (betas, eps, weight_decay, momentum, foreach, ...).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base: str | type[Optimizer] = "adam",
        lr: float = 1e-3,
        dimer_length: float = 1e-3,
        rotate_every: int = 10,
        rotations: int = 1,
        rotation: str = "fourier",
        scheme: str = "forward",
        alpha: float = 1.0,
        gate: float | None = None,
        target: str = "gradient",
        nc_step: float = 0.0,
        batch_dims: int = 0,
        seed: int | None = None,
        rotation_step: float | None = None,
        direction: str = "dimer",
        redraw_every: int | None = None,
        max_grad_norm: float | None = None,
        **base_kwargs: Any,
    ) -> None:
        base_cls = _validate_base(base, base_kwargs)
        if isinstance(batch_dims, bool) or batch_dims not in BATCH_DIMS:
            raise ValueError(f"batch_dims must be one of {BATCH_DIMS}, got {batch_dims!r}")
        if seed is not None:
            _integer("seed", seed, 0)
        hyper = dict(
            lr=lr, dimer_length=dimer_length, rotate_every=rotate_every, rotations=rotations,
            rotation=rotation, scheme=scheme, rotation_step=rotation_step, target=target,
            direction=direction, redraw_every=redraw_every, max_grad_norm=max_grad_norm,
            alpha=alpha, gate=gate, nc_step=nc_step,
        )  # fmt: skip
        _check_hyper(hyper)
        if base == "momentum":
            base_kwargs.setdefault("momentum", 0.9)
        self.batch_dims = int(batch_dims)
        self._ready = False
        super().__init__(params, {**hyper, **base_kwargs})
        # The base optimizer shares the param-group dicts and the state: lr schedules apply to both.
        self.base = base_cls(self.param_groups, lr=hyper["lr"], **base_kwargs)
        self._link_base()
        self.defaults = {**self.base.defaults, **self.defaults}
        params_list = self._params()
        self._layout(params_list)
        check_resolution(hyper["dimer_length"], params_list, self._dtype, "dimer_length")
        self._theta: Tensor | None = None  # θ during a rotation event (allocated at the first)
        self._last: dict[str, Any] = {}  # g_mod and the removed component of the last step
        self._alpha_cache: tuple | None = None  # (curvature, groups' α and gate, α): see _alpha
        self._view_cache: dict[tuple[int, int], tuple[Tensor, list[Tensor]]] = {}  # see _views
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        d = sum(p.numel() for p in params_list) // self._rows
        n0 = initial_direction([seed + b for b in range(self._rows)], d)
        nan = torch.full((self._rows,), math.nan, dtype=self._dtype, device=self._device)
        self.state["dimer"] = {
            "base": f"{base_cls.__module__}.{base_cls.__qualname__}",
            "batch_dims": self.batch_dims,
            "seed": int(seed),
            "step": 0,
            "direction": n0.to(dtype=self._dtype, device=self._device),
            "curvature": nan.clone(),
            "torque": nan.clone(),
            "grad_norm": nan.clone(),
            "modified_grad_norm": nan.clone(),
            "removed_fraction": nan.clone(),
            "clip_scale": torch.ones_like(nan),
            "sign_draws": [0] * self._rows,
            "grad_evals": 0,
            "grad_evals_spent": 0,
            "rotation_events": 0,
            "last_rotation_step": -1,
        }
        self._ready = True

    # ----------------------------------------------------------------------------- groups and state
    def __getstate__(self) -> dict[str, Any]:
        """Everything (torch's Optimizer keeps only defaults, state and param_groups, which would
        lose the base optimizer and the layout); the hook registries are rebuilt on unpickling."""
        self._settle()
        # not the hook registries, nor a method patched onto the instance (an lr scheduler wraps
        # ``step`` there, bound to this optimizer: a deep copy stepped the original, a pickle failed)
        state = {
            key: value
            for key, value in self.__dict__.items()
            if not key.startswith("_optimizer_")
            and not (callable(value) and callable(getattr(type(self), key, None)))
        }
        state["_theta"], state["_last"] = None, {}  # scratch buffers, not state
        state["_basis"], state["_scratch"], state["_basis_views"] = None, None, None
        state["_alpha_cache"], state["_view_cache"], state["_confined"] = None, {}, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_alpha_cache", None)  # scratch, absent from older pickles
        self.__dict__.setdefault("_view_cache", {})
        if "base" in state:
            self._link_base()

    @property
    def dimer(self) -> dict[str, Any]:
        """The dimer's state (N, C, counters, seed): ``self.state["dimer"]``, the live state, like
        ``torch.optim``'s ``state``: later steps may write its tensors over in place (N at a
        rotation event); clone a value, or take :meth:`state_dict`, to keep it."""
        return self.state["dimer"]

    @property
    def seed(self) -> int:
        return self.dimer["seed"]

    def _link_base(self) -> None:
        self.base.param_groups = self.param_groups
        self.base.state = self.state

    def _layout(self, params: list[Tensor]) -> None:
        """Rows, the dimer's dtype (float32 at least) and device, from the parameters."""
        check_params(params, "DEO")
        self._rows = row_count(params, self.batch_dims)
        dtype = torch.float32
        for p in params:
            dtype = torch.promote_types(dtype, p.dtype)
        self._dtype = dtype
        self._device = params[0].device

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch semantics; its hyperparameters default to the constructor's).

        Before the first step N is re-drawn from the seed over all parameters (as if the group had
        been given to the constructor); afterwards N is extended by zeros over the new parameters
        (it stays a unit vector, and the next rotations turn it into them)."""
        if not getattr(self, "_ready", False):  # called by Optimizer.__init__
            super().add_param_group(param_group)
            try:
                _check_hyper(self.param_groups[-1])
            except (TypeError, ValueError):
                self.param_groups.pop()
                raise
            return
        self._settle()
        new = param_group["params"]
        new = [new] if isinstance(new, Tensor) else list(new)  # a generator is read once, here
        param_group["params"] = new
        old = self._params()
        row_count(old + new, self.batch_dims)
        check_params(new, "DEO.add_param_group")
        given = set(param_group)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key, value in self.base.defaults.items():
            group.setdefault(key, value)
        for key in DIMER_KEYS:  # the one dimer's settings as they are now (set or loaded since), not
            if key not in given:  # the constructor's: a new group with those made the next step fail
                group[key] = self.param_groups[0][key]
        try:
            _check_hyper(group)
            check_resolution(group["dimer_length"], old + new, self._dtype, "dimer_length")
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise
        params = self._params()
        self._layout(params)
        state = self.dimer
        d = sum(p.numel() for p in params) // self._rows
        if state["step"] == 0:
            direction = initial_direction([state["seed"] + b for b in range(self._rows)], d)
        else:
            extra = d - state["direction"].shape[-1]
            direction = torch.cat(
                [
                    state["direction"].to(torch.float64).cpu(),
                    torch.zeros(self._rows, extra, dtype=torch.float64),
                ],
                dim=1,
            )
        state["direction"] = direction.to(dtype=self._dtype, device=self._device)
        for key in (
            "curvature",
            "torque",
            "grad_norm",
            "modified_grad_norm",
            "removed_fraction",
            "clip_scale",
        ):
            state[key] = state[key].to(dtype=self._dtype, device=self._device)
        self._theta = None
        self._last = {}
        self._basis, self._scratch, self._basis_views = None, None, None
        self._alpha_cache, self._view_cache = None, {}

    def _settings(self) -> dict[str, Any]:
        """The dimer's settings from the groups (equal in every group), read at every step."""
        first = self.param_groups[0]
        for number, group in enumerate(self.param_groups[1:], start=1):
            for key in DIMER_KEYS:
                if group[key] != first[key]:
                    raise ValueError(
                        f"DEO: {key} is a setting of the one dimer over all parameter groups, so every "
                        f"group needs the same value; group 0 has {first[key]!r}, "
                        f"group {number} {group[key]!r}"
                    )
        return first

    def _column_values(self, keys: tuple[str, ...], per_row: Callable[[dict[str, Any]], Tensor]) -> Tensor:
        """``per_row(group)`` (shape ``(rows,)``) when every group has the same ``keys``, else a
        ``(rows, d)`` tensor holding each group's value over its parameters' columns."""
        groups = self.param_groups
        if all(group[key] == groups[0][key] for group in groups[1:] for key in keys):
            return per_row(groups[0])
        parts = []
        for group in groups:
            value = per_row(group).unsqueeze(-1)
            parts += [value.expand(self._rows, p.numel() // self._rows) for p in group["params"]]
        return torch.cat(parts, dim=1)

    def _rng_state(self) -> tuple[Tensor, Tensor | None]:
        cuda = torch.cuda.get_rng_state(self._device) if self._device.type == "cuda" else None
        return torch.get_rng_state(), cuda

    def _set_rng_state(self, state: tuple[Tensor, Tensor | None]) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self._device)

    def _flat(self, tensors: list[Tensor | None], params: list[Tensor]) -> Tensor:
        return flatten_rows(tensors, params, self._rows, self._dtype)

    def _gradient(
        self, closure: Callable[[], Any], params: list[Tensor], into: Tensor | None = None
    ) -> tuple[Any, Tensor]:
        """Call the closure with fresh ``.grad`` slots and return (loss, raw flat gradient).

        ``into``: a ``(rows, d)`` buffer that receives the gradient (one copy pass, no allocation);
        otherwise a new tensor. The values are the same either way (a widening copy is exact)."""
        loss, grads = evaluate_closure(closure, params, "DEO.step")
        if into is None:
            return loss, self._flat(grads, params)
        views = unflatten_rows(into, params, self._rows)
        present = [index for index, g in enumerate(grads) if g is not None]
        torch._foreach_copy_([views[i] for i in present], [grads[i] for i in present])
        for view, g in zip(views, grads):
            if g is None:
                view.zero_()
        return loss, into

    @contextmanager
    def _widened(self, low: list[Tensor]) -> Iterator[None]:
        """During a rotation event, bfloat16 / float16 parameters hold float32 copies of themselves
        (``p.data`` swapped), so θ ± ΔR·N and the gradients g₀, g₁ are float32: a shift added in the
        parameters' own dtype would round away (bf16 resolves only ~3 digits). The original tensors
        are put back unchanged on every exit. The closure must accept float32 parameters (a model
        that upcasts, or one run under ``torch.autocast``)."""
        originals = [p.data for p in low]
        try:
            for p in low:
                p.grad = None
                p.data = p.data.to(torch.float32)
            yield
        except RuntimeError as error:
            if "dtype" not in str(error) and "scalar type" not in str(error):
                raise
            raise RuntimeError(
                f"DEO: the closure failed while the {len(low)} bfloat16/float16 parameter(s) were "
                "widened to float32 for the dimer probe (the dimer ends must be float32 or wider, or "
                "the shift θ + ΔR·N rounds away). Make the model accept float32 parameters: compute "
                "from p.float(), or run the forward under torch.autocast(device_type, dtype=torch.bfloat16). "
                f"The original error: {error}"
            ) from error
        finally:
            for p, data in zip(low, originals):
                p.grad = None
                p.data = data

    # ----------------------------------------------------------------------------- the step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One DEO step (see the class docstring). ``closure``: zero grads, forward, backward,
        return the loss; it is called once at θ and again at every dimer end.

        Passes over the d parameters on a step without rotation event: g·N and the write of
        g_mod (per parameter, for a single problem, ``batch_dims=0``: g·N from the ``.grad``
        tensors the closure produced, and g_mod written over them in place, one ``_foreach_add_``;
        ``benchmarks/engine_profile.py --passes`` counts them);
        the norms that only the diagnostics need (‖g‖, ‖g_mod‖) are computed when
        :meth:`diagnostics` or :meth:`state_dict` asks for them, from g_mod kept for it (‖g‖ of
        a modified step from ‖g_mod‖, g_mod·N, N·N and c = α(g·N), equal to ‖g‖ up to rounding;
        for |α| > 2 it is measured before g is overwritten)."""
        if closure is None:
            raise ValueError(NO_CLOSURE)
        hp = self._settings()
        params = self._params()
        state = self.dimer
        t = state["step"]
        event = t % hp["rotate_every"] == 0
        low = [p for p in params if p.dtype in LOW_PRECISION] if event else []
        rng_before = self._rng_state() if event else None
        kept = {
            key: state[key] for key in ("grad_evals", "grad_evals_spent", "direction", "curvature", "torque")
        }
        along = None  # g·N, from the rotation event when it has it
        gram = event and self._gram_event_fits(hp, params)
        n_version = state["direction"]._version  # a Gram event writes N over in place (see there)
        try:
            with self._widened(low) if low else nullcontext():
                if (event and not gram) or not self._per_parameter():
                    loss, g = self._gradient(closure, params)
                    grads = None
                else:  # the per-parameter path: g stays in the .grad tensors autograd made
                    loss, raw = evaluate_closure(closure, params, "DEO.step")
                    g, grads = None, self._widen(raw, params)
                _check_loss(loss, t)
                state["grad_evals"] += 1
                # parameters without a gradient at θ (requires_grad=False, or not used by the loss)
                idle = tuple(i for i, p in enumerate(params) if p.grad is None)
                if event:
                    rng_after = self._rng_state()
                    redraw = hp["redraw_every"]
                    if hp["direction"] == "random" and redraw and t > 0 and t % redraw == 0:
                        state["direction"] = self._random_direction(t // redraw)
                if idle:
                    self._confine_direction(params, idle)
                if event:
                    if gram:  # g·N at the new N: the dot below, as on a step without event
                        self._gram_event(closure, params, grads, hp, rng_before)
                    else:
                        with self._shifts(closure, params, rng_before) as shift_grad:
                            along = self._rotation_event(shift_grad, g, hp)
                    self._set_rng_state(rng_after)
            n = state["direction"]
            if along is None:
                along = batched_dot(g, n) if grads is None else _list_dot(grads, self._blocks(n, params), n)
            along_value = _check_gradient(along, t)  # g finite ⇔ g·N finite (0·inf, ±inf·N_i are not)
            state["grad_evals_spent"] += state["grad_evals"] - kept["grad_evals"]
            if event and hp["direction"] == "random":  # charged like the dimer run it controls
                state["grad_evals"] += hp["rotations"] * (1 if hp["scheme"] == "forward" else 2)
        except BaseException:
            # all or nothing: θ is restored by the shifts' own ``finally``; the dimer state and
            # (on a rotation event) the global RNG go back to where they were before the step
            state.update(kept)
            if state["direction"]._version != n_version:  # written over: N₀ is the basis's row 0
                state["direction"][0].copy_(self._basis[0])
            for p in params:
                p.grad = None
            if rng_before is not None:
                self._set_rng_state(rng_before)
            raise
        if event:
            state["rotation_events"] += 1
            state["last_rotation_step"] = t

        alpha = self._alpha(state["curvature"])
        grad_sq = None
        if grads is not None and alpha.dim() == 1:  # one problem: α(g·N) as a Python float, exact
            # (a product of two values of the dimer's dtype is exact in float64; the add below and
            # diagnostics() round it to that dtype once, as the tensor product did)
            coefficient = self._alpha_cache[3] * along_value
        else:
            coefficient = _coefficient(alpha, along)
        if grads is not None and alpha.dim() > 1:  # per-group α over columns: the flat path
            g, grads = flatten_rows(grads, params, self._rows, self._dtype), None
        if grads is None:
            g_mod = torch.addcmul(g, coefficient, n, value=-1) if hp["target"] == "gradient" else g
            raw = g
        else:  # g − c·N written into the gradient tensors themselves: one pass, no other buffer
            shift = -coefficient if hp["target"] == "gradient" else 0.0
            raw = grads
            if shift != 0.0:
                # ‖g‖ measured now where recovering it from g_mod would lose digits (|α| > 2) or
                # cost more than the data (small d: one dot now instead of three later)
                if abs(self._alpha_cache[3]) > 2 or n.shape[-1] < SMALL_D:
                    grad_sq = _list_dot(grads, grads)
                # last parameter first: the base optimizer then starts on the blocks written last
                # (still in cache), as this pass starts on those g·N read last (elementwise: exact)
                torch._foreach_add_(grads[::-1], self._views(n, params, 1)[::-1], alpha=shift)
                raw = None  # g is gone: _settle recovers ‖g‖ from g_mod, c and g·N (unless kept above)
            g_mod = grads
        self._last = {
            "grad": raw, "modified": g_mod, "along": along, "direction": n,
            "coefficient": coefficient, "target": hp["target"], "pending": True,
        }  # fmt: skip
        if grad_sq is not None:
            self._last["grad_sq"] = grad_sq
        if hp["max_grad_norm"] is not None:
            self._settle()  # the norms of g and g_mod before the clip
            self._clip(g_mod, hp["max_grad_norm"])

        theta_before = self._flat([p.detach() for p in params], params) if hp["target"] == "update" else None
        values = g_mod if isinstance(g_mod, list) else self._views(g_mod, params, self._rows)
        for p, value in zip(params, values):
            p.grad = value if value.dtype == p.dtype else value.to(p.dtype)  # the base only reads them
        for index in idle:  # the base skips them, as torch's optimizers skip a None gradient
            params[index].grad = None
        self._base_step()
        if theta_before is not None:
            update = self._flat([p.detach() for p in params], params) - theta_before
            update_coefficient = _coefficient(alpha, batched_dot(update, n))
            self._last["coefficient"] = update_coefficient
            self._add_to_params((update - update_coefficient * n) - update, params)
        if any(group["nc_step"] > 0 for group in self.param_groups):
            self._negative_curvature_step(along, params)
        self._last["versions"] = _versions(self._last)  # read later: note whether anyone changes them
        state["step"] = t + 1
        return loss

    def _base_step(self) -> None:
        """The base optimizer's step. Torch wraps every optimizer's ``step`` in a profiler record and
        the step hooks; DEO's own ``step`` carries that wrapper, so the base's inner step is called
        directly (global step hooks fire once per DEO step, not twice) unless hooks were registered
        on the base itself."""
        base = self.base
        step = type(base).step
        if getattr(step, "hooked", False) and not (
            base._optimizer_step_pre_hooks or base._optimizer_step_post_hooks
        ):
            step.__wrapped__(base)
        else:
            base.step()

    def _alpha(self, curvature: Tensor) -> Tensor:
        """α per row (or per row and column when groups differ), 0 where gated (C ≥ gate); kept
        until the curvature tensor or a group's α / gate changes (a step without event reuses it)."""
        key = tuple((group["alpha"], group["gate"]) for group in self.param_groups)
        cached = self._alpha_cache
        if cached is not None and cached[0] is curvature and cached[1] == key:
            return cached[2]

        def alpha_of(group: dict[str, Any]) -> Tensor:
            alpha = torch.full_like(curvature, group["alpha"])
            if group["gate"] is not None:  # α = 0 (g unchanged, bit for bit) where C ≥ gate
                alpha = torch.where(curvature < group["gate"], alpha, 0.0)
            return alpha

        alpha = self._column_values(("alpha", "gate"), alpha_of)
        self._alpha_cache = (curvature, key, alpha, float(alpha) if alpha.numel() == 1 else None)
        return alpha

    def _views(self, flat: Tensor, params: list[Tensor], rows: int) -> list[Tensor]:
        """:func:`unflatten_rows` of ``flat``, kept for the few flat tensors a run reuses (N between
        events, the two gradient buffers), so a step does not rebuild the same views. ``rows=0``:
        one-dimensional views of a single row's parameter blocks (for :func:`_list_dot`)."""
        cache = self._view_cache
        entry = cache.get((id(flat), rows))
        if entry is not None and entry[0] is flat and len(entry[1]) == len(params):
            return entry[1]
        if rows == 0:
            views = [view.reshape(-1) for view in unflatten_rows(flat, params, 1)]
        else:
            views = unflatten_rows(flat, params, rows)
        if len(cache) >= 6:
            cache.pop(next(iter(cache)))
        cache[(id(flat), rows)] = (flat, views)
        return views

    def _blocks(self, n: Tensor, params: list[Tensor]) -> list[Tensor] | None:
        """N's per-parameter blocks for :func:`_list_dot` where it dots block by block (d ≥
        ``LIST_DOT_CAT``; views kept between events), None below (it dots N's row as it is: a new N
        after an event then costs no views)."""
        return self._views(n, params, 0) if n.shape[-1] >= LIST_DOT_CAT else None

    def _per_parameter(self) -> bool:
        """The step works per parameter (no flat copy of g) for a single problem (``batch_dims=0``);
        batched rows keep the flat path, whose dots are the same for a row whatever the batch
        (``batched_dot``), so a row equals a batch of that row alone bit for bit, and the
        single problem agrees with it to rounding."""
        return self.batch_dims == 0

    def _widen(self, grads: list[Tensor | None], params: list[Tensor]) -> list[Tensor]:
        """The gradients in the dimer's dtype (the tensors themselves when the dtype is already
        that), zeros for parameters without one."""
        dtype = self._dtype
        if all(g is not None and g.dtype == dtype for g in grads):
            return grads
        return [
            torch.zeros(p.shape, dtype=dtype, device=p.device) if g is None else g.to(dtype)
            for g, p in zip(grads, params)
        ]

    def _confine_direction(self, params: list[Tensor], idle: tuple[int, ...]) -> None:
        """Make N zero over the parameters that have no gradient this step (``idle``: frozen with
        ``requires_grad=False``, or unused by the loss) and a unit vector over the others, as
        ``torch.optim`` leaves such parameters alone: the dimer then never shifts them, g − α(g·N)N,
        the update projection and the negative-curvature step never move them, and C is the
        curvature over the parameters being trained. N already zero there (rotations keep the
        zeros: the end gradients are zero there too) is kept as it is, bit for bit; a row whose N
        lay wholly on them becomes uniform over the others. Checked once per N tensor."""
        state = self.dimer
        n = state["direction"]
        confined = getattr(self, "_confined", None)
        if confined is not None and confined[0] is n and confined[1] == idle:
            return
        blocks = unflatten_rows(n, params, self._rows)
        if any(bool(blocks[i].ne(0).any()) for i in idle):
            n = n.clone()
            blocks = unflatten_rows(n, params, self._rows)
            for i in idle:
                blocks[i].zero_()
            norm = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
            empty = norm.squeeze(-1) == 0
            if bool(empty.any()):
                fill = torch.ones_like(n)
                for i in idle:
                    unflatten_rows(fill, params, self._rows)[i].zero_()
                n[empty] = fill[empty]
                norm = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
            n = n / norm
            state["direction"] = n
        self._confined = (n, idle)

    def _random_direction(self, draw: int) -> Tensor:
        """Draw number ``draw`` of the random-direction control, ``(rows, d)``: draw 0 is the initial
        N (the dimer run's own start); draw j ≥ 1 comes from the counter-based stream of row b's seed."""
        state = self.dimer
        d = state["direction"].shape[-1]
        row_seeds = [state["seed"] + b for b in range(self._rows)]
        if draw == 0:
            n = initial_direction(row_seeds, d)
        else:
            rows = []
            for row_seed in row_seeds:
                v = torch.randn(
                    d, generator=row_seed_stream(row_seed, draw, "direction"), dtype=torch.float64
                )
                rows.append(v / torch.linalg.vector_norm(v))
            n = torch.stack(rows)
        return n.to(dtype=self._dtype, device=self._device)

    @contextmanager
    def _shifts(
        self, closure: Callable[[], Any], params: list[Tensor], rng: tuple[Tensor, Tensor | None]
    ) -> Iterator[ShiftGradFn]:
        """``shift_grad(v, s)`` = the raw flat gradient at θ + s·v, θ the parameters on entry.

        θ is copied once into a persistent flat buffer; each call writes θ + s·v into the
        parameters from that copy (one pass, the same values as adding s·v to θ), calls the closure
        from the RNG state ``rng``; θ is copied back once, bit for bit, when the event ends (on
        every exit: an exception or KeyboardInterrupt in the closure included).
        """
        if self._theta is None:
            d = sum(p.numel() for p in params) // self._rows
            self._theta = torch.empty(self._rows, d, dtype=self._dtype, device=self._device)
        saved = unflatten_rows(self._theta, params, self._rows)
        torch._foreach_copy_(saved, [p.detach() for p in params])
        shifted = [False]

        def shift_grad(v: Tensor, s: float) -> Tensor:
            shifted[0] = True
            for p, origin, part in zip(params, saved, unflatten_rows(v, params, self._rows)):
                if origin.dtype == p.dtype:
                    torch.add(origin, part, alpha=s, out=p.data)
                else:  # a parameter narrower than the dimer's dtype: the shift in its own dtype
                    p.copy_(origin.to(p.dtype).add_(part.to(p.dtype), alpha=s))
            self._set_rng_state(rng)
            return self._gradient(closure, params)[1]

        try:
            yield shift_grad
        finally:
            if shifted[0]:
                torch._foreach_copy_(params, saved)

    def _rotation_event(self, shift_grad: ShiftGradFn, g: Tensor, hp: dict[str, Any]) -> Tensor | None:
        """Probe the warm-started N and rotate it ``rotations`` times (none for the random control);
        rows whose end gradient is not finite keep their previous N, curvature and torque.

        Returns g·N at the new N (the step's next dot product, which also checks every entry of N:
        g is finite, so g·N is not finite exactly when an entry of N is not), or None when a row
        kept its previous N."""
        state = self.dimer
        n = state["direction"]
        if hp["rotation"] == "lanczos" and hp["direction"] == "dimer":
            # The probe at N is the first Krylov product; r more products, none skipped (fixed cost).
            n, curvature, info = lanczos_rotation(
                shift_grad, n, hp["dimer_length"], g0=g, max_iterations=hp["rotations"],
                scheme=hp["scheme"], torque_tol=0.0, phi_tol=0.0,
            )  # fmt: skip
            state["grad_evals"] += info["grad_evals"]
            torque = info["torque"]
        else:
            current = probe_shifted(shift_grad, n, hp["dimer_length"], g0=g, scheme=hp["scheme"])
            state["grad_evals"] += current.grad_evals
            curvature = current.curvature
            for _ in range(hp["rotations"] if hp["direction"] == "dimer" else 0):
                n, curvature, current = self._rotate(shift_grad, n, current, hp)
            torque = current.torque
        along = batched_dot(g, n)
        if self._rows == 1:  # three numbers: checked in Python (two torch calls instead of nine)
            finite = all(map(math.isfinite, torch.cat((along, curvature, torque)).tolist()))
        else:
            finite = bool(_finite_rows(along, curvature, torque).all())
        if finite:  # the usual case: no select over d (the step syncs for _check_finite anyway)
            state["direction"], state["curvature"], state["torque"] = n, curvature, torque
            return along
        valid = _finite_rows(along, curvature, torque)
        state["direction"] = torch.where(valid.unsqueeze(-1), n, state["direction"])
        state["curvature"] = torch.where(valid, curvature, state["curvature"])
        state["torque"] = torch.where(valid, torque, state["torque"])
        return None

    def _gram_event_fits(self, hp: dict[str, Any], params: list[Tensor]) -> bool:
        """The rotation event runs from a Gram matrix (:meth:`_gram_event`) for a single problem
        (``batch_dims=0``), the Fourier rotation (or the random control, which does not rotate), and
        contiguous parameters in the dimer's dtype (bfloat16 / float16 ones are widened to it)."""
        if not self._per_parameter() or (hp["rotation"] != "fourier" and hp["direction"] == "dimer"):
            return False
        widen = self._dtype == torch.float32
        return all(
            (p.dtype == self._dtype and p.is_contiguous()) or (widen and p.dtype in LOW_PRECISION)
            for p in params
        )

    def _gram_event(
        self,
        closure: Callable[[], Any],
        params: list[Tensor],
        grads: list[Tensor],
        hp: dict[str, Any],
        rng: tuple[Tensor, Tensor | None],
    ) -> None:
        """:meth:`_rotation_event` (probe, then ``rotations`` Fourier rotations) for one problem of
        large d, in fewer passes over d: every vector of the event (N, D, F_R, Θ, the trial
        orientation, the interpolated D) is a combination of a few d-vectors held as the rows of
        one buffer W — N₀ and the end gradients minus g₀ — so every dot product is an entry of
        their Gram matrix (computed by a matrix product as rows are added), the scalar work is done
        on those entries (:func:`deo.dimer.fourier_gram_event`), and only the vectors the step needs
        are written: each shifted θ (into scratch tensors swapped in as ``p.data``, so θ itself is
        never written and needs no restore) and the new N. g₀ stays in the ``.grad`` tensors (no
        copy; the step dots it with the new N afterwards, as on a step without event). When a
        value is not finite, N, C and the torque stay as they were."""
        state = self.dimer
        c = 1 if hp["scheme"] == "forward" else 2
        rotations = hp["rotations"] if hp["direction"] == "dimer" else 0
        length = hp["dimer_length"]
        k = 2 + rotations  # N₀, one row per probe
        d = state["direction"].shape[-1]
        basis = getattr(self, "_basis", None)
        if basis is None or basis.shape[0] < k or basis.shape[1] != d or basis.dtype != self._dtype:
            basis = self._basis = torch.empty(k, d, dtype=self._dtype, device=self._device)
        layout = getattr(self, "_basis_views", None)
        if layout is None or layout[0] is not basis or len(layout[2]) != len(params):
            bounds = list(itertools.accumulate([p.numel() for p in params], initial=0))
            rows = [
                [basis[i, a:b].view(p.shape) for (a, b), p in zip(itertools.pairwise(bounds), params)]
                for i in range(basis.shape[0])
            ]  # rows[i][number]: parameter ``number``'s block of row i
            layout = self._basis_views = (basis, rows, params)
        _, rows, _ = layout
        basis[0].copy_(state["direction"][0])  # row 0: N₀
        scratch = getattr(self, "_scratch", None)
        if scratch is None or len(scratch) != len(params) or any(
            a.shape != p.shape or a.dtype != p.dtype for a, p in zip(scratch, params)
        ):
            scratch = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
            self._scratch = scratch
        originals = [p.data for p in params]
        filled = [1]
        gram: list[list[float]] = []

        def extend_gram() -> list[list[float]]:
            """Add the Gram entries of the rows filled since the last call: row j against rows 0..j,
            one matrix-vector product each (a single pass over those rows)."""
            start, m = len(gram), filled[0]
            grown = [row + [0.0] * (m - len(row)) for row in gram] + [[0.0] * m for _ in range(start, m)]
            for j in range(start, m):
                column = torch.mv(basis[: j + 1], basis[j]).tolist()
                for i, value in enumerate(column):
                    grown[i][j] = grown[j][i] = value
            gram[:] = grown
            return gram

        def end(direction: list[float]) -> list[list[float]]:
            """The end gradient(s) at θ ± ΔR·v, ``v = Σ_j direction[j]·W[j]``, stored as one new row
            (forward ``g(θ + ΔR·v) − g₀``, central ``g(θ + ΔR·v) − g(θ − ΔR·v)``); returns the Gram
            matrix with it."""
            terms = [(j, value) for j, value in enumerate(direction) if value != 0.0]
            for sign in (1.0, -1.0)[:c]:
                scale = sign * length
                for number, (target, origin) in enumerate(zip(scratch, originals)):
                    _combine(target, origin, [(scale * value, rows[j][number]) for j, value in terms])
                for p, target in zip(params, scratch):
                    p.data = target
                self._set_rng_state(rng)
                _, raw = evaluate_closure(closure, params, "DEO.step")
                for row, g_end, g0 in zip(rows[filled[0]], raw, grads):
                    if c == 1:  # forward: g(θ + ΔR·v) − g₀
                        torch.sub(g_end, g0, out=row) if g_end is not None else torch.neg(g0, out=row)
                    elif sign > 0:  # central: g(θ + ΔR·v) − g(θ − ΔR·v), in two passes
                        row.copy_(g_end) if g_end is not None else row.zero_()
                    elif g_end is not None:
                        row.sub_(g_end)
                state["grad_evals"] += 1
            filled[0] += 1
            return extend_gram()

        try:
            result = fourier_gram_event(end, length, hp["scheme"], rotations)
        finally:
            for p, data in zip(params, originals):
                p.data = data
        torque = result.torque
        if d < SMALL_D:  # ‖F_R‖ from the vector, in floats: a small torque is not read as noise
            rows = basis[: len(result.force)].tolist()
            force = [sum(value * row[i] for value, row in zip(result.force, rows)) for i in range(d)]
            torque = math.sqrt(sum(value * value for value in force))
        values = (result.curvature, torque)
        if not all(math.isfinite(value) for value in values):
            return
        if result.direction != [1.0]:  # [1.0]: N₀ itself (no rotation: the random control), kept
            n = state["direction"]
            # N is written over in place, like torch's optimizers update their state tensors: a
            # new d-vector would cost a page fault per 4 KiB page on its first write (≈ 2 ms for
            # d ≈ 10⁶ here, the price of a whole gradient pass). N₀ stays in basis row 0 until the
            # step ends; the step's all-or-nothing path restores it from there.
            if not n.is_contiguous():
                n = state["direction"] = torch.empty(1, d, dtype=self._dtype, device=self._device)
            terms = [(value, basis[j]) for j, value in enumerate(result.direction) if value != 0.0]
            _combine(n[0], None, terms)
            # the coefficients' norm came from Gram entries, which lose digits to cancellation
            # (‖N‖² − 1 ≈ 1e-14): one more pass makes N a unit vector to rounding
            normalize_(n)
            self._confined = None  # N changed: _confine_direction checks it again
        state["curvature"], state["torque"] = (
            torch.tensor([value], dtype=self._dtype, device=self._device) for value in values
        )

    def _rotate(
        self, shift_grad: ShiftGradFn, n: Tensor, current: DimerProbe, hp: dict[str, Any]
    ) -> tuple[Tensor, Tensor, DimerProbe]:
        """One rotation iteration: new N, its curvature and its probe (one probe's cost)."""
        length, scheme = hp["dimer_length"], hp["scheme"]
        if hp["rotation"] == "sd":
            n_new = rotate_sd(n, current, hp["rotation_step"])
            new = probe_shifted(shift_grad, n_new, length, g0=current.g0, scheme=scheme)
            self.dimer["grad_evals"] += new.grad_evals
            return n_new, new.curvature, new
        n_new, curvature, info = rotate_fourier_shifted(
            shift_grad, n, current, length, scheme=scheme, ends=False
        )
        self.dimer["grad_evals"] += info["grad_evals"]
        return n_new, curvature, difference_probe(current.g0, info["hn_interp"], n_new, 0)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """``torch.optim.Optimizer.zero_grad``. The last step's diagnostics are read from the
        gradient tensors the base optimizer received (the ``.grad`` tensors, for one problem):
        before they are zeroed in place (``set_to_none=False``) the norms are worked out and the
        vectors ``diagnostics()`` returns are copied, so they stay the step's."""
        if not set_to_none:
            self._settle()
            last = getattr(self, "_last", None) or {}
            copies: dict[int, Any] = {}  # g and g_mod may be one object: it stays one
            for key in ("grad", "modified"):
                value = last.get(key)
                if isinstance(value, Tensor | list):
                    if id(value) not in copies:
                        copied = value.clone() if isinstance(value, Tensor) else [v.clone() for v in value]
                        copies[id(value)] = copied
                    last[key] = copies[id(value)]
            if "versions" in last:
                last["versions"] = _versions(last)  # the copies', which nothing else changes
        super().zero_grad(set_to_none=set_to_none)

    def _changed_since_step(self) -> bool:
        """Whether the g and g_mod the last step kept were changed in place since (nn.Module's
        ``zero_grad(set_to_none=False)``, ``p.grad.zero_()``, a backward outside the closure). Then,
        once: a warning, the vectors dropped, and the norms not yet worked out set to NaN (they read
        ‖g_mod‖ = 0 and removed fraction 1, as if measured)."""
        last = getattr(self, "_last", None)
        if not last or "versions" not in last or _versions(last) == last["versions"]:
            return False
        warnings.warn(
            "DEO: the gradients of the last step were changed in place before its diagnostics were "
            "read (e.g. by model.zero_grad(set_to_none=False) or a backward outside the closure): "
            "its gradient vectors are dropped and norms not yet read are NaN. Read diagnostics() "
            "right after step(), or zero with the optimizer's zero_grad, which keeps them.",
            RuntimeWarning,
            stacklevel=3,
        )
        if last.get("pending"):
            state = self.dimer
            for key in ("grad_norm", "modified_grad_norm", "clip_scale", "removed_fraction"):
                state[key] = torch.full_like(state[key], math.nan)
            last["pending"] = False
        last["grad"] = last["modified"] = None
        del last["versions"]
        return True

    def _settle(self) -> None:
        """Fill ‖g‖, ‖g_mod‖ and (g·N)²/‖g‖² of the last step into the state, from the g and g_mod
        the step kept (they are only read by the diagnostics, so a step does not pay for them);
        first :meth:`_changed_since_step`, which drops them if they were changed since."""
        if self._changed_since_step():
            return
        last = getattr(self, "_last", None)
        if not last or not last.get("pending"):
            return
        state = self.dimer
        grad, along, modified = last["grad"], last["along"], last["modified"]
        if isinstance(modified, Tensor):
            modified_sq = batched_dot(modified, modified)
        else:
            modified_sq = _list_dot(modified, modified)
        if grad is modified:
            grad_sq = modified_sq
        elif grad is not None:
            grad_sq = batched_dot(grad, grad) if isinstance(grad, Tensor) else _list_dot(grad, grad)
        elif "grad_sq" in last:
            grad_sq = last["grad_sq"]
        else:  # g − c·N was written over g (|α| ≤ 2): ‖g‖² = ‖g_mod‖² + 2c·(g_mod·N) + c²·(N·N)
            c, n = last["coefficient"], last["direction"]
            along_modified = _list_dot(modified, self._blocks(n, self._params()), n)
            grad_sq = modified_sq + 2 * c * along_modified + c * c * batched_dot(n, n)
        if self.batch_dims == 0:  # one problem: four numbers, worked out in Python floats (one read)
            squares = torch.cat((grad_sq.reshape(1), modified_sq.reshape(1), along.reshape(1)))
            g_sq, m_sq, g_n = squares.tolist()
            values = (_sqrt(g_sq), _sqrt(m_sq), 1.0, g_n * g_n / g_sq if g_sq > 0 else 0.0)
            rows = torch.tensor([[value] for value in values], dtype=self._dtype, device=self._device)
            keys = ("grad_norm", "modified_grad_norm", "clip_scale", "removed_fraction")
            for key, value in zip(keys, rows):  # (1,) rows of one new tensor
                state[key] = value
            last["pending"] = False
            return
        state["grad_norm"] = torch.sqrt(grad_sq)
        state["modified_grad_norm"] = torch.sqrt(modified_sq)
        state["clip_scale"] = torch.ones_like(grad_sq)
        positive = grad_sq > 0
        safe = torch.where(positive, grad_sq, 1.0)
        state["removed_fraction"] = torch.where(positive, along * along / safe, 0.0)
        last["pending"] = False

    def _clip(self, g_mod: Tensor | list[Tensor], max_norm: float) -> None:
        """Rescale ``g_mod`` in place to norm ≤ ``max_norm`` per row (``torch.nn.utils.clip_grad_norm_``'s
        rule) after :meth:`_settle` measured it."""
        state = self.dimer
        modified_norm = state["modified_grad_norm"]
        scale = torch.clamp(max_norm / (modified_norm + 1e-6), max=1.0)
        if bool((scale < 1).any()):
            if isinstance(g_mod, list):  # one problem's per-parameter g_mod
                torch._foreach_mul_(g_mod, scale.reshape(()))
            else:
                g_mod.mul_(scale.unsqueeze(-1))
            state["modified_grad_norm"] = modified_norm * scale
        state["clip_scale"] = scale

    def _add_to_params(self, delta: Tensor, params: list[Tensor]) -> None:
        for p, value in zip(params, unflatten_rows(delta, params, self._rows)):
            p.add_(value.to(p.dtype))

    def _negative_curvature_step(self, along: Tensor, params: list[Tensor]) -> None:
        """θ ← θ − nc_step·sign(g·N)·N where C < 0 (``along`` = g·N per row; ``nc_step`` per group);
        a per-row random sign where g·N = 0."""
        state = self.dimer
        n = state["direction"]
        sign = torch.sign(along)
        negative = state["curvature"] < 0
        ties = (negative & (along == 0)).reshape(-1).nonzero().flatten().tolist()
        if ties:
            sign = sign.reshape(-1).clone()
            for row in ties:
                draw = state["sign_draws"][row]
                generator = row_seed_stream(state["seed"] + row, draw)
                sign[row] = 1.0 if torch.randint(0, 2, (1,), generator=generator).item() else -1.0
                state["sign_draws"][row] = draw + 1
            sign = sign.reshape(along.shape)

        def size_of(group: dict[str, Any]) -> Tensor:
            return torch.where(negative, group["nc_step"] * sign, torch.zeros_like(sign))

        size = self._column_values(("nc_step",), size_of)
        self._add_to_params(-_coefficient(size, torch.ones_like(sign)) * n, params)

    # ----------------------------------------------------------------------------- introspection
    def diagnostics(self) -> dict[str, Any]:
        """The dimer's view at the last step.

        ``direction`` N ``(d,)`` / ``(B, d)``; ``curvature`` C and ``torque`` ‖F_R‖ of the last
        rotation event; ``grad_norm`` ‖g‖, ``modified_grad_norm`` ‖g_mod‖ (after the clip),
        ``removed_fraction`` (g·N)²/‖g‖², ``clip_scale`` (1 when not clipped) of the last step
        (floats, or ``(B,)`` tensors with ``batch_dims=1``; NaN before the first step);
        ``modified_grad``: the flat gradient the base optimizer received at the last step (g_mod,
        or g for ``target="update"``; after the clip), ``removed``: the flat vector the dimer took
        out, α(g·N)N from g (``target="gradient"``) or α(u·N)N from the base's update u
        (``target="update"``) — zero where gated; both ``(d,)`` / ``(B, d)``, None before the first
        step and after a ``load_state_dict``; ``grad_evals`` the algorithm's gradient evaluations
        so far (for the random control: what the dimer run would spend), ``grad_evals_spent``
        (gradients really evaluated), ``direction_mode``, ``rotation_events``,
        ``last_rotation_step`` (−1 before the first), ``dimer_length``, ``step``.
        """
        self._settle()
        state = self.dimer
        rows = self.batch_dims == 0

        def out(value: Tensor) -> float | Tensor:
            return float(value) if rows else value.clone()  # rows: one problem, a (1,) tensor

        def vector(value: Tensor | list[Tensor] | None) -> Tensor | None:
            if value is None:
                return None
            if isinstance(value, list):  # one problem's per-parameter tensors: a new flat copy
                return torch.cat([part.reshape(-1).to(self._dtype) for part in value])
            return value[0].clone() if rows else value.clone()

        last = self._last
        coefficient = last.get("coefficient")
        if isinstance(coefficient, float):  # a single problem's α(g·N), rounded to the dtype here
            coefficient = torch.full((1, 1), coefficient, dtype=self._dtype, device=self._device)
        removed = coefficient * last["direction"] if last else None  # a new tensor: no copy needed
        if removed is not None:
            removed = removed[0] if rows else removed
        direction = state["direction"]
        numbers = [state[key] for key in SCALAR_DIAGNOSTICS]
        if rows and all(value.shape == (1,) for value in numbers):  # one read for the six numbers
            scalars = dict(zip(SCALAR_DIAGNOSTICS, torch.cat(numbers).tolist()))
        else:
            scalars = {key: out(value) for key, value in zip(SCALAR_DIAGNOSTICS, numbers)}
        return {
            "direction": vector(direction),
            **scalars,
            "modified_grad": vector(last.get("modified")),
            "removed": removed,
            "grad_evals": state["grad_evals"],
            "grad_evals_spent": state["grad_evals_spent"],
            "direction_mode": self.param_groups[0]["direction"],
            "rotation_events": state["rotation_events"],
            "last_rotation_step": state["last_rotation_step"],
            "dimer_length": self.param_groups[0]["dimer_length"],
            "step": state["step"],
        }

    def state_dict(self) -> dict[str, Any]:
        """``Optimizer.state_dict()``: the param groups (every hyperparameter), the base optimizer's
        per-parameter state and, under ``state["dimer"]``, the dimer state (N, C, counters, seed),
        copied so that later steps do not change it."""
        self._settle()
        state_dict = super().state_dict()
        state_dict["state"]["dimer"] = {key: _copy(value) for key, value in self.dimer.items()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (hyperparameters included); the run then continues bit for bit.

        Everything is checked before anything changes: a ValueError says what does not match
        (missing entries, another model's shapes, another base optimizer, ``batch_dims``, the
        size or dtype of the dimer direction N, dimer settings that differ between groups).
        """
        self._check_state_dict(state_dict)
        super().load_state_dict(state_dict)
        self._link_base()
        self.state["dimer"] = {
            key: _copy(value.to(device=self._device) if isinstance(value, Tensor) else value)
            for key, value in self.state["dimer"].items()
        }
        self._last = {}

    def _check_state_dict(self, state_dict: Any) -> None:
        """ValueError naming the first thing in ``state_dict`` that does not fit this optimizer."""
        who = "DEO.load_state_dict"
        if not isinstance(state_dict, dict):
            raise ValueError(f"{who} needs a dict from DEO.state_dict(), got {type(state_dict).__name__}")
        if "base_state" in state_dict:
            raise ValueError(
                f"{who}: this state dict has the layout of an older DEO ('base_state' and 'dimer' at the "
                "top level); the dimer state now lives in state['dimer'] like any torch optimizer's state"
            )
        missing = [key for key in ("state", "param_groups") if key not in state_dict]
        if missing:
            raise ValueError(f"{who}: the state dict lacks {missing} (not a complete DEO.state_dict())")
        groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_state, dict) or "dimer" not in saved_state:
            raise ValueError(f"{who}: the state dict lacks the dimer state (state['dimer'])")
        if not isinstance(groups, list) or len(groups) != len(self.param_groups):
            count = len(groups) if isinstance(groups, list) else groups
            raise ValueError(
                f"{who}: {count} parameter groups saved, this optimizer has {len(self.param_groups)}"
            )
        params = self._params()
        for number, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if not isinstance(saved, dict) or len(saved.get("params", ())) != len(group["params"]):
                held = len(saved.get("params", ())) if isinstance(saved, dict) else "?"
                raise ValueError(
                    f"{who}: parameter group {number} holds {held} tensors saved, {len(group['params'])} here"
                )
            absent = sorted(set(DIMER_KEYS + GROUP_KEYS + ("lr",)) - set(saved))
            if absent:
                raise ValueError(f"{who}: parameter group {number} lacks the DEO hyperparameters {absent}")
            absent = sorted(set(self.base.defaults) - set(saved))  # not scheduler keys such as initial_lr
            if absent:
                raise ValueError(
                    f"{who}: parameter group {number} lacks the hyperparameters {absent} of this "
                    f"optimizer ({type(self.base).__name__} base): saved with another base optimizer?"
                )
            try:
                _check_hyper({key: saved[key] for key in DIMER_KEYS + GROUP_KEYS + ("lr",)})
            except (TypeError, ValueError) as error:
                raise ValueError(f"{who}: parameter group {number}: {error}") from error
        for key in DIMER_KEYS:
            if any(saved[key] != groups[0][key] for saved in groups[1:]):
                raise ValueError(f"{who}: the saved groups disagree on the dimer setting {key}")
        try:  # as the constructor checks it, at these parameters' scale
            check_resolution(float(groups[0]["dimer_length"]), params, self._dtype, "dimer_length")
        except ValueError as error:
            raise ValueError(f"{who}: {error}") from error
        dimer = saved_state["dimer"]
        if not isinstance(dimer, dict):
            raise ValueError(f"{who}: the dimer state must be a dict")
        missing = sorted(set(self.dimer) - set(dimer))
        if missing:
            raise ValueError(f"{who}: the dimer state lacks {missing}")
        for key, here in (("base", self.dimer["base"]), ("batch_dims", self.batch_dims)):
            if dimer[key] != here:
                raise ValueError(f"{who}: saved with {key}={dimer[key]!r}, this optimizer has {key}={here!r}")
        direction, expected = dimer["direction"], self.dimer["direction"]
        if not isinstance(direction, Tensor) or direction.shape != expected.shape:
            shape = tuple(direction.shape) if isinstance(direction, Tensor) else type(direction).__name__
            raise ValueError(
                f"{who}: the dimer direction N has shape {shape}, this optimizer needs "
                f"{tuple(expected.shape)} (rows × parameters: another model, or another batch_dims)"
            )
        if direction.dtype != expected.dtype:
            raise ValueError(
                f"{who}: the dimer direction N is {direction.dtype}, this optimizer's dimer runs in "
                f"{expected.dtype} (the parameters' dtype changed since the state was saved)"
            )
        for key, value in self.dimer.items():
            saved = dimer[key]
            if isinstance(value, Tensor) and (not isinstance(saved, Tensor) or saved.shape != value.shape):
                shape = tuple(saved.shape) if isinstance(saved, Tensor) else type(saved).__name__
                raise ValueError(
                    f"{who}: dimer entry {key!r} has shape {shape}, expected {tuple(value.shape)}"
                )
        for key, entry in saved_state.items():
            if key == "dimer":
                continue
            if not isinstance(key, int) or not 0 <= key < len(params) or not isinstance(entry, dict):
                raise ValueError(
                    f"{who}: state for parameter {key!r}, this optimizer has {len(params)} parameters"
                )
            for name, value in entry.items():
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape != params[key].shape:
                    raise ValueError(
                        f"{who}: base state {name!r} of parameter {key} has shape {tuple(value.shape)}, "
                        f"the parameter has {tuple(params[key].shape)} (a state from another model?)"
                    )


def _group_property(name: str) -> property:
    """``opt.<name>``: the hyperparameter of group 0; setting it sets (and checks) every group."""

    def get(self: DEO) -> Any:
        return self.param_groups[0][name]

    def set_(self: DEO, value: Any) -> None:
        for group in self.param_groups:
            _check_hyper({**group, name: value})
        if name == "dimer_length":  # as the constructor checks it
            check_resolution(float(value), self._params(), self._dtype, "dimer_length")
        for group in self.param_groups:
            group[name] = value
            _check_hyper(group)  # normalises (ints, floats)

    return property(get, set_, doc=f"``{name}`` of the param groups (group 0 read; every group written).")


for _name in ("dimer_length", "rotate_every", "rotations", "rotation", "scheme", "rotation_step", "target",
              "direction", "redraw_every", "max_grad_norm", "alpha", "gate", "nc_step"):  # fmt: skip
    setattr(DEO, _name, _group_property(_name))


def _coefficient(value: Tensor, along: Tensor) -> Tensor:
    """``value·along`` shaped to multiply N ``(rows, d)``: ``value`` is ``(rows,)`` or ``(rows, d)``."""
    if value.dim() == along.dim():
        return (value * along).unsqueeze(-1)
    return value * along.unsqueeze(-1)


# diagnostics()' per-step numbers (floats for one problem, ``(B,)`` tensors for a batch), in its order
SCALAR_DIAGNOSTICS = (
    "curvature", "torque", "grad_norm", "modified_grad_norm", "removed_fraction", "clip_scale",
)  # fmt: skip
LIMIT = 1e6  # the largest |value| accepted for dimer_length, alpha, nc_step (beyond: overflow, not a dimer)
DIRECTIONS = ("dimer", "random")
# One dimer over all groups: these must be equal in every group. Per group: lr, the base's, these:
DIMER_KEYS = (
    "dimer_length", "rotate_every", "rotations", "rotation", "scheme", "rotation_step", "target",
    "direction", "redraw_every", "max_grad_norm",
)  # fmt: skip
GROUP_KEYS = ("alpha", "gate", "nc_step")


def _number(
    name: str, value: Any, low: float | None = None, open_low: bool = False, high: float | None = None
) -> float:
    """``value`` as a finite float in the range, else TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r:.60}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if low is not None and (value <= low if open_low else value < low):
        raise ValueError(f"{name} must be {'>' if open_low else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value:g}")
    return value


def _integer(name: str, value: Any, low: int) -> int:
    """``value`` as an int ≥ ``low`` (an integral float such as 10.0 is accepted), else an error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer >= {low}, got {type(value).__name__} {value!r:.60}")
    if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    if int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {int(value)}")
    return int(value)


def _validate_base(base: str | type[Optimizer], base_kwargs: dict[str, Any]) -> type[Optimizer]:
    """The base optimizer class, or a ValueError with a sentence."""
    if isinstance(base, type) and issubclass(base, Optimizer):
        base_cls = base
    elif isinstance(base, str) and base in BASES:
        base_cls = BASES[base]
    else:
        raise ValueError(
            f"base must be one of {tuple(BASES)} or a torch.optim.Optimizer subclass, got {base!r}"
        )
    if issubclass(base_cls, LBFGS):
        raise ValueError(
            "base=torch.optim.LBFGS is not supported: LBFGS needs its own closure (it re-evaluates the "
            "loss inside its step), while DEO hands its base optimizer a gradient and calls step() "
            "without one. Use a first-order base (sgd, momentum, adam, adamw, or e.g. Adagrad)."
        )
    if base_kwargs.get("maximize"):
        raise ValueError(
            "maximize=True is not supported: the dimer's curvature is that of the loss the closure "
            "returns; to maximise f, return -f"
        )
    own = set(inspect.signature(base_cls.__init__).parameters)
    shared = sorted(own & set(DIMER_KEYS + GROUP_KEYS))
    if shared:  # the base and DEO share the param-group dicts: one key cannot hold both values
        raise ValueError(
            f"base={base_cls.__name__} has its own hyperparameter(s) {shared} with the name(s) of DEO's "
            f"(its 'alpha' is a smoothing constant, DEO's the projection strength); both would live in "
            "the same param-group key, so the base would run with DEO's value. Use a base without that "
            "name (sgd, momentum, adam, adamw, Adagrad, Adamax, NAdam, RAdam, ...)."
        )
    return base_cls


def _check_hyper(hp: dict[str, Any]) -> None:
    """Check the DEO hyperparameters present in ``hp`` (TypeError for a wrong type, ValueError for a
    wrong value, each naming the argument) and normalise them in place (ints, floats)."""
    if "lr" in hp and not isinstance(hp["lr"], Tensor):
        hp["lr"] = _number("lr", hp["lr"], low=0.0)
    if "dimer_length" in hp:
        hp["dimer_length"] = _number("dimer_length", hp["dimer_length"], low=0.0, open_low=True, high=LIMIT)
    if "rotate_every" in hp:
        hp["rotate_every"] = _integer("rotate_every", hp["rotate_every"], 1)
    if "rotations" in hp:
        hp["rotations"] = _integer("rotations", hp["rotations"], 0)
    if "rotation" in hp and hp["rotation"] not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {hp['rotation']!r}")
    if hp.get("rotation_step") is not None:
        hp["rotation_step"] = _number("rotation_step", hp["rotation_step"], low=0.0, open_low=True)
    if hp.get("rotation") == "sd" and hp.get("rotation_step") is None:
        raise ValueError("rotation='sd' needs rotation_step > 0 (stable below 2/(λ_max − λ_min)), got None")
    if "scheme" in hp and hp["scheme"] not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {hp['scheme']!r}")
    if "alpha" in hp:
        hp["alpha"] = _number("alpha", hp["alpha"])
        if abs(hp["alpha"]) > LIMIT:
            raise ValueError(
                f"alpha must be within ±{LIMIT:g} (1 projects, -1 amplifies, 2 reflects), got {hp['alpha']:g}"
            )
    if hp.get("gate") is not None:
        hp["gate"] = _number("gate", hp["gate"])
    if "target" in hp and hp["target"] not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {hp['target']!r}")
    if "nc_step" in hp:
        hp["nc_step"] = _number("nc_step", hp["nc_step"], low=0.0, high=LIMIT)
    if hp.get("max_grad_norm") is not None:
        hp["max_grad_norm"] = _number("max_grad_norm", hp["max_grad_norm"], low=0.0, open_low=True)
    if "direction" in hp and hp["direction"] not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {hp['direction']!r}")
    if hp.get("redraw_every") is not None:
        if hp.get("direction") != "random":
            raise ValueError("redraw_every is for the random-direction control: pass direction='random'")
        hp["redraw_every"] = _integer("redraw_every", hp["redraw_every"], 1)
        if "rotate_every" in hp and hp["redraw_every"] % hp["rotate_every"]:
            raise ValueError(
                f"redraw_every ({hp['redraw_every']}) must be a multiple of rotate_every "
                f"({hp['rotate_every']}): N is re-drawn at a rotation event, where its curvature is probed"
            )


def check_params(params: list[Tensor], who: str) -> None:
    """Refuse parameters the dimer cannot handle: complex or non-floating dtypes."""
    for index, p in enumerate(params):
        if p.is_complex():
            raise TypeError(
                f"{who}: parameter {index} {tuple(p.shape)} is complex ({p.dtype}); the dimer's curvature "
                "NᵀHN and the dot products g·N are defined for real parameters only (split a complex "
                "parameter into real and imaginary parts)"
            )
        if not p.is_floating_point():
            raise TypeError(
                f"{who}: parameter {index} has dtype {p.dtype}; only floating-point parameters "
                "can be optimized"
            )


def check_resolution(length: float, tensors: Iterable[Tensor], dtype: torch.dtype, name: str) -> None:
    """ValueError when a shift of ``length`` rounds away next to the largest |coordinate| (at least 1)
    of ``tensors`` in ``dtype``: the dimer ends would coincide with the midpoint."""
    scale = max([1.0] + [float(t.detach().abs().max()) for t in tensors if t.numel()])
    anchor = torch.tensor(scale, dtype=dtype)
    if bool(anchor + length == anchor):
        raise ValueError(
            f"{name}={length:g} is below the resolution of {dtype} at the parameters' scale "
            f"(max |θ| = {scale:g}, resolution ≈ {torch.finfo(dtype).eps * scale:.3g}): the dimer ends "
            "would round onto the midpoint and the curvature would be 0/ΔR. Use a larger length."
        )


def row_count(params: list[Tensor], batch_dims: int, who: str = "DEO") -> int:
    """B, the number of independent problems (1 without batch dims); checks the first dims agree."""
    if batch_dims not in BATCH_DIMS:
        raise ValueError(f"batch_dims must be one of {BATCH_DIMS}, got {batch_dims!r}")
    if not params:
        raise ValueError(f"{who} got an empty parameter list")
    if batch_dims == 0:
        return 1
    sizes = {p.shape[0] if p.dim() > 0 else None for p in params}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            "batch_dims=1 needs every parameter to have the same first dim (the problem index), "
            f"got shapes {[tuple(p.shape) for p in params]}"
        )
    return sizes.pop()


def _check_loss(loss: Any, step: int) -> None:
    """ValueError when the closure's loss at θ is NaN or infinite (a one-element loss is read once,
    ``item()``, instead of the tensor ops of ``isfinite(...).all()``)."""
    if loss is None:
        return
    if isinstance(loss, Tensor) and loss.numel() == 1:
        finite = math.isfinite(loss.item())
    elif isinstance(loss, numbers.Real):
        finite = math.isfinite(loss)
    else:
        finite = bool(torch.isfinite(torch.as_tensor(loss)).all())
    if not finite:
        raise ValueError(f"DEO.step: the closure returned a non-finite loss ({loss}) at step {step}")


def _check_gradient(along: Tensor, step: int) -> float | None:
    """ValueError when the gradient at θ has a NaN or infinite entry, seen through g·N per row (the
    dot product the step needs anyway): N is finite, so a non-finite g_i makes g_i·N_i and the sum
    NaN or infinite (0·inf is NaN). Returns g·N as a float for a single row (read once), else None."""
    value = along.item() if along.numel() == 1 else None
    finite = math.isfinite(value) if value is not None else bool(torch.isfinite(along).all())
    if not finite:
        raise ValueError(f"DEO.step: the closure produced a non-finite gradient (NaN/Inf) at step {step}")
    return value


def _combine(out: Tensor, base: Tensor | None, terms: list[tuple[float, Tensor]]) -> None:
    """``out = base + Σ c·v`` over ``terms`` (c, v) (``base`` None: ``Σ c·v``), one pass per term
    (an add with a scalar factor; on CPU much faster than a matrix product of this shape)."""
    for number, (factor, vector) in enumerate(terms):
        if number:
            out.add_(vector, alpha=factor)
        elif base is None:
            torch.mul(vector, factor, out=out)
        else:
            torch.add(base, vector, alpha=factor, out=out)
    if not terms and base is not None:
        out.copy_(base)
    elif not terms:
        out.zero_()


def _list_dot(a: list[Tensor], b: list[Tensor] | None, b_flat: Tensor | None = None) -> Tensor:
    """``Σ_p a_p·b_p`` over per-parameter tensors of one problem, shape ``(1,)``: one BLAS dot per
    parameter, no flat copy; below ``LIST_DOT_CAT`` elements, where a call costs more than the data,
    one dot of the concatenated blocks (the flat path's own dot, so the same value). ``b_flat``: the
    row that ``b``'s blocks are consecutive views of (N), dotted as it is instead of concatenating
    ``b`` again (6.5 of 17 µs on the 5 281-parameter MLP); with ``b`` None, its blocks are split
    from ``b_flat`` only where they are used (large d: a new N costs no views below)."""
    if sum(x.numel() for x in a) < LIST_DOT_CAT:
        flat_a = torch.cat([x.reshape(-1) for x in a])
        if b_flat is not None:
            flat_b = b_flat.reshape(-1)
        else:
            flat_b = flat_a if b is a else torch.cat([y.reshape(-1) for y in b])
        return torch.dot(flat_a, flat_b).reshape(1)
    if b is None:
        b = list(b_flat.reshape(-1).split([x.numel() for x in a]))
    dots = [torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b)]
    return torch.stack(dots).sum(0, keepdim=True)


def _sqrt(value: float) -> float:
    """``torch.sqrt`` of a Python float: NaN below zero (and for NaN) instead of a ValueError."""
    return math.sqrt(value) if value >= 0 else math.nan


def _finite_rows(*values: Tensor) -> Tensor:
    """True per row where every one of ``values`` (each ``(...)``) is finite: ``Σ 0·x`` is 0 for
    finite x and NaN for ±inf or NaN (float arithmetic, cheaper than ``isfinite`` on CPU)."""
    return sum(value * 0 for value in values) == 0


def _copy(value: Any) -> Any:
    """A copy that later steps cannot mutate (tensors cloned, lists copied)."""
    if isinstance(value, Tensor):
        return value.clone()
    return list(value) if isinstance(value, list) else value
