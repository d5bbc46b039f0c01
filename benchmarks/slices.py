"""Benchmark: a 2-D loss slice, vectorised chunked evaluation vs a per-point loop.

``loss_grid`` (``torch.func.vmap`` over chunks of 256 grid points, parameters built inside each
chunk) against the way the loss-landscapes libraries evaluate a slice: for each grid point, copy
θc + α δ₁ + β δ₂ into the module's parameters in place, run the forward pass, read the loss.
Every measurement runs in a fresh subprocess: time = median over repeats of the whole grid; memory
(in a separate subprocess, one repeat) = the process's peak RSS (``resource.getrusage``
``ru_maxrss``) and its growth over the RSS after setup (problem, data and plane built, a 2×2
warm-up grid evaluated). The memory runs fix glibc's mmap threshold (``MALLOC_MMAP_THRESHOLD_``)
so freed blocks go back to the OS: with the default dynamic threshold the heap keeps freed chunk
buffers and the RSS grows with the number of chunks although the live memory does not.

    python benchmarks/slices.py            # writes benchmarks/results/slices.md

Two more modes, each in one process with the sides alternating (medians of CPU time):

    python benchmarks/slices.py --peer --repeats 7         # against loss-landscapes: slices_peer.md
    python benchmarks/slices.py --closed-form --repeats 7  # "mlp" vs vmap / loop: slices_closed_form.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from landscapes.networks import make_network  # noqa: E402
from landscapes.slices import LOOP_MIN_PARAMS, loss_grid, random_plane  # noqa: E402

THREADS = 1
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
CASES = {  # problem -> (factory options, samples in the batch (None: all), grid sizes, repeats, chunk)
    "two_moons": ({}, None, (26, 51, 101), 5, 256),
    "tiny_transformer": ({}, 64, (26, 51), 3, 64),
}


def _setup(key: str):
    options, n_batch, _, _, _ = CASES[key]
    problem = make_network(key, **options)
    batch = problem.batch(0)
    if n_batch is not None:
        batch = tuple(t[:n_batch] for t in batch)
    center = problem.params0()
    d1, d2 = random_plane(center, seed=0)
    return problem, batch, center, d1, d2


def per_point_loop(problem, batch, center, d1, d2, n: int, radius: float = 1.0) -> torch.Tensor:
    """The loss-landscapes way: set the module's parameters in place, forward, read the loss."""
    model = problem.model
    named = dict(model.named_parameters())
    inputs, targets = batch
    coords = torch.linspace(-radius, radius, n, dtype=torch.float64)
    Z = torch.empty(n, n, dtype=torch.float64)
    with torch.no_grad():
        for i, b in enumerate(coords.tolist()):
            for j, a in enumerate(coords.tolist()):
                for k, p in named.items():
                    p.copy_(center[k] + a * d1[k] + b * d2[k])
                if problem.criterion is None:  # the module computes its own loss
                    Z[i, j] = model(inputs, targets).item()
                else:
                    Z[i, j] = problem.criterion(model(inputs), targets).item()
    return Z


def measure(key: str, method: str, n: int, repeats: int) -> dict:
    """One measurement (run in its own process): median seconds and peak RSS."""
    torch.set_num_threads(THREADS)
    problem, batch, center, d1, d2 = _setup(key)
    evaluate = {
        "vectorised": lambda m: loss_grid(
            problem, center, d1, d2, n=m, batch=batch, chunk=CASES[key][4], method="vmap"
        )[2],
        "loop": lambda m: per_point_loop(problem, batch, center, d1, d2, m),
    }[method]
    evaluate(2)  # warm-up
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate(n)
        times.append(time.perf_counter() - start)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": statistics.median(times),
        "peak_mib": rss_peak / 1024,
        "growth_mib": (rss_peak - rss_setup) / 1024,
    }


