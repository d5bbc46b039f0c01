"""``min_mode(record=True)``'s history carries the gradient evaluations counted up to each iteration
(the Dimer page's convergence plot uses them instead of spreading the total evenly)."""

from __future__ import annotations

import pytest
import torch

from deo.dimer import min_mode


def _problem():
    generator = torch.Generator().manual_seed(3)
    d = 12
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=generator))
    h = q @ torch.diag(torch.linspace(-1.0, 2.0, d, dtype=torch.float64)) @ q.T
    return h, torch.randn(d, dtype=torch.float64, generator=generator)


@pytest.mark.parametrize("rotation", ["lanczos", "fourier", "sd"])
@pytest.mark.parametrize("scheme", ["forward", "central"])
def test_history_grad_evals_are_the_calls_made_up_to_each_iteration(rotation, scheme):
    h, x = _problem()
    calls = [0]

    def grad_fn(y):
        calls[0] += 1
        return y @ h

    kwargs = {"rotation": rotation, "scheme": scheme, "seed": 1, "torque_tol": 0.0, "rotation_step": 0.3}
    _, _, info = min_mode(grad_fn, x, max_iterations=5, record=True, **kwargs)
    history = info["history"]
    assert len(history) == info["iterations"] == 5
    assert history[-1]["grad_evals"] == info["grad_evals"] == calls[0]
    for j, entry in enumerate(history, start=1):  # a run stopped after j iterations made that many calls
        calls[0] = 0
        _, _, short = min_mode(grad_fn, x, max_iterations=j, **kwargs)
        assert entry["grad_evals"] == short["grad_evals"] == calls[0]
