"""The race clips through the optimizers' own mechanisms: DEO's ``max_grad_norm`` (g_mod) and
``torch.nn.utils.clip_grad_norm_`` in the closure for the others; nothing patches ``opt.base.step``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deo.escapes import escape_map, map_escape
from deo.optim import DEO
from deo.presets import PRESETS
from deo.race import OptimizerSpec, race, surface_problem
from landscapes.surfaces import SURFACES

CLIP, STEPS = 0.3, 40
START = (0.5, 1e-3)


def _by_hand(surface, opt, theta: torch.Tensor, clip_closure: float | None) -> np.ndarray:
    """Positions of a plain training loop: step(closure), the closure clipping with clip_grad_norm_."""

    def closure():
        opt.zero_grad()
        loss = surface.f(theta)
        loss.backward()
        if clip_closure is not None:
            torch.nn.utils.clip_grad_norm_([theta], clip_closure)
        return loss

    path = [theta.detach().clone()]
    for _ in range(STEPS):
        opt.step(closure)
        path.append(theta.detach().clone())
    return torch.stack(path).numpy()


def test_deo_in_the_race_is_deo_with_max_grad_norm():
    surface = SURFACES["saddle_plateau"]
    (trace,) = race(surface_problem(surface, START), [OptimizerSpec("deo_paper")], STEPS, seed=4, clip=CLIP)
    theta = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(4)
    hp = PRESETS["deo_paper"].resolve({})
    opt = DEO(
        [theta],
        seed=4,
        max_grad_norm=CLIP,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in hp.items()},
    )
    assert opt.base.step.__func__ is type(opt.base).step  # the base optimizer's own step
    np.testing.assert_array_equal(trace.position, _by_hand(surface, opt, theta, None))
    assert np.nanmax(trace.modified_grad_norm) <= CLIP
    assert trace.grad_norm[0] > CLIP  # it did clip


def test_torch_optimizers_in_the_race_clip_with_clip_grad_norm_in_the_closure():
    surface = SURFACES["saddle_plateau"]
    (trace,) = race(surface_problem(surface, START), [OptimizerSpec("adam")], STEPS, seed=4, clip=CLIP)
    theta = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    np.testing.assert_array_equal(trace.position, _by_hand(surface, opt, theta, CLIP))


@pytest.mark.parametrize("key", ["gd", "deo_escape"])
def test_the_escape_maps_per_row_clip_is_the_races_clip_row_by_row(key):
    surface = SURFACES["saddle_plateau"]
    starts = np.array([[0.5, 1e-3], [-0.8, 0.3], [0.1, -0.6]])
    results = escape_map(
        surface.f, starts, [OptimizerSpec(key)], STEPS, map_escape(surface), clip=CLIP, seed=2
    )
    (result,) = results.values()
    for b, start in enumerate(starts):  # row b of a batched DEO draws its first N from seed + b
        (trace,) = race(
            surface_problem(surface, tuple(start)), [OptimizerSpec(key)], STEPS, seed=2 + b, clip=CLIP
        )
        np.testing.assert_allclose(result.final[b], trace.position[-1], rtol=1e-9, atol=1e-12)


def test_the_escape_map_runs_the_published_code_unclipped_beside_clipped_entrants():
    """The published code has no clipping: a map with ``clip`` runs it as without one (it used to
    fail the whole map) while GD beside it is clipped."""
    surface = SURFACES["saddle_plateau"]
    starts = np.array([[0.5, 1e-3], [-0.8, 0.3]])
    specs = [OptimizerSpec("gd"), OptimizerSpec("deo_published")]
    clipped = escape_map(surface.f, starts, specs, STEPS, map_escape(surface), clip=CLIP, seed=2)
    free = escape_map(surface.f, starts, specs, STEPS, map_escape(surface), seed=2)
    gd, published = (PRESETS[s.key].label for s in specs)
    np.testing.assert_array_equal(clipped[published].final, free[published].final)
    assert not np.array_equal(clipped[gd].final, free[gd].final)