def _subprocess(key: str, method: str, n: int, repeats: int, env) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", key, method, str(n), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all() -> str:
    rows = []
    for key, (_, n_batch, sizes, repeats, chunk) in CASES.items():
        problem = make_network(key)
        for n in sizes:
            result = {}
            for method in ("vectorised", "loop"):
                reps = repeats if method == "vectorised" or n <= 51 else 1
                result[method] = _subprocess(key, method, n, reps, os.environ)
                memory = _subprocess(key, method, n, 1, {**os.environ, **MALLOC_ENV})
                result[method].update(repeats=reps, peak_mib=memory["peak_mib"])
                result[method]["growth_mib"] = memory["growth_mib"]
            v, loop = result["vectorised"], result["loop"]
            rows.append(
                f"| {key} (d = {problem.n_params}, batch {n_batch or len(problem.data[0])}) | "
                f"{n}×{n} | {chunk} | "
                f"{v['seconds'] * 1e3:.0f} ({v['repeats']}) | "
                f"{loop['seconds'] * 1e3:.0f} ({loop['repeats']}) | "
                f"**{loop['seconds'] / v['seconds']:.1f}×** | {v['peak_mib']:.0f} / +{v['growth_mib']:.0f} | "
                f"{loop['peak_mib']:.0f} / +{loop['growth_mib']:.0f} |"
            )
            print(rows[-1], flush=True)
    header = (
        "| problem | grid | chunk | vectorised ms (repeats) | loop ms (repeats) | speed-up | "
        "vectorised peak RSS / growth MiB | loop peak RSS / growth MiB |\n|---|---|---|---|---|---|---|---|"
    )
    return "\n".join([header, *rows])


PEER_N = 51


