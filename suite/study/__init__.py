"""Many runs: sweep specs and presets (``spec``, ``presets/``), the planner and executors
(``sweep``), the worker processes (``worker``), the recording of a run in MLflow
(``record``) and progress displays (``progress``)."""
