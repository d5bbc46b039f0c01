"""How many gradients does ``min_mode`` need to find the min mode, against Lanczos's Hessian-vector products?

Part 1, cost to |cos| > 0.99. Problem: ``½θᵀAθ`` with ``A = Q diag(λ) Qᵀ``, the spectrum
``λ₁ = −1`` and ``d − 1`` positives log-spaced in ``[0.01·s, s]`` with ``s = 100`` (so
λ ∈ {−1} ∪ [1, 100], condition number λ_max/|λ_min| = 100, relative gap (λ₂ − λ₁)/(λ_max − λ₁) = 2/101).
Q is a random orthogonal matrix (QR of a Gaussian) for d ≤ 1000, and for d = 100 000 an implicit
product of ``HOUSEHOLDER`` random Householder reflections ``Q = (I − 2u₁u₁ᵀ)…(I − 2u_mu_mᵀ)``
(every method here is orthogonally equivariant, so any Q with a random start gives the same
statistics; the dense Q would be 80 GB). One Q and start n0 per repeat (seed).

Measured, for the same n0:

- ``min_mode`` (ΔR = 1e-3, forward scheme, float64, θ = 0) for ``rotation="lanczos"`` (the default)
  and ``rotation="fourier"`` with each plane (sd, cg, lbfgs): gradient evaluations (as
  ``info["grad_evals"]`` counts them, the gradient at θ included) until the first iteration with
  ``|cos∠(N, v_min)| > 0.99``; and where min_mode stops by itself (default ``torque_tol`` = 1e-6
  and the trial-angle criterion; no knowledge of v_min) its gradients and |cos| there;
- plain Lanczos (our own loop, exact products ``A·v``, full reorthogonalisation, started at n0):
  products until the Ritz vector of the smallest Ritz value first has ``|cos| > 0.99``;
- scipy ``eigsh(LinearOperator, which="SA")`` via ``deo.hessian.lanczos_min_eig`` started at n0:
  products used by the loosest ``tol`` in 1e-1, 1e-2, … 1e-12 whose answer has ``|cos| > 0.99``.

Target (issue 10): min_mode ≤ 1.05 × plain Lanczos products + 1 gradient, in every repeat.

Part 2, warm start (``rotation="lanczos"``, default stop): gradients per min_mode call when N
starts from the previous call's N (warm) or from a fresh random vector (cold), on

- a slowly moving quadratic: the d = 200 spectrum above, Q(t) = R(t)Q₀ with R(t) turning the plane
  of v_min and a random second direction by 0.02 rad per step, 20 steps;
- two_moons (``landscapes.make_network("two_moons")``, 2-4-1 tanh, 17 parameters, float64): 60
  steps of GD (lr 0.1) from the default init; min_mode at every 5th step, λ_min exact by eigh.

Medians over ``repeats``. Run: ``python benchmarks/engine_accuracy.py [repeats]`` (1 thread).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deo.dimer import batched_dot, min_mode, normalize, perp  # noqa: E402
from deo.hessian import exact_eigh, lanczos_min_eig  # noqa: E402

DIMENSIONS = (100, 1000, 100_000)
DENSE_UP_TO = 1000
HOUSEHOLDER = 8
METHODS = (
    ("lanczos", {"rotation": "lanczos"}),
    ("fourier-sd", {"rotation": "fourier", "plane": "sd"}),
    ("fourier-cg", {"rotation": "fourier", "plane": "cg"}),
    ("fourier-lbfgs", {"rotation": "fourier", "plane": "lbfgs"}),
)
SCALE = 100.0
TARGET_COS = 0.99
TARGET_FACTOR = 1.05
MAX_ITERATIONS = 2000
CLUSTER = 0.05  # two_moons: eigenvalues within this of λ_min form the min-mode eigenspace
SPECTRUM = "λ₁ = −1, λ₂..λ_d log-spaced in [0.01·s, s], s = 100 (condition number 100)"

Matvec = Callable[[torch.Tensor], torch.Tensor]


def spectrum(d: int) -> torch.Tensor:
    positives = torch.logspace(math.log10(0.01 * SCALE), math.log10(SCALE), d - 1, dtype=torch.float64)
    return torch.cat([torch.tensor([-1.0], dtype=torch.float64), positives])


def problem(d: int, seed: int) -> tuple[Matvec, torch.Tensor, torch.Tensor]:
    """(v ↦ A·v for v (..., d), v_min (d,), n0 (d,)) for one repeat."""
    generator = torch.Generator().manual_seed(seed)
    lam = spectrum(d)
    if d <= DENSE_UP_TO:
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        a = (q * lam) @ q.T
        a = 0.5 * (a + a.T)
        n0 = normalize(torch.randn(d, generator=generator, dtype=torch.float64))
        return (lambda v: v @ a), q[:, 0], n0
    reflections = normalize(torch.randn(HOUSEHOLDER, d, generator=generator, dtype=torch.float64))

    def q_apply(v: torch.Tensor, transpose: bool) -> torch.Tensor:  # Q v or Qᵀ v, Q = H₁…H_m
        for u in reflections if transpose else reflections.flip(0):
            v = v - 2.0 * (v @ u).unsqueeze(-1) * u
        return v

    def matvec(v: torch.Tensor) -> torch.Tensor:
        return q_apply(q_apply(v, transpose=True) * lam, transpose=False)

    v_min = q_apply(torch.nn.functional.one_hot(torch.tensor(0), d).to(torch.float64), transpose=False)
    n0 = normalize(torch.randn(d, generator=generator, dtype=torch.float64))
    return matvec, v_min, n0


def min_mode_run(matvec: Matvec, v_min: torch.Tensor, n0: torch.Tensor, options: dict) -> dict:
    """Gradients to |cos| > 0.99 (inf if never), and where min_mode stops by itself."""
    x = torch.zeros_like(n0)
    n, _, info = min_mode(matvec, x, n0=n0, max_iterations=MAX_ITERATIONS, record=True, **options)
    to_target = math.inf
    if abs(float(n0 @ v_min)) > TARGET_COS:
        to_target = 2.0
    else:
        for iteration, entry in enumerate(info["history"], start=1):
            if abs(float(batched_dot(entry["n"], v_min))) > TARGET_COS:
                to_target = 2.0 + iteration  # g0 and the first product, then one gradient per iteration
                break
    return {"to_target": to_target, "stop_evals": info["grad_evals"], "stop_cos": abs(float(n @ v_min))}


def plain_lanczos_hvps(matvec: Matvec, v_min: torch.Tensor, n0: torch.Tensor) -> float:
    """Lanczos from n0, exact products, full reorthogonalisation: products until the lowest Ritz
    vector has |cos| > 0.99."""
    basis = [n0 / torch.linalg.vector_norm(n0)]
    alphas: list[float] = []
    betas: list[float] = []
    for k in range(1, n0.shape[0] + 1):
        w = matvec(basis[-1])
        alphas.append(float(w @ basis[-1]))
        stacked = torch.stack(basis, 1)
        w = w - stacked @ (stacked.T @ w)
        w = w - stacked @ (stacked.T @ w)
        tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        _, ritz = np.linalg.eigh(tridiagonal)
        vector = stacked @ torch.from_numpy(np.ascontiguousarray(ritz[:, 0]))
        if abs(float(vector @ v_min)) / float(torch.linalg.vector_norm(vector)) > TARGET_COS:
            return float(k)
        beta = float(torch.linalg.vector_norm(w))
        if beta < 1e-12:
            break
        betas.append(beta)
        basis.append(w / beta)
    return math.inf


def eigsh_hvps(matvec: Matvec, v_min: torch.Tensor, n0: torch.Tensor) -> float:
    """Products of scipy eigsh at the loosest tol (1e-1 … 1e-12) whose eigenvector has |cos| > 0.99."""
    for exponent in range(1, 13):
        _, vector, info = lanczos_min_eig(matvec, n0.shape[0], tol=10.0**-exponent, v0=n0)
        if abs(float(torch.from_numpy(vector) @ v_min)) > TARGET_COS:
            return float(info["hvps"])
    return math.inf


def accuracy_table(repeats: int = 5, dimensions: tuple[int, ...] = DIMENSIONS) -> list[dict]:
    """One row per (d, method): medians over repeats, ratios per repeat then median.

    Rows also carry the keys ``benchmarks/engine.py`` reads (``plane`` = the method name,
    ``min_mode_grad_evals``, ``ratio_vs_lanczos``, ``ratio_vs_eigsh``, ``reached``)."""
    rows = []
    for d in dimensions:
        runs = [problem(d, seed=1000 * d + repeat) for repeat in range(repeats)]
        lanczos = [plain_lanczos_hvps(*run) for run in runs]
        arpack = [eigsh_hvps(*run) for run in runs]
        for name, options in METHODS:
            results = [min_mode_run(*run, options) for run in runs]
            ours = [r["to_target"] for r in results]
            rows.append(
                {
                    "d": d,
                    "method": name,
                    "grad_evals": statistics.median(ours),
                    "lanczos_hvps": statistics.median(lanczos),
                    "eigsh_hvps": statistics.median(arpack),
                    "ratio": statistics.median(o / b for o, b in zip(ours, lanczos)),
                    "worst_ratio": max(o / b for o, b in zip(ours, lanczos)),
                    "meets_target": all(o <= TARGET_FACTOR * b + 1 for o, b in zip(ours, lanczos)),
                    "stop_evals": statistics.median(r["stop_evals"] for r in results),
                    "stop_cos": min(r["stop_cos"] for r in results),
                    "repeats": repeats,
                    "plane": name,
                    "min_mode_grad_evals": statistics.median(ours),
                    "ratio_vs_lanczos": statistics.median(o / b for o, b in zip(ours, lanczos)),
                    "ratio_vs_eigsh": statistics.median(o / b for o, b in zip(ours, arpack)),
                    "reached": sum(math.isfinite(v) for v in ours),
                }
            )
            print(rows[-1], flush=True)
    return rows


def accuracy_markdown(rows: list[dict]) -> str:
    header = (
        "| d | method | grad evals to 0.99 | Lanczos HVPs (exact) | eigsh HVPs "
        "| ratio ours/Lanczos (median, worst) | ≤ 1.05·Lanczos + 1 in every seed "
        "| self-stop grad evals | min \\|cos\\| at self-stop |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['d']:,} | {r['method']} | {r['grad_evals']:g} | {r['lanczos_hvps']:g} | {r['eigsh_hvps']:g} "
        f"| {r['ratio']:.3f} ({r['worst_ratio']:.3f}) | {'yes' if r['meets_target'] else 'no'} "
        f"| {r['stop_evals']:g} | {r['stop_cos']:.6f} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# warm start


def moving_quadratic(d: int, steps: int, angle: float, seed: int) -> list[tuple[Matvec, torch.Tensor]]:
    """[(v ↦ A(t)v, v_min(t))]: A(t) = R(t) A₀ R(t)ᵀ, R(t) turning (v_min, w) by ``angle·t``."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    a0 = (q * spectrum(d)) @ q.T
    v_min = q[:, 0]
    other = normalize(perp(torch.randn(d, generator=generator, dtype=torch.float64), v_min))
    out = []
    for t in range(steps):
        c, s = math.cos(angle * t), math.sin(angle * t)
        r = torch.eye(d, dtype=torch.float64) + (c - 1) * (
            torch.outer(v_min, v_min) + torch.outer(other, other)
        )
        r = r + s * (torch.outer(other, v_min) - torch.outer(v_min, other))
        a = r @ a0 @ r.T
        a = 0.5 * (a + a.T)
        out.append(((lambda v, a=a: v @ a), (r @ v_min).unsqueeze(-1)))
    return out


