"""The optimizer presets the app, the race and the benchmarks offer (``DEO.md``, "Presets").

A :class:`Preset` is a key, a label, JSON-able default hyperparameters and a one-line description;
:func:`make_optimizer` builds the optimizer with the defaults updated by overrides. Every optimizer
it returns accepts ``step(closure)`` (zero grads, forward, backward, return the loss).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import Tensor
from torch.optim import SGD, Adam, AdamW, Optimizer

from deo.baselines import PGD, PublishedDimer
from deo.optim import DEO


@dataclass(frozen=True)
class Preset:
    """One optimizer configuration; ``defaults`` are the hyperparameters a user may override.

    ``uses_dimer``: the optimizer probes with the closure (DEO, its random-direction controls, the
    published dimer), so the race clips only the update and never the probes.
    """

    key: str
    label: str
    defaults: dict
    description: str
    uses_dimer: bool


_ADAM = {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}
# What the authors' train.py passes to their dimer optimizer (their dimer_adam_long log shows no
# override); the optimizer file's own defaults (0.1, 1e-4) were never used in the published runs.
PUBLISHED_TRAIN_PY = {"dimer_strength": 5.0, "displacement": 0.006}


def _dimer(**settings: Any) -> dict:
    """DEO hyperparameters: the shared dimer settings updated by ``settings``."""
    return {
        "dimer_length": 1e-3,
        "rotations": 1,
        "rotation": "fourier",
        "rotation_step": None,
        "scheme": "forward",
        "target": "gradient",
        "gate": None,
        "nc_step": 0.0,
        **settings,
    }


PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset("gd", "GD", {"lr": 0.01}, "Plain gradient descent (torch.optim.SGD).", False),
        Preset(
            "momentum", "Momentum", {"lr": 0.01, "momentum": 0.9}, "Heavy-ball SGD (torch.optim.SGD).", False
        ),
        Preset("adam", "Adam", dict(_ADAM), "Adam (torch.optim.Adam), betas (0.9, 0.999).", False),
        Preset(
            "adamw",
            "AdamW",
            {**_ADAM, "weight_decay": 0.01},
            "AdamW (torch.optim.AdamW), decoupled weight decay 0.01.",
            False,
        ),
        Preset(
            "pgd",
            "PGD",
            {"lr": 0.01, "g_thres": 1e-3, "t_thres": 10, "radius": 1e-2},
            "Perturbed GD (Jin et al. 2017): a random kick of radius r when the gradient is small.",
            False,
        ),
        Preset(
            "deo_paper",
            "DEO (paper)",
            {**_ADAM, **_dimer(base="adam", rotate_every=10, alpha=1.0)},
            "DEO as in the paper: Adam on g − (g·N)N, N the dimer's min-curvature direction, "
            "rotated every 10 steps.",
            True,
        ),
        Preset(
            "deo_escape",
            "DEO-escape",
            {"lr": 0.01, **_dimer(base="sgd", rotate_every=1, alpha=-1.0, gate=0.0)},
            "DEO on GD that doubles the step along N where the curvature is negative (α = −1, gate "
            "C < 0); set nc_step > 0 to escape even from exactly on a saddle.",
            True,
        ),
        Preset(
            "dimer_saddle_search",
            "Dimer saddle search",
            {"lr": 0.01, **_dimer(base="sgd", rotate_every=1, alpha=2.0)},
            "The chemists' dimer translation: GD on g − 2(g·N)N climbs along the min mode to a saddle.",
            True,
        ),
        Preset(
            "deo_published",
            "DEO (published code)",
            {
                "lr": 0.01,
                "base": "adam",
                "variant": "v4",
                "dimer_strength": PUBLISHED_TRAIN_PY["dimer_strength"],
                "rotation_interval": 10,
                "rotation_lr": 0.1,
                "displacement": PUBLISHED_TRAIN_PY["displacement"],
                "closure_mode": "working",
            },
            "Reproduction of the authors' published optimizer (per-tensor N, published rotation and "
            "dimer step), with a working closure and the values their train.py passes (dimer_strength "
            "5.0, displacement 0.006; the optimizer file's own defaults are 0.1 and 1e-4).",
            True,
        ),
    )
}


DEO_PRESETS = ("deo_paper", "deo_escape", "dimer_saddle_search")
# The controls (``DEO(direction="random")``): the same preset with a random N that is never rotated —
# drawn once (the dimer run's own initial N for the same seed), or re-drawn at every rotation event.
# They run the same step and count the same gradient evaluations as the preset (DEO's cost
# accounting), so any difference between a DEO preset and its control is the rotation's doing.
CONTROL_SUFFIXES = {"random": "random fixed direction", "random_redrawn": "random direction, re-drawn"}


def _controls(preset: Preset) -> tuple[Preset, Preset]:
    k = preset.defaults["rotate_every"]
    every = "every step" if k == 1 else f"every {k} steps"
    fixed = Preset(
        f"{preset.key}_random",
        f"{preset.label} — control: random fixed direction",
        {**preset.defaults, "direction": "random"},
        f"Control for {preset.label}: the same step and cost, but N is a random unit vector drawn once "
        "and never rotated (a DEO win it shares is symmetry breaking, not the min mode).",
        True,
    )
    redrawn = Preset(
        f"{preset.key}_random_redrawn",
        f"{preset.label} — control: random direction, re-drawn {every}",
        {**preset.defaults, "direction": "random", "redraw_every": k},
        f"Control for {preset.label}: the same step and cost, but N is a fresh random unit vector at "
        f"every rotation event ({every}) instead of the dimer's rotated one.",
        True,
    )
    return fixed, redrawn


# each DEO preset is followed by its two controls (the order the app lists them in)
PRESETS = {
    item.key: item
    for preset in PRESETS.values()
    for item in ((preset, *_controls(preset)) if preset.key in DEO_PRESETS else (preset,))
}


def controls_of(key: str) -> tuple[str, ...]:
    """The control presets of DEO preset ``key`` (fixed, re-drawn), or () when it has none."""
    return tuple(f"{key}_{suffix}" for suffix in CONTROL_SUFFIXES) if key in DEO_PRESETS else ()


def _check_overrides(preset: Preset, overrides: dict[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(preset.defaults))
    if unknown:
        allowed = sorted(preset.defaults)
        raise ValueError(f"unknown hyperparameter(s) {unknown} for preset {preset.key!r}; allowed: {allowed}")


def make_optimizer(
    key: str,
    params: Iterable[Tensor] | Iterable[dict[str, Any]],
    batch_dims: int = 0,
    seed: int | None = None,
    **overrides: Any,
) -> Optimizer:
    """Build preset ``key`` on ``params`` with its defaults updated by ``overrides``.

    ``batch_dims`` (0 or 1) and ``seed`` go to the optimizers that need them (DEO, PGD, the
    published dimer); torch's element-wise optimizers treat batched rows independently anyway.
    Raises ValueError for an unknown key or hyperparameter, listing the allowed ones.
    """
    if key not in PRESETS:
        raise ValueError(f"unknown preset {key!r}; allowed: {sorted(PRESETS)}")
    if batch_dims not in (0, 1):
        raise ValueError(f"batch_dims must be 0 or 1, got {batch_dims!r}")
    preset = PRESETS[key]
    _check_overrides(preset, overrides)
    hp = {**preset.defaults, **overrides}
    if key.endswith("_random_redrawn") and "rotate_every" in overrides and "redraw_every" not in overrides:
        hp["redraw_every"] = hp["rotate_every"]  # the control re-draws at every rotation event
    if "betas" in hp:
        hp["betas"] = tuple(hp["betas"])
    if key in ("gd", "momentum"):
        return SGD(params, **hp)
    if key == "adam":
        return Adam(params, **hp)
    if key == "adamw":
        return AdamW(params, **hp)
    if key == "pgd":
        return PGD(params, seed=seed, batch_dims=batch_dims, **hp)
    if key == "deo_published":
        return PublishedDimer(params, seed=seed, batch_dims=batch_dims, **hp)
    if hp["base"] not in ("adam", "adamw"):
        hp.pop("betas", None)
        hp.pop("eps", None)
    return DEO(params, seed=seed, batch_dims=batch_dims, **hp)
