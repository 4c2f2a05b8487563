"""rnnbench: can gradient clipping make a vanilla RNN learn long-range dependencies?

The layers, bottom to top (each imports only from the ones below it, and from ``tasks`` and
``tracking``):

- ``suite.core``: one model trained: backend, cells (``models``), clipping, the train step
  (``steps``), the training loop (``train``) and vectorised populations (``population``).
- ``suite.study``: many runs: sweep specs and presets, the planner and its workers, and the
  recording of a run in MLflow (``record``).
- ``suite.findings``: what the runs say: statistics, outcomes, claims (one entry each), the
  verdict, critical lengths, and the report that renders them (``report``).
- ``suite.deploy``: ONNX: winners exported with native recurrent ops, and inference that
  never imports TensorFlow.
- ``suite.perf`` (the benchmark) and ``suite.cli`` (the ``rnnbench`` command) sit on top.

Heavy modules (tensorflow, keras, mlflow, onnxruntime) are imported lazily inside the
functions that need them, so ``rnnbench --help`` stays instant.
"""

from tracking.logger import package_version

__version__ = package_version()
