"""The paper's own experiment: a 0.80M-parameter char-level GPT on tiny Shakespeare, optimizer by optimizer.

Every run starts from the same parameters (``params0(seed)``), sees the same batch at step t
(``problem.batch(t)``), follows the paper's schedule (lr 1e-3 → 1e-4, cosine over 20 000 steps after
100 linear warm-up steps; a shorter budget stops early on the same schedule, so its curves line up
with the published ones) and clips the global gradient norm to 1.0 *in the update only*: DEO's own
``max_grad_norm`` clips g_mod after the dimer has probed with raw gradients; torch's baselines clip
with ``torch.nn.utils.clip_grad_norm_`` in the closure, after ``backward``.

Runs (``--optimizers``):

- ``adamw``: AdamW, decoupled weight decay 0.1 on matrices and embeddings (nanoGPT's groups).
- ``adam``: Adam without weight decay.
- ``adam_l2``: Adam with *coupled* L2 weight decay 0.1, the published "adam" baseline.
- ``deo_paper``: DEO over Adam (α = 1, rotate every 10, one Fourier rotation, ΔR 1e-3).
- ``deo_escape``: DEO over Adam with α = −1 gated to C < 0 (rotate every 10: the cost of deo_paper).
- ``deo_paper_random``: the control of ``deo_paper``: the same step and cost with a random N drawn once
  (``direction="random"``, never rotated).
- ``deo_published_forward``: the published code (``PublishedDimer`` v4) with the training script's
  forward-only closure: N becomes NaN at step 10 and the run is plain (hand-written) Adam.
- ``deo_published``: the same code with a working closure, to see where its direction goes.
- ``deo_published_file_defaults`` (extra, labelled): the working-closure run with the optimizer
  file's own defaults (dimer_strength 0.1, displacement 1e-4) instead of the values the authors'
  ``train.py`` passes (5.0, 0.006; used by the two runs above, ``deo.presets.PUBLISHED_TRAIN_PY``).

All Adam-type runs use betas (0.9, 0.99) as nanoGPT's shakespeare_char config, except the
published code, which keeps its own defaults (0.9, 0.999) as a faithful reproduction.

Every ``--eval-every`` steps: train and val loss on ``--eval-batches`` fixed batches, and for the
dimer runs the ground truth on one fixed training batch: exact Hessian-vector products
(forward-over-reverse), Lanczos λ_min and v_min (and λ_max, v_max for the published code), the
Rayleigh quotient NᵀHN of the optimizer's direction and |cos∠(N, v)|. Ground-truth work is not
counted in the gradient evaluations (those count the algorithm's closure calls with a backward).

Usage::

    python benchmarks/paper.py                      # default budget (1 000 steps), 2 parallel jobs
    python benchmarks/paper.py --steps 20000        # the paper's full run (many hours on a CPU)
    python benchmarks/paper.py --resume             # continue from benchmarks/checkpoints/

Outputs: ``benchmarks/results/paper.md`` (tables), ``paper.csv`` (our curves and the published ones,
long format), ``paper-diagnostics.csv``, ``paper.html`` (Plotly figure; gitignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence
from torch import Tensor
from torch.optim import Adam, AdamW, Optimizer

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deo.baselines import PublishedDimer  # noqa: E402
from deo.hessian import hvp, lanczos_min_eig  # noqa: E402
from deo.optim import DEO  # noqa: E402
from deo.presets import PRESETS, PUBLISHED_TRAIN_PY  # noqa: E402
from landscapes.shakespeare import ShakespeareProblem, shakespeare_char  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CHECKPOINTS = REPO / "benchmarks" / "checkpoints"
PUBLISHED_CSV = REPO.parent / "shared" / "data" / "dimertrainer-eval-curves.csv"

LR, MIN_LR, WARMUP_STEPS, DECAY_STEPS = 1e-3, 1e-4, 100, 20_000
CLIP = 1.0
BETAS = (0.9, 0.99)
WEIGHT_DECAY = 0.1
DEFAULT_STEPS = 1_000
EVAL_EVERY, EVAL_BATCHES = 250, 20

RUNS: dict[str, dict[str, Any]] = {
    "adamw": {"label": "AdamW (wd 0.1)", "published": "adamw", "lanczos": ()},
    "adam": {"label": "Adam (wd 0)", "published": None, "lanczos": ()},
    "adam_l2": {"label": "Adam + L2 0.1 (published 'adam')", "published": "adam", "lanczos": ()},
    "deo_paper": {"label": "DEO (paper) over Adam", "published": None, "lanczos": ("min",)},
    "deo_escape": {"label": "DEO-escape over Adam", "published": None, "lanczos": ("min",)},
    "deo_paper_random": {
        "label": "DEO (paper) over Adam — control: random fixed direction",
        "published": None,
        "lanczos": ("min",),
    },
    "deo_published_forward": {
        "label": "DEO (published code), forward-only closure",
        "published": "dimerAdam",
        "lanczos": (),
    },
    "deo_published": {
        "label": "DEO (published code), working closure",
        "published": None,
        "lanczos": ("min", "max"),
    },
    "deo_published_file_defaults": {
        "label": "DEO (published code), working closure, optimizer-file defaults 0.1 / 1e-4 (not train.py's)",
        "published": None,
        "lanczos": ("min", "max"),
    },
}
DEFAULT_RUNS = tuple(key for key in RUNS if key not in ("deo_published_file_defaults", "deo_paper_random"))
# the optimizer file's own defaults, which the authors' train.py overrides with PUBLISHED_TRAIN_PY
FILE_DEFAULTS = {"dimer_strength": 0.1, "displacement": 1e-4}


def learning_rate(step: int, decay_steps: int = DECAY_STEPS) -> float:
    """nanoGPT's ``get_lr``: linear warm-up to 1e-3 over 100 steps, cosine to 1e-4 at ``decay_steps``."""
    if step < WARMUP_STEPS:
        return LR * (step + 1) / (WARMUP_STEPS + 1)
    if step > decay_steps:
        return MIN_LR
    ratio = (step - WARMUP_STEPS) / (decay_steps - WARMUP_STEPS)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