def warm_cold(problems: list[tuple[Matvec, torch.Tensor, torch.Tensor, float]], seed: int) -> dict:
    """min_mode (lanczos, default stop) along a sequence of (grad_fn, x, B, λ_min): warm vs cold.

    B ``(d, m)`` is an orthonormal basis of the min-mode eigenspace (m = 1: v_min); "cos" is
    ‖Bᵀ N‖, the cosine of N's angle to that space. The first call (both cold) is not counted."""
    n = None
    counts = {"warm": [], "cold": []}
    cosines = {"warm": [], "cold": []}
    errors = {"warm": [], "cold": []}
    for t, (grad_fn, x, v_min, lam) in enumerate(problems):
        for kind in ("warm", "cold"):
            n_out, curvature, info = min_mode(grad_fn, x, n0=n if kind == "warm" else None, seed=seed + t)
            if t > 0:
                counts[kind].append(info["grad_evals"])
                cosines[kind].append(float(torch.linalg.vector_norm(n_out @ v_min)))
                errors[kind].append(abs(float(curvature) - lam))
            if kind == "warm":
                n = n_out
    return {
        kind: {
            "evals": statistics.mean(counts[kind]),
            "min_cos": min(cosines[kind]),
            "max_error": max(errors[kind]),
            "calls": len(counts[kind]),
        }
        for kind in counts
    }


