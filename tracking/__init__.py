"""The MLflow side of rnnbench, one file per concern; it imports nothing from ``suite``.

- :mod:`tracking.layout`: the contract: tag and param names, the run-name format, "every run
  of an experiment", "the latest FINISHED run per config".
- :mod:`tracking.store`: the tracking URI, resolved and checked before any work starts.
- :mod:`tracking.logger`: writes a training run in that layout (``MlflowLogger`` callbacks,
  the run's tags, its final metrics and model).
"""

from tracking.layout import *  # noqa: F403
from tracking.layout import all_runs, latest_per_config, parse_run_name, run_name  # noqa: F401
from tracking.logger import (  # noqa: F401
    MlflowLogger,
    close_run,
    git_commit,
    log_keras_model,
    package_version,
    run_tags,
    system_metrics_available,
)
from tracking.store import (  # noqa: F401
    DEFAULT_TRACKING_URI,
    TrackingError,
    check_tracking_uri,
    resolve_tracking_uri,
    sqlite_path,
)
