#!/usr/bin/env bash
# The GPU kit's run: on the GPU machine (no network), from the repo root, with $OUT set:
#
#   OUT=/some/empty/dir bash tools/gpu/run_gpu.sh
#
# Installs tools/gpu/wheelhouse/ offline (only what the image lacks), checks the environment
# (tools/gpu/check_env.py), then runs on the JAX backend, each step timed and logged:
#   train (adding T=100, GRU, global_clipnorm=1, 3000 steps: GRU solves it in ~1200 on CPU), a smoke sweep (tools/gpu/smoke.toml),
#   report, export --all (ONNX + registry), perf --quick.
# A failed step is recorded and the next one runs; the exit status is 1 if any step failed.
# Every step has a time limit and the whole run a deadline (default 510 s), so it ends in time.
#
# $OUT receives at most 8 files, each < 16 MB: log.txt, env.txt, mlflow.db (the sqlite store),
# mlruns.tar.gz (MLflow's artifacts), report.tar.gz (report.md + figures + the .onnx files),
# perf.json, perf.md, rates.json (the `rates` step).
#
# Knobs (environment): RNNBENCH_KIT_DEVICE (gpu; cpu to try the kit on a machine without a GPU),
# RNNBENCH_KIT_QUICK=1 (tiny budgets, for a CPU try-out), RNNBENCH_KIT_DEADLINE (seconds, 510),
# RNNBENCH_KIT_SOURCE (repo: the repo's suite/ tasks/ tracking/ come first on PYTHONPATH;
# wheel: the rnnbench wheel's copy), RNNBENCH_KIT_WORK (working folder; default a new temp one),
# PYTHON (python3), RNNBENCH_KIT_STEPS (the steps and their caps in seconds, in order; default
# "train:150 sweep:240 report:90 export:120 perf:240"; `rates` runs tools/gpu/pop_rates.py into
# $OUT/rates.json), RNNBENCH_KIT_SPEC (the sweep's spec; default tools/gpu/smoke.toml),
# RNNBENCH_KIT_WORKERS (the sweep's --workers; 1), RNNBENCH_KIT_PERF_CELLS (perf's cells, comma
# separated; default all).
#
# Sizing the `gpu` preset (tools/gpu/README.md): RNNBENCH_KIT_STEPS="rates:110 sweep:190
# report:40 export:50 perf:150" RNNBENCH_KIT_SPEC=tools/gpu/rates.toml RNNBENCH_KIT_WORKERS=8
# RNNBENCH_KIT_PERF_CELLS=lstm,gru, then tools/gpu/size_preset.py on the store that comes back.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIT="$REPO/tools/gpu"
: "${OUT:?set OUT to the (empty) output folder}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-python3}"
DEVICE="${RNNBENCH_KIT_DEVICE:-gpu}"
QUICK="${RNNBENCH_KIT_QUICK:-0}"
DEADLINE="${RNNBENCH_KIT_DEADLINE:-510}"
SOURCE="${RNNBENCH_KIT_SOURCE:-repo}"
PACK_RESERVE=25  # seconds kept for packing $OUT
WORK="${RNNBENCH_KIT_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/rnnbench-kit.XXXXXX")}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
SITE="$WORK/site"
LOG="$OUT/log.txt"
T0=$SECONDS
: >"$LOG"

log() { echo "$*" | tee -a "$LOG"; }

# --- environment: offline, JAX, MLflow in $WORK ------------------------------------------------
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several JAX processes share the GPU (sweep, perf)
export MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1  # no network: never try to phone home
export GIT_PYTHON_REFRESH=quiet
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export COLUMNS=160  # rich tables in the log
if [ "$SOURCE" = wheel ]; then
  export PYTHONPATH="$SITE"
else
  export PYTHONPATH="$REPO:$SITE"
fi
RNNBENCH=("$PY" -m suite.cli)  # the console script may be missing (pip-less install); this is not

log "rnnbench GPU kit: $(date -u +%FT%TZ)  device=$DEVICE quick=$QUICK deadline=${DEADLINE}s"
log "repo $REPO; work $WORK; PYTHONPATH=$PYTHONPATH"

