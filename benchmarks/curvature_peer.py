"""λ_min of a network's Hessian: ``deo.min_mode`` (Lanczos on finite-difference products) side by
side with ``pyhessian``, the peer people use for network curvature.

Problems, at init (seed 0), one fixed batch, float32 as the networks are trained:

- ``tiny_transformer`` (``landscapes.make_network``, 12 992 parameters, full batch of 128 sequences);
- the char-GPT of ``landscapes/shakespeare.py`` (804 096 parameters, batch 0: 12 × 64 characters).

Methods (each records its estimate of λ_min after every call, and the wall time of that call):

- ``deo lanczos``: ``min_mode(rotation="lanczos")``, ΔR = 1e-3, forward differences (one call =
  one gradient; the gradient at θ is the first call) and central differences (two gradients per
  product, O(ΔR²) instead of O(ΔR) bias); no Hessian-vector products.
- ``exact Lanczos``: our own Lanczos loop (full reorthogonalisation, same start vector as deo) on
  exact products ``torch.func.jvp(torch.func.grad(L))`` (``deo.hessian.hvp``).
- ``pyhessian power``: ``pyhessian.hessian.eigenvalues(top_n=1)``: power iteration, which converges
  to the eigenvalue of largest |λ|; λ_min only where |λ_min| > λ_max. Estimate after call k: its
  own Rayleigh quotient vᵀHv. Run with its default tol 1e-3 (where a user gets it) and with tol 0
  (all ``max_iter`` products).
- ``pyhessian lanczos``: ``pyhessian.hessian.density(iter=m)``, its stochastic Lanczos (full
  reorthogonalisation, Rademacher start), the only pyhessian routine that gives the bottom of the
  spectrum. It calls ``torch.eig``, removed from torch; it is run with a shim
  ``torch.eig = eigh`` in the old return format (the only change). Estimate after call k: the least
  Ritz value of pyhessian's own Lanczos vectors V_k (the Rayleigh–Ritz value λ_min(V_kᵀ·H V_k) from
  the products it made, recorded by a counting wrapper around ``pyhessian.hessian
  .hessian_vector_product``); the last one is checked against density()'s own lowest Ritz value.
  pyhessian's set-up (one backward with ``create_graph=True``) is counted as its first call.

Reference λ_ref: tiny_transformer: scipy eigsh on exact products in float64 (tol 1e-8);
char-GPT: the exact Lanczos run (float32, its last Ritz value; the table gives its residual).
"Calls to accuracy a": the first call after which |λ̂ − λ_ref| ≤ a·|λ_ref| and stays so.

Run: ``python benchmarks/curvature_peer.py [--gpt-calls 40] [--tiny-calls 60]`` (1 thread).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deo.dimer import min_mode  # noqa: E402
from deo.hessian import lanczos_min_eig  # noqa: E402

ACCURACIES = (1e-1, 1e-2, 1e-3)
LENGTH = 1e-3
REFERENCE_TOL = 1e-8


class Flat:
    """A network loss on one batch as functions of the flat parameter vector θ (d,)."""

    def __init__(self, model: nn.Module, params: dict[str, torch.Tensor], batch: tuple, loss_fn) -> None:
        self.model, self.params, self.batch, self.loss_fn = model, params, batch, loss_fn
        self.names = [name for name, _ in model.named_parameters()]
        self.shapes = [params[name].shape for name in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.theta = torch.cat([params[name].reshape(-1) for name in self.names])

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        pieces = torch.split(theta, self.sizes)
        return {name: p.reshape(s) for name, p, s in zip(self.names, pieces, self.shapes)}

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.unflatten(theta))

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(self.loss)(theta)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(torch.func.grad(self.loss), (self.theta,), (v,))[1]


class LossModule(nn.Module):
    """pyhessian's interface (``criterion(model(inputs), targets)``) for a module that returns its loss."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model(*batch)


