"""How many gradients does ``min_mode`` need to find the min mode, against Lanczos's Hessian-vector products?

Problem: ``½θᵀAθ`` with ``A = Q diag(λ) Qᵀ``, Q a random orthogonal matrix (one per repeat), the
spectrum ``λ₁ = −1`` and ``d − 1`` positives log-spaced in ``[0.01·s, s]`` with ``s = 100``
(so λ ∈ {−1} ∪ [1, 100], condition number λ_max/|λ_min| = 100, relative gap
(λ₂ − λ₁)/(λ_max − λ₁) = 2/101).

Measured, for the same random start vector n0 (one per repeat):

- ``min_mode`` (fourier rotation, forward scheme, ΔR = 1e-3, float64) for each plane (sd, cg, lbfgs):
  gradient evaluations (as ``info["grad_evals"]`` counts them: the gradient at θ, the first end,
  then one per iteration) until the first iteration with ``|cos∠(N, v_min)| > 0.99``;
- plain Lanczos (our own loop, full reorthogonalisation, started at n0): Hessian-vector products
  until the Ritz vector of the smallest Ritz value first has ``|cos| > 0.99`` (the Krylov optimum);
- scipy ``eigsh(LinearOperator, which="SA")`` via ``deo.hessian.lanczos_min_eig`` started at n0:
  products used by the loosest ``tol`` in 1e-1, 1e-2, … 1e-12 whose answer has ``|cos| > 0.99``
  (ARPACK's default Krylov basis has 20 vectors, so it never uses fewer than ~20).

Medians over ``repeats`` (different Q and n0). Run: ``python benchmarks/engine_accuracy.py``.
"""

from __future__ import annotations

import datetime
import math
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deo.dimer import batched_dot, min_mode, normalize  # noqa: E402
from deo.hessian import lanczos_min_eig  # noqa: E402

DIMENSIONS = (100, 1000)
PLANES = ("sd", "cg", "lbfgs")
SCALE = 100.0
TARGET_COS = 0.99
MAX_ITERATIONS = 2000
SPECTRUM = "λ₁ = −1, λ₂..λ_d log-spaced in [0.01·s, s], s = 100 (condition number 100)"


def spectrum(d: int) -> torch.Tensor:
    positives = torch.logspace(math.log10(0.01 * SCALE), math.log10(SCALE), d - 1, dtype=torch.float64)
    return torch.cat([torch.tensor([-1.0], dtype=torch.float64), positives])


def problem(d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A (d, d), v_min (d,), n0 (d,)) for one repeat."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    a = (q * spectrum(d)) @ q.T
    n0 = normalize(torch.randn(d, generator=generator, dtype=torch.float64))
    return 0.5 * (a + a.T), q[:, 0], n0


def min_mode_evals(a: torch.Tensor, v_min: torch.Tensor, n0: torch.Tensor, plane: str) -> float:
    """Gradient evaluations until |cos∠(N, v_min)| > 0.99 (inf if never within MAX_ITERATIONS)."""
    if abs(float(n0 @ v_min)) > TARGET_COS:
        return 2.0
    x = torch.zeros_like(n0)
    _, _, info = min_mode(
        lambda t: t @ a, x, n0=n0, plane=plane, max_iterations=MAX_ITERATIONS, torque_tol=0.0, record=True
    )
    for iteration, entry in enumerate(info["history"], start=1):
        if abs(float(batched_dot(entry["n"], v_min))) > TARGET_COS:
            return 2.0 + iteration  # g0 and the first end, then one trial end per iteration
    return math.inf


def plain_lanczos_hvps(a: torch.Tensor, v_min: torch.Tensor, n0: torch.Tensor) -> float:
    """Lanczos from n0, full reorthogonalisation: products until the lowest Ritz vector has |cos| > 0.99."""
    basis = [n0 / torch.linalg.vector_norm(n0)]
    alphas: list[float] = []
    betas: list[float] = []
    for k in range(1, a.shape[0] + 1):
        w = a @ basis[-1]
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