declare -a SUMMARY=()
FAILED=0

# run_step NAME CAP_SECONDS CMD...: run CMD in $WORK under min(CAP, time left), log its output,
# record its wall time and result. Returns CMD's exit status (124: timed out).
run_step() {
  local name=$1 cap=$2
  shift 2
  local left=$((DEADLINE - (SECONDS - T0) - PACK_RESERVE))
  local limit=$((cap < left ? cap : left))
  if ((limit < 15)); then
    log "== $name: SKIPPED (the ${DEADLINE}s budget is spent)"
    SUMMARY+=("$(printf '%-9s %-8s %6s' "$name" SKIPPED -)")
    FAILED=1
    return 1
  fi
  log ""
  log "== $name (limit ${limit}s): $*"
  local t1
  t1=$(date +%s.%N)
  (cd "$WORK" && timeout --kill-after=15 "$limit" "$@") 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local wall
  wall=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  local what=ok
  if ((rc == 124 || rc == 137)); then what="TIMEOUT"; elif ((rc != 0)); then what="FAILED($rc)"; fi
  log "== $name: $what in ${wall}s"
  SUMMARY+=("$(printf '%-9s %-8s %6ss' "$name" "$what" "$wall")")
  ((rc == 0)) || FAILED=1
  return "$rc"
}

# `--backend jax` where the command has the option; otherwise the command relies on
# KERAS_BACKEND=jax (logged, so a missing option is visible).
backend_args() {
  if "${RNNBENCH[@]}" "$1" --help 2>/dev/null | grep -q -- "--backend"; then
    echo "--backend jax"
  else
    log "note: 'rnnbench $1' has no --backend option here; it runs on KERAS_BACKEND=jax" >&2
  fi
}

write_env() {
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(hostname) ($(uname -srm)); $(nproc) CPUs"
    echo "--- nvidia-smi -L"
    if command -v nvidia-smi >/dev/null; then
      nvidia-smi -L 2>&1
      nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
    else
      echo "(no nvidia-smi)"
    fi
    echo "--- source"
    echo "repo: $REPO (PYTHONPATH source: $SOURCE)"
    echo "git commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
    if git -C "$REPO" rev-parse HEAD >/dev/null 2>&1; then
      echo "git status (short):"
      git -C "$REPO" status --short 2>/dev/null | head -40
    fi
    echo "source sha256 (suite/ tasks/ tracking/ *.py + presets): $(cd "$REPO" && find suite tasks tracking -name '*.py' -o -name '*.toml' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)"
    echo "--- python"
    KIT_SITE="$SITE" KIT_REPO="$REPO" "$PY" - <<'PYEOF' 2>&1
import importlib.metadata as md, importlib.util, os, sys
print("python", sys.version.replace("\n", " "), "at", sys.executable)
names = ["jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin",
         "jax-cuda13-pjrt", "keras", "mlflow-skinny", "mlflow", "numpy", "scipy", "onnx",
         "onnxruntime", "onnxruntime-gpu", "torch", "pandas", "sqlalchemy", "alembic", "protobuf",
         "pydantic", "typer", "rich", "matplotlib", "psutil", "h5py", "optree", "ml-dtypes",
         "nvidia-ml-py", "rnnbench", "tensorflow"]
for n in names:
    try:
        v = md.version(n)
    except md.PackageNotFoundError:
        continue
    print(f"  {n:20} {v}")
site, repo = os.environ["KIT_SITE"], os.environ["KIT_REPO"]
print("loaded from (image, kit = the wheelhouse, repo):")
for m in ["numpy", "jax", "keras", "mlflow", "pandas", "google.protobuf", "pydantic",
          "typing_extensions", "sqlalchemy", "suite"]:
    try:
        spec = importlib.util.find_spec(m)
    except Exception as e:  # noqa: BLE001
        print(f"  {m:18} ({type(e).__name__})")
        continue
    if spec and spec.origin:
        where = "kit" if spec.origin.startswith(site) else "repo" if spec.origin.startswith(repo) else "image"
        print(f"  {m:18} {where:5} {spec.origin}")
try:
    import jax
    print("jax devices:", jax.devices())
except Exception as e:  # noqa: BLE001
    print("jax devices: error", type(e).__name__, e)
PYEOF
    echo "--- kit install (wheels installed / left to the image)"
    cat "$WORK/install.txt" 2>/dev/null
    echo "--- environment"
    env | grep -E '^(KERAS|XLA|JAX|MLFLOW|CUDA|PYTHONPATH|RNNBENCH_KIT)' | sort
  } >"$OUT/env.txt" 2>&1
}

