"""Heavy work off the server process: a bounded pool of worker processes (issue 9 item 6, issue 13
item 8).

An escape map, a Networks race or a Networks loss slice holds a core for seconds to a minute of
Python-heavy work. Run in Streamlit's script thread it holds the GIL, and the server's event loop
(every other session's messages, the health endpoint) waits behind it. :func:`run` sends such a job
to a ``concurrent.futures.ProcessPoolExecutor`` instead:

- ``forkserver`` start method with torch, ``deo``, ``landscapes`` and this module preloaded in the
  fork server, so a new worker is a fork of an interpreter that already imported them (no
  Streamlit, no viz in the workers);
- at most ``max(1, cores - 1)`` workers (``DEO_LAB_WORKERS`` overrides; ``0`` runs every job in the
  calling thread), each ``WORKER_NICE`` nicer than the server, with one torch thread and one BLAS
  thread, and replaced after ``TASKS_PER_CHILD`` jobs so the memory a job used goes back to the
  operating system;
- progress: the job's ``progress(fraction, message)`` calls are written (at most every
  ``STATUS_EVERY_S``) to a small status file the calling thread polls every ``POLL_S`` and passes to
  its own ``progress`` (the page's ``st.progress`` bar). While the job waits for a free worker the
  bar says so;
- stopping: when the calling thread leaves the wait with an exception — Streamlit raises its
  StopException / RerunException at the next ``st`` call once the session is closed or rerun — the
  job is cancelled if it has not started, and otherwise asked to stop: a stop file plus ``SIGUSR1``
  to its worker, whose handler raises :class:`Cancelled` in the job (between two torch calls).

Results come back pickled: bit-identical to running the job in the calling thread
(``tests/test_serving_pool.py``). This module imports neither Streamlit nor viz.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import set_spawning_popen
from pathlib import Path
from typing import Any

import numpy as np

WORKER_NICE = 10  # workers yield the cores to the server process and its sessions
TASKS_PER_CHILD = 4  # a worker is replaced after this many jobs (its memory goes back to the OS)
POLL_S = 0.1  # the calling thread checks the job (and its own session) this often
STATUS_EVERY_S = 0.1  # a worker writes its progress at most this often
# torch._dynamo: torch.optim imports it on the first optimizer built (~2 s quiet, 15 s loaded): once,
# in the fork server, instead of in every new worker
PRELOAD = ["torch", "torch._dynamo", "numpy", "deo", "deo.race", "landscapes", "pages.workers"]
ENV_WORKERS = "DEO_LAB_WORKERS"  # number of workers; 0 = run jobs in the calling thread
WATCH_S = 2.0  # a worker checks this often that the server process still exists
GONE_S = 5.0  # a job is stopped once its session has been disconnected this long (not a blip)


class Throttle:
    """Whether a progress report is due: at most one every ``every_s`` seconds (counted from the
    throttle's creation), and always the end (fraction ≥ 1). A race reports every 1 % of its steps;
    each report let through costs (a status file written, a message to the browser)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock, self.last = every_s, clock, clock()

    def due(self, fraction: float) -> bool:
        now = self.clock()
        if not fraction >= 1.0 and now - self.last < self.every_s:
            return False
        self.last = now
        return True


class Cancelled(Exception):
    """The job was stopped because the session that asked for it went away or reran."""


def max_workers() -> int:
    """Workers in the pool: ``DEO_LAB_WORKERS`` if set, else one core less than the machine has
    (at least one): the server process keeps a core for its event loop and the light pages."""
    text = os.environ.get(ENV_WORKERS, "").strip()
    if text:
        return max(0, int(text))
    return max(1, (os.cpu_count() or 1) - 1)


# ------------------------------------------------------------------------------------------ worker

_CURRENT: dict[str, Any] = {"task": None, "dir": None}  # the job this worker runs now


def _stop_path(folder: str, task: str) -> Path:
    return Path(folder) / f"{task}.stop"


def _status_path(folder: str, task: str) -> Path:
    return Path(folder) / f"{task}.json"


def _check_stop() -> None:
    task, folder = _CURRENT["task"], _CURRENT["dir"]
    if task is not None and _stop_path(folder, task).exists():
        _CURRENT["task"] = None  # raise once
        raise Cancelled("stopped: the session that asked for this went away")


def _on_signal(signum, frame) -> None:
    _check_stop()


def _watch_server(server_pid: int) -> None:
    """Exit when the server process is gone (a job would otherwise run on, and its worker keep the
    fork server alive)."""
    while True:
        time.sleep(WATCH_S)
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except OSError:
            pass


def _initializer(nice: int = WORKER_NICE, server_pid: int | None = None) -> None:
    """Lower priority, one torch thread and one BLAS thread (``pages.threads``), the stop signal's
    handler, and a watch on the server."""
    _lower_priority(0, nice)
    if server_pid is not None:
        threading.Thread(target=_watch_server, args=(server_pid,), daemon=True).start()
    from pages.threads import single_threaded

    single_threaded()
    signal.signal(signal.SIGUSR1, _on_signal)


def _write_status(folder: str, task: str, status: dict) -> None:
    path = _status_path(folder, task)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


def _task(folder: str, task: str, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Run ``fn(*args, progress=..., **kwargs)`` in a worker, reporting to the status file."""
    _CURRENT.update(task=task, dir=folder)
    throttle = Throttle(STATUS_EVERY_S)  # "started" is written below
    pid = os.getpid()

    def progress(fraction: float, message: str = "") -> None:
        if throttle.due(fraction):
            _write_status(folder, task, {"pid": pid, "fraction": float(fraction), "message": str(message)})
            _check_stop()

    try:
        _write_status(folder, task, {"pid": pid, "fraction": 0.0, "message": "started"})
        _check_stop()
        return fn(*args, progress=progress, **kwargs)
    finally:
        _CURRENT.update(task=None, dir=None)
        for path in (_status_path(folder, task), _stop_path(folder, task)):
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ server

_POOL: dict[str, Any] = {"executor": None, "dir": None}
_LOCK = threading.Lock()


class _Popen(popen_forkserver.Popen):
    """A fork-server child that does not re-run the parent's ``__main__``.

    multiprocessing re-runs a path-based ``__main__`` in every new child. In a Streamlit server
    ``sys.modules["__main__"]`` is whichever page script runs at that moment (Streamlit installs
    each script run as ``__main__``), so a worker would run a page without a session. The workers
    need nothing from it: the jobs are functions of this module. Same steps as the standard
    library's ``popen_forkserver.Popen._launch`` (Python 3.11-3.13), minus the ``__main__`` entries."""

    def _launch(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(mp_context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        return _Popen(process_obj)


class _Context(mp_context.ForkServerContext):
    Process = _Process


def _worker_nice() -> int:
    """The workers' niceness: ``WORKER_NICE`` above the server's own (at most 19)."""
    try:
        return min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICE)
    except (OSError, AttributeError):
        return WORKER_NICE


def _lower_priority(pid: int = 0, nice: int = WORKER_NICE) -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(nice, os.getpriority(os.PRIO_PROCESS, pid)))
    except (OSError, AttributeError):
        pass


def _start_fork_server() -> None:
    """Start the fork server now, at low priority: its imports (torch, ~2 s of CPU) then never
    compete with the server's own sessions, and the workers it forks inherit the priority."""
    try:
        forkserver.ensure_running()
        _lower_priority(forkserver._forkserver._forkserver_pid, _worker_nice())
    except (OSError, AttributeError, ValueError):
        pass


def warm_up() -> threading.Thread:
    """Start the pool and one worker in a background thread (the server calls this at start, so
    the first heavy request does not wait for the workers' imports)."""

    def start() -> None:
        try:
            run(pid_job)
        except Exception:  # a pool that cannot start is reported by the first real job
            pass

    thread = threading.Thread(target=start, name="deo-lab-pool-warm-up", daemon=True)
    thread.start()
    return thread


def _executor() -> ProcessPoolExecutor:
    with _LOCK:
        if _POOL["executor"] is None:
            context = _Context()
            context.set_forkserver_preload(PRELOAD)
            _start_fork_server()
            _POOL["dir"] = tempfile.mkdtemp(prefix="deo-lab-pool-")
            # its tasks' status files go as each task ends; the folder goes with the process (one
            # empty folder per server start was left in /tmp)
            atexit.register(shutil.rmtree, _POOL["dir"], ignore_errors=True)
            _POOL["executor"] = ProcessPoolExecutor(
                max_workers=max_workers(),
                mp_context=context,
                initializer=_initializer,
                initargs=(_worker_nice(), os.getpid()),
                max_tasks_per_child=TASKS_PER_CHILD,
            )
        return _POOL["executor"]


def shutdown() -> None:
    """Stop the pool's workers (a later :func:`run` starts a new pool)."""
    with _LOCK:
        executor, _POOL["executor"] = _POOL["executor"], None
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)


def _read_status(folder: str, task: str) -> dict | None:
    try:
        return json.loads(_status_path(folder, task).read_text())
    except (OSError, ValueError):
        return None


def _stop(future, folder: str, task: str) -> None:
    if future.cancel():
        return
    _stop_path(folder, task).touch()
    status = _read_status(folder, task)
    if status and not future.done():
        try:
            os.kill(int(status["pid"]), signal.SIGUSR1)
        except (OSError, KeyError, ValueError):
            pass


def run(
    fn: Callable,
    *args: Any,
    progress: Callable[[float, str], None] | None = None,
    alive: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> Any:
    """``fn(*args, progress=..., **kwargs)`` in a worker process; its result (or exception).

    ``fn`` must be a module-level function taking a ``progress`` keyword. ``progress`` (optional) is
    the caller's own callback, called from the calling thread with the worker's latest fraction and
    message about every ``POLL_S`` seconds; an exception it raises (Streamlit stopping the session's
    run) stops the job and propagates. ``alive`` (optional) says whether the asking session is still
    connected; once it has said False for ``GONE_S`` seconds the job is stopped and
    :class:`Cancelled` raised. With ``DEO_LAB_WORKERS=0`` the job runs here."""
    if max_workers() == 0:
        return fn(*args, progress=progress, **kwargs)
    executor = _executor()
    folder = _POOL["dir"]
    task = uuid.uuid4().hex
    try:
        future = executor.submit(_task, folder, task, fn, args, kwargs)
    except BrokenProcessPool:
        shutdown()
        executor = _executor()
        folder = _POOL["dir"]
        future = executor.submit(_task, folder, task, fn, args, kwargs)
    gone_since = None
    try:
        while True:
            try:
                watched = progress is not None or alive is not None
                return future.result(timeout=POLL_S if watched else None)
            except FutureTimeout:
                pass
            if alive is not None and not alive():
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since >= GONE_S:
                    raise Cancelled("stopped: the session that asked for this was closed")
            else:
                gone_since = None
            status = _read_status(folder, task)
            if progress is not None:
                if status is None:
                    progress(0.0, "(waiting for a free worker: another heavy computation runs)")
                else:
                    progress(status["fraction"], status["message"])
    except BrokenProcessPool as exc:
        shutdown()
        raise RuntimeError("the worker process stopped unexpectedly (out of memory?); try again") from exc
    except CancelledError as exc:
        raise Cancelled("the job was cancelled") from exc
    except BaseException:
        _stop(future, folder, task)
        raise
    finally:
        if future.done():  # else the worker removes them when the stopped job ends
            for path in (_status_path(folder, task), _stop_path(folder, task)):
                path.unlink(missing_ok=True)


def worker_pids() -> list[int]:
    """Process ids of the pool's live workers (empty before the first job)."""
    executor = _POOL["executor"]
    processes = getattr(executor, "_processes", None) or {}
    return sorted(pid for pid, p in dict(processes).items() if p.is_alive())


# -------------------------------------------------------------------------------------------- jobs


def specs_from_json(text: str) -> list:
    """``deo.race.OptimizerSpec`` s from ``pages.common.specs_to_json``'s canonical text."""
    from deo.race import OptimizerSpec

    return [
        OptimizerSpec(key=d["key"], hyperparams=d["hyperparams"], label=d["label"]) for d in json.loads(text)
    ]


def get_surface(surface_key: str, formula: str = ""):
    """``landscapes.SURFACES[surface_key]``, or the parsed ``formula`` when the key is ``"custom"``."""
    import landscapes

    if surface_key == "custom":
        return landscapes.parse_formula(formula)
    if surface_key not in landscapes.SURFACES:
        raise ValueError(f"unknown surface {surface_key!r}; choose one of {sorted(landscapes.SURFACES)}")
    return landscapes.SURFACES[surface_key]


def escape_map_job(
    surface_key: str,
    formula: str,
    saddle: tuple[float, float],
    window: tuple[tuple[float, float], tuple[float, float]],
    resolution: int,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The escape map of ``pages.common.cached_escape_map`` (its budget checked first)."""
    from deo.escapes import surface_escape_map  # the same map as python -m deo escape-map
    from pages.request_budget import check_map

    check_map(specs_from_json(specs_json), steps, resolution**2)  # the page's budget, before any work
    surface = get_surface(surface_key, formula)
    # window = saddle ± half-width: map_escape centres the criterion on that saddle
    specs = specs_from_json(specs_json)
    out = surface_escape_map(
        surface, resolution, specs, steps, window=window, seed=seed, clip=clip, progress=progress
    )
    return out.xs, out.ys, out.results


def network_race_job(
    network_key: str,
    init_scale: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    record_every: int,
    projection: tuple[int, bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> list:
    """The race on ``landscapes.make_network(network_key)`` from ``params0(init_scale, seed)``.

    ``projection`` = (plane seed, filter-normalise): record each row's coordinates in that random
    plane as ``position_2d`` during the race — for networks too large to record whole trajectories
    (d > ``VECTOR_MAX_DIM``); smaller networks are projected afterwards from ``Trace.position``.
    """
    import torch

    import landscapes
    from deo.race import network_problem, race
    from pages.request_budget import check_network_race

    check_network_race(specs_from_json(specs_json), steps)  # the page's budget, before any work
    net = landscapes.make_network(network_key)
    problem = network_problem(net, init_scale=init_scale, seed=seed)
    if projection is not None:
        from landscapes.trajectory_slices import start_plane

        params0, (d1, d2) = start_plane(net, init_scale, seed, *projection)

        def project_2d(theta: torch.Tensor) -> torch.Tensor:
            coords = landscapes.project_onto_plane(theta.detach().double().numpy()[None], params0, d1, d2)
            return torch.as_tensor(coords[0])

        problem.project_2d = project_2d
    return race(
        problem,
        specs_from_json(specs_json),
        steps,
        seed=seed,
        clip=clip,
        record_every=record_every,
        progress=progress,
    )


def network_slice_job(
    network_key: str,
    init_scale: float | None,
    seed: int,
    plane: str,
    plane_seed: int,
    filter_normalize: bool,
    radius: float,
    resolution: int,
    traces: list,
    progress: Callable[[float, str], None] | None = None,
):
    """``landscapes.trajectory_slices.trajectory_slice`` of the race's ``traces`` (a
    ``TrajectorySlice``): the loss on a plane through θ₀ and every trajectory projected on it."""
    import landscapes
    from landscapes.trajectory_slices import trajectory_slice

    points = resolution * resolution
    if progress is not None:
        progress(0.0, f"0 of {points} points")
    net = landscapes.make_network(network_key)

    def grid_progress(fraction: float) -> None:
        if progress is not None:
            done = round(fraction * points)
            progress(fraction, f"{done} of {points} points")

    return trajectory_slice(
        net, init_scale, seed, plane, traces, plane_seed, filter_normalize, radius, resolution, grid_progress
    )


def pid_job(progress: Callable[[float, str], None] | None = None) -> int:
    """The worker's process id (tests and benchmarks check that heavy work ran off the server)."""
    return os.getpid()


def threads_job(progress: Callable[[float, str], None] | None = None) -> dict:
    """The worker's thread counts: torch's intra-op threads and each loaded BLAS library's (tests
    check that a worker computes on one thread)."""
    import torch

    from pages.threads import blas_threads

    return {"torch": torch.get_num_threads(), "blas": blas_threads()}
