"""What the runs say. Bottom to top, each module imports only the ones above it in this list:

- ``stats``: Wilson intervals, exact one-sided tests, and the one significance rule every
  comparison goes through (shares: Fisher; per-run slopes: rank sum).
- ``data``: a sweep's runs read back from MLflow (``RunInfo``, ``SweepData``, ``load_sweep``).
- ``runs``: what one run's curves say (decay slope, spikes, budget-limited or plateaued).
- ``outcomes``: each configuration's outcome over the seeds it should have (solved, failed,
  cannot, undecided; missing seeds), lengths solved and brackets, monotonicity in T.
- ``comparisons``: helped, beyond, beats: configurations compared through the significance rule.
- ``claims``: one entry per claim (``claims/cN_*.py``) and the registry ``CLAIMS``.
- ``verdict``: the report's opening sentences.
- ``critical``: a critical-length sweep's brackets, and the judge its bisection uses.
- ``rules``: "How each finding is decided", printed from the docstrings of the code above.
- ``report``: renders all of it as report.md + figures, and decides nothing.
"""