# --- the steps: one function step_NAME each, called with its cap (a new step is one function) ---
step_train() {  # shellcheck disable=SC2046  # backend_args prints zero or two words
  run_step train "$1" "${RNNBENCH[@]}" train $(backend_args train) --device "$DEVICE" \
    --task adding --seq-len 100 --cell gru --clip global_clipnorm=1 --max-steps "$TRAIN_STEPS" --hidden 64
}
step_rates() {  # population and one-model rates first: they come back even if later steps run out of time
  run_step rates "$1" "$PY" "$KIT/pop_rates.py" "$OUT/rates.json" --device "$DEVICE" \
    --cells "$RATES_CELLS" --steps "$RATES_STEPS"
}
step_sweep() {  # shellcheck disable=SC2046
  run_step sweep "$1" "${RNNBENCH[@]}" sweep "$SPEC" $(backend_args sweep) --device "$DEVICE" \
    --workers "$WORKERS"
}
step_report() {
  run_step report "$1" "${RNNBENCH[@]}" report --out "$WORK/report"
}
step_export() {  # shellcheck disable=SC2046
  run_step export "$1" "${RNNBENCH[@]}" export --all --out "$WORK/onnx" $(backend_args export)
}
step_perf() {  # shellcheck disable=SC2046
  run_step perf "$1" "${RNNBENCH[@]}" perf $(backend_args perf) --device "$DEVICE" --quick \
    --out "$WORK/perf" "${PERF_ARGS[@]}"
}
KNOWN_STEPS=$(declare -F | awk '$3 ~ /^step_/ {sub(/^step_/, "", $3); printf "%s ", $3}')

# --- the steps asked for, checked before anything runs --------------------------------------------
STEPS="${RNNBENCH_KIT_STEPS:-train:150 sweep:240 report:90 export:120 perf:240}"
for item in $STEPS; do
  if ! declare -F "step_${item%%:*}" >/dev/null; then
    log "error: unknown step '${item%%:*}' in RNNBENCH_KIT_STEPS='$STEPS' (steps: ${KNOWN_STEPS% }, each NAME:SECONDS)"
    exit 2
  fi
  if ! [[ "$item" =~ ^[a-z]+:[0-9]+$ ]]; then
    log "error: '$item' in RNNBENCH_KIT_STEPS='$STEPS' needs a cap in seconds, e.g. ${item%%:*}:120"
    exit 2
  fi
done

