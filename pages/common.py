"""Shared Streamlit pieces of every DEO Lab page.

- URL state: every control is a keyed widget bound to the URL (``bind=URL``): the query parameter
  is the widget key, invalid or out-of-bounds values in a URL are ignored (the default is used),
  and a link restores the whole configuration. :func:`copy_link_button` copies the current URL.
- Lecture settings: :func:`large_fonts` (projector mode) and :func:`controls` (the page's control
  panel, folded away when "hide controls" is on). Both toggles live in ``app.py``'s sidebar.
- :func:`optimizer_picker`: a multiselect of ``deo.PRESETS`` plus one expander per chosen
  optimizer with its hyperparameters as bounded inputs, built from the preset's own metadata
  (``deo.presets.Hyperparameter``: words, bounds, help; the rest under "Advanced"); returns
  ``deo.race.OptimizerSpec`` s.
- :func:`safe_call` / :func:`safe_block`: exceptions become a readable ``st.error``, never a
  traceback. :func:`progress_reporter` adapts ``st.progress`` to the race's ``progress`` callback.
- Bounded LRU caches (:func:`cache_runner`) and the cached surface race / escape map runners.
- :func:`download_buttons`: HTML animation, traces (CSV, JSON) and config JSON, generated lazily.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import inspect
import json
import math
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import streamlit as st

URL = "query-params"  # ``bind=URL``: the widget's value lives in the query parameter named by its key
LARGE_FONTS_KEY = "big"  # app-wide toggles (app.py's sidebar), also URL parameters
HIDE_CONTROLS_KEY = "lecture"
MAX_CACHE_ENTRIES = 16
APP_RAN_KEY = "_deo_app_ran"  # session state: app.py's navigation has run in this session
DEEP_LINK_KEY = "_deo_deep_link"  # session state: the page a link asked for before app.py had run
MAX_CACHE_BYTES = 128 * 2**20  # all cache_runner caches together (estimated by nbytes)
RACE_COMPUTED = "DEO Lab: race computed:"  # logged (stderr) for every race computed, not for cache hits
DROPPED = "DEO Lab: cached results dropped:"  # logged (stderr) when drop_unused drops some
WAIT_POLL_S = 0.25  # a session waiting for another's computation checks it is still wanted

# --------------------------------------------------------------------------------------------- lecture


def show_formula(latex: str, container=None) -> None:
    r"""``f(x, y) = latex`` as inline KaTeX (Markdown ``$…$``), which breaks after a top-level ``+``,
    ``−`` or ``=`` to fit its column. ``st.latex`` (display mode) never breaks: in the Surfaces page's
    side column eleven of the sixteen formulas were cut off at 1400 px, and on a phone the long ones
    anywhere. A surface's ``latex`` keeps long brackets breakable (``\bigl[ … \bigr]``: a
    ``\left … \right`` group is one unbreakable box)."""
    (container or st).markdown(f"$f(x, y) = {latex}$")


def _url_flag(key: str) -> bool:
    if key in st.session_state:
        return bool(st.session_state[key])
    return st.query_params.get(key, "") in ("1", "true", "True")


def phone() -> bool:
    """A phone's browser (its User-Agent says "Mobi", as Android's and iOS's browsers do): the race
    chart then takes the screen's width with its legend above it (no server-side viewport exists)."""
    try:
        agent = st.context.headers.get("User-Agent", "") or ""
    except Exception:  # no browser request behind this run (AppTest, a bare script)
        return False
    return "Mobi" in agent


def compact_layout() -> bool:
    """The compact figures (a phone's: legends above, colour bars flat, panels one under another) or the
    desktop ones: what this browser measured its main column to need (``pages.viewport``), else, before
    any report, whether it is a phone (:func:`phone`)."""
    from pages.viewport import reported_compact

    reported = reported_compact()
    return phone() if reported is None else reported


def chart_columns(count: int, compact: bool) -> list:
    """Places for ``count`` charts side by side, or, in the compact layout (:func:`compact_layout`), one
    under another at the column's width: Streamlit stacks columns only in a window under 640 px, so a
    1280×720 projector at 150 % with the sidebar open drew the two Networks loss charts ≈ 250 px wide
    each, their legends cut ("DEO (paper): rando")."""
    return [st.container() for _ in range(count)] if compact else st.columns(count)


def chart_config(no_toolbar: bool | None = None) -> dict:
    """``st.plotly_chart``'s ``config``: no Plotly logo, and no toolbar where it would sit on a
    legend or a title: a phone, and projector mode (``large_fonts``), whose legends in rows above the
    plots and larger titles reach the figure's top right, where the toolbar shows (measured on every
    page at 1280×720). ``no_toolbar`` = None decides that from this session (a phone or projector
    mode); a caller that builds a figure for a view ahead of any session passes it. Pinch-zoom and
    the downloads remain. Otherwise the toolbar keeps Plotly's default: it shows while the pointer is
    over the chart (``displayModeBar: True`` pinned it there, over the legend's first row), and the
    loss charts hang their legends below it (``viz.palette.legend_above``, the same rule)."""
    if no_toolbar is None:
        from viz.palette import shows_toolbar

        no_toolbar = not shows_toolbar(large=large_fonts(), compact=compact_layout())
    return {"displaylogo": False, "displayModeBar": False} if no_toolbar else {"displaylogo": False}


