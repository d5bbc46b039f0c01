"""Where does a DEO step's time go? On the ~1M MLP of ``benchmarks/engine.py``, one thread:

- ``--passes`` (load-independent): the passes over the d parameters that DEO itself makes per
  step, outside the closure (forward, backward) and the base optimizer's step, counted with a
  ``TorchDispatchMode`` (every op weighted by the largest tensor or tensor list it touches / d;
  views not counted);
- ``--small``: a step on one 2-vector (the race's 2-D surfaces, x² − y² + y⁴/4), per preset
  (``deo_paper``, ``deo_escape``, GD and Adam for scale): torch ops per step that DEO itself
  dispatches (load-independent) and µs per step (median of repeats; wall-clock, so loaded);
- ``--list-dot``: g·N of the per-parameter path (``deo.optim._list_dot``) on the small MLP's six
  blocks scaled up, one dot of the concatenated blocks against one dot per block, µs per call
  (median of repeats; where the two cross sets ``deo.optim.LIST_DOT_CAT``);
- ``--step-parts``: the parts of a step without rotation event, each timed alone (µs, median of
  repeats, wall-clock) on the small MLP (batch 64) and the ~1M MLP (batch 32): the closure
  (forward and backward), torch Adam's ``foreach`` update, DEO's g·N over the gradient blocks and
  its g_mod write over them, and a whole DEO step (never an event) against a whole Adam step —
  what the gradient count does not charge, next to the step it is added to;
- otherwise torch.profiler over DEO (base Adam) or torch Adam steps: the top operators by self CPU
  time (wall-clock, so disturbed by other jobs on a shared machine).

Run: ``python benchmarks/engine_profile.py [--passes | --small | --list-dot | --step-parts] [--batch 32]
[--rotate-every 1] [--scheme forward] [--steps 20] [--optimizer deo|adam]``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.engine import mlp  # noqa: E402
from deo.optim import DEO  # noqa: E402

NOT_PASSES = (
    "view", "detach", "split", "reshape", "alias", "as_strided", "unsqueeze", "expand", "slice", "select",
)  # views: no data moved


class PassCounter(TorchDispatchMode):
    """Counts ops touching ≥ ``minimum`` elements, weighted by (largest tensor or list touched)/d."""

    def __init__(self, d: int, minimum: int = 100_000) -> None:
        super().__init__()
        self.d, self.minimum, self.on = d, minimum, True
        self.passes: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.__name__
        if self.on and name != "t.default" and not any(part in name for part in NOT_PASSES):
            sizes = [0]  # a tensor list (a _foreach op, cat's inputs) counts with its total size
            for value in list(args) + list(kwargs.values()):
                items = value if isinstance(value, (list, tuple)) else [value]
                sizes.append(sum(item.numel() for item in items if isinstance(item, torch.Tensor)))
            if max(sizes) >= self.minimum:
                self.passes[name] += max(sizes) / self.d
        return out


class OpCounter(TorchDispatchMode):
    """Counts every torch op dispatched while ``on``."""

    def __init__(self) -> None:
        super().__init__()
        self.on, self.ops = True, collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.on:
            self.ops[func.__name__] += 1
        return func(*args, **(kwargs or {}))


def small_steps(key: str, steps: int, repeats: int) -> tuple[float, float]:
    """(µs per step, DEO's own torch ops per step) of preset ``key`` on one 2-vector (float64)."""
    from deo.presets import make_optimizer

    def setup():
        xy = torch.tensor([0.5, 1e-3], dtype=torch.float64, requires_grad=True)
        opt = make_optimizer(key, [xy], seed=0)

        def closure():
            on, counter.on = counter.on, False
            opt.zero_grad()
            loss = xy[0] ** 2 - xy[1] ** 2 + xy[1] ** 4 / 4
            loss.backward()
            counter.on = on
            return loss

        for _ in range(20):
            opt.step(closure)
        return opt, closure

    counter = OpCounter()
    counter.on = False
    times = []
    for _ in range(repeats):
        opt, closure = setup()
        start = time.perf_counter()
        for _ in range(steps):
            opt.step(closure)
        times.append((time.perf_counter() - start) / steps * 1e6)
    opt, closure = setup()
    if hasattr(opt, "_base_step"):  # the base optimizer's own ops are not DEO's
        base_step = opt._base_step

        def uncounted():
            on, counter.on = counter.on, False
            base_step()
            counter.on = on

        opt._base_step = uncounted
    with counter:
        counter.on = True
        for _ in range(100):
            opt.step(closure)
        counter.on = False
    return statistics.median(times), sum(counter.ops.values()) / 100


def step_parts(widths: list[int], batch: int, repeats: int = 9, calls: int = 30) -> dict[str, float]:
    """µs per call of the parts of a DEO step without rotation event (see the module docstring), on
    ``mlp(widths)`` with a batch of ``batch``: every repeat times each part for ``calls`` calls, the
    parts one after the other (so a change of load hits them all), and each part's median over the
    repeats is returned."""
    from deo import optim

    sides = {}
    for name in ("adam", "deo"):
        model = mlp(widths, seed=0)
        gen = torch.Generator().manual_seed(1)
        data = torch.randn(batch, widths[0], generator=gen)
        target = torch.randn(batch, widths[-1], generator=gen)
        params = list(model.parameters())
        if name == "adam":
            opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
        else:  # a rotation event only at step 0 (below): every timed step is a plain one
            opt = DEO(params, base="adam", lr=1e-3, rotate_every=10**9, rotations=1, seed=0, foreach=True)

        def closure(opt=opt, model=model, data=data, target=target):
            opt.zero_grad()
            loss = ((model(data) - target) ** 2).mean()
            loss.backward()
            return loss

        opt.step(closure)
        sides[name] = (opt, closure, params)
    adam, adam_closure, _ = sides["adam"]
    deo, deo_closure, deo_params = sides["deo"]
    deo_closure()
    grads = [p.grad for p in deo_params]
    n = deo.dimer["direction"]
    flat_views, views = deo._views(n, deo_params, 0), deo._views(n, deo_params, 1)
    pairs = (grads[::-1], views[::-1])
    parts = {
        "adam step": lambda: adam.step(adam_closure),
        "deo step": lambda: deo.step(deo_closure),
        "closure (forward, backward)": adam_closure,
        "Adam foreach update": adam.step,
        "DEO g·N": lambda: optim._list_dot(grads, flat_views, n),
        "DEO g_mod write": lambda: torch._foreach_add_(*pairs, alpha=-1e-9),
    }
    runs: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(repeats):
        for name, fn in parts.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            runs[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(values) for name, values in runs.items()}


def write_step_parts() -> None:
    """``--step-parts``: print the table and write it to ``benchmarks/results/engine_profile.md``."""
    load = os.getloadavg()
    models = (("small MLP", [32, 64, 48, 1], 64), ("~1M MLP", [512, 1024, 512, 1], 32))
    measured = [(label, widths, batch, step_parts(widths, batch)) for label, widths, batch in models]
    names = list(measured[0][3])
    lines = [
        "# Where a DEO step's time goes: the parts of a step without rotation event",
        "",
        "Command: `python benchmarks/engine_profile.py --step-parts`  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"torch {torch.__version__}, 1 thread; load average at the start "
        f"{', '.join(f'{x:.1f}' for x in load)}, at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
        "µs per call, medians of 9 repeats of 30 calls, the parts timed one after the other in every "
        "repeat. A DEO step here never has a rotation event (`rotate_every` 10⁹ after one at the "
        "start): by the gradient count it should cost what an Adam step costs. g·N and the g_mod write "
        "are timed alone, on the gradient blocks a closure left (cache warm); in a step they run after "
        "the backward and before Adam's update.",
        "",
        "| part | " + " | ".join(f"{label} (d = {sum(p.numel() for p in mlp(w, 0).parameters()):,}, "
                                 f"batch {b})" for label, w, b, _ in measured) + " |",
        "|---|" + "---:|" * len(measured),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{m[3][name]:.1f}" for m in measured) + " |")
    extra = [m[3]["deo step"] - m[3]["adam step"] for m in measured]
    lines.append("| **DEO step − Adam step** | " + " | ".join(
        f"**{e:.1f}** ({100 * e / m[3]['adam step']:+.1f} %)" for e, m in zip(extra, measured)) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "engine_profile.md"
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)


def list_dot_times(repeats: int = 5, calls: int = 3000) -> list[tuple[int, float, float]]:
    """(d, µs concatenated, µs per block) of ``_list_dot`` for the blocks of MLP 32→64k→48→1."""
    from deo import optim

    rows = []
    for k in (1, 2, 4, 8, 16, 32):
        shapes = [(64 * k, 32), (64 * k,), (48, 64 * k), (48,), (1, 48), (1,)]
        g = [torch.randn(shape) for shape in shapes]
        d = sum(x.numel() for x in g)
        n = list(torch.split(torch.randn(d), [x.numel() for x in g]))
        micros = []
        threshold = optim.LIST_DOT_CAT
        try:
            for forced in (d + 1, 0):  # concatenated, then per block
                optim.LIST_DOT_CAT = forced
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    for _ in range(calls):
                        optim._list_dot(g, n)
                    times.append((time.perf_counter() - start) / calls * 1e6)
                micros.append(statistics.median(times))
        finally:
            optim.LIST_DOT_CAT = threshold
        rows.append((d, *micros))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rotate-every", type=int, default=1)
    parser.add_argument("--scheme", default="forward")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--optimizer", default="deo", choices=("deo", "adam"))
    parser.add_argument("--passes", action="store_true", help="count DEO's passes over d instead of timing")
    parser.add_argument("--small", action="store_true", help="a step on one 2-vector, per preset")
    parser.add_argument("--list-dot", action="store_true", help="g·N over blocks: concatenated vs per block")
    parser.add_argument("--step-parts", action="store_true", help="the parts of a step without event, timed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.step_parts:
        write_step_parts()
        return
    if args.list_dot:
        print(f"load average at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("d          concatenated µs  per block µs")
        for d, joined, apart in list_dot_times():
            print(f"{d:<10d} {joined:15.1f}  {apart:12.1f}")
        return
    if args.small:
        print(f"load average at the start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("preset       µs/step  torch ops/step (the optimizer's own, not the closure's or its base's)")
        for key in ("gd", "adam", "deo_paper", "deo_escape"):
            micros, ops = small_steps(key, steps=500, repeats=5)
            print(f"{key:12s} {micros:7.0f}  {ops:6.1f}")
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return
    widths = [512, 1024, 512, 1]
    model = mlp(widths, seed=0)
    d = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(1)
    data = torch.randn(args.batch, widths[0], generator=gen)
    target = torch.randn(args.batch, widths[-1], generator=gen)
    if args.optimizer == "deo" or args.passes:
        opt = DEO(model.parameters(), base="adam", lr=1e-3, rotate_every=args.rotate_every, rotations=1,
                  scheme=args.scheme, seed=0, foreach=True)  # fmt: skip
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    counter = PassCounter(d)
    counter.on = False

    def closure():
        on, counter.on = counter.on, False
        opt.zero_grad()
        loss = ((model(data) - target) ** 2).mean()
        loss.backward()
        counter.on = on
        return loss

    for _ in range(3):
        opt.step(closure)
    if args.passes:
        base_step = opt._base_step  # DEO calls the base optimizer through it

        def uncounted_base_step():
            counter.on = False
            base_step()
            counter.on = True

        opt._base_step = uncounted_base_step
        with counter:
            counter.on = True
            for _ in range(args.steps):
                opt.step(closure)
        total = sum(counter.passes.values()) / args.steps
        print(f"rotate_every={args.rotate_every} {args.scheme}: {total:.1f} passes over d per step")
        for name, value in counter.passes.most_common():
            print(f"  {name:32s} {value / args.steps:6.2f}")
        return
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            opt.step(closure)
    table = prof.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40
    )
    print(table)


if __name__ == "__main__":
    main()
