"""What the runs say: every finding, claim and verdict is computed in ``analysis`` (one rule
per statistic); ``report`` renders them as report.md and figures; ``claims`` is the claims'
public name."""
