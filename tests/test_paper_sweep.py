"""The paper runs as sweep cells: ``benchmarks/sweeps/paper.toml`` (runner ``benchmarks.paper:sweep_cell``)
runs ``paper.train`` per cell, a cell continues from its checkpoint exactly, a rerun skips finished
cells, and ``python benchmarks/paper.py`` is a thin config over the same cells (on a tiny GPT)."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from benchmarks import paper
from deo.sweeps import SweepError, expand, load_config, sweep
from landscapes.shakespeare import DEFAULT_CORPUS

ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TINY = {"block_size": 8, "batch_size": 4, "n_layer": 1, "n_head": 2, "n_embd": 8}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    if DEFAULT_CORPUS.is_file():
        return str(DEFAULT_CORPUS)
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "synthetic.txt"
    path.write_text(ALPHABET + "".join(rng.choice(ALPHABET) for _ in range(20_000)))
    return str(path)


def tiny_config(corpus: str, budget: int = 4) -> dict:
    config = load_config(paper.SWEEP_CONFIG)
    config.update(name="tiny_paper", budget=budget, seeds=[0, 1], checkpoint_every=2,
                  options={"eval_every": 2, "eval_batches": 1, "diagnostics": False})  # fmt: skip
    config["problems"] = [{**config["problems"][0], "args": {**TINY, "path": corpus}}]
    config["optimizers"] = [{"preset": "adam"}, {"preset": "deo_paper"}]
    return config


def test_the_repository_config_has_the_adam_type_runs_over_three_seeds():
    cells = expand(load_config(paper.SWEEP_CONFIG))
    assert {c.spec["preset"] for c in cells} == {
        "adamw",
        "adam",
        "deo_paper",
        "deo_escape",
        "deo_paper_random",
    }
    assert sorted({c.spec["seed"] for c in cells}) == [0, 1, 2]
    assert all(c.spec["runner"] == "benchmarks.paper:sweep_cell" and c.checkpoint_every > 0 for c in cells)


def test_a_run_name_the_runner_does_not_know_is_refused(corpus):
    config = tiny_config(corpus)
    config["optimizers"] = [{"preset": "lion"}]
    with pytest.raises(SweepError, match=r"unknown to benchmarks\.paper:sweep_cell"):
        expand(config)


def test_paper_cells_equal_train_and_a_rerun_skips_them(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "CHECKPOINTS", tmp_path / "direct")
    frame = sweep(tiny_config(corpus), tmp_path / "out", executor="sequential", progress=False)
    assert len(frame) == 4 and (frame["steps"] == 4).all() and (frame["status"] == "finished").all()
    assert (frame["grad_evals"][frame["preset"] == "deo_paper"] > 4).all()  # + the rotation at step 0
    cell = next(
        c for c in expand(tiny_config(corpus)) if c.spec["preset"] == "deo_paper" and c.spec["seed"] == 1
    )
    direct = paper.train("deo_paper", paper.cell_args(cell.payload()), log=lambda line: None)
    row = frame[frame["cell"] == cell.key].iloc[0]
    assert json.loads(row["curve"]) == json.loads(json.dumps(direct["curve"]))
    assert not list((tmp_path / "out" / "checkpoints").iterdir())  # removed when a cell finishes
    again = sweep(tiny_config(corpus), tmp_path / "out", executor="sequential", progress=False)
    assert list(again["finished_at"]) == list(frame["finished_at"])  # nothing rerun


def test_a_paper_cell_continues_from_its_checkpoint_exactly(corpus, tmp_path):
    cell = expand(tiny_config(corpus))[-1].payload()  # deo_paper, seed 1
    straight = paper.sweep_cell(cell, tmp_path / "a")
    # an interrupted attempt: the same run stopped at step 2 left its checkpoint behind
    stopped = paper.cell_args(cell)
    stopped.steps = 2
    paper.train("deo_paper", stopped, log=lambda line: None, checkpoint=tmp_path / "b" / f"{cell['key']}.pt")
    resumed = paper.sweep_cell(cell, tmp_path / "b")
    assert resumed["resumed_from"] == 2 and straight["resumed_from"] == 0
    assert json.loads(resumed["curve"]) == json.loads(straight["curve"])


@pytest.mark.skipif(not paper.PUBLISHED_CSV.is_file(), reason="the published curves are not here")
def test_paper_py_is_a_thin_config_over_the_cells(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(paper, "REPO", tmp_path)
    monkeypatch.setattr(paper, "RESULTS", tmp_path / "results")
    model = ["--block-size", "8", "--batch-size", "4", "--n-layer", "1", "--n-head", "2", "--n-embd", "8"]
    argv = ["--steps", "2", "--optimizers", "adam,deo_escape", "--jobs", "1", "--path", corpus, "--name", "t",
            "--eval-every", "1", "--eval-batches", "1", "--no-diagnostics", *model]  # fmt: skip
    paper.main(argv)
    report = (tmp_path / "results" / "t.md").read_text()
    assert "| Adam (wd 0) | 2 | 2 |" in report and "| DEO-escape over Adam | 2 |" in report
    first = pd.read_parquet(tmp_path / "sweeps" / "t" / "results.parquet")
    paper.main(argv)  # the rerun reads the finished cells back
    again = pd.read_parquet(tmp_path / "sweeps" / "t" / "results.parquet")
    assert list(again["finished_at"]) == list(first["finished_at"]) and len(again) == 2
