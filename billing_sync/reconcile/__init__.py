"""Reconciliation: the ledger against the event stream and analytics, healed by new records."""

from .run import AnalyticsSource, Rules, RunResult, discrepancy_counts, reconcile

__all__ = ["AnalyticsSource", "Rules", "RunResult", "discrepancy_counts", "reconcile"]
