"""One thread per computation in the app's server and workers (pages/threads.py): torch's intra-op
pool and numpy's and scipy's OpenBLAS, whose idle threads otherwise spin beside every computation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pages import workers

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from pages.threads import blas_threads, single_threaded
import numpy, scipy.linalg  # their BLAS loaded: what a fresh process has before the call
before = blas_threads()
{call}
import torch
print(json.dumps({{"before": before, "after": blas_threads(), "torch": torch.get_num_threads()}}))
"""


def _probe(call: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # the libraries' defaults
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(call=call)], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_single_threaded_leaves_every_blas_library_and_torch_one_thread():
    cores = os.cpu_count() or 1
    plain = _probe("")
    assert plain["before"], "numpy and scipy load a BLAS library that threadpoolctl sees"
    if cores > 1:  # the libraries' own default: a thread per core (what the call is for)
        assert max(plain["after"].values()) > 1, plain
    done = _probe("single_threaded(); single_threaded()")  # twice: the second call is a no-op
    assert set(done["after"]) == set(done["before"])
    assert set(done["after"].values()) == {1}, done
    assert done["torch"] == 1


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.delenv(workers.ENV_WORKERS, raising=False)  # the pool's default size: at least one worker
    workers.shutdown()
    yield
    workers.shutdown()


def test_a_worker_computes_on_one_torch_and_one_blas_thread(pool):
    threads = workers.run(workers.threads_job)
    assert threads["torch"] == 1
    assert threads["blas"] and set(threads["blas"].values()) == {1}, threads