class UpdateClippedPublishedDimer(PublishedDimer):
    """The published code with the training script's gradient clip, applied to the gradient the
    update uses (whatever ``p.grad`` holds when the published ``_update`` runs), never to G1, G2."""

    def __init__(self, *args: Any, max_grad_norm: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_grad_norm = max_grad_norm
        self._clip_step, self._clip_scale = -1, 1.0

    def _update(self, p: Tensor, grad: Tensor, group: dict[str, Any]) -> None:
        if self._clip_step != self.step_count:
            grads = [q.grad for q in self._params() if q.grad is not None]
            total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
            self._clip_scale = float(torch.clamp(self.max_grad_norm / (total + 1e-6), max=1.0))
            self._clip_step = self.step_count
        super()._update(p, grad * self._clip_scale, group)


def param_groups(params: dict[str, Tensor], weight_decay: float) -> list[dict[str, Any]]:
    """nanoGPT's groups: weight decay on tensors with ≥ 2 dims (matrices, embeddings), none on the rest."""
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(key: str, params: dict[str, Tensor], seed: int) -> Optimizer:
    """The optimizer of run ``key`` on the named leaf tensors ``params`` (see the module docstring)."""
    if key == "adamw":
        return AdamW(param_groups(params, WEIGHT_DECAY), lr=LR, betas=BETAS)
    if key == "adam":
        return Adam(list(params.values()), lr=LR, betas=BETAS)
    if key == "adam_l2":
        return Adam(param_groups(params, WEIGHT_DECAY), lr=LR, betas=BETAS)
    if key in ("deo_paper", "deo_escape", "deo_paper_random"):
        hp = {**PRESETS[key].defaults, "lr": LR, "betas": BETAS, "eps": 1e-8, "rotate_every": 10}
        hp.update(base="adam", max_grad_norm=CLIP)  # DEO clips g_mod itself, never the dimer's probes
        return DEO(list(params.values()), seed=seed, **hp)
    if key in ("deo_published", "deo_published_forward", "deo_published_file_defaults"):
        hp = {**PRESETS["deo_published"].defaults, **PUBLISHED_TRAIN_PY, "lr": LR}
        if key == "deo_published_file_defaults":
            hp.update(FILE_DEFAULTS)
        hp["closure_mode"] = "published" if key == "deo_published_forward" else "working"
        return UpdateClippedPublishedDimer(list(params.values()), seed=seed, max_grad_norm=CLIP, **hp)
    raise ValueError(f"unknown run {key!r}; allowed: {sorted(RUNS)}")


def optimizer_order(opt: Optimizer, params: dict[str, Tensor]) -> list[str]:
    """Names of ``params`` in the order the optimizer flattens them (its param groups)."""
    by_id = {id(p): name for name, p in params.items()}
    return [by_id[id(p)] for group in opt.param_groups for p in group["params"]]


def algorithm_grad_evals(opt: Optimizer, step: int) -> int:
    """Gradient evaluations the algorithm made so far (one per step for torch's optimizers)."""
    if isinstance(opt, DEO):
        return int(opt.diagnostics()["grad_evals"])
    if isinstance(opt, PublishedDimer):
        return int(opt.grad_evals)
    return step


def direction_of(opt: Optimizer) -> Tensor | None:
    """The optimizer's dimer direction N as one flat float64 vector (None without a dimer)."""
    if isinstance(opt, DEO | PublishedDimer):
        return opt.diagnostics()["direction"].detach().to(torch.float64).reshape(-1)
    return None


class GroundTruth:
    """Exact curvature of the loss on one fixed batch at flat parameters θ ``(d,)`` (names in ``order``)."""

    def __init__(self, problem: ShakespeareProblem, order: list[str], shapes: dict[str, torch.Size], batch):
        self.problem, self.order, self.batch = problem, order, batch
        self.shapes = [shapes[name] for name in order]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.hvps = 0

    def loss(self, theta: Tensor) -> Tensor:
        parts = torch.split(theta, self.sizes)
        params = {n: p.reshape(s) for n, p, s in zip(self.order, parts, self.shapes)}
        return self.problem.loss(params, self.batch)

    def hessian_times(self, theta: Tensor, v: Tensor) -> Tensor:
        """H v in float64 (the product itself in the model's float32)."""
        self.hvps += 1
        return hvp(self.loss, theta, v.to(theta.dtype)).to(torch.float64)

    def rayleigh(self, theta: Tensor, n: Tensor) -> float:
        """NᵀHN / NᵀN (NaN when N is not finite or zero)."""
        norm = float(torch.linalg.vector_norm(n))
        if not math.isfinite(norm) or norm == 0.0:
            return math.nan
        u = n / norm
        return float(u @ self.hessian_times(theta, u))

    def extreme(self, theta: Tensor, which: str, v0: np.ndarray | None, tol: float, maxiter: int):
        """(λ, v, converged): λ_min (``which="min"``) or λ_max (as −λ_min of −H) by Lanczos."""
        sign = 1.0 if which == "min" else -1.0
        try:
            lam, v, _ = lanczos_min_eig(
                lambda u: sign * self.hessian_times(theta, u), theta.numel(), tol=tol, maxiter=maxiter, v0=v0
            )
            return sign * lam, v, True
        except ArpackNoConvergence as stop:
            if len(stop.eigenvalues):
                k = int(np.argmin(stop.eigenvalues))
                return sign * float(stop.eigenvalues[k]), stop.eigenvectors[:, k], False
            return math.nan, None, False


def abs_cos(a: Tensor | None, b: np.ndarray | None) -> float:
    """|cos∠(a, b)| (NaN when either is missing, zero or not finite)."""
    if a is None or b is None:
        return math.nan
    a64 = a.numpy()
    na, nb = np.linalg.norm(a64), np.linalg.norm(b)
    if not (np.isfinite(na) and na > 0 and nb > 0):
        return math.nan
    return float(abs(a64 @ b) / (na * nb))


def checkpoint_path(key: str, name: str) -> Path:
    return CHECKPOINTS / f"{name}-{key}.pt"


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """What must match for a checkpoint to be continued (everything but the budget)."""
    return {
        "model": {k: getattr(args, k) for k in ("block_size", "batch_size", "n_layer", "n_head", "n_embd")},
        "seed": args.seed,
        "decay_steps": args.decay_steps,
        "eval_every": args.eval_every,
        "eval_batches": args.eval_batches,
    }


def train(
    key: str, args: argparse.Namespace, log: Callable[[str], None] = print, checkpoint: Path | None = None
) -> dict[str, Any]:
    """Run ``key`` for ``args.steps`` steps (continuing a checkpoint with ``args.resume``).

    ``checkpoint``: the checkpoint file (default ``benchmarks/checkpoints/<name>-<key>.pt``), saved at
    every evaluation; an existing one is always continued (a sweep cell's retry or rerun).

    Returns ``{"key", "curve": [per-eval dict], "diagnostics": [per-eval dict], "ms_per_step": [...]}``.
    """
    torch.set_num_threads(args.threads)
    problem = shakespeare_char(
        args.path, args.block_size, args.batch_size, args.n_layer, args.n_head, args.n_embd, seed=args.seed
    )
    params = {n: p.requires_grad_(True) for n, p in problem.params0(seed=args.seed).items()}
    opt = make_optimizer(key, params, args.seed)
    order = optimizer_order(opt, params)
    shapes = {n: p.shape for n, p in params.items()}
    truth = GroundTruth(problem, order, shapes, problem.eval_batches("train", 1)[0])
    n0 = direction_of(opt)
    config = run_config(args)
    path = checkpoint if checkpoint is not None else checkpoint_path(key, args.name)
    state: dict[str, Any] = {"step": 0, "curve": [], "diagnostics": [], "ms_per_step": [], "v": {}}
    if (args.resume or checkpoint is not None) and path.is_file():
        saved = torch.load(path, weights_only=False)
        if saved["config"] != config:
            raise ValueError(f"{path} was made with {saved['config']}, not {config}; drop --resume")
        with torch.no_grad():
            for name, value in saved["params"].items():
                params[name].copy_(value)
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        log(f"[{key}] resumed at step {state['step']}")

    batch = None

    clip_in_closure = not isinstance(opt, DEO | PublishedDimer)  # torch's baselines: clip after backward

    def closure() -> Tensor:
        loss = problem.loss(params, batch)
        loss.backward()
        if clip_in_closure:
            torch.nn.utils.clip_grad_norm_(list(params.values()), CLIP)
        return loss

    def evaluate(step: int) -> None:
        theta = torch.cat([params[n].detach().reshape(-1) for n in order])
        curve = {
            "step": step,
            "grad_evals": algorithm_grad_evals(opt, step),
            "lr": learning_rate(step, args.decay_steps),
            "train_loss": problem.evaluate(params, "train", args.eval_batches),
            "val_loss": problem.evaluate(params, "val", args.eval_batches),
        }
        state["curve"].append(curve)
        diag: dict[str, Any] = {"step": step}
        n = direction_of(opt)
        if n is not None and step > 0:
            t0, hvps0 = time.perf_counter(), truth.hvps
            diag["n_finite"] = bool(torch.isfinite(n).all())
            diag["n_change"] = float(torch.linalg.vector_norm(n / n.norm() - n0 / n0.norm()))
            diag["dimer_curvature"] = float(opt.diagnostics()["curvature"])
            diag["rayleigh"] = truth.rayleigh(theta, n)
            for which in RUNS[key]["lanczos"] if args.diagnostics else ():
                lam, v, converged = truth.extreme(
                    theta, which, state["v"].get(which), args.lanczos_tol, args.lanczos_maxiter
                )
                state["v"][which] = v
                diag[f"lambda_{which}"], diag[f"cos_{which}"] = lam, abs_cos(n, v)
                diag[f"converged_{which}"] = converged
            diag["hvps"], diag["seconds"] = truth.hvps - hvps0, time.perf_counter() - t0
            state["diagnostics"].append(diag)
        shown = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in diag.items())
        ms = np.median(state["ms_per_step"][-args.eval_every :]) if state["ms_per_step"] else math.nan
        log(
            f"[{key}] step {step}/{args.steps} grad_evals {curve['grad_evals']} "
            f"train {curve['train_loss']:.4f} val {curve['val_loss']:.4f} lr {curve['lr']:.2e} "
            f"{ms:.0f} ms/step | {shown}"
        )

    if state["step"] == 0 and not state["curve"]:
        evaluate(0)
    while state["step"] < args.steps:
        step = state["step"]
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args.decay_steps)
        batch = problem.batch(step)
        t0 = time.perf_counter()
        for p in params.values():
            p.grad = None
        loss = opt.step(closure)
        state["ms_per_step"].append(1e3 * (time.perf_counter() - t0))
        if not math.isfinite(float(loss.detach())):
            log(f"[{key}] non-finite loss at step {step}; stopping")
            break
        state["step"] = step + 1
        if state["step"] % args.eval_every == 0 or state["step"] == args.steps:
            evaluate(state["step"])
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {
                    "config": config,
                    "params": {n: p.detach().clone() for n, p in params.items()},
                    "optimizer": opt.state_dict(),
                    "state": state,
                },
                path,
            )
    curve = [c for c in state["curve"] if c["step"] <= args.steps]
    diagnostics = [d for d in state["diagnostics"] if d["step"] <= args.steps]
    return {"key": key, "curve": curve, "diagnostics": diagnostics, "ms_per_step": state["ms_per_step"]}


