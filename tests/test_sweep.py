"""Sweeps (``deo.sweeps``): configs expand into cells, a cell equals the race, checkpoints continue
exactly, Ray retries a killed worker, an interrupted sweep resumes with nothing duplicated, and the
escape-table config reproduces the committed counts.

The Ray tests share one local Ray (2 CPUs, no dashboard) started once for the module.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deo.cli import main
from deo.race import OptimizerSpec, race, surface_problem
from deo.sweeps import (
    SweepError,
    cell_key,
    expand,
    heatmap_grid,
    load_config,
    median_iqr,
    read_table,
    run_cell,
    summarise,
    sweep,
)

ROOT = Path(__file__).resolve().parents[1]
ESCAPE_TABLE = ROOT / "benchmarks" / "sweeps" / "escape_table.toml"


def faulty_saddle(seed: int, marker: str, fail_at: int, mode: str = "exit", faulty_seed: int = 0):
    """x²−y² from (1, 1e-3) whose loss, at its ``fail_at``-th evaluation, kills the process
    (``mode="exit"``: ``os._exit``, as a dying worker) or raises ``RuntimeError("interrupted")`` — only for
    ``faulty_seed`` and only while ``marker`` does not exist (it is created first), so the retry
    runs clean."""
    import landscapes

    problem = surface_problem(landscapes.SURFACES["saddle"], (1.0, 1e-3))
    inner = problem.loss
    calls = {"n": 0}

    def loss(params, batch):
        calls["n"] += 1
        if seed == faulty_seed and calls["n"] == fail_at and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            if mode == "exit":
                os._exit(1)
            raise RuntimeError("interrupted by the test")  # (the worker imports this module anew)
        return inner(params, batch)

    problem.loss = loss
    return problem


def small_config(**extra) -> dict:
    config = {
        "name": "small",
        "budget": 400,
        "seeds": 2,
        "problems": [{"surface": "saddle", "start": [1.0, 1e-3], "label": "saddle"}],
        "optimizers": [
            {"preset": "gd", "grid": {"lr": [0.01, 0.02]}},
            {"preset": "deo_escape"},
        ],
    }
    config.update(extra)
    return config


# ---------------------------------------------------------------------------------------------
# config -> cells


def test_expand_grid_seeds_and_keys():
    cells = expand(small_config())
    assert len(cells) == 2 * 2 + 2  # GD: 2 lrs × 2 seeds; DEO-escape: 2 seeds
    assert [c.optimizer for c in cells] == ["GD"] * 4 + ["DEO-escape"] * 2
    assert [c.spec["hp"] for c in cells[:4]] == [{"lr": 0.01}] * 2 + [{"lr": 0.02}] * 2
    assert [c.spec["seed"] for c in cells] == [0, 1, 0, 1, 0, 1]
    assert cells[0].grid == {"lr": 0.01}
    assert len({c.key for c in cells}) == len(cells)
    # labels, threads and checkpointing do not change a result: same keys
    relabelled = small_config(threads=2, checkpoint_every=50)
    relabelled["problems"][0]["label"] = "another name"
    assert [c.key for c in expand(relabelled)] == [c.key for c in cells]
    # a budget or a seed does
    assert {c.key for c in expand(small_config(budget=401))}.isdisjoint(c.key for c in cells)
    assert cell_key(cells[0].spec) == cells[0].key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budgett": 3}, "unknown key"),
        ({"optimizers": [{"preset": "sgdx"}]}, "unknown; allowed"),
        ({"optimizers": [{"preset": "gd", "hp": {"momentum": 0.9}}]}, "not a hyperparameter of 'gd'"),
        ({"optimizers": [{"preset": "gd", "grid": {"lr": []}}]}, "non-empty list"),
        ({"optimizers": [{"preset": "gd", "hp": {"lr": 1}, "grid": {"lr": [2]}}]}, "both fixed"),
        ({"problems": [{"surface": "saddle", "network": "xor"}]}, "exactly one of"),
        ({"problems": [{"network": "xor", "device": "cuda"}]}, "factory problem"),
        ({"seeds": 0}, "seeds must be >= 1"),
        ({"budget": 10**7}, "above the limit"),
        ({"optimizers": [{"preset": "gd"}, {"preset": "gd"}]}, "labels must be distinct"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(change, message):
    with pytest.raises(SweepError, match=message):
        expand(small_config(**change))


def test_cuda_problems_request_a_gpu_and_run_alone():
    from deo.sweeps import batches

    config = small_config(
        problems=[{"factory": "tests.test_sweep:faulty_saddle", "device": "cuda", "gpus": 0.5}],
        optimizers=[{"preset": "gd"}],
        seeds=3,
    )
    cells = expand(config)
    assert all(c.gpus == 0.5 and c.spec["problem"]["device"] == "cuda" for c in cells)
    assert [len(g) for g in batches(cells, "auto", 2)] == [1, 1, 1]


def test_load_config_reads_the_repository_configs():
    for path in sorted((ROOT / "benchmarks" / "sweeps").glob("*.toml")):
        config = load_config(path)
        assert config["name"] == path.stem
        assert expand(config), path


# ---------------------------------------------------------------------------------------------
# one cell


@pytest.mark.parametrize("key", ["gd", "adam", "pgd", "deo_escape", "deo_paper"])
def test_a_cell_equals_the_race(key):
    import landscapes

    torch.set_num_threads(1)
    config = small_config(budget=200, seeds=[3], optimizers=[{"preset": key, "hp": {"lr": 0.02}}])
    (cell,) = expand(config)
    row = run_cell(cell.payload())
    problem = surface_problem(landscapes.SURFACES["saddle"], (1.0, 1e-3))
    (trace,) = race(problem, [OptimizerSpec(key, {"lr": 0.02})], 200, seed=3)
    escape = math.nan if trace.escape_step is None else trace.escape_step
    assert row["escape_step"] == escape or (math.isnan(escape) and math.isnan(row["escape_step"]))
    assert row["status"] == trace.status
    assert row["steps"] == int(trace.steps[-1])
    assert row["final_loss"] == float(trace.loss[-1])
    assert row["best_loss"] == float(trace.loss.min())
    assert row["grad_evals"] == int(trace.grad_evals[-1])
    if trace.escape_step is not None:
        assert row["grad_evals_to_escape"] == int(trace.grad_evals[trace.steps == trace.escape_step][0])
    assert row["lambda_min"] == pytest.approx(float(trace.exact_lambda_min[-1]))


def test_a_network_cell_equals_the_race():
    import landscapes
    from deo.race import network_problem

    torch.set_num_threads(1)
    config = small_config(
        budget=40,
        seeds=[1],
        problems=[{"network": "two_moons", "options": {"hidden": 4}, "init_scale": 1e-3}],
        optimizers=[{"preset": "deo_paper"}],
    )
    (cell,) = expand(config)
    row = run_cell(cell.payload())
    problem = network_problem(landscapes.make_network("two_moons", hidden=4), init_scale=1e-3, seed=1)
    (trace,) = race(problem, [OptimizerSpec("deo_paper")], 40, seed=1)
    assert row["final_loss"] == float(trace.loss[-1])
    assert row["grad_evals"] == int(trace.grad_evals[-1])
    assert row["curvature"] == float(trace.curvature[-1])  # the last step's dimer curvature


def test_an_interrupted_cell_continues_from_its_checkpoint_exactly(tmp_path):
    torch.set_num_threads(1)
    marker = tmp_path / "marker"
    args = {"marker": str(marker), "fail_at": 0, "faulty_seed": 5, "mode": "raise"}
    problem = {"factory": "tests.test_sweep:faulty_saddle", "args": args}
    config = small_config(budget=250, seeds=[5], problems=[problem], optimizers=[{"preset": "deo_escape"}])
    (clean,) = expand(config)
    reference = run_cell(clean.payload())
    # fail at the 400th loss evaluation (~ step 133 of a dimer run at 3 evaluations a step)
    problem["args"]["fail_at"] = 400
    config["checkpoint_every"] = 25
    (cell,) = expand(config)
    with pytest.raises(RuntimeError, match="interrupted by the test"):
        run_cell(cell.payload(), tmp_path)
    assert (tmp_path / f"{cell.key}.pt").exists()
    row = run_cell(cell.payload(), tmp_path)
    assert row["resumed_from"] == 125 and row["attempt"] == 2
    assert not (tmp_path / f"{cell.key}.pt").exists()
    for name in ("escape_step", "grad_evals_to_escape", "steps", "grad_evals", "final_loss", "best_loss",
                 "curvature"):  # fmt: skip
        assert row[name] == reference[name], name


# ---------------------------------------------------------------------------------------------
# tables


def test_median_iqr_and_summaries():
    assert median_iqr([349.0] * 3) == "349"
    assert median_iqr([270, 268, 278, 270, 280, 266, 268, 278]) == "270 [268–278]"
    assert median_iqr([math.nan, math.nan, 5.0]) == "—"
    assert median_iqr([1.0, 2.0, math.nan]) == "2 [1–∞]"
    assert median_iqr([0.0012, 0.0015, 0.002], number=".3g") == "0.0015 [0.0012–0.002]"
    assert median_iqr([-1.05, -1.03, -1.01], number=".3g") == "-1.03 [-1.05 to -1.01]"
    frame = pd.DataFrame(
        {
            "problem": ["a"] * 4 + ["b"] * 4,
            "optimizer": ["GD", "GD", "Adam", "Adam"] * 2,
            "seed": [0, 1] * 4,
            "hp.lr": [0.1, 0.1, 0.2, 0.2] * 2,
            "escape_step": [1.0, 3.0, 2.0, 2.0, 5.0, 5.0, math.nan, math.nan],
        }
    )
    table = summarise(frame)
    assert list(table.columns) == ["GD", "Adam"] and list(table.index) == ["a", "b"]
    assert table.loc["b", "Adam"] == "—" and table.loc["a", "Adam"] == "2"
    frame["final_loss"] = [0.0012, 0.0016, 1.5, 1.5, 2.5, 2.5, math.nan, 7.0]
    losses = summarise(frame, "final_loss")  # not rounded to whole numbers like steps
    assert losses.loc["a", "GD"] == "0.0012 [0.0012–0.0016]" and losses.loc["a", "Adam"] == "1.5"
    xs, ys, z = heatmap_grid(frame, "a", "GD", x="hp.lr")
    np.testing.assert_array_equal(xs, [0.1])
    np.testing.assert_array_equal(ys, [0, 1])
    np.testing.assert_array_equal(z[:, 0], [1.0, 3.0])
    with pytest.raises(ValueError, match="no cells"):
        heatmap_grid(frame, "c", "GD", x="hp.lr")


def test_cli_sweep_sequential_writes_the_tables(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(
        'name = "tiny"\nbudget = 120\nseeds = 2\nstop_on_escape = true\n'
        '[[problems]]\nsurface = "saddle"\nstart = [1.0, 0.01]\n'
        '[[optimizers]]\npreset = "adam"\n'
    )
    out = tmp_path / "out"
    assert main(["sweep", str(config), "--out", str(out), "--executor", "sequential"]) == 0
    printed = capsys.readouterr()
    assert "2/2 cells" in printed.out and "Adam" in printed.out
    assert "sweep tiny: 2/2 done" in printed.err
    frame, meta = read_table(out)
    assert meta["complete"] and meta["config_hash"] and meta["git_revision"]
    assert meta["versions"]["torch"] == torch.__version__
    csv = pd.read_csv(out / "results.csv")
    assert list(csv["cell"]) == list(frame["cell"]) and frame["escape_step"].notna().all()
    assert set(frame["git_revision"]) == {meta["git_revision"]}
    # a rerun finds every cell finished and runs none
    assert main(["sweep", str(config), "--out", str(out), "--executor", "sequential"]) == 0
    assert "2/2 done (2 before)" in capsys.readouterr().err
    again, _ = read_table(out)
    pd.testing.assert_frame_equal(again, frame)


def test_tables_are_found_and_read_from_uploaded_bytes(tmp_path):
    from deo.sweeps import sweep_tables

    config = small_config(budget=5, seeds=1, optimizers=[{"preset": "adam"}])
    frame = sweep(config, tmp_path / "out", executor="sequential", progress=False)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    (tmp_path / "out" / "results.csv").rename(tmp_path / "mine.csv")
    (tmp_path / "out" / "results.parquet").rename(tmp_path / "mine.parquet")
    assert list(sweep_tables(tmp_path)) == ["mine.csv", "mine.parquet"]
    from_parquet, meta = read_table("up.parquet", (tmp_path / "mine.parquet").read_bytes())
    assert meta["name"] == "small" and meta["complete"]
    pd.testing.assert_frame_equal(from_parquet, frame)
    from_csv, meta = read_table("up.csv", (tmp_path / "mine.csv").read_bytes())
    assert meta == {} and list(from_csv["cell"]) == list(frame["cell"])


def test_cli_refuses_a_missing_config(tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        main(["sweep", str(tmp_path / "missing.toml"), "--executor", "sequential"])


def test_the_escape_table_subset_reproduces_the_committed_counts(tmp_path):
    """README / benchmarks/results/escape.md part 1 (10 seeds, lr 0.01): GD 349 / 698 / 734 / 804,
    Adam 80 / 81 / 101 / 67, DEO-escape 177 / 353 / 389 / 270 [268–278]. Here, from the repository's
    config: x²−y² from (1, 1e-3) for the three (seeds 0 and 7), and the monkey saddle's DEO-escape,
    its only row with a spread, for seeds 0 and 1 (270 and 278: the median and the upper quartile of
    the committed 10-seed row; the full sweep's table is benchmarks/results/sweep_escape_table.md)."""
    torch.set_num_threads(1)
    config = load_config(ESCAPE_TABLE)
    first, monkey = config["problems"][0], config["problems"][3]
    base = {k: v for k, v in config.items() if k not in ("problems", "optimizers", "seeds")}
    keep = [o for o in config["optimizers"] if o["label"] in ("GD", "Adam", "DEO-escape")]
    subset = {**base, "seeds": [0, 7], "problems": [first], "optimizers": keep}
    part1 = sweep(subset, tmp_path / "a", executor="sequential", progress=False)
    counts = part1.groupby("optimizer", sort=False)["escape_step"].apply(list).to_dict()
    assert counts == {"GD": [349, 349], "Adam": [80, 80], "DEO-escape": [177, 177]}
    evals = part1.groupby("optimizer", sort=False)["grad_evals_to_escape"].first().to_dict()
    assert evals == {"GD": 349, "Adam": 80, "DEO-escape": 531}
    deo = [o for o in config["optimizers"] if o["label"] == "DEO-escape"]
    subset = {**base, "seeds": [0, 1], "problems": [monkey], "optimizers": deo}
    part2 = sweep(subset, tmp_path / "b", executor="sequential", progress=False)
    assert list(part2["escape_step"]) == [270, 278]
    assert list(part2["grad_evals_to_escape"]) == [810, 834]


# ---------------------------------------------------------------------------------------------
# Ray: one local cluster for these tests


@pytest.fixture(scope="module")
def local_ray():
    import ray  # requirements-dev.txt (the sweep extra): the test command installs it

    from deo.sweeps import _ray_runtime_env

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env=_ray_runtime_env(None),
    )
    yield ray
    ray.shutdown()


