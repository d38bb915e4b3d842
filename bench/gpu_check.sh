#!/usr/bin/env bash
# The torch engine on a machine with an NVIDIA GPU, in one short run (under 5 minutes, every step
# time-limited): the engine-parity tests on CUDA, bench/engines.py at batch 64 and 512 with and
# without --amp bf16 and --compile, a 2-process nccl run when two GPUs are there, one summary.
#
# Made for a machine with Python 3.12, a CUDA build of torch (2.11 or later, with NCCL), numpy and
# Pillow, but no Qt and no network: netbuilder's core runs from this checkout without its GUI
# dependencies (a package shim on PYTHONPATH; nothing is built or installed from the checkout),
# and what the tests need besides (pytest, hypothesis, threadpoolctl and their dependencies) is
# installed from wheels that are given, into a folder of its own (pip --target; nothing else on
# the machine changes). Prepare the wheels where there is a network:
#
#     bench/gpu_check.sh --prepare-wheels wheels/     # pip download: wheels for Python 3.12, x86-64 Linux
#
# then, on the GPU machine:
#
#     bench/gpu_check.sh --wheels wheels/             # or WHEELS=wheels/ bench/gpu_check.sh
#     bench/gpu_check.sh --cpu-dry-run                # the same steps on the CPU, quickly, Qt hidden
#
# (GPU_CHECK_PYVER=3.11 prepares them for another Python.)
# Options: --budget SECONDS (default 290: the whole run stays under 5 minutes), --python PYTHON
# (default python3), --keep (keep the work folder with each step's log).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-}"
DRY=0
BUDGET=290
KEEP=0
PREPARE=""

while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
        --wheels=*) WHEELS="${1#*=}"; shift ;;
        --cpu-dry-run) DRY=1; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift 2 ;;
        --python) PY="${2:?--python needs a command}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --prepare-wheels) PREPARE="${2:?--prepare-wheels needs a folder}"; shift 2 ;;
        -h|--help) sed -n '2,/^[^#]/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

NEEDED_MODULES="pytest hypothesis threadpoolctl"   # import names
NEEDED_WHEELS="pytest hypothesis threadpoolctl"    # distribution names

if [ -n "$PREPARE" ]; then
    mkdir -p "$PREPARE" || exit 1
    # shellcheck disable=SC2086
    exec "$PY" -m pip download --only-binary=:all: --python-version "${GPU_CHECK_PYVER:-3.12}" --implementation cp \
        --platform manylinux2014_x86_64 -d "$PREPARE" $NEEDED_WHEELS
fi

START=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")" || exit 1
if [ "$KEEP" = 1 ]; then
    trap 'echo "(logs kept in $WORK)"' EXIT
else
    trap 'rm -rf "$WORK"' EXIT
fi
SUMMARY=()        # one line per step
BENCH_LINES=()    # what the benchmarks printed that the summary repeats

remaining() { echo $(( BUDGET - (SECONDS - START) )); }

# step NAME LIMIT CMD...: run CMD with at most LIMIT seconds (less if the budget is nearly spent),
# output to the screen and to $WORK/<n>.log; the outcome goes to the summary. Returns CMD's status.
STEP_N=0
step() {
    local name="$1" limit="$2"; shift 2
    STEP_N=$((STEP_N + 1))
    LOG=""  # set below once the step runs (a skipped step has no log)
    local left; left=$(( $(remaining) - 5 ))
    if [ "$left" -lt 10 ]; then
        SUMMARY+=("$(printf '%-44s %s' "$name" "skipped: the ${BUDGET}s budget is spent")")
        echo "== $name: skipped (budget spent)"
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    LOG="$WORK/$STEP_N.log"
    echo
    echo "== $name (at most ${limit}s)"
    local t0=$SECONDS rc
    if declare -F "$1" >/dev/null; then  # a function of this script: timeout runs a bash that has it
        timeout --kill-after=5 "$limit" bash -c "$(declare -f "$1"); $1 \"\$@\"" "$1" "${@:2}" 2>&1 | tee "$LOG"
    else
        timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$LOG"
    fi
    rc=${PIPESTATUS[0]}
    local took=$((SECONDS - t0)) outcome
    case "$rc" in
        0) outcome="ok" ;;
        124|137) outcome="TIMED OUT after ${limit}s" ;;
        *) outcome="FAILED (exit $rc)" ;;
    esac
    SUMMARY+=("$(printf '%-44s %-28s %4ss' "$name" "$outcome" "$took")")
    return "$rc"
}

