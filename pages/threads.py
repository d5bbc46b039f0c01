"""One thread per computation in the app's server and its workers: torch's intra-op pool and the
BLAS libraries numpy and scipy load (OpenBLAS in their wheels).

The app's work is many small computations from concurrent sessions on a few cores: a second thread
inside one of them only takes a core from another session. ``torch.set_num_threads(1)`` covers
torch; numpy's and scipy's OpenBLAS keep their own pool, one thread per core, whose idle threads
spin between calls. A tiny_transformer race of the Networks page (GD, Adam and DEO (paper), 400
steps) took 17.8 s of CPU for 8.9 s of wall time under the default, and 8.2 s for 8.2 s with one
BLAS thread, the same losses (``benchmarks/blas_threads.py``): on the server's 2 cores the spinning
thread took the other core from every other session for nothing.

:func:`single_threaded` is called by app.py at every run, by serve.py's warm-up and by every worker
process (``pages.workers``). This module imports neither Streamlit nor viz.
"""

from __future__ import annotations

import functools

import torch


def single_threaded() -> None:
    """One torch intra-op thread (process-wide; cheap, so every call sets it) and, once per process,
    one thread in every BLAS library loaded (:func:`_limit_blas`)."""
    torch.set_num_threads(1)
    _limit_blas()


@functools.cache
def _limit_blas() -> None:
    """One thread in numpy's and scipy's BLAS, imported here first: only libraries already loaded can
    be limited. Cached: once per process (two threads racing to the first call both set 1)."""
    import numpy  # noqa: F401  (its OpenBLAS)
    import scipy.linalg  # noqa: F401  (scipy's own OpenBLAS, and the LAPACK behind eigh)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def blas_threads() -> dict[str, int]:
    """The thread count of every BLAS library loaded in this process, by file name (for tests and
    benchmarks)."""
    from threadpoolctl import threadpool_info

    return {
        info["filepath"].rsplit("/", 1)[-1]: info["num_threads"]
        for info in threadpool_info()
        if info["user_api"] == "blas"
    }