# ------------------------------------------------------------------------------------ sweep cells

SWEEP_CONFIG = REPO / "benchmarks" / "sweeps" / "paper.toml"
ARG_NAMES = {"path", "block_size", "batch_size", "n_layer", "n_head", "n_embd", "decay_steps", "eval_every",
             "eval_batches", "diagnostics", "lanczos_tol", "lanczos_maxiter"}  # fmt: skip


def cell_args(cell: dict) -> argparse.Namespace:
    """paper.py's arguments of one sweep cell: the problem's ``args`` and the config's ``options``."""
    spec = cell["spec"]
    args = parse_args(["--steps", str(spec["budget"]), "--seed", str(spec["seed"]), "--jobs", "1",
                       "--threads", str(cell.get("threads", 1))])  # fmt: skip
    for name, value in {**spec["problem"].get("args", {}), **spec.get("options", {})}.items():
        if name not in ARG_NAMES:
            raise ValueError(f"unknown paper option {name!r}; allowed: {sorted(ARG_NAMES)}")
        setattr(args, name, value)
    return args


def sweep_cell(cell: dict, checkpoint_dir: str | Path | None = None) -> dict[str, Any]:
    """One run (``cell["spec"]["preset"]``, a key of ``RUNS``) as a ``deo.sweep`` cell: its row.

    With ``checkpoint_dir`` and ``checkpoint_every > 0`` the run checkpoints at every evaluation to
    ``<checkpoint_dir>/<cell key>.pt`` and continues from it (removed when the run finishes).
    """
    args = cell_args(cell)
    path = None
    if checkpoint_dir is not None and int(cell.get("checkpoint_every", 0)) > 0:
        path = Path(checkpoint_dir) / f"{cell['key']}.pt"
    resumed_from = 0
    if path is not None and path.is_file():
        resumed_from = int(torch.load(path, weights_only=False)["state"]["step"])
    result = train(cell["spec"]["preset"], args, log=lambda line: print(line, flush=True), checkpoint=path)
    if path is not None and path.exists():
        path.unlink()
    last = result["curve"][-1]
    diag = result["diagnostics"][-1] if result["diagnostics"] else {}
    return {
        "status": "finished" if last["step"] == args.steps else "diverged",
        "steps": int(last["step"]),
        "grad_evals": int(last["grad_evals"]),
        "final_loss": float(last["train_loss"]),
        "val_loss": float(last["val_loss"]),
        "best_loss": float(min(c["val_loss"] for c in result["curve"])),
        "ms_per_step": float(np.median(result["ms_per_step"])) if result["ms_per_step"] else math.nan,
        **{name: float(diag.get(name, math.nan)) for name in
           ("rayleigh", "lambda_min", "cos_min", "dimer_curvature", "n_change")},
        "curve": json.dumps(result["curve"]),
        "diagnostics": json.dumps(result["diagnostics"], default=float),
        "resumed_from": resumed_from,
    }  # fmt: skip


