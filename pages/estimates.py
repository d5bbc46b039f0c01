"""Heavy work waits for a Run button that shows its estimate (issue 8, item 6).

Before the Networks race or an escape map runs, the page asks: is the result already in the shared
cache (``cache_runner``'s ``contains``, a peek that computes nothing)? Has this session pressed Run
for this configuration? Is the estimate (``deo.estimate``: the request's gradient-evaluation count
× this problem's seconds per gradient evaluation, measured once per server process) at most
``RUN_BUTTON_SECONDS``? If any of these, it runs as before; otherwise it shows the estimate and a
primary Run button and computes nothing until that is pressed.

The Networks race and slice are cached here, in a module the page and ``pages.network_charts``
import (``cache_runner`` keys a function on its file, name and source, so a page script's own
cached functions would share their cache across reruns too).
"""

from __future__ import annotations

import os
import threading

import streamlit as st

from deo.estimate import Estimate, calibrate_escape_map, calibrate_loss, calibrate_race
from pages.common import cache_runner, session_alive

DEFAULT_RUN_BUTTON_SECONDS = 3.0
# Above this estimate a request waits for its Run button. DEO_LAB_RUN_BUTTON_S overrides it for a
# server (the test suite sets "inf" so that pages other than the button's own tests never depend on
# how fast a loaded machine happens to time its calibration).
RUN_BUTTON_SECONDS = float(os.environ.get("DEO_LAB_RUN_BUTTON_S", DEFAULT_RUN_BUTTON_SECONDS))

_RATES: dict = {}  # calibration key -> seconds per (row-)gradient evaluation, once per server process
_RATES_LOCK = threading.Lock()


def _one_thread(measure) -> float:
    """``measure()`` with one torch thread in the calling thread, as the workers run (OpenMP's
    thread count is per thread: a script thread that app.py did not set up, e.g. under AppTest,
    would otherwise time two spinning threads on a shared CPU, ~35× slower for a small network)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return measure()
    finally:
        torch.set_num_threads(threads)


def _rate(key: tuple, measure) -> float:
    with _RATES_LOCK:
        if key in _RATES:
            return _RATES[key]
    value = measure()  # outside the lock: a slow calibration does not hold up other problems
    with _RATES_LOCK:
        return _RATES.setdefault(key, value)


def network_seconds_per_eval(network_key: str) -> float:
    """Seconds per gradient evaluation of ``landscapes.make_network(network_key)`` in a race on
    this server (``deo.estimate.calibrate_race``: a few timed GD steps), measured once per process."""

    def measure() -> float:
        import landscapes
        from deo.problems import network_problem

        return _one_thread(lambda: calibrate_race(network_problem(landscapes.make_network(network_key))))

    return _rate(("network", network_key), measure)


def network_seconds_per_loss_eval(network_key: str) -> float:
    """Seconds per plain loss evaluation of the network at its start (``deo.estimate.calibrate_loss``;
    a 2-D slice evaluates the loss at its grid points), measured once per process."""

    def measure() -> float:
        import landscapes
        from deo.problems import network_problem

        return _one_thread(lambda: calibrate_loss(network_problem(landscapes.make_network(network_key))))

    return _rate(("network_loss", network_key), measure)


def escape_map_seconds_per_row_eval(surface, surface_key: str, formula: str, grid: int, window) -> float:
    """Seconds per row-gradient evaluation of an escape map of ``surface`` on a ``grid``² grid of
    starts (``deo.estimate.calibrate_escape_map``), measured once per process per surface and grid
    (the window of the first request is used; the rate hardly depends on it)."""

    def measure() -> float:
        return _one_thread(lambda: calibrate_escape_map(surface, int(grid), window))

    return _rate(("escape_map", surface_key, formula, int(grid)), measure)


def should_run(estimate: Estimate, config_key: str, cached: bool, what: str, state_key: str) -> bool:
    """Whether the page computes now: cached, pressed Run before for ``config_key`` in this session,
    or estimated at most ``RUN_BUTTON_SECONDS``. Otherwise draws the estimate and a primary Run
    button (key ``state_key + ".run"``) and returns True only on the rerun its press causes."""
    approved = st.session_state.setdefault(f"{state_key}.approved", [])
    if cached or config_key in approved or estimate.seconds <= RUN_BUTTON_SECONDS:
        return True
    slot = st.empty()  # cleared once Run is pressed: the box stayed above the run and its results
    box = slot.container(border=True)
    box.markdown(f"**{what}** will cost {estimate.describe()}.")
    box.caption(
        "The count is the algorithms' own (deo.budget); the time is that count × this problem's "
        "measured seconds per gradient evaluation on this server, so it is a rough guide. Nothing "
        "runs until you press Run; changing a setting afterwards asks again."
    )
    if box.button("Run", type="primary", key=f"{state_key}.run", icon=":material/play_arrow:"):
        approved.append(config_key)
        slot.empty()
        return True
    return False


# ----------------------------------------------------------------------------- Networks, cached


@cache_runner
def network_race(
    network_key: str,
    init_scale: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    record_every: int,
    projection: tuple[int, bool] | None = None,
    _progress=None,
) -> list:
    """``pages.workers.network_race_job`` in a worker process, cached on the plain arguments."""
    from pages import workers
    from pages.request_budget import check_network_race

    check_network_race(workers.specs_from_json(specs_json), steps)  # refused here, before a worker starts
    args = (network_key, init_scale, specs_json, steps, seed, clip, record_every, projection)
    return workers.run(workers.network_race_job, *args, progress=_progress, alive=session_alive())


@cache_runner
def network_slice(
    network_key: str,
    init_scale: float | None,
    seed: int,
    plane: str,
    plane_seed: int,
    filter_normalize: bool,
    radius: float,
    resolution: int,
    race_key: str,
    _traces=None,
    _progress=None,
):
    """``pages.workers.network_slice_job`` (a ``TrajectorySlice``) in a worker process; ``race_key``
    identifies ``_traces`` (the race's own arguments) in the cache key."""
    from pages import workers

    args = (network_key, init_scale, seed, plane, plane_seed, filter_normalize, radius, resolution, _traces)
    return workers.run(workers.network_slice_job, *args, progress=_progress, alive=session_alive())