def eigsh_hvps(a: torch.Tensor, v_min: torch.Tensor, n0: torch.Tensor) -> float:
    """Products of scipy eigsh at the loosest tol (1e-1 … 1e-12) whose eigenvector has |cos| > 0.99."""
    for exponent in range(1, 13):
        _, vector, info = lanczos_min_eig(lambda v: a @ v, a.shape[0], tol=10.0**-exponent, v0=n0)
        if abs(float(torch.from_numpy(vector) @ v_min)) > TARGET_COS:
            return float(info["hvps"])
    return math.inf


def accuracy_table(repeats: int = 5) -> list[dict]:
    """One row per (d, plane): median gradient evaluations of min_mode to |cos| > 0.99 and the
    median Hessian-vector products of plain Lanczos and of scipy eigsh for the same problems."""
    rows = []
    for d in DIMENSIONS:
        runs = [problem(d, seed=1000 * d + repeat) for repeat in range(repeats)]
        lanczos = [plain_lanczos_hvps(*run) for run in runs]
        arpack = [eigsh_hvps(*run) for run in runs]
        for plane in PLANES:
            dimer = [min_mode_evals(*run, plane=plane) for run in runs]
            ratios = [ours / base for ours, base in zip(dimer, lanczos)]
            rows.append(
                {
                    "d": d,
                    "spectrum": SPECTRUM,
                    "rotation": "fourier",
                    "plane": plane,
                    "min_mode_grad_evals": statistics.median(dimer),
                    "lanczos_hvps": statistics.median(lanczos),
                    "eigsh_hvps": statistics.median(arpack),
                    "ratio_vs_lanczos": statistics.median(ratios),
                    "ratio_vs_eigsh": statistics.median(o / b for o, b in zip(dimer, arpack)),
                    "reached": sum(math.isfinite(v) for v in dimer),
                    "repeats": repeats,
                    "within_2x_of_lanczos": statistics.median(ratios) <= 2.0,
                }
            )
    return rows


def to_markdown(rows: list[dict]) -> str:
    header = (
        "| d | plane | min_mode grad evals | plain Lanczos HVPs | eigsh HVPs | ours / Lanczos | ours / eigsh "
        "| reached 0.99 | within 2x of Lanczos |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['d']} | {r['plane']} | {r['min_mode_grad_evals']:g} | {r['lanczos_hvps']:g} "
        f"| {r['eigsh_hvps']:g} "
        f"| {r['ratio_vs_lanczos']:.2f} | {r['ratio_vs_eigsh']:.2f} | {r['reached']}/{r['repeats']} "
        f"| {'yes' if r['within_2x_of_lanczos'] else 'no'} |"
        for r in rows
    ]
    return header + "\n".join(lines) + "\n"


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    table = to_markdown(accuracy_table(repeats))
    report = (
        "# Engine accuracy: min_mode gradients vs Lanczos Hessian-vector products to |cos| > 0.99\n\n"
        f"Spectrum: {SPECTRUM}; A = Q diag(λ) Qᵀ with random orthogonal Q. min_mode: fourier rotation, "
        "forward scheme, ΔR = 1e-3, float64; its count includes the gradient at θ. Plain Lanczos: our own "
        "loop with full reorthogonalisation (first iteration whose lowest Ritz vector reaches 0.99). eigsh: "
        "scipy ARPACK, loosest tol in 1e-1…1e-12 that reaches 0.99. Same n0 for all three. "
        f"Medians over {repeats} repeats (different Q, n0); ratios are medians of per-repeat ratios. "
        "Counts, not timings, so the shared, noisy machine does not change them.\n\n"
        + table
        + f"\nCommand: `python benchmarks/engine_accuracy.py {repeats}`  \n"
        f"Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}  \n"
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print(report)
    out = ROOT / "benchmarks" / "results" / "engine_accuracy.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()
