"""The race's fast paths (issue 9: less Python per step) change no result.

``tests/data/race_reference.json.gz`` holds the traces of :func:`cases` as the race computed them
before the fast paths (commit 53d98d2, written by this file's ``--write``), written again from the
tree after 0e586b3, where one problem's DEO step (``batch_dims=0``) took the per-parameter path
and the Gram-matrix rotation event at every d (before: d ≥ 64 only), which rounds differently.
Against the traces before it, that change kept every exact field below (statuses, steps, escape
and stop steps, counts) in every case. In the float64 cases the floats moved by at most 6.7e-7
relative where |x| > 1e-6 (9.2e-8 absolute: the exact λ_min along a DEO (paper) run that stays on
its saddle, where Adam scales a gradient component that is zero but for rounding), the torque by
1.2e-6 relative (2.5e-11 absolute). In the float32 case the curvature and N moved within their
finite differences' own error (float32 ε/ΔR ≈ 1e-4: N by ≤ 2e-4 an entry), the torque, which sits
at that noise level, by more, as did every field once the run diverges. Each case is run again
and compared field by field: statuses, steps, escape / stop steps and counts exactly; floats
(positions, losses, gradients, dimer fields, exact eigenpairs) to 1e-9 relative. The cases cover
the default Surfaces race (five presets, the page's learning rates), clipping with ``record_every``,
a run that escapes and then diverges, ``stop_on_escape``, a network problem (several leaves, exact
Hessians), a float32 problem with its own ``project_2d`` and a single-leaf problem with one.

Write the reference from another tree (the code before a change):
``python tests/test_race_speed_equivalence.py --write --tree /path/to/that/tree``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parent / "data" / "race_reference.json.gz"
RTOL, ATOL = 1e-9, 1e-12
EXACT = ("key", "label", "hyperparams", "status", "stop_step", "escape_step", "steps", "grad_evals",
         "diagnostic_evals")  # fmt: skip


def cases() -> dict:
    """name → a function running one race (traces)."""
    import torch

    import landscapes
    from deo.presets import PRESETS
    from deo.race import OptimizerSpec, Problem, network_problem, race, surface_problem

    def surface_specs(surface, keys):
        out = []
        for key in keys:
            extra = surface.race.hyperparams(key, PRESETS[key].defaults)
            overrides = {k: v for k, v in extra.items() if v != PRESETS[key].defaults.get(k)}
            out.append(OptimizerSpec(key, overrides, PRESETS[key].label))
        return out

    def default_race():
        surface = landscapes.SURFACES["saddle_plateau"]
        keys = ["gd", "adam", "deo_paper", "deo_escape", "deo_escape_random"]
        return race(surface_problem(surface, surface.default_start), surface_specs(surface, keys), 40)

    def clipped():
        surface = landscapes.SURFACES["double_well"]
        specs = surface_specs(surface, ["gd", "pgd", "deo_escape"])
        problem = surface_problem(surface, surface.default_start, offset=1e-4)
        return race(problem, specs, 45, seed=3, clip=0.5, record_every=7)

    def diverges():
        surface = landscapes.SURFACES["saddle"]
        specs = [OptimizerSpec("gd", {"lr": 0.4}), OptimizerSpec("deo_escape", {"lr": 0.4})]
        return race(surface_problem(surface, (1.0, 0.5), offset=1e-3), specs, 40)

    def stop_on_escape():
        surface = landscapes.SURFACES["saddle_plateau"]
        specs = surface_specs(surface, ["adam", "deo_escape"])
        problem = surface_problem(surface, surface.default_start, offset=0.3)
        return race(problem, specs, 300, stop_on_escape=True)

    def network():
        problem = network_problem(landscapes.make_network("xor"), init_scale=1e-2, seed=1)
        specs = [OptimizerSpec("adam", {"lr": 0.05}), OptimizerSpec("deo_escape", {"lr": 0.05})]
        return race(problem, specs, 24, seed=2, record_every=5)

    def float32_projected():
        target = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float32)
        problem = Problem(
            name="f32",
            params0={"a": torch.tensor([0.1, 0.2], dtype=torch.float32), "b": torch.tensor([0.3])},
            loss=lambda p, batch: ((torch.cat([p["a"], p["b"]]) - target) ** 2).sum()
            - (p["a"][0] * p["b"][0]) ** 2,
            project_2d=lambda theta: theta[:2] * 2.0,
            converge_tol=1e-6,
        )
        specs = [OptimizerSpec("gd", {"lr": 0.05}), OptimizerSpec("deo_escape", {"lr": 0.05})]
        return race(problem, specs, 30)

    def single_leaf_projected():
        problem = Problem(
            name="one_leaf",
            params0={"w": torch.tensor([0.5, 1e-3, -0.2], dtype=torch.float64)},
            loss=lambda p, batch: p["w"][0] ** 2 - p["w"][1] ** 2 + p["w"][1] ** 4 + p["w"][2] ** 2,
            project_2d=lambda theta: theta[1:],
            exact_hessian=True,
            bound=50.0,
            converge_tol=1e-6,
        )
        specs = [OptimizerSpec("momentum", {"lr": 0.05}), OptimizerSpec("deo_paper", {"lr": 0.05})]
        return race(problem, specs, 50)

    return {
        "default_race": default_race,
        "clipped": clipped,
        "diverges": diverges,
        "stop_on_escape": stop_on_escape,
        "network": network,
        "float32_projected": float32_projected,
        "single_leaf_projected": single_leaf_projected,
    }


def _close(a, b) -> bool:
    import numpy as np

    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True))


def _differences(reference: list[dict], traces) -> list[str]:
    from deo.trace import Trace

    ours = [t.to_dict() for t in traces]
    if len(ours) != len(reference):
        return [f"{len(ours)} traces, the reference has {len(reference)}"]
    out = []
    for ref, now in zip(reference, ours):
        Trace.from_dict(ref)  # the stored reference is a valid trace
        for name, value in ref.items():
            if name == "wall_time":
                continue
            if name in EXACT:
                if now[name] != value:
                    out.append(f"{ref['key']}.{name}: {now[name]!r:.80} != {value!r:.80}")
            elif not _close(now[name], value):
                out.append(f"{ref['key']}.{name}")
    return out


def _load() -> dict:
    return json.loads(gzip.decompress(REFERENCE.read_bytes()).decode())


def test_every_case_of_the_reference_is_run():
    assert sorted(_load()) == sorted(cases())


def test_the_race_reproduces_the_reference_traces(one_torch_thread):
    reference = _load()
    failures = {}
    for name, run in cases().items():
        diff = _differences(reference[name], run())
        if diff:
            failures[name] = diff[:8]
    assert not failures, failures


def test_the_comparison_catches_a_changed_trace():
    """The check above can fail: a trace one ulp-scale step off, or with another status, differs."""
    reference = _load()["diverges"]
    from deo.trace import Trace

    traces = [Trace.from_dict(d) for d in reference]
    assert _differences(reference, traces) == []
    traces[0].loss = traces[0].loss * (1 + 1e-6)
    traces[1].status = "running" if traces[1].status != "running" else "escaped"
    diff = _differences(reference, traces)
    assert any(d.startswith("gd.loss") for d in diff) and any(".status" in d for d in diff)
    assert math.isfinite(RTOL)


def test_a_run_saved_between_steps_continues_bit_for_bit(one_torch_thread):
    """The race's resume hook (``deo.race._Run.state_dict`` / ``load_state_dict``, what
    ``deo.sweeps.run_cell`` checkpoints): stopped at step 23 and continued in a fresh run, every later
    step is the uninterrupted run's."""
    import landscapes
    from deo.race import OptimizerSpec, _Run, surface_problem

    surface = landscapes.SURFACES["saddle_plateau"]

    def fresh(key):
        problem = surface_problem(surface, surface.default_start)
        return _Run(problem, OptimizerSpec(key, {"lr": 0.05}), 60, seed=4)

    def interrupted(key, at):
        run, saved = fresh(key), {}

        def before(t):
            if t == at:
                saved["state"] = run.state_dict()

        for s in run.steps(before=before):
            if s.t == at:
                return saved["state"]

    for key in ("adam", "deo_escape"):
        first = fresh(key)
        whole = [(s.t, s.loss, s.g.tolist(), s.evals_before) for s in first.steps()]
        second = fresh(key)
        second.load_state_dict(interrupted(key, 23))
        rest = [(s.t, s.loss, s.g.tolist(), s.evals_before) for s in second.steps()]
        assert rest == whole[23:], key
        assert (second.final_status(), second.escape_step) == (first.final_status(), first.escape_step)


def _write(tree: Path) -> None:
    import torch

    sys.path.insert(0, str(tree))
    torch.set_num_threads(1)
    out = {name: [t.to_dict() for t in run()] for name, run in cases().items()}
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_bytes(gzip.compress(json.dumps(out, allow_nan=False).encode(), mtime=0))
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size} bytes) from {tree}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="write the reference traces from a tree")
    parser.add_argument("--write", action="store_true", required=True)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1])
    _write(parser.parse_args().tree.resolve())
