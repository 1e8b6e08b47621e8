"""Failure diagnosis by root cause (decision core: plain Python, no dagster imports).

Public API (what the failure sensor calls)::

    from orchestrator.diagnosis import diagnose, FailureMemory, CATEGORIES
    memory = FailureMemory()                     # project store (open_store())
    d = diagnose(message, system="fivetran", memory=memory)
    d.category, d.transient, d.confidence, d.evidence
    memory.observe(message, d.category, confidence=d.confidence, external_id=run_id)
    memory.record_resolution(message, d.category, "retry_with_backoff", worked=True)
    memory.learn_from_approval(message, category, resolution, approved=True)
    memory.best_resolution(d.category); memory.success_rates()
"""

from orchestrator.diagnosis.classifier import Diagnosis, diagnose, diagnose_batch, diagnose_records
from orchestrator.diagnosis.normalize import normalize, scrub
from orchestrator.diagnosis.rules import CATEGORIES, DEFAULT_TRANSIENT

__all__ = [
    "CATEGORIES",
    "DEFAULT_TRANSIENT",
    "Diagnosis",
    "FailureMemory",
    "diagnose",
    "diagnose_batch",
    "diagnose_records",
    "normalize",
    "scrub",
]


def __getattr__(name: str):
    # FailureMemory pulls in SQLAlchemy/the store; import it lazily.
    if name == "FailureMemory":
        from orchestrator.diagnosis.memory import FailureMemory

        return FailureMemory
    raise AttributeError(name)
