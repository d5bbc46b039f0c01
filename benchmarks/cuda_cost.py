"""DEO's cost on a GPU: wall time of DEO (base Adam) against Adam next to the gradient-evaluation ratio.

The CUDA twin of the cost table of ``benchmarks/engine.py``: a ~1M-parameter MLP
(512-1024-512-1, the engine's) and a ~21M-parameter MLP (1024-4096-4096-1), batch 256, float32,
``torch.optim.Adam(foreach=True)`` against ``DEO(base="adam", foreach=True, rotations=1)`` for
rotate_every 1 and 10, forward and central. Each timed run: a fresh copy of the model, 10 warm-up
steps (DEO's first rotation events included), then ``--steps`` steps (a multiple of 10, so the
window holds a whole number of rotation intervals) between two CUDA events after a
``torch.cuda.synchronize()``; Adam and DEO alternate inside every repeat (which runs first flips),
medians over ``--repeats`` (5). The gradient-evaluation ratio is counted (closure calls per step)
and set against ``1 + (rotations + 1)·c/rotate_every`` (c = 1 forward, 2 central).

Only ``torch`` is needed (no numpy, no app dependencies), so it runs on a bare GPU machine:
``PYTHONPATH=. python3 benchmarks/cuda_cost.py --out benchmarks/results/cuda.md`` (about a minute
on an H200, estimated). ``--device cpu --quick`` is a seconds-long smoke test with small MLPs.

Not named ``benchmarks/cuda.py``: run as a script, its folder is first on ``sys.path`` and a
``cuda.py`` there shadows the ``cuda`` package (``cuda.bindings``) that ``import torch`` imports.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deo.optim import DEO  # noqa: E402

SETTINGS = [(1, "forward"), (1, "central"), (10, "forward"), (10, "central")]
ROTATIONS = 1
WARMUP = 10
MODELS = [("~1M MLP", [512, 1024, 512, 1]), ("~21M MLP", [1024, 4096, 4096, 1])]
QUICK_MODELS = [("small MLP", [32, 64, 1]), ("medium MLP", [64, 256, 1])]
BATCH = 256


def mlp(widths: list[int], seed: int) -> nn.Module:
    """The model builder of ``benchmarks/engine.py`` (Linear + Tanh, no activation at the end)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