def large_fonts() -> bool:
    """Projector mode (bigger fonts and lines), set by app.py's sidebar toggle or ``?big=true``."""
    return _url_flag(LARGE_FONTS_KEY)


def controls_hidden() -> bool:
    """ "Hide controls" for lectures, set by app.py's sidebar toggle or ``?lecture=true``."""
    return _url_flag(HIDE_CONTROLS_KEY)


def controls(label: str = "Controls"):
    """The container a page puts its controls in: the sidebar, folded into a closed expander when
    "hide controls" is on (widgets stay alive, so the configuration and the URL are kept)."""
    if controls_hidden():
        return st.sidebar.expander(f"⚙️ {label}", expanded=False)
    return st.sidebar.container()


# ------------------------------------------------------------------------------------------------ link

_COPY_LINK_HTML = """
<div style="font-family: sans-serif; font-size: 14px; white-space: nowrap;">
<button id="copy" data-testid="copy-link" title="Copy this page's URL: it holds the whole configuration"
 style="padding: 4px 12px; border-radius: 6px; border: 1px solid #999; background: #fff;
 cursor: pointer; font-size: 14px; white-space: nowrap;">Copy link</button>
<span id="done" style="margin-left: 8px; color: #007a4d;"></span>
</div>
<script>
const button = document.getElementById("copy");
const done = document.getElementById("done");
button.addEventListener("click", async () => {
  const url = window.parent.location.href;
  button.dataset.url = url;
  try {
    await navigator.clipboard.writeText(url);
    done.textContent = "copied";
  } catch (err) {
    const area = document.createElement("textarea");
    area.value = url; document.body.appendChild(area); area.select();
    document.execCommand("copy"); area.remove();
    done.textContent = "copied";
  }
});
</script>
"""


def copy_link_button() -> None:
    """A small "Copy link" button that copies the browser's current URL (query string included,
    i.e. the whole configuration) to the clipboard."""
    st.iframe(_COPY_LINK_HTML, height=40)


# ------------------------------------------------------------------------------------- error handling