def tiny_transformer(dtype: torch.dtype = torch.float32) -> Flat:
    from landscapes import make_network

    net = make_network("tiny_transformer", dtype=dtype)
    params, batch = net.params0(seed=0), net.batch(0)
    return Flat(net.model, params, batch, lambda p: net.loss(p, batch))


def char_gpt() -> Flat:
    from landscapes.shakespeare import shakespeare_char

    problem = shakespeare_char()
    params, batch = problem.params0(seed=0), problem.batch(0)
    return Flat(problem.model, params, batch, lambda p: problem.loss(p, batch))


class Trace:
    """(estimate, seconds since start) after each call."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.values: list[float] = []
        self.times: list[float] = []

    def add(self, value: float) -> None:
        self.values.append(value)
        self.times.append(time.perf_counter() - self.start)


def run_deo(flat: Flat, n0: torch.Tensor, calls: int, scheme: str = "forward") -> tuple[Trace, dict]:
    """min_mode(rotation="lanczos") within ``calls`` gradients; the estimate after each call is the
    last Ritz value completed by then (forward: g0, then one product per call; central: two calls
    per product, no g0)."""
    trace = Trace()
    stamps: list[float] = []

    def grad_fn(theta):
        g = flat.grad(theta)
        stamps.append(time.perf_counter() - trace.start)
        return g

    at_x, per_product = (1, 1) if scheme == "forward" else (0, 2)
    iterations = (calls - at_x) // per_product - 1
    _, _, info = min_mode(
        grad_fn,
        flat.theta,
        n0=n0,
        length=LENGTH,
        max_iterations=iterations,
        torque_tol=0.0,
        record=True,
        scheme=scheme,
    )
    # history[j] (the Ritz value after product j + 2) is complete at call at_x + per_product·(j + 2);
    # the first product's C(n0) is not recorded
    trace.times = stamps
    trace.values = [math.nan] * len(stamps)
    for j, entry in enumerate(info["history"]):
        done = at_x + per_product * (j + 2)
        for call in range(done - 1, len(stamps)):
            trace.values[call] = float(entry["curvature"])
    return trace, info


def run_exact_lanczos(flat: Flat, n0: torch.Tensor, calls: int) -> tuple[Trace, float]:
    """Lanczos, full reorthogonalisation, exact products; returns the trace and the final residual."""
    trace = Trace()
    basis = [n0 / torch.linalg.vector_norm(n0)]
    alphas, betas = [], []
    residual = math.nan
    for _ in range(calls):
        w = flat.hvp(basis[-1]).detach()
        alphas.append(float(w @ basis[-1]))
        for _ in range(2):
            for u in basis:
                w = w - (w @ u) * u
        beta = float(torch.linalg.vector_norm(w))
        t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        values, vectors = np.linalg.eigh(t)
        residual = beta * abs(vectors[-1, 0])
        trace.add(float(values[0]))
        betas.append(beta)
        basis.append(w / beta)
    return trace, residual


def pyhessian_runs(flat: Flat, calls: int, seed: int, check_shipped: bool) -> tuple[dict, str]:
    """pyhessian power iteration (tol 1e-3 and 0) and density() with a torch.eig shim."""
    ph = importlib.import_module("pyhessian.hessian")  # the module (pyhessian.hessian is the class)

    runs: dict[str, tuple[Trace, str]] = {}
    original_hvp = ph.hessian_vector_product
    model = LossModule(flat.model)
    with torch.no_grad():
        for name, p in flat.model.named_parameters():
            p.copy_(flat.params[name])

    def build(trace: Trace, record: list) -> object:
        def counted(gradsH, params, v):
            hv = original_hvp(gradsH, params, v)
            v_flat = torch.cat([t.reshape(-1) for t in v]).detach()
            hv_flat = torch.cat([t.reshape(-1) for t in hv]).detach()
            record.append((v_flat, hv_flat))
            trace.add(float(v_flat @ hv_flat))  # overwritten for Lanczos below
            return hv

        ph.hessian_vector_product = counted
        for p in model.parameters():
            p.grad = None
        h = ph.hessian(model, lambda loss, _: loss, data=(flat.batch, None), cuda=False)
        trace.add(math.nan)  # the set-up backward with create_graph: call 1
        return h

    # density() as shipped
    error = ""
    try:
        if not check_shipped:
            raise StopIteration
        trace, record = Trace(), []
        h = build(trace, record)
        h.density(iter=2, n_v=1)
    except StopIteration:
        pass
    except Exception as exc:  # the torch 2.13 failure, reported verbatim
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    for tol, key in ((1e-3, "pyhessian power (tol 1e-3)"), (0.0, "pyhessian power (tol 0)")):
        torch.manual_seed(seed)
        trace, record = Trace(), []
        h = build(trace, record)
        values, _ = h.eigenvalues(maxIter=calls - 1, tol=tol, top_n=1)
        runs[key] = (trace, f"returned {values[0]:.4f} after {len(record)} HVPs")
    torch.manual_seed(seed)

    def eig_shim(a, eigenvectors=False):
        values, vectors = torch.linalg.eigh(a)
        return torch.stack([values, torch.zeros_like(values)], 1), vectors

    old_eig = torch.eig
    torch.eig = eig_shim
    try:
        trace, record = Trace(), []
        h = build(trace, record)
        eigen_list, _ = h.density(iter=calls - 1, n_v=1)
    finally:
        torch.eig = old_eig
        ph.hessian_vector_product = original_hvp
    vs = torch.stack([v for v, _ in record], 1).double()
    hvs = torch.stack([hv for _, hv in record], 1).double()
    for k in range(1, len(record) + 1):
        projected = vs[:, :k].T @ hvs[:, :k]
        trace.values[k] = float(torch.linalg.eigvalsh(0.5 * (projected + projected.T))[0])
    runs["pyhessian lanczos (density + eig shim)"] = (
        trace,
        f"density() lowest Ritz value {min(eigen_list[0]):.4f} (from its vectors: {trace.values[-1]:.4f})",
    )
    return runs, error


def calls_to(trace: Trace, reference: float, accuracy: float) -> tuple[float, float]:
    """(calls, seconds) from which |λ̂ − λ_ref| ≤ accuracy·|λ_ref| holds to the end of the trace."""
    good = [math.isfinite(v) and abs(v - reference) <= accuracy * abs(reference) for v in trace.values]
    if not good or not good[-1]:
        return math.inf, math.inf
    k = len(good)
    while k > 0 and good[k - 1]:
        k -= 1
    return float(k + 1), trace.times[k]


def compare(
    name: str, flat: Flat, calls: int, reference: float | None, note: str, seeds: int
) -> tuple[str, str]:
    """All methods for ``seeds`` start vectors; medians over seeds of calls and seconds to accuracy."""
    d = flat.theta.numel()
    flat.grad(flat.theta)  # warm-up, not timed
    flat.hvp(flat.theta)
    traces: dict[str, list[Trace]] = {}
    remarks: dict[str, str] = {}
    error = ""
    for seed in range(seeds):
        n0 = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=flat.theta.dtype)
        n0 = n0 / torch.linalg.vector_norm(n0)
        for scheme in ("forward", "central"):
            trace, _ = run_deo(flat, n0, calls, scheme)
            key = f"deo min_mode lanczos ({scheme} differences)"
            traces.setdefault(key, []).append(trace)
            remarks[key] = "gradients" + (" (the first at θ)" if scheme == "forward" else " (2 per product)")
            print(name, seed, key, trace.values[-3:], trace.times[-1], flush=True)
        exact, residual = run_exact_lanczos(flat, n0, calls)
        traces.setdefault("exact Lanczos (jvp-of-grad HVPs)", []).append(exact)
        remarks["exact Lanczos (jvp-of-grad HVPs)"] = "HVPs, same start as deo"
        print(name, seed, "exact", exact.values[-3:], exact.times[-1], residual, flush=True)
        if reference is None:
            reference = exact.values[-1]
            note += f"; λ_ref = exact Lanczos (seed 0) after {calls} HVPs, Ritz residual {residual:.2e}"
        peer, shipped_error = pyhessian_runs(flat, calls, seed, check_shipped=seed == 0)
        error = error or shipped_error
        for key, (trace, remark) in peer.items():
            traces.setdefault(key, []).append(trace)
            remarks[key] = "set-up backward + HVPs; seed 0: " + remark if seed == 0 else remarks[key]
            print(name, seed, key, trace.values[-3:], trace.times[-1], remark, flush=True)
    lines = [
        f"### {name} (d = {d:,}, λ_ref = {reference:.5f})\n\n{note}. {seeds} start seed(s); cells: median "
        "over seeds of calls (seconds) to |λ̂ − λ_ref| ≤ a·|λ_ref|, — = not within the calls made; "
        "per seed in brackets.\n",
        "| method | calls counted | "
        + " | ".join(f"a = {a:g}" for a in ACCURACIES)
        + " | s per call | λ̂ at last call (seed 0) | calls made |",
        "|---|---|" + "---|" * (len(ACCURACIES) + 3),
    ]
    for key, runs in traces.items():
        cells = []
        for a in ACCURACIES:
            hits = [calls_to(trace, reference, a) for trace in runs]
            calls_median = float(np.median([c for c, _ in hits]))
            seconds_median = float(np.median([t for _, t in hits]))
            each = ", ".join("—" if math.isinf(c) else f"{c:g}" for c, _ in hits)
            cell = "—" if math.isinf(calls_median) else f"{calls_median:g} ({seconds_median:.1f} s)"
            cells.append(cell + (f" [{each}]" if len(runs) > 1 else ""))
        per_call = float(np.median([t.times[-1] / len(t.times) for t in runs]))
        lines.append(
            f"| {key} | {remarks[key]} | "
            + " | ".join(cells)
            + f" | {per_call:.3f} | {runs[0].values[-1]:.5f} | {len(runs[0].values)} |"
        )
    return "\n".join(lines) + "\n", error


def interleaved_timing(flat: Flat, rounds: int) -> dict[str, float]:
    """Median seconds of one call of each kind, timed in alternation (round-robin) so that the load
    of the shared machine falls on all kinds alike: a gradient (deo's call), pyhessian's HVP
    (double backward through its create_graph gradient) and the jvp-of-grad HVP."""
    ph = importlib.import_module("pyhessian.hessian")
    model = LossModule(flat.model)
    with torch.no_grad():
        for name, p in flat.model.named_parameters():
            p.copy_(flat.params[name])
    for p in model.parameters():
        p.grad = None
    h = ph.hessian(model, lambda loss, _: loss, data=(flat.batch, None), cuda=False)
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(flat.theta.numel(), generator=generator, dtype=flat.theta.dtype)
    v = v / torch.linalg.vector_norm(v)
    v_list = [t.reshape(p.shape) for t, p in zip(torch.split(v, flat.sizes), h.params)]
    calls = {
        "gradient (deo min_mode lanczos, forward: 1 per product)": lambda: flat.grad(flat.theta + 1e-3 * v),
        "pyhessian HVP (double backward)": lambda: ph.hessian_vector_product(h.gradsH, h.params, v_list),
        "exact HVP, jvp of grad (deo.hessian.hvp)": lambda: flat.hvp(v),
    }
    for call in calls.values():  # warm-up
        call()
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - t0)
    return {key: float(np.median(values)) for key, values in times.items()}


def timing_main(args: argparse.Namespace) -> None:
    sections = []
    problems = [("tiny_transformer at init", tiny_transformer, 9)]
    if not args.skip_gpt:
        problems.append(("char-GPT at init", char_gpt, 5))
    for name, build, rounds in problems:
        medians = interleaved_timing(build(), rounds)
        base = next(iter(medians.values()))
        lines = [f"### {name} ({rounds} rounds)\n", "| call | median s | ÷ gradient |", "|---|---|---|"]
        lines += [f"| {key} | {value:.3f} | {value / base:.2f} |" for key, value in medians.items()]
        sections.append("\n".join(lines) + "\n")
        print(sections[-1], flush=True)
    load = os.getloadavg()
    skip = " --skip-gpt" if args.skip_gpt else ""
    report = (
        "# Cost of one call: a gradient vs pyhessian's HVP vs the jvp-of-grad HVP (interleaved)\n\n"
        "The sequential runs of `benchmarks/curvature_peer.py` time each method in turn, so a change of "
        "load on the shared machine during the run falls on one method; here the three kinds of call "
        "alternate round-robin at the same θ and direction, and the medians are compared. Time to an "
        "accuracy ≈ calls (from `curvature_peer.md`) × the median here.\n\n"
        + "\n".join(sections)
        + f"\nCommand: `python benchmarks/curvature_peer.py --timing-only{skip}`  \n"
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}  \n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread; load average "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)\n"
    )
    (ROOT / "benchmarks" / "results" / "curvature_peer_timing.md").write_text(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-calls", type=int, default=60)
    parser.add_argument("--gpt-calls", type=int, default=40)
    parser.add_argument("--skip-gpt", action="store_true")
    parser.add_argument("--tiny-seeds", type=int, default=3)
    parser.add_argument("--tiny-reference", type=float, default=None, help="skip the float64 eigsh")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timing-only", action="store_true", help="interleaved per-call timing only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing_only:
        timing_main(args)
        return
    started = time.perf_counter()
    import pyhessian  # noqa: F401

    if args.tiny_reference is None:
        tiny64 = tiny_transformer(torch.float64)
        t0 = time.perf_counter()
        reference, _, info = lanczos_min_eig(tiny64.hvp, tiny64.theta.numel(), tol=REFERENCE_TOL)
        seconds = time.perf_counter() - t0
        ref_note = f"λ_ref by eigsh in float64, tol {REFERENCE_TOL:g} ({info['hvps']} HVPs, {seconds:.0f} s)"
    else:
        reference, ref_note = args.tiny_reference, "λ_ref given on the command line"
    print("reference", reference, ref_note, flush=True)
    sections, errors = [], []
    section, error = compare(
        "tiny_transformer at init", tiny_transformer(), args.tiny_calls, reference, ref_note, args.tiny_seeds
    )
    sections.append(section)
    errors.append(error)
    if not args.skip_gpt:
        section, error = compare("char-GPT at init", char_gpt(), args.gpt_calls, None, "float32, batch 0", 1)
        sections.append(section)
        errors.append(error)
    load = os.getloadavg()
    command = "python benchmarks/curvature_peer.py " + " ".join(sys.argv[1:])
    report = (
        "# λ_min of a network Hessian: deo.min_mode vs pyhessian\n\n"
        + (__doc__.split("\n\n", 1)[1].rsplit("Run:", 1)[0])
        + "\n## pyhessian on torch "
        + torch.__version__
        + "\n\n`hessian.eigenvalues()` (power iteration) runs. `hessian.density()` fails as shipped:\n\n```\n"
        + (errors[0] or "no error")
        + "\n```\n\n## Results\n\n"
        + "\n".join(sections)
        + f"\nCommand: `{command.strip()}` ({time.perf_counter() - started:.0f} s)  \n"
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}  \n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread; load average "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min); wall times are under that load\n"
    )
    print(report)
    out = ROOT / "benchmarks" / "results" / "curvature_peer.md"
    out.write_text(report)


if __name__ == "__main__":
    main()