def two_moons_sequence(steps: int = 60, every: int = 5, seed: int = 0) -> list:
    from landscapes import make_network

    net = make_network("two_moons")
    batch = net.batch(0)
    theta = net.flatten(net.params0(seed=seed)).to(torch.float64)

    def loss(t: torch.Tensor) -> torch.Tensor:
        return net.flat_loss(t, batch)

    grad = torch.func.grad(loss)
    out = []
    for step in range(steps + 1):
        if step % every == 0:
            eigenvalues, eigenvectors = exact_eigh(loss, theta)
            cluster = eigenvalues < eigenvalues[0] + CLUSTER
            out.append((grad, theta.clone(), eigenvectors[:, cluster], float(eigenvalues[0])))
        theta = theta - 0.1 * grad(theta)
    return out


EVENT_METHODS = (
    ("fourier-sd (DEO's rotation today)", {"rotation": "fourier", "plane": "sd"}),
    ("fourier-cg", {"rotation": "fourier", "plane": "cg"}),
    ("lanczos", {"rotation": "lanczos"}),
)
EVENT_BUDGETS = (1, 2, 4)


def tracking(problems: list, options: dict, rotations: int, seed: int) -> tuple[list[float], list[int]]:
    """DEO's use: at every event N is warm-started and gets ``rotations`` iterations (torque_tol 0).

    Returns sin∠(N, B) after each event and the gradients each event cost (min_mode counts the
    gradient at θ, which DEO already has: subtract 1 for DEO's count)."""
    n = None
    sines, evals = [], []
    for t, (grad_fn, x, basis, _) in enumerate(problems):
        n, _, info = min_mode(
            grad_fn, x, n0=n, seed=seed + t, max_iterations=rotations, torque_tol=0.0, **options
        )
        cosine = min(float(torch.linalg.vector_norm(n @ basis)), 1.0)
        sines.append(math.sqrt(1.0 - cosine * cosine))
        evals.append(info["grad_evals"])
    return sines, evals