def _readable(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def safe_call(fn: Callable[..., Any], *args: Any, what: str = "The computation", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or ``None`` after an ``st.error`` naming ``what`` and the exception's
    message (never a traceback). Streamlit's own control flow (rerun, stop) passes through."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        st.error(f"{what} failed: {_readable(exc)}", icon="⚠️")
        return None


@contextmanager
def safe_block(what: str = "This view") -> Iterator[None]:
    """``with safe_block("The 3-D view"): ...`` — an exception inside becomes an ``st.error`` and the
    rest of the page keeps running."""
    try:
        yield
    except Exception as exc:
        st.error(f"{what} failed: {_readable(exc)}", icon="⚠️")


PROGRESS_EVERY_S = 0.1  # a progress bar is redrawn at most this often (each redraw is a message)


def progress_reporter(
    text: str, every_s: float = PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic
) -> tuple[Callable[[float, str], None], Callable[[], None]]:
    """``(report, close)``: ``report(fraction, message)`` drives an ``st.progress`` bar (the race's
    ``progress`` callback); ``close()`` removes the bar.

    The bar is redrawn at most every ``every_s`` seconds (and always at the end, fraction 1): a
    race reports every 1 % of its steps, 500 times in a 0.2 s race, and each redraw is a message
    to the browser that costs the script thread more than the steps between two reports."""
    from pages.workers import Throttle

    slot = st.empty()
    bar = slot.progress(0.0, text=text)
    throttle = Throttle(every_s, clock)

    def report(fraction: float, message: str = "") -> None:
        value = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
        if throttle.due(value):
            bar.progress(value, text=f"{text} {message}".strip())

    return report, slot.empty


# ----------------------------------------------------------------------------------------- optimizers


def _number_input(label: str, key: str, default: float | int | None, meta, container) -> float | int | None:
    """A bounded number input for ``meta`` (a ``deo.presets.Hyperparameter``), bound to the URL;
    a ``None`` default shows as an empty input that says what empty means (``meta.none``)."""
    if meta.integer:
        value = min(max(int(default), int(meta.low)), int(meta.high))
        return container.number_input(
            label, int(meta.low), int(meta.high), value, int(meta.step), key=key, bind=URL, help=meta.help
        )
    value = None if default is None else min(max(float(default), meta.low), meta.high)
    return container.number_input(
        label,
        float(meta.low),
        float(meta.high),
        value,
        float(meta.step),
        format="%g",
        key=key,
        bind=URL,
        help=meta.help,
        placeholder=meta.none or None,
    )


def _hyperparameter_input(default: Any, meta, key: str, container) -> Any:
    """The control of one hyperparameter (``meta``: its ``deo.presets.Hyperparameter``)."""
    if meta.choices:
        options = meta.choices if default in meta.choices else (default, *meta.choices)
        return container.selectbox(
            meta.label, options, index=options.index(default), key=key, bind=URL, help=meta.help
        )
    if isinstance(default, list | tuple):
        cols = container.columns(len(default))
        parts = meta.parts or tuple(f"{meta.label} {i + 1}" for i in range(len(default)))
        value = [_number_input(parts[i], f"{key}.{i}", v, meta, cols[i]) for i, v in enumerate(default)]
        return type(default)(value)
    return _number_input(meta.label, key, default, meta, container)


def hyperparameter_inputs(preset_key: str, defaults: dict, container, prefix: str = "") -> dict:
    """Bounded inputs for one preset's hyperparameters, built from the preset's metadata
    (``deo.presets.Preset.hyperparameters``): the few that tell what the preset does first, in plain
    words, the others inside an "Advanced" expander. Returns the values that differ from
    ``defaults`` (the overrides a ``deo.race.OptimizerSpec`` takes).

    Widget keys (and URL parameters) are ``f"{prefix}{preset_key}.{name}"`` (``.0``, ``.1``... for
    the entries of a list such as Adam's betas).
    """
    from deo.presets import PRESETS

    preset = PRESETS[preset_key]
    main, advanced = preset.main_hyperparameters(), preset.advanced_hyperparameters()
    values = {}
    for name in main:
        values[name] = _hyperparameter_input(
            defaults[name], preset.hyperparameters[name], f"{prefix}{preset_key}.{name}", container
        )
    if advanced:
        with container.expander("Advanced", expanded=False):
            for name in advanced:
                values[name] = _hyperparameter_input(
                    defaults[name], preset.hyperparameters[name], f"{prefix}{preset_key}.{name}", st
                )
    return {name: value for name, value in values.items() if value != defaults[name]}


def preset_overrides(preset_key: str, extra: dict) -> dict:
    """Of ``extra`` (a surface's values for a preset, ``landscapes.RaceDefaults``), those that differ
    from the preset's own defaults: what an ``OptimizerSpec`` carries for them."""
    from deo.presets import PRESETS

    defaults = PRESETS[preset_key].defaults
    return {k: v for k, v in extra.items() if v != defaults.get(k)}


def optimizer_picker(
    container,
    default: list[str],
    key: str = "opt",
    prefix: str = "",
    help_text: str | None = None,
    preset_defaults: dict[str, dict] | None = None,
) -> list:
    """A multiselect of the presets (``deo.PRESETS``, shown by label) and, per chosen optimizer, an
    expander with its hyperparameters. Returns ``list[deo.race.OptimizerSpec]`` in the chosen order
    (empty when nothing is chosen: the page says so).

    ``preset_defaults``: per preset key, defaults that replace the preset's own (a surface's
    learning rates, ``landscapes.RaceDefaults``); the inputs start there and the specs carry them."""
    from deo.presets import PRESETS
    from deo.race import OptimizerSpec

    keys = container.multiselect(
        "Optimizers",
        list(PRESETS),
        default=[k for k in default if k in PRESETS],
        format_func=lambda k: PRESETS[k].label,
        key=key,
        bind=URL,
        help=help_text or "Every optimizer starts from the same point with the same seed and budget.",
    )
    specs = []
    for preset_key in keys:
        preset = PRESETS[preset_key]
        extra = (preset_defaults or {}).get(preset_key, {})
        with container.expander(f"{preset.label} — hyperparameters", expanded=False):
            st.caption(preset.description)
            overrides = hyperparameter_inputs(preset_key, {**preset.defaults, **extra}, st, prefix=prefix)
        overrides = {**preset_overrides(preset_key, extra), **overrides}
        try:  # a combination no single control refuses (rotation sd without a step) fails every run
            preset.check(overrides)
        except ValueError as error:
            container.warning(f"**{preset.label}** is left out until its settings work together: {error}")
            continue
        specs.append(OptimizerSpec(key=preset_key, hyperparams=overrides, label=preset.label))
    return specs


def picker_specs(keys: list[str], preset_defaults: dict[str, dict] | None = None) -> list:
    """The specs :func:`optimizer_picker` returns for ``keys`` with its inputs untouched: each preset
    carrying those of ``preset_defaults`` (a surface's values) that differ from its own. What a
    page's plain link races, for the page and for serve.py's warm-up."""
    from deo.presets import PRESETS
    from deo.race import OptimizerSpec

    extra = preset_defaults or {}
    return [
        OptimizerSpec(key=k, hyperparams=preset_overrides(k, extra.get(k, {})), label=PRESETS[k].label)
        for k in keys
    ]


def specs_to_json(specs: list) -> str:
    """A canonical JSON text of optimizer specs (the hashable cache key of a race)."""
    return json.dumps(
        [{"key": s.key, "hyperparams": s.hyperparams, "label": s.label} for s in specs], sort_keys=True
    )


def specs_from_json(text: str) -> list:
    """Inverse of :func:`specs_to_json`."""
    from deo.race import OptimizerSpec

    return [
        OptimizerSpec(key=d["key"], hyperparams=d["hyperparams"], label=d["label"]) for d in json.loads(text)
    ]


# ------------------------------------------------------------------------------------------ surfaces

DEFAULT_SURFACE = "saddle_plateau"  # the surface the Surfaces and Escape map pages open on


def get_surface(surface_key: str, formula: str = ""):
    """``landscapes.SURFACES[surface_key]``, or the parsed ``formula`` when the key is ``"custom"``
    (raises ``landscapes.FormulaError`` with a readable message on bad input)."""
    import landscapes

    if surface_key == "custom":
        return landscapes.parse_formula(formula)
    if surface_key not in landscapes.SURFACES:
        raise ValueError(f"unknown surface {surface_key!r}; choose one of {sorted(landscapes.SURFACES)}")
    return landscapes.SURFACES[surface_key]


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a cache-key argument (lists → tuples, dicts → sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    return value


def nbytes(value: Any, _seen: set | None = None) -> int:
    """An estimate of the memory a cached result holds: array and tensor buffers, strings and
    bytes, summed through lists, tuples, dicts and objects' ``__dict__`` (dataclasses: ``Trace``,
    ``EscapeResult``), each object once; 64 bytes for anything else."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if callable(getattr(value, "memory_bytes", None)):  # an object that knows its size cheaply
        return int(value.memory_bytes())
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + (nbytes(value.base, seen) if value.dtype == object else 0)
    if type(value).__module__.startswith("torch") and hasattr(value, "element_size"):
        return int(value.element_size() * value.numel())
    if isinstance(value, str | bytes | bytearray):
        return len(value) + 49
    if isinstance(value, dict):
        return 64 + sum(nbytes(k, seen) + nbytes(v, seen) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 56 + 8 * len(value) + sum(nbytes(v, seen) for v in value)
    if hasattr(value, "to_plotly_json") and hasattr(value, "_layout"):  # a Plotly figure: its data
        parts = (value._data, value._layout, getattr(value, "_plain_frames", None))
        parts += (getattr(value, "_frozen", None), getattr(value, "_wire_json", None))
        return 64 + sum(nbytes(part, seen) for part in parts)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return 64 + nbytes(vars(value), seen)
    return 64


def release_memory() -> bool:
    """Give freed heap pages back to the operating system (glibc ``malloc_trim(0)``); False where
    that call does not exist (not glibc). Called after a cache eviction: without it the server's
    RSS stays at its peak after the evicted results are freed (``benchmarks/soak.py``)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once: ``ctypes.util.find_library`` runs ``ldconfig -p`` in a
    subprocess, which the server's trim thread would otherwise fork every ``TRIM_EVERY_S``."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_CACHE: OrderedDict = OrderedDict()  # (function id, key) -> (value, bytes), least recently used first
_CACHE_LOCK = threading.Lock()
_CACHE_BYTES = [0]
# (function id, key) -> (ids of the server sessions that asked for it, last use (time.monotonic()));
# a result asked for outside a session (serve.py's warm-up, a script, AppTest) has no entry: kept
_USERS: dict = {}


def _session_id() -> str | None:
    """The server session running this script; None outside a running server (warm-up thread, AppTest)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        ctx = get_script_run_ctx(suppress_warning=True)
        return ctx.session_id if ctx is not None and Runtime.exists() else None
    except Exception:
        return None


def _session_connected(session_id: str) -> bool:
    from streamlit.runtime import Runtime

    return Runtime.exists() and Runtime.instance().is_active_session(session_id)


def _note_use(key: tuple, session: str | None, new: bool) -> None:
    """Under ``_CACHE_LOCK``: remember which session asked for ``key`` (just computed: ``new``) and
    when. Asked for outside any session (``session`` None): kept until the bounds evict it."""
    if session is None:
        _USERS.pop(key, None)
    elif new or key in _USERS:
        sessions = _USERS[key][0] if key in _USERS else set()
        sessions.add(session)
        _USERS[key] = (sessions, time.monotonic())


def _drop(key: tuple) -> None:
    """Under ``_CACHE_LOCK``: remove one result."""
    _CACHE_BYTES[0] -= _CACHE.pop(key)[1]
    _USERS.pop(key, None)


def unused_after_s() -> float:
    """How long a result no connected session uses is kept: as long as Streamlit keeps a disconnected
    session that may come back and ask for it (``server.disconnectedSessionTTL``, 120 s by default)."""
    return float(st.get_option("server.disconnectedSessionTTL"))


def drop_unused(now: float | None = None, connected: Callable[[str], bool] | None = None) -> int:
    """Drop what a class that has left still holds: the results that only server sessions asked for,
    once none of those sessions is connected and the last of them asked :func:`unused_after_s` ago
    or more (its links' races and figures), and the closed sessions Streamlit still stores past
    their TTL (:func:`reap_expired_sessions`); then their memory goes back to the OS. Results
    computed outside a session (serve.py's warm-up of the plain link) stay. Returns how many results
    were dropped. The server's trim thread calls it every ``TRIM_EVERY_S``."""
    reaped = reap_expired_sessions()
    now = time.monotonic() if now is None else now
    connected = _session_connected if connected is None else connected
    idle = unused_after_s()
    with _CACHE_LOCK:
        candidates = [(k, set(v[0])) for k, v in _USERS.items() if now - v[1] >= idle]
    gone = [k for k, sessions in candidates if not any(connected(s) for s in sessions)]
    with _CACHE_LOCK:
        gone = [k for k in gone if k in _USERS and now - _USERS[k][1] >= idle]  # _USERS ⊆ _CACHE
        for key in gone:
            _drop(key)
    if gone:
        _forget_compressed_messages()
    if gone or reaped:
        # the class's sessions have left: their cyclic garbage (script runs, messages, widget
        # states) is collected now, not whenever the oldest generation's threshold next comes
        # (the server runs no collection after each script run: .streamlit/config.toml), and the
        # freed pages go back to the OS. The collection holds the GIL while it walks every tracked
        # object; serve.py froze its warm-up's (serve.freeze_warm_state): 148 instead of 431 ms
        # after a class of ten (benchmarks/gc_pause.py)
        gc.collect()
        release_memory()
    if gone:
        print(f"{DROPPED} {len(gone)} (no session that asked for them is connected)", file=sys.stderr)
    return len(gone)


def _forget_compressed_messages() -> None:
    """Empty serve.py's store of compressed websocket messages (:mod:`pages.shared_deflate`, imported
    only by a server that uses it) when a class's results go: their messages would otherwise stay
    until newer ones pushed them out (≤ 8 MiB). A class still connected pays one compression per
    large message again, for its next browser."""
    shared = sys.modules.get("pages.shared_deflate")
    if shared is not None:
        shared.SHARED.clear()


def stored_session_cache():
    """Streamlit's store of disconnected sessions (kept ``server.disconnectedSessionTTL`` seconds for a
    browser that comes back), or None outside a running server or where it is not found. Streamlit
    1.67 internals, pinned in requirements.txt and checked by ``tests/test_serving.py``: the runtime's
    session manager's ``_session_storage`` (a ``MemorySessionStorage``) keeps them in ``_cache``,
    Streamlit's ``TTLCache``."""
    try:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return None
        return Runtime.instance()._session_mgr._session_storage._cache
    except Exception:
        return None


def reap_expired_sessions(timeout_s: float = 5.0) -> int:
    """Remove from Streamlit's store the disconnected sessions whose TTL has passed; how many.

    Streamlit's TTL cache removes an expired entry only on a write or a length query, so after a
    class leaves it keeps every closed session (its widget states, script state and messages) until
    the next browser connects. The removal runs on the server's event loop, the thread that owns the
    store (``call_soon_threadsafe``; the runtime's ``_get_async_objs`` is internal too); 0 where
    any of it is not found or does not answer within ``timeout_s``."""
    import concurrent.futures

    cache = stored_session_cache()
    if cache is None:
        return 0
    try:
        from streamlit.runtime import Runtime

        loop = Runtime.instance()._get_async_objs().eventloop
        done: concurrent.futures.Future = concurrent.futures.Future()

        def reap() -> None:
            try:
                done.set_result(len(cache.expire()))
            except Exception as error:  # handed to the waiting thread
                done.set_exception(error)

        loop.call_soon_threadsafe(reap)
        return int(done.result(timeout=timeout_s))
    except Exception:
        return 0


def cache_bytes() -> int:
    """Bytes (estimated by :func:`nbytes`) held by all :func:`cache_runner` caches together."""
    with _CACHE_LOCK:
        return _CACHE_BYTES[0]


# function id (:func:`_function_id`) -> its computations in flight and its counts, shared by every
# definition of the function: Streamlit executes a page's file again at every run, so a function a
# page decorates is a new object each time and must still find what earlier runs and other sessions
# computed (with an id per object, the Dimer page recomputed its studies at every run)
_FUNCTIONS: dict = {}


def _function_id(fn: Callable) -> tuple[str, str, str]:
    """What identifies a cached function across the runs of its page: its file, its qualified name
    and a digest of its source (an edited function, in a server that reloads pages, starts afresh)."""
    fn = inspect.unwrap(fn)
    try:
        source = inspect.getsource(fn).encode()
    except (OSError, TypeError):  # no source file (defined in a REPL or by exec): its bytecode
        source = fn.__code__.co_code
    digest = hashlib.blake2b(source, digest_size=8).hexdigest()
    return (fn.__code__.co_filename, fn.__qualname__, digest)


def function_counts() -> dict[str, dict[str, int]]:
    """``{"<file name>:<qualified name>": {"computations": n, "hits": n}}`` of every function
    :func:`cache_runner` has decorated, summed over the versions of its source (a page's functions
    are new objects at every run: their ``stats()`` are out of a test's reach)."""
    out: dict[str, dict[str, int]] = {}
    with _CACHE_LOCK:
        for (path, name, _), shared in _FUNCTIONS.items():
            total = out.setdefault(f"{path.rsplit('/', 1)[-1]}:{name}", {"computations": 0, "hits": 0})
            for k, v in shared["counts"].items():
                total[k] += v
    return out


def cache_runner(fn: Callable | None = None, *, max_entries: int | None = None) -> Callable:
    """A process-wide LRU cache of ``fn``'s results, shared by every session of the server.

    Bounds: at most ``max_entries`` (default ``MAX_CACHE_ENTRIES``) results of ``fn``, and at most
    ``MAX_CACHE_BYTES`` for all cached functions together (estimated by :func:`nbytes`; the least
    recently used result of any function goes first; a result larger than the whole budget is
    returned but not kept). Freed memory is handed back to the OS after an eviction
    (:func:`release_memory`). A result only server sessions asked for goes once they have all left
    (:func:`drop_unused`); one asked for outside a session (serve.py's warm-up) stays.

    The key is the function (:func:`_function_id`, the same for the new function object that every
    run of a page defines) and its arguments (lists, dicts and arrays made hashable); parameters
    whose name starts with ``_`` (a progress callback) are not part of it. One computation per key:
    a session asking for a key that another session is computing waits for that result instead of
    computing it again (a class opening one link computes it once). Not ``st.cache_data``: that one
    forbids touching an element made outside the cached function (the progress bar) while it runs,
    and copies (unpickles) every hit. Results are shared, not copied: callers must not mutate them.
    ``wrapper.clear()`` empties this function's cache; ``wrapper.stats()`` gives ``computations``
    (calls of ``fn``), ``hits``, ``entries``, ``max_entries`` (its bound), ``bytes`` and
    ``session_entries`` (entries :func:`drop_unused` will drop once their sessions have left);
    ``wrapper.contains(*args)`` says whether those arguments' result is cached, and
    ``wrapper.available(*args)`` whether it is cached or being computed (a call would not start a
    computation of its own: a page then shows it without asking for a Run press); both are peeks.
    """
    if fn is None:
        return functools.partial(cache_runner, max_entries=max_entries)
    signature = inspect.signature(fn)
    fid = _function_id(fn)
    with _CACHE_LOCK:
        shared = _FUNCTIONS.setdefault(fid, {"running": {}, "counts": {"computations": 0, "hits": 0}})
    running: dict = shared["running"]  # key -> threading.Event of the computation in flight
    counts = shared["counts"]

    def mine() -> list:
        return [k for k in _CACHE if k[0] == fid]

    def key_of(args, kwargs) -> tuple:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        plain = tuple((k, _freeze(v)) for k, v in bound.arguments.items() if not k.startswith("_"))
        return bound, (fid, plain)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound, key = key_of(args, kwargs)
        session = _session_id()
        while True:
            with _CACHE_LOCK:
                if key in _CACHE:
                    _CACHE.move_to_end(key)
                    counts["hits"] += 1
                    _note_use(key, session, new=False)
                    return _CACHE[key][0]
                event = running.get(key)
                if event is None:
                    running[key] = threading.Event()
                    break
            # another session is computing this key: wait, then read its result (or compute it
            # here when that computation failed). A progress callback is called while waiting, so a
            # session that goes away stops waiting (Streamlit raises in its next st call).
            waiting = bound.arguments.get("_progress")
            while not event.wait(WAIT_POLL_S):
                if waiting is not None:
                    waiting(0.0, "(computed for another session; waiting for its result)")
        try:
            value = fn(*args, **kwargs)
            size = nbytes(value)
            evicted = False
            with _CACHE_LOCK:
                counts["computations"] += 1
                if size <= MAX_CACHE_BYTES:
                    _CACHE[key] = (value, size)
                    _CACHE_BYTES[0] += size
                    _note_use(key, session, new=True)
                own = mine()
                most = MAX_CACHE_ENTRIES if max_entries is None else max_entries
                for old in own[: max(0, len(own) - most)]:
                    _drop(old)
                    evicted = True
                while _CACHE and _CACHE_BYTES[0] > MAX_CACHE_BYTES:
                    _drop(next(iter(_CACHE)))
                    evicted = True
        finally:
            with _CACHE_LOCK:
                running.pop(key).set()
        if evicted:
            release_memory()
        return value

    def clear() -> None:
        with _CACHE_LOCK:
            for old in mine():
                _drop(old)
        release_memory()

    def stats() -> dict:
        with _CACHE_LOCK:
            own = mine()
            most = MAX_CACHE_ENTRIES if max_entries is None else max_entries
            held = sum(_CACHE[k][1] for k in own)
            by_sessions = sum(k in _USERS for k in own)
            return {
                **counts,
                "entries": len(own),
                "max_entries": most,
                "bytes": held,
                "session_entries": by_sessions,
            }

    def contains(*args, **kwargs) -> bool:
        """Whether a result for these arguments is in the cache now (computes nothing, counts no hit)."""
        key = key_of(args, kwargs)[1]
        with _CACHE_LOCK:
            return key in _CACHE

    def available(*args, **kwargs) -> bool:
        """Whether these arguments' result is cached or being computed now (for any session)."""
        key = key_of(args, kwargs)[1]
        with _CACHE_LOCK:
            return key in _CACHE or key in running

    wrapper.clear = clear
    wrapper.stats = stats
    wrapper.contains = contains
    wrapper.available = available
    return wrapper


@cache_runner
def cached_surface_race(
    surface_key: str,
    formula: str,
    start: tuple[float, float],
    offset: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    _progress: Callable[[float, str], None] | None = None,
) -> list:
    """``deo.race.race`` on a surface from ``start`` (``offset``: distance from the nearest saddle's
    stable manifold, see ``deo.race.surface_problem``), cached on the plain arguments."""
    from deo.race import race, surface_problem
    from pages.request_budget import check_surface_race

    check_surface_race(specs_from_json(specs_json), steps, formula if surface_key == "custom" else "")
    surface = get_surface(surface_key, formula)
    problem = surface_problem(surface, start, offset=offset)
    began = time.perf_counter()
    traces = race(problem, specs_from_json(specs_json), steps, seed=seed, clip=clip, progress=_progress)
    print(
        f"{RACE_COMPUTED} {surface_key}, {len(traces)} optimizers × {steps} steps from {start} "
        f"in {time.perf_counter() - began:.2f} s",
        file=sys.stderr,
        flush=True,
    )
    return traces


@cache_runner(max_entries=4)
def cached_surface_grid(surface_key: str, formula: str):
    """``viz.surface_figs.surface_grid`` of a surface (the contour image's 400×400 values)."""
    from viz.surface_figs import surface_grid

    return surface_grid(get_surface(surface_key, formula))


@cache_runner(max_entries=8)
def cached_race_figure(
    surface_key: str,
    formula: str,
    start: tuple[float, float],
    offset: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    options: tuple,
):
    """The animated race figure of :func:`cached_surface_race`'s traces (a cache hit: the race is
    not run again) with ``viz.surface_figs.race_figure`` keyword ``options`` (sorted ``(name,
    value)`` pairs): the view options (``VIEW_OPTIONS``) drawn on :func:`cached_race_layers` (a
    view never drawn before costs milliseconds), its JSON composed once and sent as it is."""
    from pages.plotly_wire import wire_ready
    from viz.surface_figs import VIEW_OPTIONS, race_view

    race_key = (surface_key, formula, start, offset, specs_json, steps, seed, clip)
    layers = cached_race_layers(*race_key, tuple((k, v) for k, v in options if k not in VIEW_OPTIONS))
    return wire_ready(race_view(layers, **{k: v for k, v in options if k in VIEW_OPTIONS}))


@cache_runner(max_entries=8)
def cached_race_layers(
    surface_key: str,
    formula: str,
    start: tuple[float, float],
    offset: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    options: tuple,
):
    """``viz.surface_figs.race_layers`` of :func:`cached_surface_race`'s traces: what the race
    figure draws whatever its view options, built once per race and layout (``options``: sorted
    ``(name, value)`` pairs, no ``VIEW_OPTIONS``)."""
    from viz.surface_figs import race_layers

    traces = cached_surface_race(surface_key, formula, start, offset, specs_json, steps, seed, clip)
    surface = get_surface(surface_key, formula)
    return race_layers(surface, traces, grid=cached_surface_grid(surface_key, formula), **dict(options))


TRACE_FIGURES = ("loss_steps", "loss_evals", "curvature", "surface3d")  # cached_trace_figure's views


@cache_runner(max_entries=32)
def cached_trace_figure(
    surface_key: str,
    formula: str,
    start: tuple[float, float],
    offset: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    view: str,
    options: tuple,
):
    """A static figure of :func:`cached_surface_race`'s traces (a cache hit: the race is not run
    again), built once per race and view and shared by every session: ``view`` is one of
    ``TRACE_FIGURES`` (``viz.surface_figs.loss_figure`` against steps or gradient evaluations,
    ``curvature_figure``, ``surface3d_figure``), ``options`` their keyword arguments as sorted
    ``(name, value)`` pairs (``log``, ``large``). Frozen and serialised once: a rerun, a tab switch or
    a second visitor sends the JSON made then (``pages.plotly_wire``)."""
    from pages.plotly_wire import wire_ready
    from viz.surface_figs import curvature_figure, loss_figure, surface3d_figure

    if view not in TRACE_FIGURES:
        raise ValueError(f"unknown view {view!r}; one of {TRACE_FIGURES}")
    traces = cached_surface_race(surface_key, formula, start, offset, specs_json, steps, seed, clip)
    kwargs = dict(options)
    if view == "loss_steps":
        fig = loss_figure(traces, "steps", **kwargs)
    elif view == "loss_evals":
        fig = loss_figure(traces, "grad_evals", **kwargs)
    elif view == "curvature":
        fig = curvature_figure(traces, **kwargs)
    else:
        fig = surface3d_figure(get_surface(surface_key, formula), traces, **kwargs)
    # serialised once for every rerun and visitor (each builder returns a FrozenFigure)
    return wire_ready(fig.freeze())


LOSS_SIDES = (("left", "steps"), ("right", "grad_evals"))  # the two loss charts and their x axes


@cache_runner(max_entries=32)
def cached_hidden_losses(
    surface_key: str,
    formula: str,
    start: tuple[float, float],
    offset: float | None,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    log: bool,
) -> dict[str, list]:
    """The runs that another covers on each loss chart of :func:`cached_surface_race`'s traces
    (``viz.surface_figs.hidden_loss_curves``), keyed ``"left"`` (against steps) and ``"right"``
    (against gradient evaluations), for the caption; computed once per race and axis type."""
    from viz.surface_figs import hidden_loss_curves

    traces = cached_surface_race(surface_key, formula, start, offset, specs_json, steps, seed, clip)
    return {side: hidden_loss_curves(traces, x, log) for side, x in LOSS_SIDES}


def session_alive() -> Callable[[], bool] | None:
    """For ``pages.workers.run``: whether the session running this script still has a browser
    connected (Streamlit keeps a closed tab's script running); None outside a server (AppTest).
    In background work (serve.py's warm-up of the pages, ``pages.activity.background``): whether the
    server is still quiet, so a visitor's job never waits long behind it for the pool's worker (the
    job is stopped once a visitor has been served for ``pages.workers.GONE_S``)."""
    from pages import activity

    session_id = _session_id()
    if session_id is None:
        return activity.server_quiet if activity.in_background() else None
    return lambda: _session_connected(session_id)


@cache_runner
def cached_escape_map(
    surface_key: str,
    formula: str,
    saddle: tuple[float, float],
    window: tuple[tuple[float, float], tuple[float, float]],
    resolution: int,
    specs_json: str,
    steps: int,
    seed: int,
    clip: float | None,
    _progress: Callable[[float, str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """``deo.race.escape_map`` over a ``resolution``² grid of starts in ``window`` (row-major: y
    outer, x inner), with the race's default escape criterion at ``saddle``, the surface's minima as
    basins and its divergence bound. Returns ``(xs (n,), ys (n,), results by label)``.

    Runs in a worker process (``pages.workers.escape_map_job``): the server's event loop and the
    other sessions never wait behind it; stopped when the session goes away or reruns."""
    from pages import workers
    from pages.request_budget import check_map

    check_map(specs_from_json(specs_json), steps, resolution**2)  # refused here, before a worker starts
    args = (surface_key, formula, saddle, window, resolution, specs_json, steps, seed, clip)
    return workers.run(workers.escape_map_job, *args, progress=_progress, alive=session_alive())


# what a visitor of a plain link sees, per (large fonts, phone): desktop, projector, phone (serve.py's
# warm-up computes each page's plain link in these views)
DEFAULT_VIEWS = ((False, False), (True, False), (False, True))


TRIM_EVERY_S = 15.0  # the server hands freed heap pages back to the OS this often


def _trim_forever() -> None:
    while True:
        time.sleep(TRIM_EVERY_S)
        try:
            dropped = drop_unused()  # it collects and trims when it drops something
        except Exception:  # the runtime going down: keep trimming, never end the thread
            dropped = 0
        if not dropped:
            release_memory()


# The scripts a real server runs the app from: ``streamlit run app.py`` and ``python serve.py``
# (``streamlit run serve.py``, Streamlit's st.App over app.py). Under AppTest the entry is pytest's.
SERVER_SCRIPTS = ("app.py", "serve.py")


def under_server() -> bool:
    """Whether this process is the app's server (``sys.argv[0]`` is one of :data:`SERVER_SCRIPTS`,
    as Streamlit sets it), not a test or a script importing the pages."""
    import sys
    from pathlib import Path

    return Path(sys.argv[0]).name in SERVER_SCRIPTS


def _server_start() -> None:
    """Under a server (:func:`under_server`; not AppTest): start the worker pool in the background at low
    priority, so the first escape map or network race does not wait for the workers' imports; and
    a thread that every ``TRIM_EVERY_S`` s drops what sessions that have left still hold (their cached
    results and Streamlit's stored copies of them: :func:`drop_unused`) and calls
    :func:`release_memory`, so the memory of closed sessions (their
    messages, figures and widget states, freed by Python) goes back to the OS instead of staying in
    glibc's arenas (``benchmarks/soak.py``)."""
    if under_server():
        from pages import workers

        workers.warm_up()
        threading.Thread(target=_trim_forever, name="deo-lab-malloc-trim", daemon=True).start()


_server_start()


# ------------------------------------------------------------------------------------------ downloads


def config_json(config: dict) -> str:
    """The page configuration as pretty JSON (tuples become lists, NaN/inf are refused)."""
    return json.dumps(config, indent=2, sort_keys=True, allow_nan=False, default=list)


def download_buttons(
    name: str,
    config: dict,
    traces: list | None = None,
    html: Callable[[], str] | None = None,
    container=None,
) -> None:
    """A row of download buttons: the animation as standalone HTML (``html`` is called only when
    clicked), the traces as CSV and JSON, and ``config`` as JSON. Files are named ``f"{name}.*"``.
    The buttons flow and wrap at their own width (a grid of four columns cut their labels to
    "⬇ Animation …" beside the sidebar on a projector, and left a gap where a button was absent)."""
    from deo.trace import traces_to_csv, traces_to_json

    row = (container if container is not None else st).container(horizontal=True, gap="small")
    if html is not None:
        row.download_button(
            "⬇ Animation (HTML)",
            data=html,
            file_name=f"{name}.html",
            mime="text/html",
            on_click="ignore",
            help="Standalone animated figure; works offline (plotly.js embedded).",
        )
    if traces:
        row.download_button(
            "⬇ Traces (CSV)",
            data=lambda: traces_to_csv(traces),
            file_name=f"{name}-traces.csv",
            mime="text/csv",
            on_click="ignore",
            help="One row per (optimizer, step), full resolution.",
        )
        row.download_button(
            "⬇ Traces (JSON)",
            data=lambda: traces_to_json(traces),
            file_name=f"{name}-traces.json",
            mime="application/json",
            on_click="ignore",
            help="Every recorded quantity; reload with deo.Trace.",
        )
    row.download_button(
        "⬇ Config (JSON)",
        data=config_json(config),
        file_name=f"{name}-config.json",
        mime="application/json",
        on_click="ignore",
        help="Everything needed to rerun this view.",
    )


def link_params() -> dict[str, list[str]]:
    """The current query parameters, every value of a repeated key kept (``st.switch_page`` input)."""
    return {key: st.query_params.get_all(key) for key in st.query_params}


def require_app_navigation(renamed: dict[str, str] | None = None) -> None:
    """Send every request through ``app.py``'s ``st.navigation``, also on a fresh server.

    Streamlit treats a ``pages/`` folder beside the entry script as a legacy multipage app until
    ``st.navigation`` has run once in the server process: a shared link such as ``/dimer?...``
    opened first on a fresh server runs the page script alone. The page then remembers which page
    was asked for and switches to ``app.py`` with ``st.switch_page`` (public API, query parameters
    kept); ``app.py`` runs its ``st.navigation`` and switches on to the page asked for. Nothing is
    drawn before that, and the legacy page list is never shown (``client.showSidebarNavigation =
    false``). A no-op once ``app.py`` has run in the session, and when the page is the entry script
    itself (AppTest of a page file, where :func:`under_server` is false). ``renamed``: the page's
    renamed URL parameters, old name → new (:func:`pages.url_params.vet_params`).
    """
    import sys
    from pathlib import Path

    from pages.url_params import vet_query_params

    if not st.session_state.get(APP_RAN_KEY) and under_server():
        caller = sys._getframe(1).f_globals.get("__file__") or ""
        st.session_state[DEEP_LINK_KEY] = Path(caller).stem
        st.switch_page("app.py", query_params=link_params())
    vet_query_params(renamed=renamed)  # before the widgets: drop link values no control can take
