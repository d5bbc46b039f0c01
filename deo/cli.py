"""Command line: ``python -m deo race ...`` and ``python -m deo escape-map ...``.

Examples::

    python -m deo race --surface saddle --start 1,1e-3 --optimizers gd,adam,deo_paper --steps 500 --out DIR
    python -m deo race --formula "x**2-y**2" --optimizers gd,deo_escape --steps 400
    python -m deo race --network two_moons --init-scale 1e-3 --optimizers gd,deo_paper --steps 300
    python -m deo escape-map --surface saddle_plateau --grid 50 --optimizers gd,adam,deo_escape \\
        --steps 500 --out DIR

``race`` writes ``traces.json``, ``traces.csv`` and ``config.json`` into ``--out``; ``escape-map``
writes ``escape_map.json`` (window, axes, starts, criterion, per-optimizer results),
``escape_map.csv`` and ``config.json``. Both print a short summary table, and a progress line on
stderr while they run when stderr is a terminal (``--quiet``: none).

``escape-map`` is :func:`deo.escapes.surface_escape_map`, the map the app's Escape map page draws:
``--window XMIN,XMAX,YMIN,YMAX`` (default the surface's bounds) with the page's saddle ± half-width
gives the page's map (``tests/test_escape_map_one.py``).

This is an application-level entry point: it is the one place in ``deo`` that uses ``landscapes``
(surfaces, formulas, networks), imported lazily inside the command functions so that the library
itself (``import deo``) never depends on it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from deo.budget import MAX_STARTS, MAX_STEPS
from deo.escapes import escape_map_to_csv, surface_escape_map
from deo.presets import PRESETS
from deo.problems import network_problem, surface_problem
from deo.race import OptimizerSpec, race
from deo.sweeps import add_parser as add_sweep_parser  # sweep: problems × presets × grids × seeds
from deo.trace import Trace, fate, traces_to_csv, traces_to_json


def _floats(text: str, count: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{what} must be {count} comma-separated numbers, got {text!r}"
        ) from error
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"{what} must be {count} comma-separated finite numbers, got {text!r}"
        )
    return values


def _specs(optimizers: str, overrides: Sequence[str]) -> list[OptimizerSpec]:
    """``gd,adam`` and ``--hp adam.lr=0.1`` (values parsed as JSON, else kept as text) → specs."""
    keys = [k.strip() for k in optimizers.split(",") if k.strip()]
    unknown = [k for k in keys if k not in PRESETS]
    if unknown or not keys:
        raise SystemExit(
            f"error: unknown optimizer(s) {unknown or optimizers!r}; allowed: {', '.join(PRESETS)}"
        )
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:  # the same preset with the same settings: the same run twice
        raise SystemExit(f"error: --optimizers lists {', '.join(twice)} more than once")
    hyper: dict[str, dict] = {k: {} for k in keys}
    for item in overrides:
        name, sep, value = item.partition("=")
        key, dot, param = name.partition(".")
        if not sep or not dot or key not in hyper:
            raise SystemExit(
                f"error: --hp expects OPTIMIZER.PARAM=VALUE with OPTIMIZER in {keys}, got {item!r}"
            )
        try:
            hyper[key][param] = json.loads(value)
        except json.JSONDecodeError:
            hyper[key][param] = value
        _check_override(key, param, hyper[key][param], item)
    return [OptimizerSpec(k, hyper[k]) for k in keys]


def _check_override(key: str, param: str, value, item: str) -> None:
    """An ``--hp`` value of the kind the preset's hyperparameter takes (``deo.presets.Hyperparameter``:
    a number, one of its words, a list of as many numbers as it has parts, or null where null means
    something); its bounds are the optimizer's to check (the app's controls keep to narrower ones).
    ``gd.lr=abc`` said "'<' not supported between 'str' and 'float'", ``gd.lr=true`` ran lr = 1."""
    preset = PRESETS[key]
    if param not in preset.defaults:
        hint = " (the seed is --seed)" if param == "seed" else ""
        raise SystemExit(
            f"error: --hp {item!r}: {key} has no hyperparameter {param!r}{hint}; "
            f"allowed: {', '.join(sorted(preset.defaults))}"
        )
    meta = preset.hyperparameters[param]

    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    if value is None:
        ok, kind = bool(meta.none), f"null ({meta.none})" if meta.none else ""
    elif meta.choices:
        ok = value in meta.choices
    elif meta.parts:
        ok = isinstance(value, list) and len(value) == len(meta.parts) and all(number(v) for v in value)
    else:
        ok = number(value) and (not meta.integer or value == int(value))
    if not ok:
        if meta.choices:
            kind = "one of " + ", ".join(meta.choices)
        elif meta.parts:
            kind = f"a list of {len(meta.parts)} numbers [{', '.join(meta.parts)}]"
        else:
            kind = "a whole number" if meta.integer else "a finite number"
        if meta.none:
            kind += f", or null ({meta.none})"
        raise SystemExit(f"error: --hp {item!r}: {meta.label} takes {kind}")


def _surface(args):
    """The surface named by --surface or typed with --formula (lazy landscapes import)."""
    import landscapes

    if args.formula is not None:
        try:
            return landscapes.parse_formula(args.formula)
        except landscapes.FormulaError as error:
            raise SystemExit(f"error: --formula: {error}") from error
    if args.surface not in landscapes.SURFACES:
        raise SystemExit(
            f"error: unknown surface {args.surface!r}; allowed: {', '.join(landscapes.SURFACES)}"
        )
    return landscapes.SURFACES[args.surface]


def _write(out: Path | None, files: dict[str, str]) -> None:
    if out is None:
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as error:
        reason = error.strerror or error
        raise SystemExit(f"error: cannot write files to {str(out)[:200]!r}: {reason}") from None
    print(f"wrote {', '.join(files)} to {out}")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}g}"


class ProgressLine:
    """A one-line progress display on a terminal: ``progress(fraction, message)`` rewrites
    ``\r[ 42%] GD: step 210/500`` on ``stream`` at most every ``interval`` seconds (always at 0 and
    at 1); :meth:`close` ends the line. The race's and the escape map's ``progress`` callback."""

    def __init__(self, stream=None, interval: float = 0.2):
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.last = -math.inf
        self.width = 0
        self.shown = False

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last < self.interval and 0.0 < fraction < 1.0:
            return
        self.last = now
        text = f"[{100 * min(max(fraction, 0.0), 1.0):3.0f}%] {message}"
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = max(self.width, len(text))
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def _progress_line(args) -> ProgressLine | None:
    """A :class:`ProgressLine` on stderr when it is a terminal and ``--quiet`` is not given."""
    if args.quiet or not sys.stderr.isatty():
        return None
    return ProgressLine(sys.stderr)


def race_summary(traces: list[Trace], has_escape: bool = True) -> str:
    """One line per optimizer: status (``deo.trace.FATES``; ``has_escape``: the problem has an escape
    criterion), steps and gradient evaluations to escape, final loss."""
    rows = []
    for t in traces:
        evals = None if t.escape_step is None else int(t.grad_evals[t.steps == t.escape_step][0])
        rows.append(
            [
                t.label,
                fate(t.status, has_escape),
                _fmt(t.escape_step),
                _fmt(evals),
                str(int(t.steps[-1])) if len(t) else "0",
                _fmt(float(t.loss[-1])) if len(t) else "—",
                f"{t.wall_time:.2f}",
            ]
        )
    header = ["optimizer", "status", "escape step", "escape grad evals", "last step", "final loss", "time s"]
    return _table(header, rows)


BASINS_SHOWN = 6


def _basin_counts(counts: np.ndarray) -> str:
    """Starts per basin (minimum) in the surface's order; beyond ``BASINS_SHOWN`` basins, the number
    of basins reached and the largest counts (rastrigin's 100+ basins made a line of hundreds)."""
    if not counts.size:
        return "—"
    if counts.size <= BASINS_SHOWN:
        return " ".join(str(int(c)) for c in counts)
    reached = counts[counts > 0]
    top = " ".join(str(int(c)) for c in sorted(reached, reverse=True)[:3])
    return f"{reached.size} basins, most {top}"


def escape_summary(results: dict, n_starts: int) -> str:
    """One line per optimizer: escaped share, median steps / evaluations to escape, basins, diverged."""
    rows = []
    for name, r in results.items():
        escaped = ~np.isnan(r.steps_to_escape)
        basins = np.bincount(r.basin[r.basin >= 0]) if (r.basin >= 0).any() else np.zeros(0, dtype=int)
        rows.append(
            [
                name,
                f"{escaped.mean():.1%}",
                _fmt(float(np.median(r.steps_to_escape[escaped]))) if escaped.any() else "—",
                _fmt(float(np.median(r.grad_evals_to_escape[escaped]))) if escaped.any() else "—",
                _basin_counts(basins),
                str(int(r.diverged.sum())),
                f"{r.wall_time:.2f}",
            ]
        )
    header = ["optimizer", "escaped", "median steps", "median grad evals", "per basin", "diverged", "time s"]
    return f"{n_starts} starts\n" + _table(header, rows)


def run_race(args) -> int:
    """``race``: several optimizers from one start on a surface, formula or network."""
    if args.network is not None:
        import landscapes

        if args.network not in landscapes.NETWORKS:
            raise SystemExit(
                f"error: unknown network {args.network!r}; allowed: {', '.join(landscapes.NETWORKS)}"
            )
        net = landscapes.make_network(args.network)
        problem = network_problem(net, init_scale=args.init_scale, seed=args.seed)
        where = {"network": args.network, "init_scale": args.init_scale}
    else:
        surface = _surface(args)
        start = args.start if args.start is not None else surface.starts[0]
        problem = surface_problem(surface, start, offset=args.offset)
        where = {
            "surface": surface.key,
            "formula": surface.formula,
            "start": list(start),
            "offset": args.offset,
        }
    specs = _specs(args.optimizers, args.hp)
    progress = _progress_line(args)
    try:
        traces = race(
            problem,
            specs,
            args.steps,
            seed=args.seed,
            clip=args.clip,
            record_every=args.record_every,
            progress=progress,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        if progress is not None:
            progress.close()
    print(race_summary(traces, problem.escape is not None))
    config = {
        "command": "race",
        **where,
        "optimizers": [vars(s) for s in specs],
        "steps": args.steps,
        "seed": args.seed,
        "clip": args.clip,
        "record_every": args.record_every,
    }
    _write(
        args.out,
        {
            "traces.json": traces_to_json(traces),
            "traces.csv": traces_to_csv(traces),
            "config.json": json.dumps(config, indent=2),
        },
    )
    return 0


def run_escape_map(args) -> int:
    """``escape-map``: every optimizer from a grid of starts over the window (default: the
    surface's); :func:`deo.escapes.surface_escape_map`, the same map as the app's Escape map page."""
    surface = _surface(args)
    specs = _specs(args.optimizers, args.hp)
    window = None
    if args.window is not None:
        x0, x1, y0, y1 = args.window
        window = ((x0, x1), (y0, y1))
    progress = _progress_line(args)
    try:
        result = surface_escape_map(
            surface,
            args.grid,
            specs,
            args.steps,
            window=window,
            seed=args.seed,
            clip=args.clip,
            bound=args.bound,
            progress=progress,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    finally:
        if progress is not None:
            progress.close()
    results, escape = result.results, result.criterion
    print(escape_summary(results, len(result.starts)))
    criterion = {"center": escape.center.tolist(), "radius": escape.radius, "loss_below": escape.loss_below}
    payload = {
        "surface": surface.key,
        "formula": surface.formula,
        "grid": args.grid,
        "window": [list(w) for w in result.window],
        "xs": result.xs.tolist(),
        "ys": result.ys.tolist(),
        "starts": result.starts.tolist(),
        "escape": criterion,
        "minima": [list(m) for m in result.minima],
        "bound": result.bound,
        "results": {name: r.to_dict() for name, r in results.items()},
    }
    config = {
        "command": "escape-map",
        "surface": surface.key,
        "formula": surface.formula,
        "grid": args.grid,
        "window": [list(w) for w in result.window],
        "optimizers": [vars(s) for s in specs],
        "steps": args.steps,
        "seed": args.seed,
        "clip": args.clip,
        "bound": result.bound,
    }
    _write(
        args.out,
        {
            "escape_map.json": json.dumps(payload),
            "escape_map.csv": escape_map_to_csv(result.starts, results),
            "config.json": json.dumps(config, indent=2),
        },
    )
    return 0


MAX_GRID = math.isqrt(MAX_STARTS)  # --grid n: n² starts, at most deo.budget.MAX_STARTS
MAX_THREADS = 1024
MAX_SEED = 2**63 - 1  # torch.manual_seed's range
MAX_ARG_CHARS = 1000


def _integer(lo: int, hi: int, limit: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (else a one-line usage error naming the range)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip()) if len(text) <= MAX_ARG_CHARS else None
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            where = f" ({limit})" if limit else ""
            raise argparse.ArgumentTypeError(
                f"must be an integer from {lo:,} to {hi:,}{where}, got {text[:40]!r}"
            )
        return value

    parse.__name__ = "integer"
    return parse


def _real(minimum: float | None = None, strict: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number (> or >= ``minimum`` when given)."""

    def parse(text: str) -> float:
        try:
            value = float(text) if len(text) <= MAX_ARG_CHARS else math.nan
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (minimum is None or (value > minimum if strict else value >= minimum))
        if not ok:
            bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text[:40]!r}")
        return value

    parse.__name__ = "number"
    return parse


def _out_dir(text: str) -> Path:
    """An argparse type: a directory the files can be written to, tried before the run (a file is
    written and removed there); folders made for the try are removed again — they are made when the
    files are written (a run that failed left an empty folder behind)."""
    path = Path(text)
    made = []  # the folders the try creates, deepest first
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        made.append(existing)
        existing = existing.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot write files to {text[:200]!r}: {error.strerror or error}"
        ) from None
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break
    return path


_positive_int = _integer(1, MAX_STEPS, "deo.budget.MAX_STEPS")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2): the message and a pointer to --help."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    prog = "deo-lab" if Path(sys.argv[0]).name == "deo-lab" else "python -m deo"
    parser = _Parser(prog=prog, description="DEO Lab: race optimizers at saddles.")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, default_optimizers: str) -> None:
        p.add_argument("--optimizers", default=default_optimizers, help="comma-separated preset keys")
        p.add_argument(
            "--hp",
            action="append",
            default=[],
            metavar="OPT.PARAM=VALUE",
            help="override a preset hyperparameter, e.g. adam.lr=0.1 (repeatable)",
        )
        p.add_argument("--steps", type=_positive_int, default=500, help=f"1 to {MAX_STEPS:,}")
        p.add_argument("--seed", type=_integer(0, MAX_SEED), default=0)
        p.add_argument("--clip", type=_real(0.0), default=None, help="max gradient norm of the update (off)")
        p.add_argument("--out", type=_out_dir, default=None, help="directory for the JSON / CSV files")
        p.add_argument(
            "--threads",
            type=_integer(1, MAX_THREADS),
            default=None,
            help="torch intra-op threads (1 is often fastest for escape maps on a busy machine)",
        )
        p.add_argument(
            "--quiet", action="store_true", help="no progress line on stderr (off anyway when not a terminal)"
        )

    race_parser = commands.add_parser("race", help="several optimizers from one start")
    where = race_parser.add_mutually_exclusive_group()
    where.add_argument("--surface", default="saddle", help="a key of landscapes.SURFACES")
    where.add_argument("--formula", default=None, help='f(x, y), e.g. "x**2 - y**2"')
    where.add_argument("--network", default=None, help="a key of landscapes.NETWORKS")
    race_parser.add_argument("--start", type=lambda s: _floats(s, 2, "--start"), default=None, help="x,y")
    race_parser.add_argument(
        "--offset",
        type=_real(),
        default=None,
        help="start's distance from the saddle along its unstable direction",
    )
    race_parser.add_argument("--init-scale", type=_real(0.0), default=None, help="network init scale")
    race_parser.add_argument("--record-every", type=_positive_int, default=1)
    common(race_parser, "gd,adam,deo_paper,deo_escape")
    race_parser.set_defaults(run=run_race)

    map_parser = commands.add_parser("escape-map", help="every optimizer from a grid of starts")
    where = map_parser.add_mutually_exclusive_group()
    where.add_argument("--surface", default="saddle_plateau", help="a key of landscapes.SURFACES")
    where.add_argument("--formula", default=None, help='f(x, y), e.g. "x**2 - y**2"')
    map_parser.add_argument(
        "--grid",
        type=_integer(1, MAX_GRID, f"deo.budget.MAX_STARTS = {MAX_STARTS:,} starts"),
        default=50,
        help=f"n: an n×n grid of starts, n ≤ {MAX_GRID}",
    )
    map_parser.add_argument(
        "--window",
        type=lambda s: _floats(s, 4, "--window"),
        default=None,
        metavar="XMIN,XMAX,YMIN,YMAX",
        help="the grid's window (default: the surface's bounds)",
    )
    map_parser.add_argument("--bound", type=_real(0.0), default=None, help="|θ|∞ that counts as diverged")
    common(map_parser, "gd,adam,deo_escape")
    map_parser.set_defaults(run=run_escape_map)

    add_sweep_parser(commands)
    return parser


_NEGATIVE_VALUE = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings of ``parser`` and its subcommands that take one value."""
    options: set[str] = set()
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options |= _value_options(sub)
        elif action.option_strings and action.nargs is None:
            options.update(action.option_strings)
    return options


def attach_negative_values(argv: Sequence[str], options: set[str]) -> list[str]:
    """``--start -1,0.5`` → ``--start=-1,0.5`` for every option in ``options``: argparse reads a value
    that starts with ``-`` as an option unless it is a plain negative number (``-1``, ``-.5``), so
    ``--start -1,0.5``, ``--window -1,1,-1,1`` and ``--offset -1e-3`` failed with "expected one
    argument"."""
    out: list[str] = []
    argv = list(argv)
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in options and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
        else:
            out.append(token)
            i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m deo`` and of the ``deo-lab`` script; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(attach_negative_values(argv, _value_options(parser)))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return args.run(args)
    except (ValueError, TypeError, OverflowError, OSError) as error:  # budgets, formulas, files
        text = " ".join(str(error).split())[:500] or type(error).__name__
        if isinstance(error, TypeError):
            text = f"a value has the wrong type (check --hp values): {text}"
        raise SystemExit(f"error: {text}") from None


if __name__ == "__main__":
    sys.exit(main())
