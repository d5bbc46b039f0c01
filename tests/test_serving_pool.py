"""Heavy work in worker processes (pages/workers.py): results bit-identical to running in the
calling thread, the work runs in another process, and a job whose session goes away stops."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from pages import workers
from pages.common import specs_to_json


def _specs(*keys):
    from deo.race import OptimizerSpec

    return specs_to_json([OptimizerSpec(k) for k in keys])


def _same(a, b) -> None:
    """Equal arrays (NaN where NaN) and equal plain fields; wall times aside."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, np.ndarray | torch.Tensor):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    elif hasattr(a, "__dict__"):
        assert type(a) is type(b)
        for k, v in vars(a).items():
            if "time" not in k:
                _same(v, vars(b)[k])
    else:
        assert a == b or (a != a and b != b), (a, b)


MAP = ("saddle_plateau", "", (0.0, 0.0), ((-1.0, 1.0), (-1.0, 1.0)))  # surface, formula, saddle, window


@pytest.fixture(scope="module")
def pool():
    """A fresh pool: earlier tests' jobs (pages run theirs in the same process-wide pool) would count
    towards a worker's ``TASKS_PER_CHILD``, and a worker retired after this module's first jobs is
    no longer among ``worker_pids()``."""
    torch.set_num_threads(1)  # as the app's script threads and the workers run
    workers.shutdown()
    yield
    workers.shutdown()


def test_escape_map_in_a_worker_is_bit_identical(pool):
    args = (
        "saddle_plateau",
        "",
        (0.0, 0.0),
        ((-1.0, 1.0), (-1.0, 1.0)),
        6,
        _specs("gd", "deo_escape"),
        40,
        3,
        None,
    )
    here = workers.escape_map_job(*args)
    seen = []
    there = workers.run(workers.escape_map_job, *args, progress=lambda f, m: seen.append(f))
    _same(here, there)
    pid = workers.run(workers.pid_job)
    assert pid != os.getpid() and pid in workers.worker_pids()


def test_network_race_in_a_worker_is_bit_identical(pool):
    args = ("two_moons", None, _specs("gd", "deo_paper"), 15, 1, None, 1, None)
    here = workers.network_race_job(*args)
    there = workers.run(workers.network_race_job, *args)
    assert len(there) == 2 and all(t.loss.size > 1 for t in there)
    _same(here, there)


def test_a_job_whose_session_goes_away_stops_and_frees_its_worker(pool):
    class Gone(Exception):
        pass

    calls = []

    def session_closed(fraction, message):
        calls.append(message)
        if fraction > 0:  # the job is running: the session goes away now
            raise Gone

    # minutes of work in one job (60×60 starts, 2000 steps, 3 optimizers)
    args = (
        "saddle_plateau",
        "",
        (0.0, 0.0),
        ((-1.0, 1.0), (-1.0, 1.0)),
        60,
        _specs("gd", "adam", "deo_escape"),
    )
    with pytest.raises(Gone):
        workers.run(workers.escape_map_job, *args, 2000, 0, None, progress=session_closed)
    t0 = time.monotonic()
    assert workers.run(workers.pid_job) > 0  # the only worker is free again: the map was stopped
    assert time.monotonic() - t0 < 60


def test_a_budget_refusal_comes_back_as_the_same_error(pool):
    from deo.budget import BudgetError

    args = (
        "saddle_plateau",
        "",
        (0.0, 0.0),
        ((-1.0, 1.0), (-1.0, 1.0)),
        100,
        _specs("gd", "adam", "deo_escape"),
    )
    with pytest.raises(BudgetError, match="ESCAPE_MAP_BUDGET"):
        workers.run(workers.escape_map_job, *args, 2000, 0, None)


def test_a_job_whose_session_was_closed_is_stopped_after_the_grace_time(pool, monkeypatch):
    monkeypatch.setattr(workers, "GONE_S", 0.3)
    args = (*MAP, 60, _specs("gd", "adam", "deo_escape"), 2000, 0, None)  # minutes of work
    t0 = time.monotonic()
    with pytest.raises(workers.Cancelled):
        workers.run(workers.escape_map_job, *args, alive=lambda: False)
    assert workers.run(workers.pid_job) > 0  # the worker is free again
    assert time.monotonic() - t0 < 60


def test_the_pools_folder_goes_with_the_process():
    """Each server start made a ``deo-lab-pool-*`` folder in the temp dir and left it there."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from pages import workers\n"
        "assert workers.run(workers.pid_job) != __import__('os').getpid()\n"
        "print(workers._POOL['dir'])\n"
        "workers.shutdown()\n"
    )
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("deo-lab-pool-") and not folder.exists()
