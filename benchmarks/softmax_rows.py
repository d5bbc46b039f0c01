"""torch's CPU softmax over short rows, and what it costs tiny_transformer's attention.

Two tables, one thread:

1. ``torch.softmax(x, -1)`` per element for rows of length T (x of shape (256·T, T)), float32 and
   float64, next to ``torch.exp`` of the same tensor (a lower bound for any softmax);
2. tiny_transformer's loss (the Networks page's default network: 15 tokens, so the attention's
   softmax rows have T = 15), forward without gradient and forward + backward, with the model's
   ``torch.softmax`` and with the softmax written out (max, subtract, exp, sum, divide: the
   attention module's forward swapped for a copy in this process only), and the largest
   difference between the two losses.

The model is not changed: written out, the softmax rounds differently, and the committed
tiny_transformer results (the controls' escape counts, ``benchmarks/results/controls.md``) were
measured with torch's. This script measures what a change would buy before anyone pays for the
reruns.

Usage: ``python benchmarks/softmax_rows.py [--repeats 31]``; prints the tables and writes
``benchmarks/results/softmax_rows.md``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

import landscapes.shakespeare as shakespeare  # noqa: E402
from landscapes.networks import make_network  # noqa: E402

LENGTHS = (4, 8, 15, 16, 17, 31, 32, 64, 128)


def median_s(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def written_out_forward(self, x: Tensor) -> Tensor:
    """``_SelfAttention.forward`` with ``softmax(dim=-1)`` written out (every row keeps its diagonal,
    so each row's max is finite)."""
    B, T, C = x.shape
    q, k, v = self.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
    att = att.masked_fill(~self.causal[:T, :T], float("-inf"))
    e = (att - att.amax(dim=-1, keepdim=True)).exp()
    att = e / e.sum(dim=-1, keepdim=True)
    y = self.attn_dropout(att) @ v
    return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


def row_table(repeats: int) -> list[str]:
    lines = [
        "| row length T | float32 softmax ns/element | float64 softmax ns/element | float32 exp ns/element |",
        "|---:|---:|---:|---:|",
    ]
    gen = torch.Generator().manual_seed(0)
    for length in LENGTHS:
        x = torch.randn(256 * length, length, generator=gen)
        x64 = x.double()
        per = 1e9 / x.numel()
        f32 = median_s(lambda x=x: torch.softmax(x, -1), repeats) * per
        f64 = median_s(lambda x64=x64: torch.softmax(x64, -1), repeats) * per
        exp = median_s(lambda x=x: torch.exp(x), repeats) * per
        lines.append(f"| {length} | {f32:.2f} | {f64:.2f} | {exp:.2f} |")
    return lines


def model_table(repeats: int) -> list[str]:
    problem = make_network("tiny_transformer")
    batch = problem.batch(0)
    model = problem.model
    with torch.no_grad():  # the app's initial point (params0, seed 0), not the module's own init
        for name, value in problem.params0(seed=0).items():
            model.get_parameter(name).copy_(value)
    params = list(model.parameters())
    original = shakespeare._SelfAttention.forward

    def forward() -> Tensor:
        with torch.no_grad():
            return problem.module_loss(model, batch)

    def forward_backward() -> None:
        for p in params:
            p.grad = None
        problem.module_loss(model, batch).backward()

    rows, losses, grads = {}, {}, {}
    for name, impl in (("torch.softmax (the model)", original), ("written out", written_out_forward)):
        shakespeare._SelfAttention.forward = impl
        try:
            losses[name] = forward().item()
            forward_backward()
            grads[name] = torch.cat([p.grad.reshape(-1) for p in params])
            rows[name] = (median_s(forward, repeats), median_s(forward_backward, repeats))
        finally:
            shakespeare._SelfAttention.forward = original
    (f0, b0), (f1, b1) = rows.values()
    a, b = losses.values()
    g0, g1 = grads.values()
    inputs = batch[0]
    return [
        f"tiny_transformer at its initial point (`params0(seed=0)`), the full batch: {inputs.shape[0]} "
        f"sequences of {inputs.shape[1]} tokens, {problem.n_params:,} parameters, float32. Between the "
        f"two: loss difference {abs(a - b):.1e} (loss {a:.6f}), gradient max |difference| "
        f"{(g0 - g1).abs().max().item():.1e} of max |g| {g0.abs().max().item():.1e}, "
        f"{int((g0 != g1).sum())} of {g0.numel():,} entries not bit-identical.",
        "",
        "| attention softmax | forward, no gradient, ms | forward + backward, ms |",
        "|---|---:|---:|",
        *(f"| {name} | {fw * 1e3:.2f} | {fb * 1e3:.2f} |" for name, (fw, fb) in rows.items()),
        f"| ratio | **{f0 / f1:.2f}×** | {b0 / b1:.2f}× |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()
    body = [
        "# torch's CPU softmax over short rows (tiny_transformer's attention)",
        "",
        f"Command: `python benchmarks/softmax_rows.py --repeats {args.repeats}`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"torch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}), 1 thread; "
        f"load average before {', '.join(f'{v:.2f}' for v in load)}. Medians of {args.repeats} "
        "process-CPU timings.",
        "",
        "## 1. torch.softmax(x, -1) per element, rows of length T",
        "",
        *row_table(args.repeats),
        "",
        "## 2. tiny_transformer's loss with the attention softmax as the model has it and written out",
        "",
        *model_table(args.repeats),
        "",
        "The model keeps torch.softmax: written out, the attention rounds differently, and the "
        "committed tiny_transformer results (`controls.md`) would have to be rerun with it.",
    ]
    text = "\n".join(body) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "softmax_rows.md"
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
