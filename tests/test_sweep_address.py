"""``python -m deo sweep CONFIG --address HOST:PORT`` on a cluster started with ``ray start --head``.

Ray ≥ 2.59 turns token authentication on in ``ray start --head`` when a token exists
(``~/.ray/auth_token``); a driver given an explicit address used to be refused with
``InvalidAuthToken``. The test starts a head node (1 CPU, no dashboard) on a free port with its own
HOME holding a fresh token, runs a 2-cell sweep through ``--address`` in a separate driver process,
checks the table and stops the node it started (SIGTERM to ``ray start --block``, then its own process
group if anything is left).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")  # requirements-dev.txt (the sweep extra): the test command installs it

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEADLINE_S = 900  # a fully loaded 2-core machine: starting Ray and a worker took minutes there

CONFIG = """
name = "two_cells"
budget = 40
seeds = 2
[[problems]]
surface = "saddle"
start = [1.0, 1e-3]
[[optimizers]]
preset = "gd"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, head: subprocess.Popen, deadline: float) -> None:
    """Wait until the head's GCS accepts connections (or fail if ``ray start`` exits)."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            try:
                code = head.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"ray start --head exited with {code}") from None
    raise AssertionError(f"the head node did not listen on {port} in time")


def test_sweep_runs_on_a_ray_start_head_cluster_through_address(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    temp_dir = tempfile.mkdtemp(prefix="rayE", dir="/tmp")  # short: Ray's socket paths have a limit
    port = free_port()
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE_S
    try:
        wait_for_port(port, head, deadline)
        config = tmp_path / "two.toml"
        config.write_text(CONFIG)
        out = tmp_path / "out"
        driver = subprocess.run(
            [sys.executable, "-m", "deo", "sweep", str(config), "--address", f"127.0.0.1:{port}",
             "--out", str(out)],
            env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=max(1.0, deadline - time.monotonic()),
        )  # fmt: skip
        assert driver.returncode == 0, driver.stdout[-3000:] + driver.stderr[-3000:]
        assert "InvalidAuthToken" not in driver.stderr
        frame = pd.read_parquet(out / "results.parquet")
        assert sorted(frame["seed"]) == [0, 1]
        assert (frame["steps"] == 40).all() and (frame["ray"] != "").all()
        meta = (out / "sweep.json").read_text()
        assert f"127.0.0.1:{port}" in meta
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever the head started and left behind: its own process group only
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)
