"""Claim 8: chrono initialisation lets LSTM go further."""

from __future__ import annotations

from suite.findings.claims.base import Claim
from suite.findings.claims.c7_ortho import beyond_per_task


class ChronoGoesFurther(Claim):
    number = 8
    text = "Chrono initialisation lets LSTM solve longer T than its default init."
    clauses = ("beyond lstm",)
    cells = ("chrono_lstm", "lstm")

    def decide(self, data):
        """Claim 8 (chrono initialisation lets LSTM go further): on every task both ran,
        chrono_lstm solves a length the default-init LSTM cannot with any setting (rule
        "Beyond", per task); combined over tasks as in "Combining clauses"."""
        return beyond_per_task(data, "chrono_lstm", "lstm")
