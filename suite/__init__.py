"""rnnbench: models, clipping, training, sweeps, reports and ONNX export.

Heavy modules (tensorflow, keras, mlflow, onnxruntime) are imported lazily inside the
functions that need them, so ``rnnbench --help`` stays instant.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnnbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