def event_table(repeats: int) -> list[dict]:
    """Fixed budget per event along the moving quadratic (40 events) and two_moons (every step of 60)."""
    quadratics = []
    lam = float(spectrum(200)[0])
    for repeat in range(repeats):
        sequence = moving_quadratic(200, steps=40, angle=0.02, seed=7000 + repeat)
        quadratics.append([(f, torch.zeros(200, dtype=torch.float64), v, lam) for f, v in sequence])
    moons = [two_moons_sequence(seed=repeat, every=1) for repeat in range(repeats)]
    rows = []
    for name, sequences, burn_in in (
        ("moving quadratic, d = 200, 0.02 rad/event, 40 events", quadratics, 10),
        ("two_moons, GD lr 0.1, an event every step, 60 steps", moons, 10),
    ):
        for rotations in EVENT_BUDGETS:
            for method, options in EVENT_METHODS:
                sines, evals = [], []
                for repeat, problems in enumerate(sequences):
                    s, e = tracking(problems, options, rotations, 100 * repeat)
                    sines += s[burn_in:]
                    evals += e[burn_in:]
                rows.append(
                    {
                        "problem": name,
                        "rotations": rotations,
                        "method": method,
                        "median_sine": statistics.median(sines),
                        "p90_sine": float(np.quantile(sines, 0.9)),
                        "evals": statistics.mean(evals) - 1,
                    }
                )
                print(rows[-1], flush=True)
    return rows