class Timer:
    """Elapsed seconds of a block: CUDA events around it on a GPU, ``perf_counter`` on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> Timer:
        if self.cuda:
            torch.cuda.synchronize()
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def time_steps(make_opt, template: nn.Module, data, target, steps: int, device) -> tuple[float, float]:
    """(seconds per step, gradient evaluations per step) over ``steps`` steps after ``WARMUP``."""
    model = copy.deepcopy(template)
    opt = make_opt(model.parameters())
    evals = [0]

    def closure():
        evals[0] += 1
        opt.zero_grad()
        loss = ((model(data) - target) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(WARMUP):
        opt.step(closure)
    evals[0] = 0
    with Timer(device) as timer:
        for _ in range(steps):
            opt.step(closure)
    return timer.seconds / steps, evals[0] / steps


def cost_rows(device: torch.device, models, repeats: int, steps: int) -> list[dict]:
    rows = []
    for name, widths in models:
        template = mlp(widths, seed=0).to(device)
        n_params = sum(p.numel() for p in template.parameters())
        gen = torch.Generator().manual_seed(1)
        data = torch.randn(BATCH, widths[0], generator=gen).to(device)
        target = torch.randn(BATCH, widths[-1], generator=gen).to(device)
        for rotate_every, scheme in SETTINGS:
            c = 1 if scheme == "forward" else 2

            def adam(p):
                return torch.optim.Adam(p, lr=1e-3, foreach=True)

            def deo(p, k=rotate_every, s=scheme):
                return DEO(
                    p,
                    base="adam",
                    lr=1e-3,
                    rotate_every=k,
                    rotations=ROTATIONS,
                    scheme=s,
                    seed=0,
                    foreach=True,
                )

            adam_times, deo_times, deo_evals = [], [], []
            for repeat in range(repeats):
                if repeat % 2:  # alternate which runs first
                    deo_t, evals = time_steps(deo, template, data, target, steps, device)
                    adam_t, _ = time_steps(adam, template, data, target, steps, device)
                else:
                    adam_t, _ = time_steps(adam, template, data, target, steps, device)
                    deo_t, evals = time_steps(deo, template, data, target, steps, device)
                adam_times.append(adam_t)
                deo_times.append(deo_t)
                deo_evals.append(evals)
            predicted = 1 + (ROTATIONS + 1) * c / rotate_every
            wall_ratio = statistics.median(d / a for d, a in zip(deo_times, adam_times))
            rows.append(
                {
                    "model": name,
                    "params": n_params,
                    "rotate_every": rotate_every,
                    "scheme": scheme,
                    "adam_ms": 1e3 * statistics.median(adam_times),
                    "deo_ms": 1e3 * statistics.median(deo_times),
                    "evals_per_step": statistics.median(deo_evals),
                    "eval_ratio": predicted,
                    "wall_ratio": wall_ratio,
                    "off_by": wall_ratio / predicted - 1,
                }
            )
            row = rows[-1]
            print(
                f"{name:>10} k={rotate_every:<2} {scheme:<7} adam {row['adam_ms']:.3f} ms  "
                f"deo {row['deo_ms']:.3f} ms  evals/step {row['evals_per_step']:.2f}  "
                f"eval ratio {predicted:.2f}  wall ratio {wall_ratio:.3f}  "
                f"off by {100 * row['off_by']:+.1f} %",
                flush=True,
            )
    return rows


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tf32 = torch.backends.cuda.matmul.allow_tf32
        return f"{name}, CUDA {torch.version.cuda}, torch {torch.__version__}, TF32 matmul {tf32}"
    threads = torch.get_num_threads()
    return f"CPU {platform.processor() or platform.machine()}, torch {torch.__version__}, {threads} thread(s)"


def markdown(rows: list[dict], device: torch.device, repeats: int, steps: int, seconds: float) -> str:
    lines = [
        "# DEO on a GPU: wall time against the gradient-evaluation ratio",
        "",
        f"Command: `python3 {' '.join(['benchmarks/cuda_cost.py', *sys.argv[1:]])}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Device: {device_line(device)}  ",
        f"Host: {platform.node() or '?'}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}  ",
        f"Batch {BATCH}, float32, rotations={ROTATIONS}; {WARMUP} warm-up steps, then {steps} timed "
        f"steps per run; median of {repeats} repeats (Adam and DEO alternate); total {seconds:.0f} s.",
        "",
        "Eval ratio = 1 + (rotations + 1)·c/rotate_every (c = 1 forward, 2 central), the gradient "
        "evaluations of DEO per Adam step; evals/step is counted (closure calls). Wall ratio = DEO "
        "time / Adam time per step (`torch.optim.Adam(foreach=True)`); off by = wall ratio / eval ratio − 1.",
        "",
        "| model | params | rotate_every | scheme | Adam ms/step | DEO ms/step | evals/step | eval ratio "
        "| wall ratio | off by |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['rotate_every']} | {r['scheme']} "
            f"| {r['adam_ms']:.3f} | {r['deo_ms']:.3f} | {r['evals_per_step']:.2f} "
            f"| {r['eval_ratio']:.2f} | {r['wall_ratio']:.3f} | {100 * r['off_by']:+.1f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="small MLPs, 2 repeats, 10 steps: a smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5, quick 2)")
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps per run, a multiple of 10 (default 100)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on the CPU)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cuda.md"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here (use --device cpu --quick for a smoke test)")
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    repeats = args.repeats or (2 if args.quick else 5)
    steps = args.steps or (10 if args.quick else 100)
    if steps % 10:
        parser.error("--steps must be a multiple of 10 (whole rotation intervals)")
    models = QUICK_MODELS if args.quick else MODELS
    print(f"device: {device_line(device)}", flush=True)
    start = time.perf_counter()
    rows = cost_rows(device, models, repeats, steps)
    text = markdown(rows, device, repeats, steps, time.perf_counter() - start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
