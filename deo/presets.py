"""The optimizer presets the app, the race and the benchmarks offer (``DEO.md``, "Presets").

A :class:`Preset` is a key, a label, JSON-able default hyperparameters, a one-line description,
how a person sets each hyperparameter (:class:`Hyperparameter`: words, bounds, help; the app builds
its controls from it) and how it builds its optimizer (:meth:`Preset.build`, also reachable as
:func:`make_optimizer`). Every optimizer it returns accepts ``step(closure)`` (zero grads, forward,
backward, return the loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.optim import SGD, Adam, AdamW, Optimizer

from deo.baselines import CLOSURE_MODES, PGD, PUBLISHED_BASES, PUBLISHED_VARIANTS, PublishedDimer
from deo.optim import BASES, DEO, DIRECTIONS, ROTATIONS, SCHEMES, TARGETS

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


@dataclass(frozen=True)
class Hyperparameter:
    """How a person sets one hyperparameter: the words, the bounds of its control, a help text.

    ``low``/``high``/``step``: bounds and step of a numeric control (for a list value such as Adam's
    betas, of each entry; ``parts`` names the entries); ``integer``: whole numbers only; ``log``: a
    scale where factors of ten matter (a learning rate, the dimer length), see :meth:`decades`.
    ``choices``: the allowed words of a text setting. ``none``: what ``None`` means (shown in the
    empty control, e.g. "always"). ``main``: one of the few settings that tell what the preset does
    (the app shows them first, the others under "Advanced"); ``fixed``: part of what the preset is
    (a control's random direction), never offered as a control. ``follows``: left at its default,
    the value takes the one given to that other hyperparameter (a control re-draws its direction at
    every rotation event).
    """

    label: str
    help: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    integer: bool = False
    log: bool = False
    choices: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    none: str = ""
    main: bool = False
    fixed: bool = False
    follows: str | None = None

    def allows(self, value: Any) -> bool:
        """Whether ``value`` lies within these bounds or choices (``None`` where ``none`` says what
        it means; every entry of a list)."""
        if value is None:
            return bool(self.none)
        if self.choices:
            return value in self.choices
        if isinstance(value, list | tuple):
            return len(value) == len(self.parts) and all(self.allows(v) for v in value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False
        if self.integer and value != int(value):
            return False
        return self.low <= value <= self.high

    def decades(self) -> tuple[float, ...]:
        """The powers of ten within the bounds (the stops of a log-scale slider)."""
        if not self.log:
            raise ValueError(f"{self.label!r} is not a log-scale hyperparameter")
        first, last = math.ceil(math.log10(self.low)), math.floor(math.log10(self.high))
        return tuple(10.0**e for e in range(first, last + 1))


# ------------------------------------------------------------------------------- hyperparameters

LEARNING_RATE = Hyperparameter(
    "learning rate η",
    "Step size of the base optimizer (GD: θ ← θ − η·g). Too large diverges, too small crawls.",
    1e-6, 10.0, 1e-3, log=True, main=True,
)  # fmt: skip
MOMENTUM = Hyperparameter(
    "momentum β",
    "Heavy ball: each step adds β times the previous step (0 is plain gradient descent).",
    0.0, 0.999, 0.05, main=True,
)  # fmt: skip
BETAS = Hyperparameter(
    "Adam's averaging (β₁, β₂)",
    "Decay rates of Adam's running averages of the gradient (β₁) and of its square (β₂).",
    0.0, 0.9999, 0.001, parts=("gradient average β₁", "squared-gradient average β₂"),
)  # fmt: skip
EPS = Hyperparameter(
    "Adam's ε", "Added to Adam's denominator so that it never divides by zero.", 1e-12, 1e-2, 1e-8, log=True
)
WEIGHT_DECAY = Hyperparameter(
    "weight decay", "Shrinks the weights toward zero at every step (decoupled from the gradient in AdamW).",
    0.0, 1.0, 0.01, main=True,
)  # fmt: skip
DIMER_LENGTH = Hyperparameter(
    "dimer length ΔR",
    "Distance from the midpoint θ to the dimer end θ + ΔR·N. Too small: rounding noise swamps the "
    "finite difference; too large: the curvature of a wider region than the point.",
    1e-8, 1.0, 1e-3, log=True, main=True,
)  # fmt: skip
ROTATE_EVERY = Hyperparameter(
    "rotate the dimer every k steps",
    "One rotation event (the dimer turns toward the lowest-curvature direction) every k steps; 1 = "
    "every step. Each event costs extra gradients.",
    1, 1000, 1, integer=True, main=True,
)  # fmt: skip
ALPHA = Hyperparameter(
    "how much of the gradient along N to remove (α)",
    "The step uses g − α (g·N) N. α = 1 removes the part along N (the paper); α = −1 doubles it "
    "(escape downhill along N); α = 2 reverses it (climb to a saddle).",
    -3.0, 3.0, 0.5, main=True,
)  # fmt: skip
ROTATIONS_PER_EVENT = Hyperparameter(
    "rotation iterations per event (r)",
    "How many times the dimer turns at each rotation event (each ≈ one extra gradient). 0: it never "
    "turns, and each event only re-measures the curvature along its current orientation.",
    0, 50, 1, integer=True,
)  # fmt: skip
ROTATION = Hyperparameter(
    "rotation method",
    "lanczos / fourier: a trial orientation and a model of the curvature, jump to its lowest point; "
    "sd: a fixed step along the rotational force (needs a rotation step size).",
    choices=ROTATIONS,
)  # fmt: skip
ROTATION_STEP = Hyperparameter(
    "rotation step size (sd rotation only)",
    "Step of the sd rotation along the rotational force; stable below 2/(λₘₐₓ − λₘᵢₙ). Empty for "
    "the other rotations.",
    1e-6, 10.0, 1e-3, log=True, none="— (sd rotation only)",
)  # fmt: skip
SCHEME = Hyperparameter(
    "finite difference",
    "forward: ends θ and θ + ΔR·N (1 extra gradient, error ∝ ΔR); central: θ ± ΔR·N (2 extra "
    "gradients, error ∝ ΔR²).",
    choices=SCHEMES,
)  # fmt: skip
TARGET = Hyperparameter(
    "what α changes",
    "gradient: the base optimizer receives g − α (g·N) N; update: it receives g and its own step "
    "loses α times its part along N (no motion along N whatever the preconditioner).",
    choices=TARGETS,
)  # fmt: skip
GATE = Hyperparameter(
    "change the step only where the curvature C is below",
    "The gradient is modified only where the dimer's curvature estimate C is below this value "
    "(0: only at negative curvature). Empty: always.",
    -1e4, 1e4, 0.1, none="always",
)  # fmt: skip
NEGATIVE_CURVATURE_STEP = Hyperparameter(
    "extra step along N at negative curvature",
    "Where C < 0, also move this far along N, downhill (0 = off). Escapes even from exactly on a "
    "saddle, where the gradient is zero.",
    0.0, 10.0, 0.01,
)  # fmt: skip
DEO_BASE = Hyperparameter(
    "base optimizer", "The optimizer that takes the modified gradient: GD, momentum, Adam or AdamW.",
    choices=tuple(BASES),
)  # fmt: skip
DIRECTION = Hyperparameter(
    "direction N", "dimer: N turns toward the lowest-curvature direction; random: a random N, never turned.",
    choices=DIRECTIONS, fixed=True,
)  # fmt: skip
REDRAW_EVERY = Hyperparameter(
    "re-draw the random direction every k steps",
    "A fresh random N every k steps (a multiple of the rotation interval; left alone, it follows it).",
    1, 1000, 1, integer=True, follows="rotate_every",
)  # fmt: skip
KICK_BELOW = Hyperparameter(
    "kick when the gradient norm is below",
    "PGD adds a random kick when ‖g‖ falls below this value (a flat region or a saddle).",
    0.0, 10.0, 1e-3, main=True,
)  # fmt: skip
KICK_EVERY = Hyperparameter(
    "at most one kick every … steps", "PGD waits at least this many steps between two kicks.",
    1, 100_000, 1, integer=True, main=True,
)  # fmt: skip
KICK_RADIUS = Hyperparameter(
    "kick radius r", "PGD's kick is a random point of the ball of this radius.", 1e-6, 10.0, 1e-3, log=True,
    main=True,
)  # fmt: skip
PUBLISHED_BASE = replace(
    DEO_BASE, help="The optimizer of the published code: Adam or SGD.", choices=PUBLISHED_BASES
)
PUBLISHED_VARIANT = Hyperparameter(
    "code version",
    "v4: the published FINAL V4 optimizer; v7: the SOPHIA V7 one (its rotation climbs to the "
    "largest curvature).",
    choices=PUBLISHED_VARIANTS,
)  # fmt: skip
DIMER_STRENGTH = Hyperparameter(
    "dimer step strength",
    "The published code's extra step along N, scaled by (g·N): 5 in the authors' training script.",
    -100.0, 100.0, 0.1, main=True,
)  # fmt: skip
PUBLISHED_ROTATE_EVERY = replace(ROTATE_EVERY, help="The published code rotates its dimer every k steps.")
ROTATION_LR = Hyperparameter(
    "rotation step size", "The published code's step along the rotational force.", -10.0, 10.0, 0.01
)
CLOSURE_MODE = Hyperparameter(
    "closure",
    "working: the closure computes gradients (the one fix applied); published: forward-only, as the "
    "training script called it (the dimer then never sees a second gradient).",
    choices=CLOSURE_MODES,
)  # fmt: skip

ADAM_HYPERPARAMETERS = {"lr": LEARNING_RATE, "betas": BETAS, "eps": EPS}
DIMER_HYPERPARAMETERS = {
    "lr": LEARNING_RATE,
    "dimer_length": DIMER_LENGTH,
    "rotate_every": ROTATE_EVERY,
    "alpha": ALPHA,
    "base": DEO_BASE,
    "betas": BETAS,
    "eps": EPS,
    "rotations": ROTATIONS_PER_EVENT,
    "rotation": ROTATION,
    "rotation_step": ROTATION_STEP,
    "scheme": SCHEME,
    "target": TARGET,
    "gate": GATE,
    "nc_step": NEGATIVE_CURVATURE_STEP,
    "direction": DIRECTION,
    "redraw_every": REDRAW_EVERY,
}


# ---------------------------------------------------------------------------------------- builders
# builder(params, hp, batch_dims, seed) -> Optimizer; hp holds every hyperparameter of the preset.


def _sgd(params: Params, hp: dict, batch_dims: int, seed: int | None) -> Optimizer:
    return SGD(params, **hp)


def _adam(params: Params, hp: dict, batch_dims: int, seed: int | None) -> Optimizer:
    return Adam(params, **hp)


def _adamw(params: Params, hp: dict, batch_dims: int, seed: int | None) -> Optimizer:
    return AdamW(params, **hp)


def _pgd(params: Params, hp: dict, batch_dims: int, seed: int | None) -> Optimizer:
    return PGD(params, seed=seed, batch_dims=batch_dims, **hp)


def _published(params: Params, hp: dict, batch_dims: int, seed: int | None) -> Optimizer:
    return PublishedDimer(params, seed=seed, batch_dims=batch_dims, **hp)


def _deo(params: Params, hp: dict, batch_dims: int, seed: int | None) -> Optimizer:
    if hp["base"] not in ("adam", "adamw"):  # SGD takes neither
        hp = {k: v for k, v in hp.items() if k not in ("betas", "eps")}
    return DEO(params, seed=seed, batch_dims=batch_dims, **hp)


@dataclass(frozen=True)
class Preset:
    """One optimizer configuration; ``defaults`` are the hyperparameters a user may override.

    ``uses_dimer``: the optimizer probes with the closure (DEO, its random-direction controls, the
    published dimer), so the race clips only the update and never the probes.
    ``clippable``: the optimizer can clip its update (every preset but the published-code
    reproduction, whose code has no clipping: a race or map with ``clip`` runs it unclipped and its
    trace shows ``clip: None``).
    ``hyperparameters``: per name in ``defaults``, how a person sets it (:class:`Hyperparameter`).
    ``builder``: ``builder(params, hp, batch_dims, seed)`` builds the optimizer (:meth:`build`).
    """

    key: str
    label: str
    defaults: dict
    description: str
    uses_dimer: bool
    hyperparameters: dict[str, Hyperparameter]
    builder: Callable[[Params, dict, int, int | None], Optimizer]
    clippable: bool = True

    def resolve(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """Every hyperparameter: the defaults updated by ``overrides`` (a hyperparameter that
        ``follows`` another and is not overridden takes that one's value). Raises ValueError for
        a name the preset does not have, listing the allowed ones."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            allowed = sorted(self.defaults)
            raise ValueError(
                f"unknown hyperparameter(s) {unknown} for preset {self.key!r}; allowed: {allowed}"
            )
        hp = {**self.defaults, **overrides}
        for name, meta in self.hyperparameters.items():
            if meta.follows in overrides and name not in overrides:
                hp[name] = hp[meta.follows]
        return hp

    def build(
        self, params: Params, batch_dims: int = 0, seed: int | None = None, **overrides: Any
    ) -> Optimizer:
        """The optimizer on ``params`` with the defaults updated by ``overrides``.

        ``batch_dims`` (0 or 1) and ``seed`` go to the optimizers that need them (DEO, PGD, the
        published dimer); torch's element-wise optimizers treat batched rows independently anyway.
        Raises ValueError for an unknown hyperparameter (listing the allowed ones) and whatever the
        optimizer raises for a bad value.
        """
        if batch_dims not in (0, 1):
            raise ValueError(f"batch_dims must be 0 or 1, got {batch_dims!r}")
        hp = {k: tuple(v) if isinstance(v, list) else v for k, v in self.resolve(overrides).items()}
        return self.builder(params, hp, batch_dims, seed)

    def applied_clip(self, clip: float | None) -> float | None:
        """The gradient clip a run of this preset applies when ``clip`` is asked for: ``clip``, or
        None for a preset that cannot clip (``clippable``)."""
        return clip if self.clippable else None

    def check(self, overrides: dict[str, Any]) -> None:
        """Raise the ValueError :meth:`build` would raise for ``overrides`` (a combination no single
        control can refuse, e.g. ``rotation="sd"`` without a ``rotation_step``), by building the
        optimizer on a throw-away 2-vector (≈ 0.2 ms once torch's optimizers are imported)."""
        self.build([torch.zeros(2, dtype=torch.float64, requires_grad=True)], seed=0, **overrides)

    def main_hyperparameters(self) -> list[str]:
        """The names of the few hyperparameters that tell what the preset does, in display order."""
        return [name for name, meta in self.hyperparameters.items() if meta.main and not meta.fixed]

    def advanced_hyperparameters(self) -> list[str]:
        """The names of the other adjustable hyperparameters, in display order."""
        return [name for name, meta in self.hyperparameters.items() if not meta.main and not meta.fixed]


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


def _with(hyperparameters: dict[str, Hyperparameter], defaults: dict) -> dict[str, Hyperparameter]:
    """The entries of ``hyperparameters`` that ``defaults`` has, in ``hyperparameters``' order."""
    return {name: meta for name, meta in hyperparameters.items() if name in defaults}


def _deo_preset(key: str, label: str, defaults: dict, description: str) -> Preset:
    return Preset(key, label, defaults, description, True, _with(DIMER_HYPERPARAMETERS, defaults), _deo)


PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset("gd", "GD", {"lr": 0.01}, "Plain gradient descent (torch.optim.SGD).", False,
               {"lr": LEARNING_RATE}, _sgd),
        Preset("momentum", "Momentum", {"lr": 0.01, "momentum": 0.9}, "Heavy-ball SGD (torch.optim.SGD).",
               False, {"lr": LEARNING_RATE, "momentum": MOMENTUM}, _sgd),
        Preset("adam", "Adam", dict(_ADAM), "Adam (torch.optim.Adam), betas (0.9, 0.999).", False,
               ADAM_HYPERPARAMETERS, _adam),
        Preset(
            "adamw",
            "AdamW",
            {**_ADAM, "weight_decay": 0.01},
            "AdamW (torch.optim.AdamW), decoupled weight decay 0.01.",
            False,
            {"lr": LEARNING_RATE, "weight_decay": WEIGHT_DECAY, "betas": BETAS, "eps": EPS},
            _adamw,
        ),
        Preset(
            "pgd",
            "PGD",
            {"lr": 0.01, "g_thres": 1e-3, "t_thres": 10, "radius": 1e-2},
            "Perturbed GD (Jin et al. 2017): a random kick of radius r when the gradient is small.",
            False,
            {"lr": LEARNING_RATE, "g_thres": KICK_BELOW, "t_thres": KICK_EVERY, "radius": KICK_RADIUS},
            _pgd,
        ),
        _deo_preset(
            "deo_paper",
            "DEO (paper)",
            {**_ADAM, **_dimer(base="adam", rotate_every=10, alpha=1.0)},
            "DEO as in the paper: Adam on g − (g·N)N, N the dimer's min-curvature direction, "
            "rotated every 10 steps.",
        ),
        _deo_preset(
            "deo_escape",
            "DEO-escape",
            {"lr": 0.01, **_dimer(base="sgd", rotate_every=1, alpha=-1.0, gate=0.0)},
            "DEO on GD that doubles the step along N where the curvature is negative (α = −1, only "
            "where C < 0); under Advanced, an extra step along N at negative curvature escapes even "
            "from exactly on a saddle.",
        ),
        _deo_preset(
            "dimer_saddle_search",
            "Dimer saddle search",
            {"lr": 0.01, **_dimer(base="sgd", rotate_every=1, alpha=2.0)},
            "The chemists' dimer translation: GD on g − 2(g·N)N climbs along the min mode to a saddle.",
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
            "dimer step), with a working closure and the values their train.py passes (dimer strength "
            "5.0, dimer length 0.006; the optimizer file's own defaults are 0.1 and 1e-4).",
            True,
            {
                "lr": LEARNING_RATE,
                "displacement": DIMER_LENGTH,
                "rotation_interval": PUBLISHED_ROTATE_EVERY,
                "dimer_strength": DIMER_STRENGTH,
                "base": PUBLISHED_BASE,
                "variant": PUBLISHED_VARIANT,
                "rotation_lr": ROTATION_LR,
                "closure_mode": CLOSURE_MODE,
            },
            _published,
            clippable=False,
        ),
    )
}  # fmt: skip


