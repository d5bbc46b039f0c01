"""DEO — Dimer-Enhanced Optimization, implemented correctly.

The dimer method estimates the Hessian's minimum-curvature direction from gradients only; the
:class:`DEO` optimizer wraps SGD / momentum / Adam / AdamW and modifies the gradient along it.

Public API (stable): ``DEO``, ``min_mode``, ``exact_min_eig``; see ``docs/API.md`` for the rest.
Submodules are imported on first use, so ``import deo`` stays cheap.
"""

from deo.exports import lazy_exports

_EXPORTS = {
    # dimer maths (functional, batched over leading dims)
    "min_mode": "deo.dimer",
    "probe": "deo.dimer",
    "modify_gradient": "deo.dimer",
    # the optimizer and baselines
    "DEO": "deo.optim",
    "PGD": "deo.baselines",
    "PublishedDimer": "deo.baselines",
    # ground truth
    "exact_min_eig": "deo.hessian",
    "exact_eigh": "deo.hessian",
    "lanczos_min_eig": "deo.hessian",
    # studies of one dimer at one point (the Dimer page's)
    "rotation_run": "deo.dimer_studies",
    "rotation_convergence": "deo.dimer_studies",
    "finite_difference_errors": "deo.dimer_studies",
    # presets, the race and traces
    "PRESETS": "deo.presets",
    "make_optimizer": "deo.presets",
    "race": "deo.race",
    "escape_map": "deo.race",
    "surface_escape_map": "deo.escapes",
    "Problem": "deo.race",
    "EscapeCriterion": "deo.race",
    "OptimizerSpec": "deo.race",
    "surface_problem": "deo.race",
    "network_problem": "deo.race",
    "Trace": "deo.trace",
    "traces_to_json": "deo.trace",
    "traces_from_json": "deo.trace",
    "traces_to_csv": "deo.trace",
    "traces_from_csv": "deo.trace",
    # sweeps (Ray; the module is deo.sweeps so that deo.sweep stays the function)
    "sweep": "deo.sweeps",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