def event_markdown(rows: list[dict]) -> str:
    header = (
        "| problem | rotations per event | rotation | gradients per event (DEO's count) "
        "| median sin∠(N, B) | 90th percentile |\n|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['problem']} | {r['rotations']} | {r['method']} | {r['evals']:.2f} | {r['median_sine']:.2e} "
        f"| {r['p90_sine']:.2e} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


def warm_table(repeats: int) -> list[dict]:
    rows = []
    quad = []
    for repeat in range(repeats):
        sequence = moving_quadratic(200, steps=20, angle=0.02, seed=7000 + repeat)
        lam = float(spectrum(200)[0])
        quad.append(
            warm_cold([(f, torch.zeros(200, dtype=torch.float64), v, lam) for f, v in sequence], 100 * repeat)
        )
    moons = [warm_cold(two_moons_sequence(seed=repeat), 100 * repeat) for repeat in range(repeats)]
    for name, results in (
        ("moving quadratic, d = 200, 0.02 rad/step, 20 steps", quad),
        ("two_moons, GD lr 0.1, min_mode every 5 of 60 steps", moons),
    ):
        for kind in ("cold", "warm"):
            rows.append(
                {
                    "problem": name,
                    "start": kind,
                    "evals": statistics.median(r[kind]["evals"] for r in results),
                    "min_cos": min(r[kind]["min_cos"] for r in results),
                    "max_error": max(r[kind]["max_error"] for r in results),
                    "calls": sum(r[kind]["calls"] for r in results),
                }
            )
            print(rows[-1], flush=True)
    return rows


def warm_markdown(rows: list[dict]) -> str:
    header = (
        "| problem | start of N | grad evals per min_mode call (median over seeds of the mean) "
        "| min ‖Bᵀ N‖ (cos to the min-mode space) | max \\|C − λ_min\\| | calls |\n"
        "|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['problem']} | {r['start']} | {r['evals']:.2f} | {r['min_cos']:.4f} | {r['max_error']:.2e} "
        f"| {r['calls']} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


def main() -> None:
    torch.set_num_threads(1)
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    started = time.perf_counter()
    accuracy = accuracy_markdown(accuracy_table(repeats))
    warm = warm_markdown(warm_table(repeats))
    events = event_markdown(event_table(repeats))
    load = os.getloadavg()
    report = (
        "# Engine accuracy: min_mode gradients vs Lanczos Hessian-vector products to |cos| > 0.99\n\n"
        f"Spectrum: {SPECTRUM}; A = Q diag(λ) Qᵀ, Q random orthogonal (dense QR for d ≤ {DENSE_UP_TO}, "
        f"a product of {HOUSEHOLDER} random Householder reflections for d = 100 000). min_mode: forward "
        "scheme, ΔR = 1e-3, float64, θ = 0; its count includes the gradient at θ. lanczos = "
        '`rotation="lanczos"` (finite-difference products, the default); fourier-* = the Fourier rotation '
        "in each plane. Plain Lanczos: our own loop on exact products with full reorthogonalisation (first "
        "iteration whose lowest Ritz vector reaches 0.99). eigsh: scipy ARPACK, loosest tol in 1e-1…1e-12 "
        f"that reaches 0.99. Same n0 for all. Medians over {repeats} seeds (different Q, n0); ratios are "
        f"per seed, median and worst. Target: ≤ {TARGET_FACTOR}·Lanczos + 1 gradient in every seed. "
        "Self-stop: min_mode's own criterion (torque < 1e-6 or ½·arctan(torque/|C|) < 1e-3), which does "
        "not know v_min. Counts, not timings.\n\n"
        + accuracy
        + '\n## Warm start (rotation="lanczos", default stop)\n\n'
        "N from the previous call's N (warm) or a fresh random unit vector (cold); the first call of each "
        "sequence is not counted. Slowly moving quadratic: the d = 200 spectrum above, v_min turning by "
        "0.02 rad per call, 20 calls. two_moons: 2-4-1 tanh, 17 parameters, float64, full batch, GD lr 0.1 "
        "from the default init σ = 1e-2 (init seed = repeat), min_mode at steps 0, 5, …, 60, eigenpairs "
        "by eigh of the exact Hessian. Its min mode is nearly degenerate near the origin (one λ ≈ −0.95 "
        f"per hidden unit), so B spans the eigenvectors with λ < λ_min + {CLUSTER}; on the quadratic "
        "B = v_min.\n\n"
        + warm
        + "\n## A fixed budget per event, warm-started (how DEO uses the rotation)\n\n"
        "At every event N starts from the previous event's N and gets r iterations (min_mode with "
        "max_iterations = r, torque_tol = 0; all three still stop early on the trial-angle criterion "
        "½·arctan(torque/|C|) < 1e-3, so an event costs at most r + 1 gradients in DEO's count (the "
        "gradient at θ is the step's own; the column gives the mean actually spent). Quality: "
        "sin∠(N, B) after the event, B as above; the first 10 events of each run (burn-in from the random "
        "start) are left out; pooled over seeds.\n\n"
        + events
        + f"\nCommand: `python benchmarks/engine_accuracy.py {repeats}` "
        f"({time.perf_counter() - started:.0f} s)  \n"
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}  \n"
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread; load average "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)\n"
    )
    print(report)
    out = ROOT / "benchmarks" / "results" / "engine_accuracy.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()
