"""Where does a DEO step's time go? torch.profiler over DEO (base Adam) and torch Adam steps on
the ~1M MLP of ``benchmarks/engine.py``, one thread; prints the top operators by self CPU time.

Run: ``python benchmarks/engine_profile.py [--batch 32] [--rotate-every 1] [--scheme forward]
[--steps 20]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.engine import mlp  # noqa: E402
from deo.optim import DEO  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rotate-every", type=int, default=1)
    parser.add_argument("--scheme", default="forward")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--optimizer", default="deo", choices=("deo", "adam"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths = [512, 1024, 512, 1]
    model = mlp(widths, seed=0)
    gen = torch.Generator().manual_seed(1)
    data = torch.randn(args.batch, widths[0], generator=gen)
    target = torch.randn(args.batch, widths[-1], generator=gen)
    if args.optimizer == "deo":
        opt = DEO(model.parameters(), base="adam", lr=1e-3, rotate_every=args.rotate_every, rotations=1,
                  scheme=args.scheme, seed=0, foreach=True)  # fmt: skip
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

    def closure():
        opt.zero_grad()
        loss = ((model(data) - target) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            opt.step(closure)
    print(
        prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40
        )
    )


if __name__ == "__main__":
    main()
