"""Baselines DEO is compared with: perturbed GD, and the authors' published dimer optimizer.

- :class:`PGD`: perturbed gradient descent (Jin, Ge, Netrapalli, Kakade, Jordan 2017).
- :class:`PublishedDimer`: a faithful reproduction of the optimizer code published with
  "Dimer-Enhanced Optimization" (Hu, Cao, Liu, arXiv 2507.19968), defects included, so that the
  app can show where it ends. It is *not* the DEO of this library (see ``DEO.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from deo.optim import (
    LIMIT,
    _integer,
    _number,
    check_params,
    evaluate_closure,
    flatten_rows,
    row_count,
    unflatten_rows,
)


def _require_closure(closure: Callable[[], Any] | None, who: str) -> Callable[[], Any]:
    if closure is None:
        raise ValueError(f"{who} needs a closure (zero_grad, forward, loss.backward(), return loss)")
    return closure


class PGD(Optimizer):
    r"""Perturbed gradient descent (Jin et al. 2017, Algorithm 2 without the stopping rule).

    At step t, with :math:`t_{noise}` the step of the last perturbation:

    .. math::
        \text{if } \lVert\nabla L(θ_t)\rVert \le g_{thres} \text{ and } t − t_{noise} > t_{thres}:
        \quad θ_t \leftarrow θ_t + ξ_t,\ ξ_t \sim \mathrm{Uniform}(B_0(r)),\ t_{noise} \leftarrow t;
        \qquad θ_{t+1} = θ_t − η\,\nabla L(θ_t).

    The gradient after a perturbation is re-evaluated at the perturbed point (one more closure
    call, counted in ``grad_evals``). ξ is drawn from the optimizer's own generator (``seed``) in
    float64 on the CPU, so CPU and CUDA runs match. With ``batch_dims=1`` the first dim of every
    parameter indexes independent problems: norms, the test and ξ are per row. ``lr`` per group.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        g_thres: float = 1e-3,
        t_thres: int = 10,
        radius: float = 1e-2,
        seed: int | None = None,
        batch_dims: int = 0,
    ) -> None:
        lr = _number("lr", lr, low=0.0)
        g_thres = _number("g_thres", g_thres, low=0.0)
        t_thres = _integer("t_thres", t_thres, 0)
        radius = _number("radius", radius, low=0.0, open_low=True, high=LIMIT)
        if seed is not None:
            _integer("seed", seed, 0)
        super().__init__(params, dict(lr=lr))
        check_params([p for group in self.param_groups for p in group["params"]], "PGD")
        self.g_thres = float(g_thres)
        self.t_thres = int(t_thres)
        self.radius = float(radius)
        self.batch_dims = batch_dims
        params_list = [p for group in self.param_groups for p in group["params"]]
        self._rows = row_count(params_list, batch_dims, "PGD")
        self._dtype = torch.promote_types(params_list[0].dtype, torch.float32)
        self._device = params_list[0].device
        self.generator = torch.Generator()
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self.generator.manual_seed(seed)
        self.pgd: dict[str, Any] = {
            "step": 0,
            "last_perturbation": torch.full((self._rows,), -(self.t_thres + 1), dtype=torch.int64),
            "perturbations": torch.zeros(self._rows, dtype=torch.int64),
            "grad_evals": 0,
        }

    def _ball(self) -> Tensor:
        """One uniform sample of the d-ball of radius r per row, ``(rows, d)`` float64 CPU."""
        d = sum(p.numel() for group in self.param_groups for p in group["params"]) // self._rows
        direction = torch.randn(self._rows, d, generator=self.generator, dtype=torch.float64)
        direction = direction / torch.linalg.vector_norm(direction, dim=1, keepdim=True)
        u = torch.rand(self._rows, 1, generator=self.generator, dtype=torch.float64)
        return self.radius * u ** (1.0 / d) * direction

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One PGD step; ``closure``: zero grads, forward, backward, return the loss."""
        closure = _require_closure(closure, "PGD.step")
        params = [p for group in self.param_groups for p in group["params"]]
        state = self.pgd
        t = state["step"]
        loss, grads = evaluate_closure(closure, params, "PGD.step")
        state["grad_evals"] += 1
        g = flatten_rows(grads, params, self._rows, self._dtype)
        small = torch.linalg.vector_norm(g, dim=1).cpu() <= self.g_thres
        perturb = small & (t - state["last_perturbation"] > self.t_thres)
        if bool(perturb.any()):
            theta = [p.detach().clone() for p in params]
            generator_state = self.generator.get_state()
            xi = self._ball() * perturb.unsqueeze(1).to(torch.float64)
            try:
                for p, value in zip(params, unflatten_rows(xi.to(self._device), params, self._rows)):
                    p.add_(value.to(p.dtype))
                loss, grads = evaluate_closure(closure, params, "PGD.step")
            except BaseException:  # all or nothing: θ, the counters and the generator as before the step
                for p, value in zip(params, theta):
                    p.copy_(value)
                    p.grad = None
                self.generator.set_state(generator_state)
                state["grad_evals"] -= 1
                raise
            state["last_perturbation"] = torch.where(perturb, t, state["last_perturbation"])
            state["perturbations"] += perturb.to(torch.int64)
            state["grad_evals"] += 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        state["step"] = t + 1
        return loss

    def diagnostics(self) -> dict[str, Any]:
        """``grad_evals`` (int), ``perturbations`` and ``last_perturbation`` (int per row), ``step``."""
        state = self.pgd

        def out(value: Tensor) -> int | Tensor:
            return int(value[0]) if self.batch_dims == 0 else value.clone()

        return {
            "grad_evals": state["grad_evals"],
            "perturbations": out(state["perturbations"]),
            "last_perturbation": out(state["last_perturbation"]),
            "step": state["step"],
        }

    def state_dict(self) -> dict[str, Any]:
        state_dict = super().state_dict()
        state_dict["pgd"] = {k: v.clone() if isinstance(v, Tensor) else v for k, v in self.pgd.items()}
        state_dict["generator"] = self.generator.get_state()
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({"state": state_dict["state"], "param_groups": state_dict["param_groups"]})
        self.pgd = {k: v.clone() if isinstance(v, Tensor) else v for k, v in state_dict["pgd"].items()}
        self.generator.set_state(state_dict["generator"])


PUBLISHED_VARIANTS = ("v4", "v7")
PUBLISHED_BASES = ("adam", "sgd")
CLOSURE_MODES = ("working", "published")
_COUNTERS = ("step_count", "grad_evals", "closure_calls", "rotation_events")
# The published constructors' defaults that differ between the two code versions.
_VARIANT_DEFAULTS = {
    "v4": {"dimer_strength": 0.1, "displacement": 1e-4},
    "v7": {"dimer_strength": 5.0, "displacement": 1e-3},
}


class PublishedDimer(Optimizer):
    r"""Reproduction of the authors' published dimer optimizer code — defects kept on purpose.

    Source: the optimizer classes of the authors' nanoGPT fork for arXiv 2507.19968. The
    repository itself was not located in the code index used to write this; three of its
    optimizer files were (``DimerOptimizer`` "FINAL V4 HY" with base adam/sgd, ``DimerSgdOptimizer``
    — identical to V4 with base sgd — and ``DimerOptimizer`` "SOPHIA V7"), and this class follows
    them line by line. Everything is **per tensor**: every parameter tensor p has its own unit
    N_p and all dots and norms are over that tensor only (per row with ``batch_dims=1``). With
    ``s`` the step counter (starting at 1), every ``rotation_interval`` steps the dimer "rotates":

    ``variant="v4"`` (default):
        closure at θ → G1; closure at θ + ΔR·N → G2 (parameters copied back);
        :math:`D = (G2 − G1)/ΔR`, :math:`F_∥ = (D·N)N`, :math:`F_⊥ = D − F_∥`,
        :math:`N \leftarrow n/(\lVert n\rVert + 10^{-8})`,
        :math:`n = N − 2F_∥/\lVert F_∥\rVert + η_{rot} F_⊥`.
        As a mode this is :math:`N − η F_⊥` (descent of NᵀHN) when :math:`D·N > 0` but
        :math:`N + (η/3) F_⊥` (ascent) when :math:`D·N < 0`: it drifts to zero curvature.
        Step: if :math:`g·N < 0`: :math:`θ \mathrel{+}= s_{dimer}(g·N)N` (the "dimer step"), then
        Adam (hand-written, bias-corrected with the global s) or SGD on the raw g.
    ``variant="v7"``:
        closure at θ first (the step's gradient) → G1; closure at θ + ΔR·N → G2;
        :math:`N \leftarrow n/(\lVert n\rVert + 10^{-8})`, :math:`n = N + η_{rot}\,
        \mathrm{perp}_N(G2 − G1)` — the **wrong sign** (ascends NᵀHN, converges to the
        maximum-curvature eigenvector) and no division by ΔR. Step: a Sophia-style clipped base
        (``h`` an EMA of g², ``update = clamp(m̂/(ĥ + eps), ±clip_ratio)``; base sgd uses g for
        m̂), then always :math:`θ \mathrel{-}= s_{dimer}(g·N)N`.

    In both, after a rotation the step uses the gradient left in ``p.grad`` by the last closure
    call — the gradient at the dimer end θ + ΔR·N, not at θ (as published).

    ``closure_mode``:
        ``"working"``: closures run with gradients enabled (the published V4 calls them under
        ``torch.no_grad()``, where a backward cannot run; that one fix is applied).
        ``"published"``: the training script's behaviour. It called ``loss.backward()`` itself
        and passed a forward-only closure: here the closure is called once at the start of the
        step to play that backward, and every call the published code makes is forward-only
        (the gradients it leaves are restored). So G2 = G1: in V4 ``‖F_∥‖ = 0`` and
        ``0/0`` makes N NaN at the first rotation, after which ``g·N < 0`` is False and the
        dimer step is silently skipped (plain Adam/SGD); in V7 ``F_⊥ = 0`` and N keeps its
        random start (shrunk by the 1e-8 guard only).

    Differences from the published code, none of which changes the arithmetic: N starts from
    the seeded generator (normal per tensor, normalised) instead of the global RNG; ``step``
    returns the loss at θ (the published V4 returns None); ``batch_dims=1`` runs independent
    problems per row.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base: str = "adam",
        lr: float = 1e-3,
        variant: str = "v4",
        dimer_strength: float | None = None,
        rotation_interval: int = 10,
        rotation_lr: float = 0.1,
        displacement: float | None = None,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        hessian_beta: float = 0.99,
        clip_ratio: float = 1.0,
        closure_mode: str = "working",
        seed: int | None = None,
        batch_dims: int = 0,
    ) -> None:
        if variant not in PUBLISHED_VARIANTS:
            raise ValueError(f"variant must be one of {PUBLISHED_VARIANTS}, got {variant!r}")
        if base not in PUBLISHED_BASES:
            raise ValueError(f"base must be one of {PUBLISHED_BASES}, got {base!r}")
        if closure_mode not in CLOSURE_MODES:
            raise ValueError(f"closure_mode must be one of {CLOSURE_MODES}, got {closure_mode!r}")
        lr = _number("lr", lr, low=0.0)
        rotation_interval = _integer("rotation_interval", rotation_interval, 1)
        defaults = _VARIANT_DEFAULTS[variant]
        displacement = defaults["displacement"] if displacement is None else displacement
        displacement = _number("displacement", displacement, low=0.0, open_low=True, high=LIMIT)
        if dimer_strength is not None:
            _number("dimer_strength", dimer_strength, low=-LIMIT, high=LIMIT)
        _number("rotation_lr", rotation_lr, low=-LIMIT, high=LIMIT)
        for name, value in (("beta1", beta1), ("beta2", beta2), ("hessian_beta", hessian_beta)):
            if not 0.0 <= _number(name, value) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        _number("eps", eps, low=0.0, open_low=True)
        _number("clip_ratio", clip_ratio, low=0.0, open_low=True)
        if seed is not None:
            _integer("seed", seed, 0)
        super().__init__(
            params,
            dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, hessian_beta=hessian_beta, clip_ratio=clip_ratio),
        )
        self.base = base
        self.variant = variant
        self.dimer_strength = defaults["dimer_strength"] if dimer_strength is None else float(dimer_strength)
        self.rotation_interval = int(rotation_interval)
        self.rotation_lr = float(rotation_lr)
        self.displacement = float(displacement)
        self.closure_mode = closure_mode
        self.batch_dims = batch_dims
        self.step_count = 0
        self.grad_evals = 0
        self.closure_calls = 0
        self.rotation_events = 0
        params_list = self._params()
        check_params(params_list, "PublishedDimer")
        self._rows = row_count(params_list, batch_dims, "PublishedDimer")
        generator = torch.Generator()
        generator.manual_seed(int(torch.randint(0, 2**31 - 1, (1,)).item()) if seed is None else seed)
        for p in params_list:
            n = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            n = n.to(dtype=p.dtype, device=p.device)
            state = {"n": n / self._norm(n)}
            if base == "adam":
                state["m"] = torch.zeros_like(p)
                state["v"] = torch.zeros_like(p)
            if variant == "v7":
                state["h"] = torch.zeros_like(p)
            self.state[p] = state

    # ------------------------------------------------------------------ per-tensor (per-row) maths
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _dot(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-tensor dot product, shaped to broadcast against the tensor (one value per row)."""
        rows = 1 if self.batch_dims == 0 else a.shape[0]
        dot = (a.reshape(rows, -1) * b.reshape(rows, -1)).sum(1)
        return dot.reshape((rows,) + (1,) * (a.dim() - 1)) if self.batch_dims else dot.reshape(())

    def _norm(self, a: Tensor) -> Tensor:
        return torch.sqrt(self._dot(a, a))

    # ------------------------------------------------------------------ closure calls
    def _call(self, closure: Callable[[], Any], params: list[Tensor], forward_only: bool) -> Any:
        """One closure call as the published code makes it; ``forward_only`` keeps ``p.grad``."""
        self.closure_calls += 1
        if forward_only:
            kept = [None if p.grad is None else p.grad.clone() for p in params]
            with torch.enable_grad():
                loss = closure()
            for p, grad in zip(params, kept):
                p.grad = grad
            return loss
        loss, _ = evaluate_closure(closure, params, "PublishedDimer.step")
        self.grad_evals += 1
        return loss

    def _grads(self, params: list[Tensor]) -> list[Tensor]:
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One step of the published code (see the class docstring)."""
        closure = _require_closure(closure, "PublishedDimer.step")
        params = self._params()
        counters = {name: getattr(self, name) for name in _COUNTERS}
        try:
            loss = self._closure_calls(closure, params)
        except BaseException:  # all or nothing: the counters as before the step (θ is restored by _rotate)
            for name, value in counters.items():
                setattr(self, name, value)
            for p in params:
                p.grad = None
            raise
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, group)
        return loss

    def _closure_calls(self, closure: Callable[[], Any], params: list[Tensor]) -> Any:
        """Every closure call of one published step (the rotation included); returns the loss at θ."""
        forward_only = self.closure_mode == "published"
        loss = None
        if forward_only:  # the training script's own loss.backward() before optimizer.step
            loss = self._call(closure, params, forward_only=False)
        if self.variant == "v7":
            loss = self._call(closure, params, forward_only)
            self.step_count += 1
            if self.step_count % self.rotation_interval == 0:
                self._rotate(closure, params, forward_only, recompute_g1=False)
        else:
            self.step_count += 1
            if self.step_count % self.rotation_interval == 0:
                first = self._rotate(closure, params, forward_only, recompute_g1=True)
            else:
                first = self._call(closure, params, forward_only)
            loss = first if loss is None else loss
        return loss

    def _rotate(
        self, closure: Callable[[], Any], params: list[Tensor], forward_only: bool, recompute_g1: bool
    ) -> Any:
        """The published ``_rotate_dimer``; returns the loss of the first closure call (V4)."""
        self.rotation_events += 1
        original = [p.clone() for p in params]
        loss = self._call(closure, params, forward_only) if recompute_g1 else None
        g1 = self._grads(params)
        try:
            for p in params:
                p.add_(self.state[p]["n"], alpha=self.displacement)
            self._call(closure, params, forward_only)
        finally:  # θ back exactly on every exit (an exception or KeyboardInterrupt in the closure)
            for p, value in zip(params, original):
                p.copy_(value)
        g2 = self._grads(params)
        for p, a, b in zip(params, g1, g2):
            n = self.state[p]["n"]
            if self.variant == "v4":
                grad_diff = (b - a) / self.displacement
                force_parallel = self._dot(grad_diff, n) * n
                force_perp = grad_diff - force_parallel
                n_new = n - 2 * force_parallel / self._norm(force_parallel)
                n_new = n_new + self.rotation_lr * force_perp
            else:
                grad_diff = b - a
                force_perp = grad_diff - self._dot(grad_diff, n) * n
                n_new = n + self.rotation_lr * force_perp
            self.state[p]["n"] = n_new / (self._norm(n_new) + 1e-8)
        return loss

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        n = state["n"]
        along = self._dot(grad, n)
        s = self.step_count
        if self.variant == "v4":
            # `if grad_proj_n < 0` (False for NaN): the dimer step, per row
            p.add_(torch.where(along < 0, self.dimer_strength * along * n, torch.zeros_like(n)))
            if self.base == "adam":
                m, v = state["m"], state["v"]
                m.mul_(group["beta1"]).add_(grad, alpha=1 - group["beta1"])
                v.mul_(group["beta2"]).addcmul_(grad, grad, value=1 - group["beta2"])
                m_hat = m / (1 - group["beta1"] ** s)
                v_hat = v / (1 - group["beta2"] ** s)
                p.add_(m_hat / (torch.sqrt(v_hat) + group["eps"]), alpha=-group["lr"])
            else:
                p.add_(grad, alpha=-group["lr"])
            return
        h = state["h"]
        if s == 1 and bool((h == 0).all()):
            h.copy_(grad**2)
        h.mul_(group["hessian_beta"]).add_(grad**2, alpha=1 - group["hessian_beta"])
        h_hat = h / (1 - group["hessian_beta"] ** s)
        if self.base == "adam":
            m, v = state["m"], state["v"]
            m.mul_(group["beta1"]).add_(grad, alpha=1 - group["beta1"])
            v.mul_(group["beta2"]).addcmul_(grad, grad, value=1 - group["beta2"])
            numerator = m / (1 - group["beta1"] ** s)
        else:
            numerator = grad
        clip = group["clip_ratio"]
        update = torch.clamp(numerator / (h_hat + group["eps"]), min=-clip, max=clip)
        p.add_(update, alpha=-group["lr"])
        p.add_(-self.dimer_strength * along * n)

    def state_dict(self) -> dict[str, Any]:
        """Torch's per-parameter state (N_p and the moments) plus the step and call counters."""
        state_dict = super().state_dict()
        state_dict["counters"] = {name: getattr(self, name) for name in _COUNTERS}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({"state": state_dict["state"], "param_groups": state_dict["param_groups"]})
        for name, value in state_dict["counters"].items():
            setattr(self, name, value)

    def diagnostics(self) -> dict[str, Any]:
        """``direction`` (all N_p concatenated, ``(d,)`` / ``(B, d)``), ``direction_finite``,
        ``grad_evals`` (closure calls that computed gradients), ``closure_calls``,
        ``rotation_events``, ``step``, ``curvature`` (NaN: the published code keeps none)."""
        params = self._params()
        rows = self._rows
        direction = flatten_rows([self.state[p]["n"] for p in params], params, rows, torch.float64)
        direction = direction[0] if self.batch_dims == 0 else direction
        return {
            "direction": direction,
            "direction_finite": bool(torch.isfinite(direction).all()),
            "grad_evals": self.grad_evals,
            "closure_calls": self.closure_calls,
            "rotation_events": self.rotation_events,
            "step": self.step_count,
            "curvature": math.nan,
        }
