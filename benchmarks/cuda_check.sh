#!/usr/bin/env bash
# The device check for a GPU machine, run from the repository root:
#     bash benchmarks/cuda_check.sh            (writes into $OUT, or /tmp/deo_cuda_check without it)
# 1. the interpreter, torch, CUDA and the GPU; 2. `import deo` pulls in neither streamlit nor plotly;
# 3. every `cuda`-marked test (tests/test_cuda.py: DEO's CPU/CUDA parity suite; test_optim.py and
#    test_baselines.py: the older CUDA cases); 4. benchmarks/cuda_cost.py, DEO/Adam wall time against
#    the gradient-evaluation ratio on a ~1M and a ~21M MLP (table -> $OUT/cuda.md).
# Needs python3 with torch (+ pytest; lightning optional), no app dependencies. Budget: pytest ≤ 240 s,
# benchmark ≤ 150 s (each under `timeout`), so the whole script stays under ~6.5 minutes even when
# both time out. Exit status: non-zero when a step failed (the logs say which).
set -u -o pipefail
OUT=${OUT:-/tmp/deo_cuda_check}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x /opt/torch/.venv/bin/python3 ]; then PYTHON=/opt/torch/.venv/bin/python3; else PYTHON=python3; fi
fi
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
status=0

{
    echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') $PYTHON"
    nvidia-smi -L || true
    "$PYTHON" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', \
torch.version.cuda, 'available', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"
    "$PYTHON" -c "import sys, deo, deo.optim, deo.baselines; \
bad = {'streamlit', 'plotly'} & {m.split('.')[0] for m in sys.modules}; \
assert not bad, f'import deo imported {bad}'; print('import deo: no streamlit, no plotly')"
} 2>&1 | tee "$OUT/env.log" || status=1

# -o addopts: the project's "-ra --strict-markers" (kept explicit); the ini's `timeout` needs
# pytest-timeout, which a bare machine may lack (then pytest only warns), so `timeout` bounds the run.
timeout 240 "$PYTHON" -m pytest tests/test_cuda.py tests/test_optim.py tests/test_baselines.py -m cuda \
    -q -p no:cacheprovider -o addopts="-ra --strict-markers" -W ignore::pytest.PytestConfigWarning \
    --durations=8 2>&1 | tee "$OUT/pytest.log" || status=1

timeout 150 "$PYTHON" benchmarks/cuda_cost.py --out "$OUT/cuda.md" 2>&1 | tee "$OUT/bench.log" || status=1

echo "cuda_check status $status" | tee -a "$OUT/env.log"
exit $status