# A killed worker is replaced by a fresh process that imports torch again: on a 2-core machine pinned
# by other work that alone took > 300 s (pytest-timeout's default here), so the Ray tests wait longer
# for the same state (the cell finished on its second attempt), never for a fixed time.
RAY_TIMEOUT_S = 900


@pytest.mark.timeout(RAY_TIMEOUT_S)
def test_ray_retries_a_killed_worker_and_the_table_is_complete(local_ray, tmp_path):
    marker = tmp_path / "killed"
    problems = [
        {"label": "killer", "factory": "tests.test_sweep:faulty_saddle",
         "args": {"marker": str(marker), "fail_at": 200, "mode": "exit"}},
        {"label": "saddle", "surface": "saddle", "start": [1.0, 1e-3]},
    ]  # fmt: skip
    config = small_config(
        budget=360, seeds=2, problems=problems, optimizers=[{"preset": "gd"}], checkpoint_every=50
    )
    out = tmp_path / "out"
    frame = sweep(config, out, cells_per_task=1, progress=False)
    assert marker.exists()  # a worker really died (os._exit) during the first cell
    assert len(frame) == 4 and frame["cell"].is_unique and frame.attrs["meta"]["complete"]
    killed = frame[frame["problem"] == "killer"].iloc[0]
    assert killed["attempt"] == 2 and killed["resumed_from"] == 150  # GD: 1 evaluation a step
    assert frame[frame["problem"] == "killer"].iloc[1]["attempt"] == 1  # seed 1 is never killed
    # every cell equals its run without faults (GD is deterministic: all four escape at 349)
    assert list(frame["escape_step"]) == [349.0] * 4
    assert (frame["ray"] != "").all()
    assert len(list((out / "cells").glob("*.json"))) == 4 and not list((out / "checkpoints").iterdir())


