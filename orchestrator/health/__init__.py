"""Connector health (decision core, no Dagster imports): per-sync signals, anomalies against each
table's own seasonal baseline, the hold on untrusted loads, health scores and early warning.

    from orchestrator.health.detect import TableSeries, verdicts
    from orchestrator.health.score import health_report
"""
