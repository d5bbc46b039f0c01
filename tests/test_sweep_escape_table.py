"""Rerunning cells of ``benchmarks/sweeps/escape_table.toml`` reproduces the committed table
``benchmarks/results/sweep_escape_table.csv`` (written by ``python benchmarks/sweep_overhead.py --part
table``) exactly: a subset of 9 of its 280 cells, one per optimizer (the two random-direction
controls included) on x²−y² from (1, 1e-3) plus two monkey-saddle DEO-escape seeds, compared column
by column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from deo.sweeps import expand, load_config, sweep

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "sweeps" / "escape_table.toml"
TABLE = ROOT / "benchmarks" / "results" / "sweep_escape_table.csv"
EXACT = ["status", "escape_step", "grad_evals_to_escape", "steps", "grad_evals"]
CLOSE = ["final_loss", "best_loss", "final_grad_norm", "lambda_min"]


def test_the_committed_table_is_complete_and_keyed_by_the_configs_cells():
    committed = pd.read_csv(TABLE)
    cells = expand(load_config(CONFIG))
    assert len(committed) == len(cells) == 280
    assert sorted(committed["cell"]) == sorted(c.key for c in cells)


def test_rerunning_a_subset_reproduces_the_committed_rows(tmp_path):
    torch.set_num_threads(1)
    config = load_config(CONFIG)
    base = {k: v for k, v in config.items() if k not in ("problems", "optimizers", "seeds")}
    first, monkey = config["problems"][0], config["problems"][3]
    deo_escape = [o for o in config["optimizers"] if o["label"] == "DEO-escape"]
    part1 = sweep({**base, "seeds": [3], "problems": [first], "optimizers": config["optimizers"]},
                  tmp_path / "a", executor="sequential", progress=False)  # fmt: skip
    part2 = sweep({**base, "seeds": [1, 6], "problems": [monkey], "optimizers": deo_escape},
                  tmp_path / "b", executor="sequential", progress=False)  # fmt: skip
    fresh = pd.concat([part1, part2]).set_index("cell")
    committed = pd.read_csv(TABLE).set_index("cell").loc[fresh.index]
    assert len(fresh) == 9
    pd.testing.assert_frame_equal(fresh[EXACT], committed[EXACT], check_dtype=False)
    pd.testing.assert_frame_equal(fresh[CLOSE], committed[CLOSE], check_dtype=False, rtol=1e-12, atol=0)
