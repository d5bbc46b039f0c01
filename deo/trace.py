"""One optimizer's run, recorded step by step, and its JSON / CSV round trip.

A :class:`Trace` holds one row per recorded step ``t`` (row ``t`` is the state *before* update
``t``; the last row is the final state). Quantities that do not apply are NaN (a scalar per row)
or ``None`` (a whole vector field, e.g. ``direction`` for a preset without a dimer).

Notation as in ``DEO.md``: θ the parameters (flat, dimension d), g = ∇L(θ), N the unit dimer
direction, C = D·N the dimer curvature, torque = ‖F_R‖, λ_min / v_min the exact minimum eigenpair
of the Hessian.

Round trips are exact:

* JSON: floats are written with ``repr`` precision; NaN becomes ``null`` and ``±Inf`` become the
  strings ``"inf"`` / ``"-inf"`` (strict JSON has neither), and both come back as floats.
* CSV (long format, one row per (trace, step)): scalars and every vector with d ≤ 10 are columns
  (``position_0 .. position_{d-1}``, ...); NaN is written ``nan``; an *empty* cell means "not
  recorded" (a ``None`` field). Vectors with d > 10 are not written to CSV, so they load back as
  ``None``; use JSON for those.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy import ndarray

STATUSES = ("running", "converged", "escaped", "diverged")
# The words every reader sees (app tables, CLI summaries): one vocabulary for a run's fate.
#   escaped   — met the escape criterion and was still moving when the budget ended;
#   converged — reached a stationary point (‖g‖ below the tolerance; after escaping, where a saddle
#               is near the start) and stopped;
#   stuck     — used the whole budget without escaping (the trace's status "running");
#   out of steps — used the whole budget without converging on a problem with no escape criterion
#               (no saddle or plateau listed: Rosenbrock, a typed formula), where "no escape" means
#               nothing (the trace's status "running" too);
#   diverged  — the loss became non-finite or the iterate left the bound: the run stopped.
FATES = ("escaped", "converged", "stuck", "out of steps", "diverged")


def fate(status: str, has_escape: bool = True) -> str:
    """The word of :data:`FATES` for a trace's ``status``: "running" (the budget ended first) reads
    "stuck" where the problem has an escape criterion (``has_escape``), else "out of steps"; the
    others are their own word."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    if status == "running":
        return "stuck" if has_escape else "out of steps"
    return status

# array fields and the dtype every Trace stores them in
INT_ARRAYS = ("steps", "grad_evals", "diagnostic_evals")
SCALAR_ARRAYS = (
    "loss",
    "grad_norm",
    "modified_grad_norm",
    "removed_fraction",
    "curvature",
    "torque",
    "exact_lambda_min",
    "cos_to_vmin",
)
VECTOR_ARRAYS = ("position", "position_2d", "grad", "modified_grad", "direction", "exact_v_min")
META_FIELDS = (
    "key",
    "label",
    "hyperparams",
    "status",
    "stop_step",
    "escape_step",
    "dimer_length",
    "wall_time",
)
CSV_MAX_DIM = 10