@pytest.mark.timeout(RAY_TIMEOUT_S)
def test_ray_sweep_interrupted_then_resumed(local_ray, tmp_path):
    config = small_config(budget=360, seeds=3, stop_on_escape=True)
    out = tmp_path / "out"
    seen = []

    def stop_after_two(result):
        seen.append(result["key"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(config, out, cells_per_task=1, progress=False, on_result=stop_after_two)
    partial, meta = read_table(out)
    assert meta["interrupted"] and not meta["complete"]
    assert 2 <= len(partial) < 9 and partial["cell"].is_unique
    before = {row.cell: row.finished_at for row in partial.itertuples()}
    resumed = []
    frame = sweep(config, out, progress=False, on_result=lambda r: resumed.append(r["key"]))
    assert len(frame) == 9 and frame["cell"].is_unique and frame.attrs["meta"]["complete"]
    assert set(resumed).isdisjoint(before) and len(resumed) == 9 - len(before)
    kept = frame.set_index("cell").loc[list(before), "finished_at"].to_dict()
    assert kept == before  # finished cells were not run again
    # the same cells by a plain loop give the same numbers
    plain = sweep(config, tmp_path / "plain", executor="sequential", progress=False)
    columns = ["cell", "escape_step", "grad_evals_to_escape", "final_loss", "best_loss"]
    pd.testing.assert_frame_equal(frame[columns], plain[columns])
    assert json.loads(frame.iloc[0]["hp"]) == {"lr": 0.01}


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/escaped", ".hidden", "a/b", "", 7])
def test_a_sweep_name_cannot_write_outside_sweeps(tmp_path, monkeypatch, name):
    """The results go to sweeps/<name>: a name with a path in it wrote outside sweeps/."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SweepError, match="name must be one folder name under sweeps/"):
        sweep(small_config(name=name, budget=5, seeds=1), executor="sequential", progress=False)
    assert not any(tmp_path.iterdir())  # nothing written anywhere
    frame = sweep(small_config(name="my sweep 2", budget=5, seeds=1), executor="sequential", progress=False)
    assert len(frame) and (tmp_path / "sweeps" / "my sweep 2" / "results.csv").exists()