def sweep_config(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep config of a ``paper.py`` command line: ``benchmarks/sweeps/paper.toml``'s cells with
    this command's runs, budget, seed and model."""
    from deo.sweeps import load_config

    config = load_config(SWEEP_CONFIG)
    model = {k: getattr(args, k) for k in ("block_size", "batch_size", "n_layer", "n_head", "n_embd")}
    if args.path is not None:
        model["path"] = args.path
    options = {k: getattr(args, k) for k in ("decay_steps", "eval_every", "eval_batches", "diagnostics",
                                             "lanczos_tol", "lanczos_maxiter")}  # fmt: skip
    config.update(name=args.name, budget=args.steps, seeds=[args.seed], threads=args.threads,
                  checkpoint_every=args.eval_every, options=options)  # fmt: skip
    config["problems"] = [{**config["problems"][0], "args": model}]
    keys = args.optimizers.split(",")
    config["optimizers"] = [{"preset": key, "label": RUNS[key]["label"]} for key in keys]
    return config


def results_from_table(frame) -> list[dict[str, Any]]:
    """``train``-like results (key, curve, diagnostics, ms_per_step) of a paper sweep's table rows."""
    return [
        {"key": row.preset, "curve": json.loads(row.curve), "diagnostics": json.loads(row.diagnostics),
         "ms_per_step": [row.ms_per_step]}
        for row in frame.itertuples()
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------- report


def load_published(model: str = "0.80M"):
    """The published eval curves of ``model`` (pandas DataFrame: optimizer, step, train_loss, val_loss)."""
    import pandas as pd

    frame = pd.read_csv(PUBLISHED_CSV)
    return frame[frame["model"] == model].drop(columns="model").reset_index(drop=True)


def curves_frame(results: list[dict[str, Any]]):
    """Our curves and the published ones, long format (the CSV the app's About page plots)."""
    import pandas as pd

    rows = []
    for result in results:
        ms = float(np.median(result["ms_per_step"])) if result["ms_per_step"] else math.nan
        for c in result["curve"]:
            rows.append({"source": "ours", "optimizer": result["key"], "label": RUNS[result["key"]]["label"],
                         **c, "ms_per_step": ms})  # fmt: skip
    published = load_published()
    published = published.assign(source="published", label=published["optimizer"] + " (published)")
    return pd.concat([pd.DataFrame(rows), published], ignore_index=True)


def published_final_table(frame) -> str:
    """Markdown: the published runs' train/val loss at their last step (20 000), sorted by val loss."""
    last = frame[frame["step"] == frame["step"].max()].sort_values("val_loss")
    lines = ["| published optimizer | step | train loss | val loss |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r.optimizer} | {r.step} | {r.train_loss:.4f} | {r.val_loss:.4f} |" for r in last.itertuples()
    ]
    return "\n".join(lines)


def results_table(results: list[dict[str, Any]], published) -> str:
    """Markdown: per run, the final losses, gradient evaluations, median ms per step, and the published
    counterpart's val loss at the same step."""
    lines = [
        "| run | steps | grad evals | train loss | val loss | best val | published val (same step) "
        "| ms/step (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        last = result["curve"][-1]
        best = min(c["val_loss"] for c in result["curve"])
        name = RUNS[result["key"]]["published"]
        match = published[(published["optimizer"] == name) & (published["step"] == last["step"])]
        ref = f"{match['val_loss'].iloc[0]:.4f} ({name})" if len(match) else "—"
        ms = float(np.median(result["ms_per_step"])) if result["ms_per_step"] else math.nan
        lines.append(
            f"| {RUNS[result['key']]['label']} | {last['step']} | {last['grad_evals']} "
            f"| {last['train_loss']:.4f} | {last['val_loss']:.4f} | {best:.4f} | {ref} | {ms:.0f} |"
        )
    return "\n".join(lines)


def at_equal_evals_table(results: list[dict[str, Any]]) -> str:
    """Markdown: val loss of each run interpolated at the gradient-evaluation counts of the cheapest run."""
    budget = min(r["curve"][-1]["grad_evals"] for r in results)
    marks = sorted({c["grad_evals"] for r in results for c in r["curve"] if 0 < c["grad_evals"] <= budget})
    marks = [m for m in marks if m % 500 == 0] or marks[-1:]
    header = " | ".join(f"val @ {m} evals" for m in marks)
    lines = [f"| run | {header} |", "|---|" + "---:|" * len(marks)]
    for r in results:
        x = [c["grad_evals"] for c in r["curve"]]
        y = [c["val_loss"] for c in r["curve"]]
        cells = " | ".join(f"{np.interp(m, x, y):.4f}" for m in marks)
        lines.append(f"| {RUNS[r['key']]['label']} | {cells} |")
    return "\n".join(lines)


DIAG_COLUMNS = (
    ("step", "step", "{}"),
    ("n_finite", "N finite", "{}"),
    ("n_change", "‖N/‖N‖ − N₀/‖N₀‖‖", "{:.3g}"),
    ("dimer_curvature", "dimer C", "{:.4g}"),
    ("rayleigh", "NᵀHN (fixed batch)", "{:.4g}"),
    ("lambda_min", "λ_min", "{:.4g}"),
    ("cos_min", "\\|cos(N, v_min)\\|", "{:.3g}"),
    ("lambda_max", "λ_max", "{:.4g}"),
    ("cos_max", "\\|cos(N, v_max)\\|", "{:.3g}"),
    ("hvps", "HVPs", "{}"),
)


def diagnostics_table(result: dict[str, Any]) -> str:
    """Markdown: the dimer diagnostics of one run, one row per evaluation."""
    rows = result["diagnostics"]
    columns = [c for c in DIAG_COLUMNS if any(c[0] in row for row in rows)]
    lines = ["| " + " | ".join(c[1] for c in columns) + " |", "|" + "---:|" * len(columns)]
    for row in rows:
        cells = []
        for name, _, fmt in columns:
            value = row.get(name)
            text = "—" if value is None else fmt.format(value)
            if name.startswith("lambda_") and row.get(f"converged_{name[7:]}") is False:
                text += " (not converged)"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_figure(frame, path: Path) -> Path:
    """Plotly HTML (matplotlib is not installed here): val and train loss vs steps and vs gradient
    evaluations. Ours solid; dashed in the same colour, the published run each of ours stands for
    (``RUNS[key]["published"]``), up to our last step, in the steps panels only (the published logs
    have no evaluation counts)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from viz.palette import color_for, style_figure

    fig = make_subplots(
        rows=2, cols=2, shared_yaxes=True,
        subplot_titles=("val loss vs steps", "val loss vs gradient evaluations",
                        "train loss vs steps", "train loss vs gradient evaluations"),
    )  # fmt: skip
    ours = frame[frame["source"] == "ours"]
    last_step = ours["step"].max()
    for key, part in ours.groupby("optimizer", sort=False):
        curves = [(part, part["label"].iloc[0], "solid", True)]
        name = RUNS[key]["published"]
        published = frame[(frame["source"] == "published") & (frame["optimizer"] == name)]
        if name is not None and len(published):
            published = published[published["step"] <= last_step]
            curves.append((published, f"{name} (published)", "dash", False))
        for data, label, dash, per_eval in curves:
            line = {"color": color_for(key), "dash": dash, "width": 2}
            for row, column in ((1, "val_loss"), (2, "train_loss")):
                fig.add_trace(go.Scatter(x=data["step"], y=data[column], name=label, legendgroup=label,
                                         showlegend=row == 1, line=line), row=row, col=1)  # fmt: skip
                if per_eval:
                    fig.add_trace(go.Scatter(x=data["grad_evals"], y=data[column], name=label,
                                             legendgroup=label, showlegend=False, line=line),
                                  row=row, col=2)  # fmt: skip
    fig.update_xaxes(title_text="step", col=1)
    fig.update_xaxes(title_text="gradient evaluations", col=2)
    fig.update_yaxes(title_text="loss (nats/char)", col=1)
    fig.update_layout(title="Tiny Shakespeare char-level GPT (0.80M): ours vs published", height=900)
    style_figure(fig)
    fig.write_html(path, include_plotlyjs=True)  # self-contained: no network needed to view it
    return path


def write_report(
    results: list[dict[str, Any]], args: argparse.Namespace, wall_s: float, command: str
) -> Path:
    """Write the markdown report, the two CSVs and the figure; return the report's path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame = curves_frame(results)
    frame.to_csv(RESULTS / f"{args.name}.csv", index=False, float_format="%.6g")
    import pandas as pd

    diag_rows = [{"optimizer": r["key"], **d} for r in results for d in r["diagnostics"]]
    pd.DataFrame(diag_rows).to_csv(RESULTS / f"{args.name}-diagnostics.csv", index=False, float_format="%.6g")
    figure = write_figure(frame, RESULTS / f"{args.name}.html")
    published = load_published()
    problem = shakespeare_char(
        args.path, args.block_size, args.batch_size, args.n_layer, args.n_head, args.n_embd, seed=args.seed
    )
    parts = [
        f"# Tiny Shakespeare, the paper's char-level GPT — {args.steps} steps",
        "",
        f"Command: `{command}`  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} torch thread(s) per run, {args.jobs} run(s) in parallel; torch {torch.__version__}; "
        f"wall time of this invocation {wall_s / 60:.1f} min. The machine is shared with other jobs: "
        "ms/step is noisy (median over all steps of a run, including steps run before a --resume).",
        "",
        f"Problem: {problem.note}. Same initial parameters (seed {args.seed}), same batch at every step "
        f"(seeded by the step), lr 1e-3 → 1e-4 cosine over {args.decay_steps} steps after 100 warm-up steps "
        "(the paper's schedule; a shorter budget stops early on it), gradient clip 1.0 on the update only, "
        f"eval every {args.eval_every} steps on {args.eval_batches} fixed batches per split. "
        "The published curves (`../shared/data/dimertrainer-eval-curves.csv`) come from the authors' runs "
        "with their own data order and seed; their eval noise is about ±0.03.",
        "",
        "## Losses at the end of the budget",
        "",
        results_table(results, published),
        "",
        "## Val loss at equal gradient evaluations (linear interpolation between evals)",
        "",
        at_equal_evals_table(results),
        "",
        "## The published runs at step 20 000 (0.80M model)",
        "",
        "The published 'adam' and 'sgd' carry coupled L2 weight decay 0.1; the dimer classes have none.",
        "",
        published_final_table(published),
        "",
        "## Dimer diagnostics (ground truth on one fixed training batch; Lanczos on exact HVPs)",
        "",
        "dimer C: the optimizer's own curvature estimate at its last rotation (its minibatch); "
        "NᵀHN: the Rayleigh quotient of its direction on the fixed batch; |cos| to the Lanczos eigenvector. "
        f"A random direction has |cos| ≈ √(2/(π d)) ≈ {math.sqrt(2 / (math.pi * problem.n_params)):.1e}. "
        "The published code's N is per tensor (a unit vector per parameter tensor): its global |cos| is "
        "that of the concatenation.",
        "",
    ]
    for r in results:
        if r["diagnostics"]:
            parts += [f"### {RUNS[r['key']]['label']}", "", diagnostics_table(r), ""]
    parts += [f"Figure: `{figure.relative_to(REPO)}` (Plotly HTML, not committed).", ""]
    out = RESULTS / f"{args.name}.md"
    out.write_text("\n".join(parts))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="steps per run (paper: 20000)")
    parser.add_argument("--optimizers", default=",".join(DEFAULT_RUNS), help=f"comma list from {list(RUNS)}")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--resume", action="store_true", help="continue from benchmarks/checkpoints/")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", default=None, help="tiny Shakespeare text (default ../shared/data/...)")
    parser.add_argument("--decay-steps", type=int, default=DECAY_STEPS, help="end of the cosine decay")
    parser.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    parser.add_argument("--eval-batches", type=int, default=EVAL_BATCHES)
    parser.add_argument("--no-diagnostics", dest="diagnostics", action="store_false", help="skip Lanczos")
    parser.add_argument("--lanczos-tol", type=float, default=1e-3)
    parser.add_argument("--lanczos-maxiter", type=int, default=10, help="Lanczos restarts at most")
    parser.add_argument("--name", default="paper", help="stem of the result and checkpoint files")
    model = (("block-size", 64), ("batch-size", 12), ("n-layer", 4), ("n-head", 4), ("n-embd", 128))
    for name, default in model:
        parser.add_argument(f"--{name}", type=int, default=default, help="model size (paper's default)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.optimizers.split(",")) - set(RUNS))
    if unknown:
        parser.error(f"unknown optimizer(s) {unknown}; allowed: {list(RUNS)}")
    if args.steps < 1 or args.jobs < 1 or args.threads < 1 or args.eval_every < 1:
        parser.error("--steps, --jobs, --threads and --eval-every must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = " ".join(["python benchmarks/paper.py", *(sys.argv[1:] if argv is None else argv)])
    from deo.sweeps import sweep

    t0 = time.perf_counter()
    frame = sweep(
        sweep_config(args),
        REPO / "sweeps" / args.name,
        executor="sequential" if args.jobs == 1 else "ray",
        num_cpus=args.jobs,
        cells_per_task=1,
    )
    if frame.attrs["meta"]["failed"] or len(frame) == 0:
        raise SystemExit(f"failed cells: {frame.attrs['meta']['failed']}")
    out = write_report(results_from_table(frame), args, time.perf_counter() - t0, command)
    print(out.read_text())
    print(json.dumps({"report": str(out.relative_to(REPO))}))


if __name__ == "__main__":
    main()