@dataclass(eq=False)
class Trace:
    """One optimizer's run on one problem; arrays are numpy, one row per recorded step.

    Shapes: ``T1 = len(steps)`` rows; scalars ``(T1,)``; vectors ``(T1, d)`` (``position_2d``:
    ``(T1, 2)``). ``grad_evals[t]`` is the cumulative number of gradient evaluations the
    *algorithm* spent to reach row ``t`` (so ``grad_evals[0] == 0``); ``diagnostic_evals[t]`` the
    cumulative ground-truth evaluations (exact Hessians, recording evaluations) up to row ``t``.
    Arrays are converted to int64 / float64 on construction, so equal data gives equal traces.
    """

    key: str
    label: str
    hyperparams: dict
    status: str
    stop_step: int | None
    escape_step: int | None
    steps: ndarray
    loss: ndarray
    position: ndarray | None
    position_2d: ndarray | None
    grad: ndarray | None
    modified_grad: ndarray | None
    grad_norm: ndarray
    modified_grad_norm: ndarray
    removed_fraction: ndarray
    direction: ndarray | None
    dimer_length: float | None
    curvature: ndarray
    torque: ndarray
    exact_lambda_min: ndarray
    exact_v_min: ndarray | None
    cos_to_vmin: ndarray
    grad_evals: ndarray
    diagnostic_evals: ndarray
    wall_time: float

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        self.hyperparams = jsonable(self.hyperparams)
        n = len(np.asarray(self.steps))
        for name in INT_ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64).reshape(n))
        for name in SCALAR_ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).reshape(n))
        for name in VECTOR_ARRAYS:
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.ndim != 2 or value.shape[0] != n:
                    raise ValueError(f"{name} must have shape ({n}, d), got {value.shape}")
                setattr(self, name, value)
        for name in ("stop_step", "escape_step"):
            value = getattr(self, name)
            setattr(self, name, None if value is None else int(value))
        self.dimer_length = None if self.dimer_length is None else float(self.dimer_length)
        self.wall_time = float(self.wall_time)

    def __len__(self) -> int:
        return len(self.steps)

    def __eq__(self, other: object) -> bool:
        """Field-by-field equality; NaN equals NaN (a round trip must give an equal trace)."""
        if not isinstance(other, Trace):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or not np.array_equal(a, b, equal_nan=True):
                    return False
            elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
                continue
            elif a != b:
                return False
        return True

    @property
    def dim(self) -> int | None:
        """d, the number of parameters (None when no vector field was recorded)."""
        for name in ("position", "grad", "direction", "modified_grad", "exact_v_min"):
            value = getattr(self, name)
            if value is not None:
                return value.shape[1]
        return None

    def to_dict(self) -> dict:
        """JSON-able dict: arrays become nested lists, NaN → None, ±Inf → "inf"/"-inf"."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                out[f.name] = _encode(value.tolist())
            elif isinstance(value, float):  # a scalar: NaN as "nan", since None is "no dimer" here
                out[f.name] = "nan" if math.isnan(value) else _encode(value)
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Trace:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"trace dict is missing fields {sorted(missing)}")
        kwargs = {}
        for name in names:
            value = data[name]
            if name in INT_ARRAYS:
                value = np.asarray(value, dtype=np.int64)
            elif name in SCALAR_ARRAYS or (name in VECTOR_ARRAYS and value is not None):
                value = np.asarray(_decode(value), dtype=np.float64)
            elif name == "wall_time" or (name == "dimer_length" and value is not None):
                value = _decode(value)
            kwargs[name] = value
        return cls(**kwargs)

    def to_json(self, path: str | Path | None = None) -> str:
        """The trace as strict JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), allow_nan=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text: str) -> Trace:
        """Inverse of :meth:`to_json` (takes the text, not a path)."""
        return cls.from_dict(json.loads(text))


def traces_to_json(traces: list[Trace]) -> str:
    """A list of traces as one strict JSON array."""
    return json.dumps([t.to_dict() for t in traces], allow_nan=False)


def traces_from_json(text: str) -> list[Trace]:
    """Inverse of :func:`traces_to_json`."""
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of traces, got {type(data).__name__}")
    return [Trace.from_dict(d) for d in data]


def _csv_columns(traces: list[Trace]) -> list[str]:
    columns = ["trace", *META_FIELDS, "step", *SCALAR_ARRAYS, "grad_evals", "diagnostic_evals"]
    for name in VECTOR_ARRAYS:
        dims = [getattr(t, name).shape[1] for t in traces if getattr(t, name) is not None]
        width = max((d for d in dims if d <= CSV_MAX_DIM), default=0)
        columns += [f"{name}_{i}" for i in range(width)]
    return columns


