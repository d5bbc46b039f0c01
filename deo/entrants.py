"""The entrants of a race or an escape map: which optimizer, its shown hyperparameters, clipping and
its gradient count.

An :class:`OptimizerSpec` names a preset of :mod:`deo.presets` with overrides of its defaults and an
optional display label. :func:`_optimizer_setup` checks it and returns the hyperparameters a trace
shows (preset defaults, overrides, ``clip`` and ``seed``); :func:`_algorithm_evals` is the
algorithm's gradient count. Shared by :mod:`deo.race` and :mod:`deo.escapes`.

Gradient clipping (``clip``, a maximum global norm, per row when batched) acts on the *update* only,
never on a dimer probe, with one rule everywhere: ``torch.nn.utils.clip_grad_norm_``'s (scale
``min(1, clip/(‖g‖ + 1e-6))``):

* presets without a dimer (GD, momentum, Adam, AdamW, PGD): the closure clips ``p.grad`` after every
  backward (:func:`_clip_grads_`: ``clip_grad_norm_`` itself, or its rule per row when batched), so
  the optimizer only ever sees clipped gradients;
* DEO presets: the closure never clips (the dimer ends must be raw gradients, ``DEO.md``); DEO's own
  ``max_grad_norm`` clips g_mod, the gradient its base optimizer receives (:func:`_clip_update`);
  ``diagnostics()["modified_grad"]`` is that clipped g_mod (the trace's ``modified_grad``);
* the published-code reproduction has no clipping in its code and no separate base optimizer to clip
  before (``Preset.clippable`` is False): it runs unclipped, and its trace's hyperparams show
  ``clip: None`` (the applied value, not the requested one), so the others can still be clipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from deo.optim import DEO
from deo.presets import PRESETS
from deo.trace import jsonable

ProgressFn = Callable[[float, str], None]


def import_optimizer_internals() -> None:
    """Import what ``torch.optim`` imports lazily at its first step (``torch._dynamo``: ≈ 1–2 s in a
    fresh process) before a race or a map starts its clocks, so that cost is not charged to the
    wall time of whichever entrant runs first (the CLI's "time s": GD 1.53 s against Adam 0.09 s
    for three steps; swapped, Adam paid it). Free once imported."""
    import torch._dynamo  # noqa: F401


@dataclass
class OptimizerSpec:
    """A preset key, overrides of its defaults, and an optional display label."""

    key: str
    hyperparams: dict = field(default_factory=dict)
    label: str | None = None


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _clip_grads_(params: Sequence[Tensor], max_norm: float, batch_dims: int = 0) -> None:
    """Clip the gradients of ``params`` in place by ``torch.nn.utils.clip_grad_norm_``'s rule: the
    global norm over all of them (``batch_dims=0``; clip_grad_norm_ itself), or per row of dim 0
    (``batch_dims=1``: row b's norm over every parameter's row b, scale ``min(1, max/(‖g_b‖ + 1e-6))``,
    the rule DEO's ``max_grad_norm`` applies per row)."""
    if batch_dims == 0:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    grads = [p.grad for p in params]
    rows = grads[0].shape[0]
    total = torch.sqrt(sum((g.reshape(rows, -1) ** 2).sum(1) for g in grads))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.reshape(rows, *([1] * (g.dim() - 1))).to(g.dtype))


def _label(spec: OptimizerSpec) -> str:
    """The display label: the spec's own, else the preset's (the key when unknown)."""
    return spec.label or (PRESETS[spec.key].label if spec.key in PRESETS else spec.key)


def _optimizer_setup(spec: OptimizerSpec, clip: float | None, seed: int):
    """(preset, hyperparams shown in the trace: preset defaults, overrides, the clip applied — None
    for a preset that cannot clip — and seed). The run clips with ``shown["clip"]``."""
    if spec.key not in PRESETS:
        raise ValueError(f"unknown optimizer {spec.key!r}; allowed: {sorted(PRESETS)}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0 (a maximum gradient norm) or None, got {clip}")
    preset = PRESETS[spec.key]
    shown = jsonable({**preset.defaults, **spec.hyperparams, "clip": preset.applied_clip(clip), "seed": seed})
    return preset, shown


def clip_note(clip: float | None, specs: Sequence[OptimizerSpec]) -> str | None:
    """The line a page shows under a race or map run with ``clip``: None when clipping is off, else
    the bound and the entrants that run unclipped (a preset that cannot clip, :func:`_optimizer_setup`)."""
    if clip is None:
        return None
    unclipped = [_label(s) for s in specs if s.key in PRESETS and not PRESETS[s.key].clippable]
    text = f"Clipping on: ‖g‖ ≤ {clip:g} for every optimizer"
    if unclipped:
        text += f" but {', '.join(dict.fromkeys(unclipped))}, whose code has no clipping: it runs unclipped"
    return text + "."


def _clip_update(opt, clip: float | None) -> None:
    """Clip a dimer optimizer's update with its own mechanism: DEO's ``max_grad_norm`` (set in every
    parameter group; DEO reads it there at every step). ``clip=None`` leaves the optimizer as
    built; a dimer optimizer without a base optimizer refuses it (the published-code reproduction
    never gets here: :func:`_optimizer_setup` applies no clip to it)."""
    if clip is None:
        return
    if not isinstance(opt, DEO):
        raise ValueError(
            f"clip is not supported for {type(opt).__name__}: it has no base optimizer to clip "
            "the update before, and clipping in the closure would clip the dimer ends"
        )
    for group in opt.param_groups:
        group["max_grad_norm"] = float(clip)


def _algorithm_evals(opt, closure_calls: int) -> int:
    """The algorithm's gradient evaluations so far: the optimizer's own ``diagnostics()["grad_evals"]``
    where it keeps one (DEO, PGD, the published dimer, whose forward-only calls are not gradients),
    else the closure calls (torch's optimizers: one per step)."""
    if hasattr(opt, "diagnostics"):
        return int(opt.diagnostics()["grad_evals"])
    return closure_calls
