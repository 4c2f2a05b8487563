#!/usr/bin/env bash
# Build tools/gpu/wheelhouse/: every wheel rnnbench needs on the GPU machine that its image lacks.
#
# Run here (any x86_64 Linux with pip and PyPI): bash tools/gpu/build_wheelhouse.sh
# The GPU machine has Python 3.12, JAX with CUDA, PyTorch, onnx, onnxruntime, numpy, scipy (a
# JAX dependency), typer, rich, matplotlib, psutil, pyyaml and their dependencies, and no
# network. tools/gpu/run_gpu.sh installs this folder there offline (install_wheelhouse.py).
#
# The list is explicit and pinned (versions that satisfy each other; those of the dev .venv).
# What is left out and why: tools/gpu/README.md. The folder must stay <= 60 MB: it travels to
# the GPU machine under a 64 MiB cap.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DEST="${WHEELHOUSE:-$HERE/wheelhouse}"
LIMIT_MB=60
PY="${PYTHON:-python3}"

PACKAGES=(
  # --- Keras 3 (runs on JAX there; ml-dtypes, numpy, rich and packaging are in the image) ---
  keras==3.15.1
  absl-py==2.5.1
  namex==0.1.0
  optree==0.20.0
  h5py==3.14.0                 # keras' .keras files (weights) - mlflow.keras saves those

  # --- MLflow: the skinny wheel has all of MLflow's Python code (sqlite store, registry,
  #     mlflow.keras, mlflow.onnx, tracing); the full `mlflow` wheel only adds the UI's
  #     JavaScript (26 MB) and pulls Flask, pandas, pyarrow, scikit-learn, docker, ... ---
  mlflow-skinny==3.17.2
  # the sqlite tracking + model registry store (full mlflow's extra dependencies, minus the server)
  sqlalchemy==2.1.9            # 2.1: greenlet is optional, not needed for sqlite
  alembic==1.20.1              # schema migrations run when the store is created
  mako==1.4.3                  # alembic's templates (MarkupSafe comes with jinja2 in the image)
  cryptography==50.0.2         # the registry's dbmodels import cryptography.fernet
  cffi==2.1.1                  #   (cryptography's)
  pycparser==3.12              #   (cffi's)
  # mlflow.keras (load) and mlflow.onnx import pandas at module level; pyarrow stays out
  pandas==3.1.1
  # mlflow-skinny's own dependencies that the image lacks
  cachetools==7.3.3
  cloudpickle==3.1.3
  sqlparse==0.6.1              # search_runs filter strings
  python-dotenv==1.2.4
  importlib-metadata==9.1.0
  zipp==4.1.2
  opentelemetry-api==1.45.2    # mlflow.tracing, imported by `import mlflow`
  opentelemetry-sdk==1.45.2
  opentelemetry-proto==1.45.2
  opentelemetry-semantic-conventions==0.66b2
  requests==2.34.2             # mlflow.utils.rest_utils, imported by `import mlflow`
  urllib3==2.8.0
  certifi==2026.10.19.post1
  charset-normalizer==3.5.3
  idna==3.20
  fastapi==0.165.0             # `import mlflow` -> mlflow.genai -> mlflow.gateway imports it
  starlette==1.10.0            #   (fastapi's)
  anyio==4.16.0                #   (starlette's)
  databricks-sdk==0.162.0      # `import mlflow` calls find_spec("databricks.agents"), which raises
                               #   without a `databricks` package (its google-auth stays out: unused)
  gitpython==3.2.1             # MLflow's source-version tag (optional there, small)
  gitdb==4.0.12
  smmap==5.0.3
  nvidia-ml-py==13.615.71      # pynvml: GPU utilisation/memory in MLflow's system metrics

  # --- probably in the image already (typer >= 0.2x needs pydantic; torch needs
  #     typing-extensions); install_wheelhouse.py installs these only where the image lacks them ---
  pydantic==2.14.4
  pydantic-core==2.50.5
  typing-inspection==0.4.5
  annotated-types==0.8.0
  typing-extensions==4.16.0
  annotated-doc==0.0.7         # fastapi's; typer >= 0.2x needs it too
  markupsafe==3.0.4            # mako's; jinja2 (a torch dependency) brings it
  click==8.5.1                 # mlflow's; typer >= 0.20 vendors its own, so maybe not there
)

PLATFORM_ARGS=(
  --only-binary=:all: --no-deps --implementation cp --python-version 3.12
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_28_x86_64
)

rm -rf "$DEST"
mkdir -p "$DEST"
echo "downloading ${#PACKAGES[@]} wheels (cp312, manylinux x86_64) into $DEST"
"$PY" -m pip download --quiet "${PLATFORM_ARGS[@]}" -d "$DEST" "${PACKAGES[@]}"

# rnnbench itself, from the working tree (tracked + untracked, not ignored files), built in a
# copy so that no build/ or egg-info lands in the repo. --no-deps: its declared dependencies
# (tensorflow, tf2onnx, full mlflow) are not what the GPU kit installs.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
(cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) \
  | tar -xf - -C "$SRC"
"$PY" -m pip wheel --quiet --no-deps -w "$DEST" "$SRC"

echo
echo "wheelhouse $DEST:"
ls -l "$DEST"/*.whl | awk '{printf "  %8.1f kB  %s\n", $5/1024, $NF}' | sed "s|$DEST/||"
count=$(ls "$DEST"/*.whl | wc -l)
bytes=$(du -sb "$DEST" | cut -f1)
mb=$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}')
echo "total: $count wheels, $mb MB (limit $LIMIT_MB MB)"
if [ "$bytes" -gt $((LIMIT_MB * 1000000)) ]; then
  echo "error: the wheelhouse is $mb MB, over the $LIMIT_MB MB limit" >&2
  exit 1
fi