def traces_to_csv(traces: list[Trace]) -> str:
    """Long format: one row per (trace, step).

    Columns: ``trace`` (index in the list), the metadata (``hyperparams`` as JSON, repeated on every
    row so that any row subset is self-describing), ``step``, the per-step scalars, and vectors of
    d ≤ 10 as ``name_i`` columns. NaN → ``nan``; a field that was not recorded → empty cell. A
    trace without rows (a run whose start was already non-finite or out of bounds) is one row of
    its metadata with an empty ``step``, so that it comes back (it used to vanish from the list).
    """
    columns = _csv_columns(traces)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for index, trace in enumerate(traces):
        meta = {
            "trace": index,
            "key": trace.key,
            "label": trace.label,
            "hyperparams": json.dumps(trace.hyperparams, allow_nan=False),
            "status": trace.status,
            "stop_step": _cell(trace.stop_step),
            "escape_step": _cell(trace.escape_step),
            "dimer_length": _cell(trace.dimer_length),
            "wall_time": repr(trace.wall_time),
        }
        if not len(trace):
            writer.writerow(meta)  # every per-step cell empty
        for t in range(len(trace)):
            row = dict(meta, step=int(trace.steps[t]))
            for name in SCALAR_ARRAYS:
                row[name] = repr(float(getattr(trace, name)[t]))
            row["grad_evals"] = int(trace.grad_evals[t])
            row["diagnostic_evals"] = int(trace.diagnostic_evals[t])
            for name in VECTOR_ARRAYS:
                value = getattr(trace, name)
                if value is not None and value.shape[1] <= CSV_MAX_DIM:
                    for i, v in enumerate(value[t].tolist()):
                        row[f"{name}_{i}"] = repr(v)
            writer.writerow(row)
    return buffer.getvalue()


def traces_from_csv(text: str) -> list[Trace]:
    """Inverse of :func:`traces_to_csv` (vectors with d > 10 come back as ``None``)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "trace" not in columns or "step" not in columns:
        raise ValueError("not a trace CSV: the columns 'trace' and 'step' are required")
    groups: dict[int, list[dict]] = {}
    for row in reader:
        groups.setdefault(int(row["trace"]), []).append(row)
    traces = []
    for index in sorted(groups):
        first = groups[index][0]
        rows = [r for r in groups[index] if r["step"] != ""]  # none for a trace without rows
        kwargs: dict[str, Any] = {
            "key": first["key"],
            "label": first["label"],
            "hyperparams": json.loads(first["hyperparams"]),
            "status": first["status"],
            "stop_step": None if first["stop_step"] == "" else int(first["stop_step"]),
            "escape_step": None if first["escape_step"] == "" else int(first["escape_step"]),
            "dimer_length": None if first["dimer_length"] == "" else float(first["dimer_length"]),
            "wall_time": float(first["wall_time"]),
            "steps": [int(r["step"]) for r in rows],
            "grad_evals": [int(r["grad_evals"]) for r in rows],
            "diagnostic_evals": [int(r["diagnostic_evals"]) for r in rows],
        }
        for name in SCALAR_ARRAYS:
            kwargs[name] = [float(r[name]) for r in rows]
        for name in VECTOR_ARRAYS:
            cols = [c for c in columns if c.startswith(f"{name}_") and c[len(name) + 1 :].isdigit()]
            if cols and rows and rows[0][cols[0]] != "":
                width = sum(1 for c in cols if rows[0][c] != "")
                kwargs[name] = [[float(r[f"{name}_{i}"]) for i in range(width)] for r in rows]
            else:
                kwargs[name] = None
        traces.append(Trace(**kwargs))
    return traces


def _cell(value: int | float | None) -> str:
    return "" if value is None else repr(value)


def jsonable(value: Any) -> Any:
    """Hyperparameters as plain JSON types (tuples → lists, numpy scalars → Python); finite floats only."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"hyperparameters must be finite numbers, got {value}")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    return value


def _encode(value: Any) -> Any:
    """NaN → None, ±Inf → "inf"/"-inf", recursively through lists (strict JSON)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode`."""
    if value is None or value == "nan":
        return math.nan
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