# --- 0. install + check: nothing else can run without them ------------------------------------
if ! ls "$KIT"/wheelhouse/*.whl >/dev/null 2>&1; then
  log "error: no wheels in $KIT/wheelhouse; build them first with tools/gpu/build_wheelhouse.sh"
  exit 1
fi
run_step install 120 env -u PYTHONPATH "$PY" "$KIT/install_wheelhouse.py" "$KIT/wheelhouse" "$SITE"
install_rc=$?
grep -E '^(install|skip|installed)' "$LOG" >"$WORK/install.txt"
write_env
if ((install_rc != 0)); then
  log "error: the wheelhouse did not install; stopping"
  exit 1
fi
if ! run_step check 180 "$PY" "$KIT/check_env.py" --work "$WORK/check"; then
  log "error: the environment check failed (see above); stopping before any training"
  exit 1
fi

# --- budgets ------------------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
  TRAIN_STEPS=200
  SPEC="$WORK/smoke-quick.toml"
  cat >"$SPEC" <<'EOF'
name = "gpu-smoke-quick"
description = "the kit's CPU try-out: 4 tiny runs"
tasks = ["adding"]
seq_lens = [20]
cells = ["irnn", "lstm"]
clips = ["none", "global_clipnorm=1"]
seeds = [0]

[train]
hidden = 16
max_steps = 100
eval_every = 50
EOF
  PERF_ARGS=(--cells irnn)
  RATES_CELLS=lstm RATES_STEPS=3
else
  TRAIN_STEPS=3000
  SPEC="$KIT/smoke.toml"
  PERF_ARGS=()
  RATES_CELLS=lstm,gru RATES_STEPS=20
fi
SPEC="${RNNBENCH_KIT_SPEC:-$SPEC}"
WORKERS="${RNNBENCH_KIT_WORKERS:-1}"
if [ -n "${RNNBENCH_KIT_PERF_CELLS:-}" ]; then
  PERF_ARGS=()
  for c in ${RNNBENCH_KIT_PERF_CELLS//,/ }; do PERF_ARGS+=(--cells "$c"); done
fi
log "steps: $STEPS; sweep $SPEC on $WORKERS worker(s)"

# --- the steps, in RNNBENCH_KIT_STEPS order, each NAME:CAP_SECONDS -----------------------------
for item in $STEPS; do
  "step_${item%%:*}" "${item#*:}"
done

# --- pack $OUT: at most 8 files, each < 16 MB ---------------------------------------------------
log ""
log "== pack"
MAX_BYTES=$((16 * 1000 * 1000))
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }
if [ -f "$WORK/mlflow.db" ]; then
  "$PY" - "$WORK/mlflow.db" "$OUT/mlflow.db" <<'PYEOF' || cp "$WORK/mlflow.db" "$OUT/mlflow.db"
import sqlite3, sys  # a consistent copy, even if a straggler still has the store open
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
dst.close(); src.close()
PYEOF
  if (($(size_of "$OUT/mlflow.db") > MAX_BYTES)); then
    gzip -9 "$OUT/mlflow.db" && log "mlflow.db over 16 MB: sent as mlflow.db.gz"
  fi
fi
arts=()
for d in mlruns mlartifacts; do [ -d "$WORK/$d" ] && arts+=("$d"); done
if ((${#arts[@]})); then
  tar -czf "$OUT/mlruns.tar.gz" -C "$WORK" "${arts[@]}"
  if (($(size_of "$OUT/mlruns.tar.gz") > MAX_BYTES)); then
    tar -czf "$OUT/mlruns.tar.gz" -C "$WORK" --exclude='*/models/*' "${arts[@]}"
    log "mlruns.tar.gz over 16 MB: logged models left out (params, metrics and the rest kept)"
  fi
fi
rep=()
for d in report onnx; do [ -d "$WORK/$d" ] && rep+=("$d"); done
((${#rep[@]})) && tar -czf "$OUT/report.tar.gz" -C "$WORK" "${rep[@]}"
for f in perf.json perf.md; do [ -f "$WORK/perf/$f" ] && cp "$WORK/perf/$f" "$OUT/$f"; done

log ""
log "== summary (wall time of each step; total $((SECONDS - T0))s)"
for s in "${SUMMARY[@]}"; do log "  $s"; done
write_env  # again, now with everything installed and run
ls -l "$OUT" | tail -n +2 | awk '{printf "  out: %-16s %9d bytes\n", $NF, $5}' | tee -a "$LOG"
n=$(find "$OUT" -maxdepth 1 -type f | wc -l)
big=$(find "$OUT" -maxdepth 1 -type f -size +15M | wc -l)
((n <= 8)) || log "warning: $n files in \$OUT (at most 8 come back)"
((big == 0)) || log "warning: a file in \$OUT is over 15 MB"
log "work folder (kept): $WORK"
if ((FAILED)); then
  log "RESULT: some steps failed"
  exit 1
fi
log "RESULT: all steps ok"