skip() {  # skip NAME WHY
    SUMMARY+=("$(printf '%-44s %s' "$1" "skipped: $2")")
    echo
    echo "== $1: skipped: $2"
}

# --- the environment ---------------------------------------------------------------------------
SITE="$WORK/site"
SHIM="$WORK/shim"
mkdir -p "$SITE" "$SHIM/netbuilder"
# netbuilder as pyproject.toml's package-dir maps it, without netbuilder.gui: core/_netbuilder is
# the package's top, core/ is netbuilder.core, resources/ is netbuilder.resources.
for f in "$ROOT"/core/_netbuilder/*.py; do ln -s "$f" "$SHIM/netbuilder/$(basename "$f")"; done
ln -s "$ROOT/core" "$SHIM/netbuilder/core"
ln -s "$ROOT/resources" "$SHIM/netbuilder/resources"
PYPATH="$SHIM:$SITE:$ROOT"
if [ "$DRY" = 1 ]; then
    # As on the GPU machine: no Qt. A stand-in that refuses to import shadows the real PySide6.
    for m in PySide6 shiboken6 pyqtgraph pytestqt; do
        mkdir -p "$WORK/noqt/$m"
        echo "raise ImportError('$m is hidden by gpu_check.sh --cpu-dry-run: the GPU machine has no Qt')" \
            > "$WORK/noqt/$m/__init__.py"
    done
    PYPATH="$WORK/noqt:$PYPATH"
fi
export PYTHONPATH="$PYPATH${PYTHONPATH:+:$PYTHONPATH}"
export PY WHEELS WORK SITE NEEDED_MODULES GPU_CHECK_FORCE_INSTALL  # for the functions that steps run in a bash of their own
export PYTHONDONTWRITEBYTECODE=1
export QT_QPA_PLATFORM=offscreen
cd "$ROOT" || exit 1

echo "gpu_check: $( [ "$DRY" = 1 ] && echo 'CPU dry run' || echo 'GPU run' ) of $ROOT" \
     "(commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')), budget ${BUDGET}s, work folder $WORK"

step "python, torch and the GPUs" 60 "$PY" - <<'EOF'
import platform, sys
print(f"python {platform.python_version()} ({sys.executable})")
import numpy
print(f"numpy {numpy.__version__}")
import torch
print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        print(f"cuda:{i} {torch.cuda.get_device_name(i)}")
    print(f"nccl available: {torch.distributed.is_available() and torch.distributed.is_nccl_available()}")
else:
    print("torch sees no CUDA GPU")
EOF
TORCH_OK=$?
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'not importable')"
GPUS="$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)"
if [ "$DRY" = 1 ]; then
    DEVICE=cpu
elif [ "$GPUS" -ge 1 ] 2>/dev/null; then
    DEVICE=cuda
else
    echo "gpu_check: torch sees no CUDA GPU; run with --cpu-dry-run to check the plumbing on the CPU" >&2
    DEVICE=none
fi

install_wheels() {
    local missing=()
    for m in $NEEDED_MODULES; do  # GPU_CHECK_FORCE_INSTALL=1: install them even so (to check this step)
        if [ "${GPU_CHECK_FORCE_INSTALL:-0}" = 1 ] || ! "$PY" -c "import $m" 2>/dev/null; then missing+=("$m"); fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "already importable: $NEEDED_MODULES"
        return 0
    fi
    echo "to install: ${missing[*]}"
    if [ -z "$WHEELS" ] || [ ! -d "$WHEELS" ]; then
        echo "no wheels folder (give --wheels DIR or WHEELS=DIR; prepare one with --prepare-wheels DIR)" >&2
        return 1
    fi
    if "$PY" -m pip --version >/dev/null 2>&1 && "$PY" -m pip install --no-index --find-links "$WHEELS" \
            --target "$SITE" --quiet --disable-pip-version-check "${missing[@]}"; then
        :
    else
        echo "pip could not install them; unpacking the wheels instead" >&2
        "$PY" - "$WHEELS" "$SITE" <<'PYEOF' || return 1
import sys, zipfile, pathlib
wheels, site = pathlib.Path(sys.argv[1]), sys.argv[2]
found = sorted(wheels.glob("*.whl"))
for w in found:
    zipfile.ZipFile(w).extractall(site)
print(f"unpacked {len(found)} wheels into {site}")
PYEOF
    fi
    for m in $NEEDED_MODULES; do
        "$PY" -c "import $m, os; print('$m', getattr($m, '__version__', ''), 'from', os.path.dirname($m.__file__))" \
            || return 1
    done
}
step "install the test tools from wheels" 60 install_wheels
INSTALL_OK=$?
step "netbuilder.core from the checkout, no Qt" 60 "$PY" - <<'EOF'
import sys
import netbuilder.core
from netbuilder.core import cli, cli_train, torch_engine, trainer, checkpoint, weights  # noqa: F401
from netbuilder.core.export import torch_export  # noqa: F401
import netbuilder.core.torch_bridge  # noqa: F401
qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
print(f"netbuilder.core from {netbuilder.core.__path__[0]}")
if qt:
    sys.exit(f"netbuilder.core imported Qt: {qt}")
try:
    import PySide6  # noqa: F401
    print("(PySide6 is installed here, but netbuilder.core did not import it)")
except ImportError:
    print("PySide6 is not importable, and netbuilder.core does not need it")
EOF
CORE_OK=$?

# --- tests ----------------------------------------------------------------------------------------
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # no pytest-qt (nor any other plugin): the tests need none
PYTEST=("$PY" -m pytest -q -p no:cacheprovider)
if [ "$DEVICE" = none ] || [ "$CORE_OK" != 0 ] || [ "$TORCH_OK" != 0 ]; then
    skip "parity tests on the device" "no device, or netbuilder.core/torch not importable"
elif [ "$INSTALL_OK" != 0 ]; then
    skip "parity tests on the device" "pytest/hypothesis/threadpoolctl missing (give --wheels DIR)"
else
    NETBUILDER_TEST_DEVICE="$DEVICE" step "parity tests, torch engine on $DEVICE" 120 \
        "${PYTEST[@]}" tests/core/test_torch_engine.py -k "trains_as_the_numpy or float64 or first_step or batch_of_one or learning_rate or resumes_on_the_other"
    step "speed options, torch engine on cpu (no slow)" 60 \
        "${PYTEST[@]}" tests/core/test_torch_options.py -m "not slow"
fi

# --- benchmarks -----------------------------------------------------------------------------------
bench() {  # bench NAME LIMIT ARGS...: bench/engines.py; its summary line and GPU rows are kept
    local name="$1" limit="$2"; shift 2
    step "$name" "$limit" "$PY" bench/engines.py "$@"
    local rc=$?
    if [ -n "$LOG" ] && [ -f "$LOG" ]; then
        while IFS= read -r line; do BENCH_LINES+=("$name | $line"); done \
            < <(grep -E "^engines |torch (cuda|mps)|torch cpu|^[a-z_0-9]+ +numpy " "$LOG" | grep -v "vs numpy")
    fi
    return $rc
}
if [ "$DEVICE" = none ] || [ "$CORE_OK" != 0 ]; then
    skip "benchmarks" "no device, or netbuilder.core not importable"
elif [ "$DEVICE" = cpu ]; then  # the same calls, few steps, the CPU standing in for the GPU
    Q=(--devices numpy,cpu --nets lenet5 --steps 3 --warmup 2 --rounds 1)
    bench "bench: batch 64, every engine (dry)" 60 --batch 64 "${Q[@]}"
    bench "bench: batch 512 (dry)" 45 --batch 512 "${Q[@]}" --devices cpu
    bench "bench: batch 64, --amp bf16 (dry)" 45 --batch 64 "${Q[@]}" --devices cpu --amp bf16
    bench "bench: batch 512, --amp bf16 (dry)" 45 --batch 512 "${Q[@]}" --devices cpu --amp bf16
    bench "bench: batch 64, --compile (dry)" 60 --batch 64 "${Q[@]}" --devices cpu --cpu-threads 1 --compile
else
    bench "bench: batch 64, every engine and device" 75 --batch 64 --quick
    G=(--devices cuda --steps 40 --warmup 5 --rounds 1)  # a GPU step is milliseconds: more of them
    bench "bench: batch 512, cuda" 30 --batch 512 "${G[@]}"
    bench "bench: batch 64, cuda, --amp bf16" 25 --batch 64 "${G[@]}" --amp bf16
    bench "bench: batch 512, cuda, --amp bf16" 25 --batch 512 "${G[@]}" --amp bf16
    # torch.compile takes tens of seconds a net (and is checked against the plain model): LeNet-5 only
    bench "bench: batch 64, cuda, --compile" 45 --batch 64 "${G[@]}" --compile --nets lenet5
    bench "bench: batch 512, cuda, --amp bf16 --compile" 45 --batch 512 "${G[@]}" --amp bf16 --compile --nets lenet5
fi

# --- many processes -------------------------------------------------------------------------------
ddp() {
    local project="$WORK/lenet_shapes.json" backend="$1" device="$2"
    "$PY" - "$project" <<'EOF' || return 1
import json, sys
from netbuilder.core.resources import resource_path
doc = json.loads((resource_path("examples") / "lenet5.json").read_text())
doc["dataset"] = {"kind": "shapes", "train_size": 2048, "test_size": 256}  # made here, nothing to download
open(sys.argv[1], "w").write(json.dumps(doc))
EOF
    echo "2 processes, $backend: netbuilder train --engine torch --device $device --processes 2"
    "$PY" -m netbuilder train "$project" --engine torch --device "$device" --processes 2 --epochs 1 \
        --out "$WORK/ddp.weights.npz" --quiet && test -f "$WORK/ddp.weights.npz" && echo "weights written"
}
if [ "$CORE_OK" != 0 ]; then
    skip "2 processes" "netbuilder.core not importable"
elif ! "$PY" -m netbuilder train --help 2>/dev/null | grep -q -- "--processes"; then
    skip "2 processes" "this netbuilder's train has no --processes yet"
elif [ "$DEVICE" = cpu ]; then
    step "2 processes, gloo on the cpu (dry)" 60 ddp gloo cpu
elif [ "$DEVICE" = cuda ] && [ "$GPUS" -ge 2 ]; then
    step "2 processes, nccl on 2 GPUs" 60 ddp nccl cuda
else
    skip "2 processes, nccl" "$GPUS GPU here (needs 2)"
fi

# --- summary --------------------------------------------------------------------------------------
echo
echo "================ gpu_check summary ($( [ "$DRY" = 1 ] && echo 'CPU dry run' || echo "$DEVICE" ), torch $TORCH_VERSION," \
     "$((SECONDS - START))s of ${BUDGET}s) ================"
for line in "${SUMMARY[@]}"; do echo "$line"; done
if [ ${#BENCH_LINES[@]} -gt 0 ]; then
    echo "-- benchmark figures (images/s, first batch s, peak RSS MB, GPU MB):"
    for line in "${BENCH_LINES[@]}"; do echo "$line"; done
fi
FAILED=$(printf '%s\n' "${SUMMARY[@]}" | grep -c -E "FAILED|TIMED OUT")
echo "gpu_check: $FAILED step(s) failed or timed out"
[ "$FAILED" = 0 ]