DEO_PRESETS = ("deo_paper", "deo_escape", "dimer_saddle_search")
# The controls (``DEO(direction="random")``): the same preset with a random N that is never rotated —
# drawn once (the dimer run's own initial N for the same seed), or re-drawn at every rotation event.
# They run the same step and count the same gradient evaluations as the preset (DEO's cost
# accounting), so any difference between a DEO preset and its control is the rotation's doing.
CONTROL_SUFFIXES = {"random": "random fixed direction", "random_redrawn": "random direction, re-drawn"}


def _controls(preset: Preset) -> tuple[Preset, Preset]:
    k = preset.defaults["rotate_every"]
    every = "every step" if k == 1 else f"every {k} steps"
    fixed = _deo_preset(
        f"{preset.key}_random",
        f"{preset.label} — control: random fixed direction",
        {**preset.defaults, "direction": "random"},
        f"Control for {preset.label}: the same step and cost, but N is a random unit vector drawn once "
        "and never rotated (a DEO win it shares is symmetry breaking, not the min mode).",
    )
    redrawn = _deo_preset(
        f"{preset.key}_random_redrawn",
        f"{preset.label} — control: random direction, re-drawn {every}",
        {**preset.defaults, "direction": "random", "redraw_every": k},
        f"Control for {preset.label}: the same step and cost, but N is a fresh random unit vector at "
        f"every rotation event ({every}) instead of the dimer's rotated one.",
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


def make_optimizer(
    key: str,
    params: Params,
    batch_dims: int = 0,
    seed: int | None = None,
    **overrides: Any,
) -> Optimizer:
    """``PRESETS[key].build(params, batch_dims, seed, **overrides)`` (:meth:`Preset.build`).

    Raises ValueError for an unknown key (listing the presets) or hyperparameter.
    """
    if key not in PRESETS:
        raise ValueError(f"unknown preset {key!r}; allowed: {sorted(PRESETS)}")
    return PRESETS[key].build(params, batch_dims=batch_dims, seed=seed, **overrides)
