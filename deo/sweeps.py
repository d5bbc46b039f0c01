"""Sweeps: problems × presets × hyperparameter grids × seeds, one cell per run, on Ray.

``python -m deo sweep CONFIG`` and :func:`sweep` read a TOML config (stdlib ``tomllib``), expand it into
cells and run every cell that is not finished yet as a Ray task (local Ray started in-process by
default, ``address=`` for an existing cluster). Each finished cell becomes one row of a tidy table
(``results.parquet`` and ``results.csv`` in the output folder) that carries the cell's config, the git
revision and the package versions it ran with.

A config::

    name = "escape_table"
    budget = 1000              # steps per run
    seeds = 10                 # 0..9, or a list [0, 3, 7]
    stop_on_escape = true      # end a run at its escape step (escape-time sweeps)
    threads = 1                # torch intra-op threads per cell
    checkpoint_every = 0       # steps between checkpoints of a long cell (0: none)
    cells_per_task = "auto"    # cells run one after another in one Ray task (tiny cells)

    [[problems]]
    label = "x²−y², (1, 1e-3)"
    surface = "saddle"         # a key of landscapes.SURFACES; or formula = "x**2 - y**2";
    start = [1.0, 1e-3]        # or network = "two_moons" (+ options = {...}, init_scale = 1e-3);
                               # or factory = "package.module:function" (+ args = {...})

    [[optimizers]]
    preset = "gd"              # a key of deo.presets.PRESETS
    label = "GD"
    hp = { lr = 0.01 }         # fixed overrides of the preset's defaults
    grid = { lr = [0.003, 0.01, 0.03] }   # one axis per key: the cells are the product

Cells. A cell is (problem, preset, overrides incl. one grid point, seed, budget, clip); its key is a
hash of exactly those (labels, threads and checkpointing excluded: they do not change the result).
The seed is the race's seed (``torch.manual_seed``, the dimer's initial N, PGD's noise) and, for
networks, the initialisation seed. A cell runs the race's own loop (``deo.race._Run``: closure,
optimizer setup, clipping, checks), checkpointed and continued through its ``state_dict`` /
``load_state_dict`` hook; :func:`run_cell` gives the same escape
step, gradient evaluations and losses as :func:`deo.race.race` (``tests/test_sweep.py`` checks it).

Metrics per cell: ``status`` (as the race's), ``escape_step`` and ``grad_evals_to_escape`` (NaN: not
within the budget), ``steps`` (last step reached), ``grad_evals`` (the algorithm's, total),
``final_loss``, ``best_loss`` (over every step's loss), ``final_grad_norm``, the dimer's last
``curvature`` and ``torque`` (dimer presets), ``lambda_min`` (exact, at the final point, for
problems with an exact Hessian), ``wall_s`` and ``cpu_s`` (all attempts), ``resumed_from`` (the
checkpointed step the last attempt continued from, 0 if none), ``attempt`` and ``worker``.

Other cells (``runner``). A config may name ``runner = "package.module:function"`` and ``options = {...}``:
each cell then calls ``function(cell, checkpoint_dir)`` instead of the race, with the problem's ``args``,
the optimizer entry's ``preset`` (a run name the runner knows: a key of the module's ``RUNS`` when it
has one) and ``hp``, the seed, the budget and the options in ``cell["spec"]``; it returns the row's
metrics (scalars) and checkpoints itself under ``checkpoint_dir`` every ``checkpoint_every`` steps.
The paper's char-GPT runs are such cells (``benchmarks/paper.py:sweep_cell``,
``benchmarks/sweeps/paper.toml``).

Resume and faults. Finished cells are stored one file each (``cells/<key>.json``, written by the
driver when the task returns), so a rerun skips them and a cell is never in the table twice. A long
cell saves ``checkpoints/<key>.pt`` every ``checkpoint_every`` steps and a later attempt continues
from it (the optimizer's ``state_dict``, the parameters, the counters and torch's RNG state), so the
result equals an uninterrupted run. A worker that dies mid-task is retried by Ray
(``max_retries``). On a multi-node cluster the output folder must be on a file system every node
sees for checkpoints to be found again; the table itself is written by the driver only.

Layering: this module imports neither ``landscapes`` nor ``ray`` at import time; problems are built
inside the cell (``landscapes`` imported there, as ``deo.cli`` does) and Ray is imported when a sweep
runs on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1  # part of every cell key: bump when a cell's meaning changes
REPO = Path(__file__).resolve().parents[1]
PROBLEM_KINDS = ("surface", "formula", "network", "factory")
TOP_KEYS = {
    "name", "description", "budget", "seeds", "stop_on_escape", "threads", "checkpoint_every",
    "cells_per_task", "clip", "max_retries", "problems", "optimizers", "runner", "options",
}  # fmt: skip
PROBLEM_KEYS = {
    "label", "surface", "formula", "network", "factory", "start", "offset", "options", "init_scale",
    "args", "device", "gpus", "budget", "clip",
}  # fmt: skip
OPTIMIZER_KEYS = {"preset", "label", "hp", "grid"}
METRICS = (
    "status", "escape_step", "grad_evals_to_escape", "steps", "grad_evals", "final_loss", "best_loss",
    "final_grad_norm", "curvature", "torque", "lambda_min", "wall_s", "cpu_s", "resumed_from",
    "attempt", "worker",
)  # fmt: skip
AUTO_TASKS_PER_CPU = 4  # "auto" batching keeps about this many tasks per CPU (load balance)
AUTO_MAX_CELLS_PER_TASK = 16
EXACT_HESSIAN_FINAL_MAX_PARAMS = 128


class SweepError(ValueError):
    """A sweep config that cannot be run (unknown key, preset, problem, an empty grid...)."""


# ---------------------------------------------------------------------------------------------
# config -> cells


@dataclass(frozen=True)
class Cell:
    """One run: everything that decides its result (``spec``) plus display labels and run options."""

    key: str
    spec: dict  # problem, preset, hp, seed, budget, clip, stop_on_escape (hashed)
    problem: str  # labels
    optimizer: str
    grid: dict  # the grid axes' values of this cell (also inside spec["hp"])
    threads: int
    checkpoint_every: int
    gpus: float

    def payload(self) -> dict:
        """What a worker needs (plain JSON-able data)."""
        return {
            "key": self.key,
            "spec": self.spec,
            "threads": self.threads,
            "checkpoint_every": self.checkpoint_every,
        }


def load_config(source: str | Path | dict) -> dict:
    """A config dict from a TOML file path, TOML text or a dict (validated by :func:`expand`)."""
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    if path.suffix == ".toml" or path.exists():
        try:
            with open(path, "rb") as handle:
                config = tomllib.load(handle)
        except FileNotFoundError as error:
            raise SweepError(f"sweep config {str(path)!r} not found") from error
        except tomllib.TOMLDecodeError as error:
            raise SweepError(f"{path}: {error}") from error
        config.setdefault("name", path.stem)
        return config
    try:
        return tomllib.loads(str(source))
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"sweep config is neither a file nor valid TOML: {error}") from error


def sweep_name(config: dict) -> str:
    """The config's ``name`` (default "sweep", or the config file's stem), the folder under
    ``sweeps/`` its results go to: one folder name — no ``/`` or ``\\``, not starting with ``.`` —
    so that a config named ``../../x`` or ``/tmp/x`` cannot write outside ``sweeps/``."""
    name = config.get("name", "sweep")
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > 100
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
    ):
        raise SweepError(
            "name must be one folder name under sweeps/ (no '/' or '\\', not starting with '.', at "
            f"most 100 characters), got {name!r}"
        )
    return name


def cell_key(spec: dict) -> str:
    """16 hex digits of the SHA-256 of the spec's canonical JSON (sorted keys)."""
    text = json.dumps({"format": FORMAT, **spec}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _unknown(table: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SweepError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def _seeds(value: Any) -> list[int]:
    if isinstance(value, bool):
        raise SweepError(f"seeds must be a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise SweepError(f"seeds must be >= 1, got {value}")
        return list(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        if len(set(value)) != len(value) or min(value) < 0:
            raise SweepError(f"seeds must be distinct integers >= 0, got {value}")
        return list(value)
    raise SweepError(f"seeds must be a count or a non-empty list of integers, got {value!r}")


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _budget(value: Any, what: str) -> int:
    """Steps per cell: an integer in [0, deo.budget.MAX_STEPS] (the race's own limit per run)."""
    from deo.budget import MAX_STEPS

    steps = _positive_int(value, what, minimum=0)
    if steps > MAX_STEPS:
        raise SweepError(f"{what} = {steps:,} is above the limit of {MAX_STEPS:,} steps per run (deo.budget)")
    return steps


def _problem_spec(table: dict, index: int) -> tuple[dict, str, float]:
    """(hashed problem spec, label, GPUs per cell) of one ``[[problems]]`` entry."""
    where = f"problems[{index}]"
    _unknown(table, PROBLEM_KEYS, where)
    kinds = [k for k in PROBLEM_KINDS if k in table]
    if len(kinds) != 1:
        raise SweepError(f"{where} needs exactly one of {list(PROBLEM_KINDS)}, got {kinds or 'none'}")
    kind = kinds[0]
    spec: dict[str, Any] = {"kind": kind, "name": table[kind]}
    if not isinstance(table[kind], str) or not table[kind]:
        raise SweepError(f"{where}.{kind} must be a non-empty string")
    if kind in ("surface", "formula"):
        if "start" in table:
            start = table["start"]
            if not (
                isinstance(start, list) and len(start) == 2 and all(isinstance(v, int | float) for v in start)
            ):
                raise SweepError(f"{where}.start must be [x, y], got {start!r}")
            spec["start"] = [float(v) for v in start]
        if "offset" in table:
            spec["offset"] = float(table["offset"])
        if kind == "formula":  # since 2026-12-03 a formula's saddles are found (an escape criterion):
            spec["stationary"] = "found"  # a new cell, not one run without one
    elif "start" in table or "offset" in table:
        raise SweepError(f"{where}: start/offset apply to surfaces and formulas only")
    if kind == "network":
        spec["options"] = dict(table.get("options", {}))
        if "init_scale" in table:
            spec["init_scale"] = float(table["init_scale"])
    elif "options" in table or "init_scale" in table:
        raise SweepError(f"{where}: options/init_scale apply to networks only")
    if kind == "factory":
        if ":" not in table["factory"]:
            raise SweepError(f"{where}.factory must be 'package.module:function', got {table['factory']!r}")
        spec["args"] = dict(table.get("args", {}))
    elif "args" in table:
        raise SweepError(f"{where}: args apply to factory problems only")
    device = table.get("device", "cpu")
    if device not in ("cpu", "cuda"):
        raise SweepError(f"{where}.device must be 'cpu' or 'cuda', got {device!r}")
    gpus = 0.0
    if device == "cuda":
        if kind != "factory":
            raise SweepError(
                f"{where}: device 'cuda' needs a factory problem that builds on the device "
                "(the catalogue's surfaces and networks are CPU problems)"
            )
        spec["device"] = "cuda"
        gpus = float(table.get("gpus", 1.0))
        if not gpus > 0:
            raise SweepError(f"{where}.gpus must be > 0, got {gpus}")
    for name in ("budget", "clip"):
        if name in table:
            spec[name] = table[name]
    label = table.get("label") or _default_problem_label(spec)
    return spec, str(label), gpus


def _runner(config: dict) -> tuple[str | None, list[str] | None]:
    """(runner, the run names it knows or None) of a config; (None, None) for race cells."""
    runner = config.get("runner")
    if runner is None:
        if "options" in config:
            raise SweepError("options apply to a runner's cells only (runner = 'package.module:function')")
        return None, None
    if not isinstance(runner, str) or ":" not in runner:
        raise SweepError(f"runner must be 'package.module:function', got {runner!r}")
    if not isinstance(config.get("options", {}), dict):
        raise SweepError("options must be a table")
    module, _, name = runner.partition(":")
    try:
        found = importlib.import_module(module)
    except ImportError as error:
        raise SweepError(f"runner module {module!r} cannot be imported: {error}") from error
    if not callable(getattr(found, name, None)):
        raise SweepError(f"runner {runner!r}: {module} has no function {name!r}")
    runs = getattr(found, "RUNS", None)
    return runner, (sorted(runs) if runs is not None else None)


def _default_problem_label(spec: dict) -> str:
    extra = ""
    if "start" in spec:
        extra = f", ({spec['start'][0]:g}, {spec['start'][1]:g})"
    if "init_scale" in spec:
        extra = f", init {spec['init_scale']:g}"
    return f"{spec['name']}{extra}"


def expand(config: dict) -> list[Cell]:
    """Every cell of ``config``, in order: problem, optimizer, grid point, seed (innermost)."""
    from deo.presets import PRESETS

    _unknown(config, TOP_KEYS, "the sweep config")
    budget = _budget(config.get("budget", 1000), "budget")
    seeds = _seeds(config.get("seeds", 1))
    threads = _positive_int(config.get("threads", 1), "threads")
    every = _positive_int(config.get("checkpoint_every", 0), "checkpoint_every", minimum=0)
    stop_on_escape = config.get("stop_on_escape", False)
    if not isinstance(stop_on_escape, bool):
        raise SweepError(f"stop_on_escape must be true or false, got {stop_on_escape!r}")
    problems = config.get("problems")
    optimizers = config.get("optimizers")
    runner, runs = _runner(config)
    if not isinstance(problems, list) or not problems:
        raise SweepError("a sweep needs at least one [[problems]] entry")
    if not isinstance(optimizers, list) or not optimizers:
        raise SweepError("a sweep needs at least one [[optimizers]] entry")
    cells: list[Cell] = []
    problem_specs = [_problem_spec(p, i) for i, p in enumerate(problems)]
    labels = [label for _, label, _ in problem_specs]
    if len(set(labels)) != len(labels):
        raise SweepError(f"problem labels must be distinct, got {labels}")
    optimizer_labels = []
    for index, opt in enumerate(optimizers):
        where = f"optimizers[{index}]"
        _unknown(opt, OPTIMIZER_KEYS, where)
        if runner is not None:
            if not isinstance(opt.get("preset"), str) or (runs is not None and opt["preset"] not in runs):
                raise SweepError(f"{where}.preset {opt.get('preset')!r} unknown to {runner}; allowed: {runs}")
            optimizer_labels.append(opt.get("label") or opt["preset"])
            continue
        if opt.get("preset") not in PRESETS:
            raise SweepError(f"{where}.preset {opt.get('preset')!r} unknown; allowed: {sorted(PRESETS)}")
        preset = PRESETS[opt["preset"]]
        hp, grid = dict(opt.get("hp", {})), dict(opt.get("grid", {}))
        for name in [*hp, *grid]:
            if name not in preset.defaults:
                raise SweepError(
                    f"{where}: {name!r} is not a hyperparameter of {preset.key!r}; "
                    f"allowed: {sorted(preset.defaults)}"
                )
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"{where}.grid.{name} must be a non-empty list, got {values!r}")
            if name in hp:
                raise SweepError(f"{where}: {name!r} is both fixed (hp) and a grid axis")
        optimizer_labels.append(opt.get("label") or preset.label)
    if len(set(optimizer_labels)) != len(optimizer_labels):
        raise SweepError(f"optimizer labels must be distinct, got {optimizer_labels}; set label =")
    for problem, plabel, gpus in problem_specs:
        problem = dict(problem)
        cell_budget = _budget(problem.pop("budget", budget), f"{plabel}: budget")
        clip = problem.pop("clip", config.get("clip"))
        if clip is not None and not (isinstance(clip, int | float) and clip > 0):
            raise SweepError(f"clip must be > 0, got {clip!r}")
        for opt, olabel in zip(optimizers, optimizer_labels):
            grid = dict(opt.get("grid", {}))
            for point in product(*grid.values()):
                values = dict(zip(grid, point))
                for seed in seeds:
                    spec = {
                        "problem": problem,
                        "preset": opt["preset"],
                        "hp": {**opt.get("hp", {}), **values},
                        "seed": seed,
                        "budget": cell_budget,
                        "clip": None if clip is None else float(clip),
                        "stop_on_escape": stop_on_escape,
                    }
                    if runner is not None:
                        spec.update(runner=runner, options=dict(config.get("options", {})))
                    cells.append(Cell(cell_key(spec), spec, plabel, olabel, values, threads, every, gpus))
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise SweepError("two cells of this sweep are identical (same problem, preset, hp and seed)")
    return cells


# ---------------------------------------------------------------------------------------------
# one cell


def build_problem(spec: dict, seed: int):
    """The race :class:`~deo.race.Problem` of a cell's problem spec (``landscapes`` imported here)."""
    from deo.race import network_problem, surface_problem

    kind = spec["kind"]
    if kind == "factory":
        module, _, name = spec["name"].partition(":")
        factory = getattr(importlib.import_module(module), name)
        kwargs = dict(spec.get("args", {}))
        if "device" in spec:
            kwargs["device"] = spec["device"]
        return factory(seed=seed, **kwargs)
    import landscapes

    if kind == "network":
        net = landscapes.make_network(spec["name"], **spec.get("options", {}))
        return network_problem(net, init_scale=spec.get("init_scale"), seed=seed)
    if kind == "formula":
        surface = landscapes.parse_formula(spec["name"])
    else:
        if spec["name"] not in landscapes.SURFACES:
            raise SweepError(f"unknown surface {spec['name']!r}; allowed: {sorted(landscapes.SURFACES)}")
        surface = landscapes.SURFACES[spec["name"]]
    start = spec.get("start") or list(surface.starts[0])
    return surface_problem(surface, start, offset=spec.get("offset"))


def _save(path: Path, payload: dict) -> None:
    import torch

    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def run_cell(cell: dict, checkpoint_dir: str | Path | None = None) -> dict:
    """Run one cell (``Cell.payload()``) and return its metrics (see the module docstring).

    With ``checkpoint_dir`` and ``checkpoint_every > 0`` the run saves its state before every
    ``checkpoint_every``-th step and continues from a saved state if one exists (a retried or
    rerun cell); the checkpoint is removed when the cell finishes.
    """
    import torch

    from deo.race import OptimizerSpec, _flat_loss_fn, _Run

    wall0, cpu0 = time.perf_counter(), time.process_time()
    spec = cell["spec"]
    torch.set_num_threads(int(cell.get("threads", 1)))
    if "runner" in spec:
        module, _, name = spec["runner"].partition(":")
        row = getattr(importlib.import_module(module), name)(cell, checkpoint_dir)
        return {"wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0, **row,
                "worker": f"{socket.gethostname()}:{os.getpid()}", **_versions()}  # fmt: skip
    seed, budget, clip = spec["seed"], spec["budget"], spec["clip"]
    problem = build_problem(spec["problem"], seed)
    shapes = [(name, p.shape) for name, p in problem.params0.items()]
    # the race's own loop (deo.race._Run), resumed from a checkpoint through its state_dict hook
    run = _Run(problem, OptimizerSpec(spec["preset"], dict(spec["hp"])), budget, seed, clip,
               stop_on_escape=spec["stop_on_escape"])  # fmt: skip
    leaves = run.leaves
    state: dict[str, Any] = {
        "t": 0, "evals": 0, "status": "running", "escape_step": None, "escape_evals": None,
        "best_loss": math.inf, "final_loss": math.nan, "final_grad_norm": math.nan, "steps": 0,
        "curvature": math.nan, "torque": math.nan, "wall_s": 0.0, "cpu_s": 0.0, "attempt": 1,
    }  # fmt: skip
    every = int(cell.get("checkpoint_every", 0))
    path = None
    if checkpoint_dir is not None and every > 0:
        path = Path(checkpoint_dir) / f"{cell['key']}.pt"
    resumed_from = 0
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=False)
        state = saved["state"]
        # a checkpoint of the run (older ones kept t, evals and escape_step in the cell's state only)
        older = {"t": state["t"], "evals": state["evals"], "escape_step": state["escape_step"]}
        run.load_state_dict({**older, **saved})
        state["attempt"] += 1
        resumed_from = state["t"]

    def checkpoint(t: int) -> None:
        if path is None or t % every != 0 or t <= resumed_from or t >= budget:
            return
        elapsed = {
            "wall_s": state["wall_s"] + time.perf_counter() - wall0,
            "cpu_s": state["cpu_s"] + time.process_time() - cpu0,
        }
        _save(path, {**run.state_dict(), "state": {**state, **elapsed, "t": t, "evals": run.evals}})

    final_theta = None
    for step in run.steps(before=checkpoint):
        if step.newly_escaped:
            state["escape_step"], state["escape_evals"] = step.t, step.evals_before
        for name in ("curvature", "torque"):
            if name in step.dimer_state:
                state[name] = step.dimer_state[name]
        state["steps"], state["final_loss"], state["row_evals"] = step.t, step.loss, step.evals_before
        final_theta = step.theta64
        state["final_grad_norm"] = float(step.raw.norm())
        state["best_loss"] = min(state["best_loss"], step.loss)
    state["status"] = run.final_status()
    lambda_min = math.nan
    d = sum(leaf.numel() for leaf in leaves)
    if problem.exact_hessian and d <= EXACT_HESSIAN_FINAL_MAX_PARAMS and final_theta is not None:
        from deo.hessian import exact_min_eig

        f = _flat_loss_fn(problem, shapes, run.recorder.batch)
        lam, _ = exact_min_eig(f, torch.from_numpy(final_theta))
        lambda_min = float(lam)
    if path is not None and path.exists():
        path.unlink()
    nan = math.nan
    return {
        "status": state["status"],
        "escape_step": nan if state["escape_step"] is None else float(state["escape_step"]),
        "grad_evals_to_escape": nan if state["escape_evals"] is None else float(state["escape_evals"]),
        "steps": int(state["steps"]),
        "grad_evals": int(state.get("row_evals", 0)),
        "final_loss": float(state["final_loss"]),
        "best_loss": float(state["best_loss"]) if math.isfinite(state["best_loss"]) else nan,
        "final_grad_norm": float(state["final_grad_norm"]),
        "curvature": float(state["curvature"]),
        "torque": float(state["torque"]),
        "lambda_min": lambda_min,
        "wall_s": state["wall_s"] + time.perf_counter() - wall0,
        "cpu_s": state["cpu_s"] + time.process_time() - cpu0,
        "resumed_from": resumed_from,
        "attempt": int(state["attempt"]),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        **_versions(),
    }


def _versions() -> dict:
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        from importlib.metadata import version

        out["deo_lab"] = version("deo-lab")
    except Exception:  # not installed as a package (a plain checkout on sys.path)
        out["deo_lab"] = "checkout"
    ray = sys.modules.get("ray")
    out["ray"] = getattr(ray, "__version__", "") if ray is not None else ""
    return out


def run_batch(cells: Sequence[dict], checkpoint_dir: str | None = None) -> list[dict]:
    """Run cells one after another (one Ray task): ``{"key", "row"}`` or ``{"key", "error"}`` each.

    An exception in one cell is caught and reported (the others still run); a worker that dies takes
    the whole batch with it and Ray retries the batch.
    """
    out = []
    for cell in cells:
        try:
            out.append({"key": cell["key"], "row": run_cell(cell, checkpoint_dir)})
        except Exception as error:  # a bad cell: reported, never retried by Ray
            out.append({"key": cell["key"], "error": f"{type(error).__name__}: {error}",
                        "traceback": traceback.format_exc()})  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# storage: one JSON per finished cell, the table assembled from them


class Store:
    """The output folder: ``cells/``, ``failed/``, ``checkpoints/``, the tables and ``sweep.json``."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.cells = self.out / "cells"
        self.failed = self.out / "failed"
        self.checkpoints = self.out / "checkpoints"
        for folder in (self.cells, self.failed, self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)

    def done(self, key: str) -> bool:
        return (self.cells / f"{key}.json").exists()

    def write(self, key: str, row: dict) -> None:
        target = self.cells / f"{key}.json"
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(row, allow_nan=True))
        os.replace(tmp, target)
        failed = self.failed / f"{key}.json"
        if failed.exists():
            failed.unlink()

    def fail(self, key: str, error: dict) -> None:
        (self.failed / f"{key}.json").write_text(json.dumps(error))

    def read(self, key: str) -> dict:
        return json.loads((self.cells / f"{key}.json").read_text())


def git_revision() -> str:
    """``git rev-parse --short HEAD`` of the checkout (``+dirty`` with uncommitted changes), else ''."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO, capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{rev}+dirty" if rev and dirty else rev


def cell_columns(cell: Cell) -> dict:
    """The config columns of a cell's row (labels from the current config)."""
    from deo.presets import PRESETS

    spec, problem = cell.spec, cell.spec["problem"]
    row = {
        "cell": cell.key,
        "problem": cell.problem,
        "problem_kind": problem["kind"],
        "problem_name": problem["name"],
        "start": json.dumps(problem.get("start")) if "start" in problem else "",
        "init_scale": problem.get("init_scale", math.nan),
        "optimizer": cell.optimizer,
        "preset": spec["preset"],
        "hp": json.dumps(spec["hp"], sort_keys=True),
    }
    for name, value in cell.grid.items():
        row[f"hp.{name}"] = value
    clip = PRESETS[spec["preset"]].applied_clip(spec["clip"])  # None for the published code
    row.update(seed=spec["seed"], budget=spec["budget"], clip=clip)
    return row


def table(cells: Sequence[Cell], store: Store, meta: dict):
    """The tidy table (pandas) of the finished cells of ``cells``, in config order."""
    import pandas as pd

    rows = []
    for cell in cells:
        if store.done(cell.key):
            rows.append({"sweep": meta.get("name", ""), **cell_columns(cell), **store.read(cell.key)})
    frame = pd.DataFrame(rows)
    if len(frame):
        assert frame["cell"].is_unique  # one file per key: never twice
    return frame


def write_tables(frame, store: Store, meta: dict) -> tuple[Path, Path]:
    """``results.parquet`` (the sweep's metadata in the schema) and ``results.csv``; atomic each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet, csv = store.out / "results.parquet", store.out / "results.csv"
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    schema_meta = dict(arrow.schema.metadata or {})
    schema_meta[b"deo_sweep"] = json.dumps(meta, default=str).encode()
    arrow = arrow.replace_schema_metadata(schema_meta)
    pq.write_table(arrow, parquet.with_name("results.parquet.tmp"))
    os.replace(parquet.with_name("results.parquet.tmp"), parquet)
    frame.to_csv(csv.with_name("results.csv.tmp"), index=False)
    os.replace(csv.with_name("results.csv.tmp"), csv)
    (store.out / "sweep.json").write_text(json.dumps(meta, indent=2, default=str))
    return parquet, csv


def read_table(path: str | Path, data: bytes | None = None):
    """(frame, meta) of a sweep table: ``results.parquet`` (meta from its schema) or a CSV (meta from
    ``sweep.json`` beside it, ``{}`` without one). With ``data`` (an upload), ``path`` is only its
    name (``.parquet`` or ``.csv``) and the table is read from the bytes."""
    import io

    import pandas as pd

    if data is not None:
        if str(path).endswith(".parquet"):
            import pyarrow.parquet as pq

            arrow = pq.read_table(io.BytesIO(data))
            raw = (arrow.schema.metadata or {}).get(b"deo_sweep")
            return arrow.to_pandas(), json.loads(raw) if raw else {}
        return pd.read_csv(io.BytesIO(data)), {}
    path = Path(path)
    if path.is_dir():
        path = path / "results.parquet"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        arrow = pq.read_table(path)
        raw = (arrow.schema.metadata or {}).get(b"deo_sweep")
        return arrow.to_pandas(), json.loads(raw) if raw else {}
    frame = pd.read_csv(path)
    sidecar = path.with_name("sweep.json")
    return frame, json.loads(sidecar.read_text()) if sidecar.exists() else {}


# ---------------------------------------------------------------------------------------------
# summaries of a table


COUNT_METRICS = ("escape_step", "grad_evals_to_escape", "steps", "grad_evals")  # whole numbers


def median_iqr(values: Iterable[float], number: str = ".0f") -> str:
    """``median [q25–q75]`` with NaN (never escaped; for a loss, no finite value) as +∞, nearest-rank
    percentiles; "—" when the median is not finite (the convention of ``benchmarks/escape.py``).
    ``number``: the format of each figure (".0f" for counts such as steps; ".3g" for losses, times)."""
    v = np.asarray(list(values), dtype=np.float64)
    v = np.where(np.isnan(v), np.inf, v)
    if v.size == 0:
        return ""
    with np.errstate(invalid="ignore"):
        q25, q50, q75 = np.percentile(v, [25, 50, 75], method="nearest")
    if not np.isfinite(q50):
        return "—"
    if q25 == q75:
        return f"{q50:{number}}"
    upper = "∞" if not np.isfinite(q75) else f"{q75:{number}}"
    between = "–" if q25 >= 0 else " to "  # "[-1.05–-1.01]" read as a formula
    return f"{q50:{number}} [{q25:{number}}{between}{upper}]"


def summarise(frame, value: str = "escape_step", rows: str = "problem", columns: str = "optimizer"):
    """A pivot of ``median_iqr(value)`` over the remaining axes (seeds, usually), in config order;
    whole numbers for a count (:data:`COUNT_METRICS`), three significant digits otherwise (a final
    loss of 0.0012 once read "0", and 1.5 and 2.5 both read "2")."""
    import pandas as pd

    number = ".0f" if value in COUNT_METRICS else ".3g"
    keys = [rows, columns]
    groups = frame.groupby(keys, sort=False)[value].apply(median_iqr, number=number)
    out = groups.unstack(columns)
    order_rows = list(dict.fromkeys(frame[rows]))
    order_cols = list(dict.fromkeys(frame[columns]))
    return pd.DataFrame(out).reindex(index=order_rows, columns=order_cols)


def heatmap_grid(
    frame, problem: str, optimizer: str | None, x: str, y: str = "seed", value: str = "escape_step"
):
    """(xs, ys, z) of one problem (and one optimizer, or all with ``optimizer=None``): ``z[j, i]`` the
    value at ``x = xs[i]``, ``y = ys[j]`` (the median when several cells share a point), NaN where no
    cell is or the run never escaped. Axis values keep the table's order of first appearance."""
    part = frame[frame["problem"] == problem]
    if optimizer is not None:
        part = part[part["optimizer"] == optimizer]
    if part.empty:
        raise ValueError(f"no cells for problem {problem!r} and optimizer {optimizer!r}")
    for column in (x, y, value):
        if column not in part.columns:
            raise ValueError(f"column {column!r} not in the table; columns: {list(part.columns)}")
    pivot = part.pivot_table(index=y, columns=x, values=value, aggfunc="median", dropna=False)
    xs = list(dict.fromkeys(part[x]))
    ys = list(dict.fromkeys(part[y]))
    if all(isinstance(v, int | float | np.integer | np.floating) for v in [*xs]):
        xs = sorted(xs)
    if all(isinstance(v, int | float | np.integer | np.floating) for v in [*ys]):
        ys = sorted(ys)
    pivot = pivot.reindex(index=ys, columns=xs)
    return xs, ys, pivot.to_numpy(dtype=float)


def grid_axes(frame) -> list[str]:
    """The table's hyperparameter-grid columns (``hp.<name>``), in order."""
    return [c for c in frame.columns if str(c).startswith("hp.")]


def sweep_tables(folder: str | Path) -> dict[str, Path]:
    """Sweep tables in ``folder`` (``*.parquet`` and ``*.csv`` whose header has the sweep's ``cell``,
    ``problem``, ``optimizer`` and ``seed`` columns), name -> path, sorted by name."""
    found = {}
    for path in sorted(Path(folder).glob("*")):
        if path.suffix not in (".csv", ".parquet") or not path.is_file():
            continue
        if path.suffix == ".csv":
            with open(path, encoding="utf-8") as handle:
                header = handle.readline().strip().split(",")
        else:
            import pyarrow.parquet as pq

            header = pq.read_schema(path).names
        if {"cell", "problem", "optimizer", "seed"} <= set(header):
            found[path.name] = path
    return found


# ---------------------------------------------------------------------------------------------
# execution


class Progress:
    """One line: cells done / running / failed / queued and an ETA from this run's completion rate."""

    def __init__(self, name: str, total: int, skipped: int, stream=None, enabled: bool = True):
        self.name, self.total, self.skipped = name, total, skipped
        self.done = self.failed = self.running = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.last_print = -math.inf
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self) -> str:
        finished = self.skipped + self.done
        remaining = self.total - finished - self.failed
        elapsed = time.perf_counter() - self.t0
        eta = "?"
        if self.done:
            eta = _duration(elapsed / self.done * remaining)
        elif remaining == 0:
            eta = "0s"
        queued = max(remaining - self.running, 0)
        return (
            f"sweep {self.name}: {finished}/{self.total} done ({self.skipped} before), "
            f"{self.running} running, {self.failed} failed, {queued} queued, "
            f"elapsed {_duration(elapsed)}, ETA {eta}"
        )

    def show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last_print < (0.2 if self.tty else 5.0):
            return
        self.last_print = now
        end = "" if self.tty and not force else "\n"
        print(("\r" if self.tty else "") + self.line(), end=end, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def batches(cells: Sequence[Cell], cells_per_task: int | str, cpus: int) -> list[list[Cell]]:
    """Groups of cells for one task each: ``"auto"`` keeps about ``AUTO_TASKS_PER_CPU`` tasks per CPU
    (at most ``AUTO_MAX_CELLS_PER_TASK`` cells a task; checkpointed and GPU cells alone); an integer
    sets the group size. Cells of one group share the problem and the resources."""
    if cells_per_task == "auto":
        size = min(
            AUTO_MAX_CELLS_PER_TASK, max(1, math.ceil(len(cells) / (AUTO_TASKS_PER_CPU * max(cpus, 1))))
        )
    else:
        size = _positive_int(cells_per_task, "cells_per_task")
    groups: list[list[Cell]] = []
    for cell in cells:
        alone = cell.checkpoint_every > 0 or cell.gpus > 0
        last = groups[-1] if groups else None
        if (
            last is None
            or alone
            or len(last) >= size
            or last[0].checkpoint_every > 0
            or last[0].gpus > 0
            or last[0].problem != cell.problem
        ):
            groups.append([cell])
        else:
            last.append(cell)
    return groups


def _ray_runtime_env(working_dir: str | None) -> dict:
    if working_dir is not None:
        return {
            "working_dir": working_dir,
            "excludes": [".venv", ".git", "artifacts", "sweeps", "**/__pycache__", "benchmarks/checkpoints"],
        }
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def cluster_token_auth() -> bool:
    """Send the cluster's auth token when one is available; True when token auth is on for this driver.

    Since Ray 2.59, ``ray start --head`` turns token authentication on by itself when a token exists
    (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), but ``ray.init(address=...)``
    with an explicit address only sends that token when ``RAY_AUTH_MODE=token`` is set: the driver was
    refused with ``InvalidAuthToken``. With ``RAY_AUTH_MODE`` unset this does what Ray does for
    ``address="auto"`` (token mode when a token is found); an explicit ``RAY_AUTH_MODE`` is respected.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return False
    return bool(maybe_enable_token_auth_if_token_available(warn_if_disabled=False))


def _run_ray(groups, store, progress, on_result, address, num_cpus, max_retries, working_dir) -> None:
    try:
        import ray
    except ImportError as error:
        raise SweepError(
            "Ray is not installed: pip install -e '.[sweep]' (or -r requirements-dev.txt), "
            "or run with executor 'sequential'"
        ) from error

    started = False
    if not ray.is_initialized():
        runtime_env = _ray_runtime_env(working_dir)
        if address is not None:
            cluster_token_auth()
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(
                address="local",  # always a new local instance, never a `ray start` found on the machine
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                runtime_env=runtime_env,
                log_to_driver=False,
            )
        started = True
    try:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(run_batch)
        pending = {}
        for group in groups:
            options: dict[str, Any] = {"num_cpus": 1, "max_retries": max_retries}
            if group[0].gpus > 0:
                options["num_gpus"] = group[0].gpus
            ref = task.options(**options).remote([c.payload() for c in group], str(store.checkpoints))
            pending[ref] = group
        try:
            while pending:
                progress.running = min(len(pending), slots)
                progress.show()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    group = pending.pop(ref)
                    try:
                        results = ray.get(ref)
                    except Exception as error:  # the worker died max_retries + 1 times, or Ray failed
                        results = [{"key": c.key, "error": f"{type(error).__name__}: {error}"} for c in group]
                    for result in results:
                        on_result(result)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        progress.running = 0
        if started:
            ray.shutdown()


def _run_sequential(groups, store, progress, on_result) -> None:
    for group in groups:
        progress.running = 1
        progress.show()
        for result in run_batch([c.payload() for c in group], str(store.checkpoints)):
            on_result(result)
    progress.running = 0


def sweep(
    config: str | Path | dict,
    out: str | Path | None = None,
    *,
    address: str | None = None,
    executor: str = "ray",
    num_cpus: int | None = None,
    cells_per_task: int | str | None = None,
    max_retries: int | None = None,
    working_dir: str | None = None,
    progress: bool = True,
    stream=None,
    on_result: Callable[[dict], None] | None = None,
):
    """Run the sweep ``config`` (a TOML path, TOML text or a dict); returns its table (pandas).

    ``out`` defaults to ``sweeps/<name>``. Finished cells in ``out`` are skipped. ``executor``:
    ``"ray"`` (local Ray with ``num_cpus`` — default all of the machine's — or the cluster at
    ``address``) or ``"sequential"`` (a plain loop in this process, no Ray). ``cells_per_task``
    and ``max_retries`` override the config's (defaults ``"auto"`` and 3). ``working_dir`` ships that
    folder to the cluster's workers (Ray runtime env) instead of relying on the local checkout.
    The table is written (``results.parquet``, ``results.csv``, ``sweep.json``) at the end, and also
    when the run is interrupted (KeyboardInterrupt, re-raised after writing).
    """
    config = load_config(config)
    cells = expand(config)
    name = sweep_name(config)
    store = Store(out if out is not None else Path("sweeps") / name)
    if executor not in ("ray", "sequential"):
        raise SweepError(f"executor must be 'ray' or 'sequential', got {executor!r}")
    per_task = cells_per_task if cells_per_task is not None else config.get("cells_per_task", "auto")
    retries = max_retries if max_retries is not None else config.get("max_retries", 3)
    retries = _positive_int(retries, "max_retries", minimum=0)
    todo = [c for c in cells if not store.done(c.key)]
    revision = git_revision()
    meta = {
        "name": name,
        "config": config,
        "config_hash": config_hash(config),
        "cells": len(cells),
        "git_revision": revision,
        "versions": _versions(),
        "executor": executor,
        "address": address,
        "host": socket.gethostname(),
    }
    bar = Progress(name, len(cells), len(cells) - len(todo), stream=stream, enabled=progress)
    by_key = {c.key: c for c in cells}
    failures: dict[str, str] = {}

    def record(result: dict) -> None:
        key = result["key"]
        if "row" in result:
            row = {**result["row"], "git_revision": revision,
                   "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
            store.write(key, row)
            bar.done += 1
        else:
            store.fail(key, result)
            failures[key] = result["error"]
            bar.failed += 1
        if on_result is not None:
            on_result({**result, "cell": by_key[key]})
        bar.show()

    cpus = num_cpus or os.cpu_count() or 1
    groups = batches(todo, per_task, cpus)
    interrupted = False
    try:
        if todo:
            if executor == "ray":
                _run_ray(groups, store, bar, record, address, num_cpus, retries, working_dir)
            else:
                _run_sequential(groups, store, bar, record)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        meta.update(
            versions=_versions(),
            finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            failed={k: v for k, v in failures.items()},
            interrupted=interrupted,
            tasks=len(groups),
        )
        frame = table(cells, store, meta)
        meta["complete"] = len(frame) == len(cells)
        write_tables(frame, store, meta)
        bar.show(force=True)
    frame.attrs["meta"] = meta
    return frame


# ---------------------------------------------------------------------------------------------
# command line (``python -m deo sweep``)


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to :mod:`deo.cli`'s subparsers."""
    p = commands.add_parser("sweep", help="a sweep config's cells as Ray tasks; a tidy results table")
    p.add_argument(
        "config", type=Path, help="a sweep config (TOML), e.g. benchmarks/sweeps/escape_table.toml"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default sweeps/<name>)")
    p.add_argument("--address", default=None, help="an existing Ray cluster, e.g. auto or 10.0.0.1:6379")
    p.add_argument("--num-cpus", type=int, default=None, help="local Ray's CPUs (default: the machine's)")
    p.add_argument("--executor", choices=("ray", "sequential"), default="ray")
    p.add_argument("--cells-per-task", default=None, help="'auto' or an integer (overrides the config)")
    p.add_argument("--max-retries", type=int, default=None, help="Ray retries of a task whose worker died")
    p.add_argument("--working-dir", default=None, help="ship this folder to a cluster's workers")
    p.add_argument("--summary", default="escape_step", help="metric of the printed summary (median [IQR])")
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(run=run_sweep_command)
    return p


def run_sweep_command(args) -> int:
    per_task = args.cells_per_task
    if per_task is not None and per_task != "auto":
        try:
            per_task = int(per_task)
        except ValueError as error:
            raise SystemExit(
                f"error: --cells-per-task must be 'auto' or an integer, got {per_task!r}"
            ) from error
    try:
        frame = sweep(
            args.config,
            args.out,
            address=args.address,
            executor=args.executor,
            num_cpus=args.num_cpus,
            cells_per_task=per_task,
            max_retries=args.max_retries,
            working_dir=args.working_dir,
        )
    except SweepError as error:
        raise SystemExit(f"error: {error}") from error
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    meta = frame.attrs["meta"]
    if len(frame) and args.summary in frame.columns:
        print(f"{args.summary} (median [IQR] over the other axes):")
        print(summarise(frame, args.summary).to_string())
    out = Path(args.out) if args.out is not None else Path("sweeps") / meta["name"]
    print(f"{len(frame)}/{meta['cells']} cells in {out / 'results.parquet'} and results.csv")
    if meta["failed"]:
        for key, error in meta["failed"].items():
            print(f"failed {key}: {error}", file=sys.stderr)
        return 1
    return 0
