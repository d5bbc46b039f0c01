"""The entrants of a race or an escape map: which optimizer, its shown hyperparameters, clipping and
its gradient count.

An :class:`OptimizerSpec` names a preset of :mod:`deo.presets` with overrides of its defaults and an
optional display label. :func:`_optimizer_setup` checks it and returns the hyperparameters a trace
shows (preset defaults, overrides, ``clip`` and ``seed``); :func:`_algorithm_evals` is the
algorithm's gradient count. Shared by :mod:`deo.race` and :mod:`deo.escapes`.

Gradient clipping (``clip``, a maximum global norm ``‖g‖ ≤ clip``, per row when batched) acts on the
*update* only, never on a dimer probe:

* presets without a dimer (GD, momentum, Adam, AdamW, PGD): the closure rescales ``p.grad`` after
  every backward, so the optimizer only ever sees clipped gradients;
* DEO presets: the closure never clips (the dimer ends must be raw gradients, ``DEO.md``). DEO
  writes g_mod into ``p.grad`` and calls its base optimizer's ``step``; the race wraps that one
  bound method of the DEO instance (``opt.base.step``) to clip g_mod just before the base step.
  The same wrapper records what the base optimizer received (the trace's ``modified_grad``);
* the published-code reproduction has no separate base optimizer: ``clip`` is refused for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from deo.presets import PRESETS
from deo.trace import jsonable

ProgressFn = Callable[[float, str], None]


@dataclass
class OptimizerSpec:
    """A preset key, overrides of its defaults, and an optional display label."""

    key: str
    hyperparams: dict = field(default_factory=dict)
    label: str | None = None


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _clip_(grads: list[Tensor], max_norm: float, batch_dims: int = 0) -> None:
    """Rescale gradients in place to a global norm ≤ ``max_norm`` (per row of dim 0 when batched)."""
    if batch_dims == 0:
        total = torch.sqrt(sum((g.to(torch.float64) ** 2).sum() for g in grads))
        scale = torch.clamp(max_norm / torch.clamp(total, min=torch.finfo(torch.float64).tiny), max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
        return
    rows = grads[0].shape[0]
    total = torch.sqrt(sum((g.reshape(rows, -1).to(torch.float64) ** 2).sum(1) for g in grads))
    scale = torch.clamp(max_norm / torch.clamp(total, min=torch.finfo(torch.float64).tiny), max=1.0)
    for g in grads:
        g.mul_(scale.reshape(rows, *([1] * (g.dim() - 1))).to(g.dtype))


def _label(spec: OptimizerSpec) -> str:
    """The display label: the spec's own, else the preset's (the key when unknown)."""
    return spec.label or (PRESETS[spec.key].label if spec.key in PRESETS else spec.key)


def _optimizer_setup(spec: OptimizerSpec, clip: float | None, seed: int):
    """(preset, hyperparams shown in the trace: preset defaults, overrides, clip and seed)."""
    if spec.key not in PRESETS:
        raise ValueError(f"unknown optimizer {spec.key!r}; allowed: {sorted(PRESETS)}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0 (a maximum gradient norm) or None, got {clip}")
    preset = PRESETS[spec.key]
    shown = jsonable({**preset.defaults, **spec.hyperparams, "clip": clip, "seed": seed})
    return preset, shown


class _BaseStepTap:
    """Sees (and clips) what a dimer optimizer's base optimizer receives.

    DEO writes g_mod into ``p.grad`` and calls ``opt.base.step()``; the dimer ends were evaluated
    before, from raw gradients. Wrapping that one call clips the *update* only and records the
    gradient the base optimizer really received (g_mod, or g for ``target="update"``).
    """

    def __init__(self, opt, clip: float | None, batch_dims: int):
        self.received: Tensor | None = None
        if not isinstance(getattr(opt, "base", None), torch.optim.Optimizer):
            if clip is not None:
                raise ValueError(
                    f"clip is not supported for {type(opt).__name__}: it has no base optimizer to clip "
                    "the update before, and clipping in the closure would clip the dimer ends"
                )
            return
        base = opt.base
        inner = base.step

        def step(*args, **kwargs):
            grads = [p.grad for group in base.param_groups for p in group["params"] if p.grad is not None]
            if clip is not None:
                _clip_(grads, clip, batch_dims)
            if batch_dims == 0:
                self.received = _flat(grads).clone()
            return inner(*args, **kwargs)

        base.step = step


def _algorithm_evals(opt, closure_calls: int) -> int:
    """The algorithm's gradient evaluations so far: the optimizer's own ``diagnostics()["grad_evals"]``
    where it keeps one (DEO, PGD, the published dimer, whose forward-only calls are not gradients),
    else the closure calls (torch's optimizers: one per step)."""
    if hasattr(opt, "diagnostics"):
        return int(opt.diagnostics()["grad_evals"])
    return closure_calls