def peer_compare(key: str, n: int = PEER_N, repeats: int = 3) -> dict:
    """Our ``loss_grid`` against the ``loss-landscapes`` package (``planar_interpolation``, its
    per-point loop with its own ``Metric`` protocol) on the same plane, in this process.

    loss-landscapes walks the plane with in-place steps and evaluates the even columns at
    β_{k+1} and the odd columns at β_k (it adds the β step before the first point of an even
    column, subtracts it before each point of an odd one): we evaluate our grid at both offsets
    and compare each column where loss-landscapes put it. Ours (``method="auto"``, what the page
    runs), ours by vmap and the peer alternate ``repeats`` times; medians.
    """
    import copy

    import loss_landscapes
    from loss_landscapes.metrics.metric import Metric

    torch.set_num_threads(THREADS)
    problem, batch, center, d1, d2 = _setup(key)
    inputs, targets = batch
    step = 2.0 / (n - 1)  # α, β = linspace(−1, 1, n)

    class Loss(Metric):  # loss_landscapes.metrics.Loss, for a module that may compute its own loss
        def __call__(self, wrapper) -> float:
            model = wrapper.modules[0]
            if problem.criterion is None:
                return model(inputs, targets).item()
            return problem.criterion(model(inputs), targets).item()

    def model_at(params) -> torch.nn.Module:
        model = copy.deepcopy(problem.model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(params[name])
        return model

    start = {k: center[k] - d1[k] - d2[k] for k in center}
    end1 = {k: start[k] + n * step * d1[k] for k in center}
    end2 = {k: start[k] + n * step * d2[k] for k in center}
    models = [model_at(start), model_at(end1), model_at(end2)]
    shifted = {k: center[k] + step * d2[k] for k in center}
    chunk = CASES[key][4]

    def ours(c, method="auto"):
        return loss_grid(problem, c, d1, d2, n=n, batch=batch, chunk=chunk, method=method)

    def timed(fn) -> tuple[float, float, object]:
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        return time.perf_counter() - t0, time.process_time() - c0, value

    ours(center, "vmap"), ours(center)  # warm-up
    times: dict[str, list[tuple[float, float]]] = {"auto": [], "vmap": [], "peer": []}
    for _ in range(repeats):
        wall, cpu, grid = timed(lambda: ours(center))
        times["auto"].append((wall, cpu))
        wall, cpu, _ = timed(lambda: ours(center, "vmap"))
        times["vmap"].append((wall, cpu))
        wall, cpu, peer = timed(
            lambda: loss_landscapes.planar_interpolation(*models, Loss(), steps=n, deepcopy_model=True)
        )
        times["peer"].append((wall, cpu))
    z, method = grid[2], grid.meta["method"]
    z_shift = ours(shifted)[2]
    med = {k: tuple(statistics.median(t[i] for t in v) for i in (0, 1)) for k, v in times.items()}
    expected = np.where((np.arange(n) % 2 == 0)[:, None], z_shift.T, z.T)  # peer[i, k]: α_i, β_k(+1)
    diff = np.abs(peer - expected)
    scale = np.abs(expected).max()
    return {
        "problem": key,
        "d": problem.n_params,
        "dtype": str(next(iter(center.values())).dtype).replace("torch.", ""),
        "method": method,
        "repeats": repeats,
        "ours_s": med["auto"][0],
        "peer_s": med["peer"][0],
        "ours_cpu": med["auto"][1],
        "peer_cpu": med["peer"][1],
        "vmap_cpu": med["vmap"][1],
        "max_abs": float(diff.max()),
        "max_rel": float(diff.max() / scale),
        "unshifted_max_abs": float(np.abs(peer - z.T).max()),
    }


MATMULS = {"aten::mm": torch.mm, "aten::bmm": torch.bmm}


def matmul_floor(key: str, repeats: int = 200) -> dict:
    """What the matrix products alone cost in one point's forward (the loop's module forward over
    the batch, no gradient). ``torch.profiler`` records the forward's ``MATMULS`` (shapes, FLOPs)
    once; the same products on tensors of those shapes are then timed alone, ``repeats`` times,
    without the profiler (whose own bookkeeping doubled their time). No way of evaluating the same
    grid values does less of this arithmetic per point, so the peer's time per point over it bounds
    any speed-up from above. The whole forward is timed the same way, for scale."""
    torch.set_num_threads(THREADS)
    problem, batch, _, _, _ = _setup(key)
    with torch.no_grad():
        problem.module_loss(problem.model, batch)  # warm-up
        with torch.profiler.profile(record_shapes=True, with_flops=True) as prof:
            problem.module_loss(problem.model, batch)
        calls = [(MATMULS[e.name], e.input_shapes, e.flops) for e in prof.events() if e.name in MATMULS]
        operands = [(op, [torch.randn(shape) for shape in shapes[:2]]) for op, shapes, _ in calls]

        def products() -> None:
            for op, (a, b) in operands:
                op(a, b)

        def forward() -> None:
            problem.module_loss(problem.model, batch)

        def per_call(fn) -> float:
            fn()
            t0 = time.process_time()
            for _ in range(repeats):
                fn()
            return (time.process_time() - t0) / repeats

        matmul_s, forward_s = per_call(products), per_call(forward)
    return {"matmul_s": matmul_s, "flops": float(sum(f for _, _, f in calls)), "forward_s": forward_s,
            "products": len(calls)}  # fmt: skip


CLOSED_FORM_CASES = ("two_moons", "xor", "spirals", "teacher_student")


def closed_form_main(repeats: int) -> None:
    """``--closed-form``: ``loss_grid(method="mlp")`` against the method "auto" took before it (vmap
    below ``LOOP_MIN_PARAMS`` parameters, one forward per point from there on) on every network the
    closed form applies to, full batch, the page's default grid (31×31) and the peer's (51×51).
    The two alternate ``repeats`` times after a warm-up each, in this process, one thread; medians
    of the process's CPU time; the largest relative difference of the two grids. Then
    :func:`activation_costs`: what makes the identity tanh(z) = 2σ(2z) − 1 pay."""
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()
    rows = []
    for key in CLOSED_FORM_CASES:
        problem = make_network(key)
        center = problem.params0()
        d1, d2 = random_plane(center, seed=0)
        before = "loop" if problem.n_params >= LOOP_MIN_PARAMS else "vmap"
        for n in (31, 51):
            grids = {m: loss_grid(problem, center, d1, d2, n=n, method=m) for m in ("mlp", before)}  # warm-up
            cpu: dict[str, list[float]] = {"mlp": [], before: []}
            for _ in range(repeats):
                for method in cpu:
                    c0 = time.process_time()
                    loss_grid(problem, center, d1, d2, n=n, method=method)
                    cpu[method].append(time.process_time() - c0)
            ours, old = (statistics.median(cpu[m]) for m in ("mlp", before))
            z, reference = grids["mlp"][2], grids[before][2]
            rel = float(np.max(np.abs(z - reference) / np.abs(reference)))
            model, samples = type(problem.model).__name__, len(problem.data[0])
            rows.append(
                f"| {key} ({model}, d = {problem.n_params}, {samples} samples) | {n}×{n} | {before} | "
                f"{_ms(old)} | **{_ms(ours)}** | **{old / ours:.1f}×** | {rel:.1e} |"
            )
            print(rows[-1], flush=True)
    activations = activation_costs(repeats)
    load = os.getloadavg()
    text = f"""# 2-D loss slices: the closed form of a one-hidden-layer tanh network against vmap / the loop

| problem | grid | before: "auto" ran | before CPU ms | closed form CPU ms | speed-up \
| max relative difference |
|---|---|---|---:|---:|---:|---:|
{chr(10).join(rows)}

- Closed form: `loss_grid(method="mlp")`, what "auto" runs now for a `TanhMLP` or a `SoftCommittee`
  with a criterion: the hidden pre-activations of a chunk of grid points from one (k, 3) × (3, S·H)
  product (they are linear in α, β), and tanh(z) = 2σ(2z) − 1 (torch's CPU sigmoid is ≈ 7× faster
  than its tanh). Before: the same call with the method "auto" chose before the closed form
  (`vmap` below {LOOP_MIN_PARAMS} parameters, `loop` from there on). Same plane (random,
  filter-normalised, seed 0, radius 1), the full data set, float64.
- Why tanh(z) = 2σ(2z) − 1: torch's own `tanh` and `sigmoid` over two_moons' 51×51 grid of
  hidden values (2601 × 200 × 4 = {ACTIVATION_VALUES:,} values, in place, alternating, medians of
  {repeats}; largest difference of the two forms over those values):

| dtype | `torch.tanh` ms | `torch.sigmoid` ms | ratio | max abs difference of 2σ(2z) − 1 and tanh |
|---|---:|---:|---:|---:|
{activations}

- The two alternate, {repeats} times each after a warm-up of each, in one process, {THREADS} torch
  thread; medians of the process's CPU time (`time.process_time`); load average (1, 5, 15 min)
  {load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f} before, {load[0]:.2f}, {load[1]:.2f},
  {load[2]:.2f} after (2 cores, shared with other jobs).

Command: `python benchmarks/slices.py --closed-form --repeats {repeats}` —
{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}.
"""
    out = ROOT / "benchmarks" / "results" / "slices_closed_form.md"
    out.write_text(text)
    print(text)


ACTIVATION_VALUES = 2601 * 200 * 4


def activation_costs(repeats: int) -> str:
    """Rows of the activation table of ``--closed-form``: torch's ``tanh`` against its ``sigmoid``
    on the same standard normal values, in place, alternating; medians of wall time (one thread)."""
    rows = []
    for dtype in (torch.float64, torch.float32):
        values = torch.randn(ACTIVATION_VALUES, generator=torch.Generator().manual_seed(0), dtype=dtype)
        out = torch.empty_like(values)
        times: dict[str, list[float]] = {"tanh": [], "sigmoid": []}
        for _ in range(repeats):
            for name, op in (("tanh", torch.tanh), ("sigmoid", torch.sigmoid)):
                t0 = time.perf_counter()
                op(values, out=out)
                times[name].append(time.perf_counter() - t0)
        tanh, sigmoid = (statistics.median(times[name]) for name in ("tanh", "sigmoid"))
        difference = float((2 * torch.sigmoid(2 * values) - 1 - torch.tanh(values)).abs().max())
        rows.append(
            f"| {str(dtype).replace('torch.', '')} | {tanh * 1e3:.2f} | {sigmoid * 1e3:.2f} | "
            f"{tanh / sigmoid:.1f}× | {difference:.1e} |"
        )
    return "\n".join(rows)


def _ms(seconds: float) -> str:
    """Milliseconds, one decimal below 100 ms."""
    return f"{seconds * 1e3:.1f}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def peer_main(repeats: int) -> None:
    import loss_landscapes  # noqa: F401  (fail early when it is not installed)

    load_before = os.getloadavg()
    rows, results = [], []
    for key in ("two_moons", "tiny_transformer"):
        r = peer_compare(key, repeats=repeats)
        results.append(r)
        print(r, flush=True)
        rows.append(
            f"| {r['problem']} (d = {r['d']}, {r['dtype']}) | {PEER_N}×{PEER_N} | {r['method']} | "
            f"{_ms(r['ours_cpu'])} | {_ms(r['vmap_cpu'])} | {_ms(r['peer_cpu'])} | "
            f"**{r['peer_cpu'] / r['ours_cpu']:.1f}×** | "
            f"{_ms(r['ours_s'])} / {_ms(r['peer_s'])} | {r['max_abs']:.2e} "
            f"({r['max_rel']:.1e} rel.) | {r['unshifted_max_abs']:.2e} |"
        )
    floor = matmul_floor("tiny_transformer")
    tt = next(r for r in results if r["problem"] == "tiny_transformer")
    peer_point = tt["peer_cpu"] / PEER_N**2
    bound = peer_point / floor["matmul_s"]
    load = os.getloadavg()
    import importlib.metadata as md

    text = f"""# 2-D loss slices: ours vs the loss-landscapes package

| problem | grid | ours: how (auto) | ours CPU ms | ours by vmap CPU ms | loss-landscapes CPU ms \
| speed-up (CPU, ours / theirs) | wall ms ours / theirs | max abs difference | without the column shift |
|---|---|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

- Ours: `landscapes.loss_grid` as the Networks page runs it (`method="auto"`: for a one-hidden-layer
  tanh network such as two_moons the closed form `"mlp"` — every point's hidden pre-activations from
  three products, P₀ + αP₁ + βP₂, and tanh(z) = 2σ(2z) − 1 because torch's CPU sigmoid is ≈ 7× faster
  than its tanh; otherwise vmap over chunks of 256 / 64 grid points below {LOOP_MIN_PARAMS}
  parameters, one forward per point from there on); the vmap column is the same call with
  `method="vmap"` (what "auto" ran for two_moons before the closed form).
  loss-landscapes {md.version("loss-landscapes")}
  (`pip install --no-deps loss-landscapes`; it needs only numpy and runs on torch {torch.__version__}):
  `planar_interpolation(start, end_one, end_two, metric, steps={PEER_N})` on the same plane
  (random, filter-normalised, seed 0, α, β ∈ [−1, 1]) with a `Metric` that runs the module's forward
  and loss and calls `.item()` (its own `Loss` metric, which runs without `torch.no_grad`).
- Same values: loss-landscapes evaluates its even columns one β step higher than its odd ones (it
  steps before the first point of an even column); compared where it evaluated, the grids agree to
  the difference shown (in-place accumulation of the steps in float32 for tiny_transformer).
  Compared naively (last column) the shift shows as the difference in the last column.
- Ours, ours by vmap and the peer alternate, {repeats} times each after a warm-up of ours, in one
  process, {THREADS} torch thread; medians of the process's CPU time (`time.process_time`), steadier
  than wall time on the shared machine; load average (1, 5, 15 min) {load_before[0]:.2f},
  {load_before[1]:.2f}, {load_before[2]:.2f} before, {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} after
  (2 cores, shared with other jobs).
- Why not 10× on tiny_transformer: both sides then run the same per-point forward, one matrix
  product per layer over the batch; vmap's batched products of per-point weights are slower still.
  Its {floor["products"]} matrix products (`torch.mm` / `torch.bmm`, {floor["flops"] / 1e6:.1f} MFLOP a point,
  recorded by `torch.profiler`, then timed alone on tensors of their shapes, `matmul_floor`) take
  {floor["matmul_s"] * 1e3:.3f} ms of CPU ({floor["flops"] / floor["matmul_s"] / 1e9:.0f} GFLOP/s, one thread)
  of a {floor["forward_s"] * 1e3:.2f} ms forward; the peer spends {peer_point * 1e3:.2f} ms a point in all.
  With every other operation free, the same values could come at most **{bound:.1f}×** faster than
  the peer: 10× needs less arithmetic (lower precision, fewer points), and either changes the values.

Command: `python benchmarks/slices.py --peer --repeats {repeats}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.

"""
    out = ROOT / "benchmarks" / "results" / "slices_peer.md"
    out.write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", nargs=4, metavar=("KEY", "METHOD", "N", "REPEATS"))
    parser.add_argument("--peer", action="store_true", help="against the loss-landscapes package")
    parser.add_argument(
        "--closed-form", action="store_true", help="the closed form of a tanh network against vmap / the loop"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="--peer, --closed-form: timed repeats of each side"
    )
    args = parser.parse_args()
    if args.peer:
        peer_main(args.repeats)
        return
    if args.closed_form:
        closed_form_main(args.repeats)
        return
    if args.measure:
        key, method, n, repeats = args.measure
        print(json.dumps(measure(key, method, int(n), int(repeats))))
        return
    table = run_all()
    text = f"""# 2-D loss slices: vectorised chunked `loss_grid` vs a per-point loop

{table}

- Vectorised: `landscapes.loss_grid` (`torch.func.vmap` of `problem.loss` over chunks of grid
  points, chunk size in the table; each chunk's parameters are built inside the chunk). Loop: for
  each point, copy θc + αδ₁ + βδ₂ into the module's parameters in place, forward, read the loss
  (the way the loss-landscapes libraries evaluate). Same plane (random, filter-normalised, seed 0, radius 1).
- Time: median over the repeats shown, of the whole grid, after a warm-up, in a fresh subprocess.
  Memory: peak RSS of another fresh subprocess (`resource.getrusage(RUSAGE_SELF).ru_maxrss`, one
  repeat) and its growth over the RSS after setup and warm-up (what the grid evaluation added),
  with glibc's mmap threshold fixed (`MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=0`) so
  freed blocks are returned to the OS and the RSS tracks live memory. (tracemalloc does not see
  torch's CPU allocations.)
- tiny_transformer: the first 64 of its 128 sequences (float32); two_moons: all 200 points (float64).
- The transformer's slice is compute-bound (≈ 25 MFLOP per point for 64 sequences): vmap removes the
  per-point Python and dispatch overhead that dominates small nets like two_moons, not arithmetic,
  so there the two methods take the same time; the chunk's activations cost memory instead.
- The machine is shared with other jobs (2 cores, load often > 4): absolute times are noisy; the
  two methods of a row ran back to back.

Command: `python benchmarks/slices.py` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, processor
`{platform.processor() or platform.machine()}`, torch {torch.__version__}, {THREADS} thread.
"""
    out = ROOT / "benchmarks" / "results" / "slices.md"
    out.write_text(text)
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
