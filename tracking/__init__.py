"""MLflow tracking: URI resolution, reachability checks, the run layout contract."""
