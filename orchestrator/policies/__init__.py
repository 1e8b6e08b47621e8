"""SLA policies: the decision core's model of what the business needs (no Dagster imports).

    from orchestrator.policies import load_policies, resolve, DurationModel
    res = resolve(load_policies(["policies"]), graph, DurationModel(history), now)
    if not res.ok: skip(res.skip_reason)
    sla = res.sla("stripe/invoice")  # EffectiveSLA | None
"""

from orchestrator.policies.durations import DurationModel
from orchestrator.policies.model import ActionType, PolicyError, PolicySet, Rollout, Tier, load_policies
from orchestrator.policies.resolve import EffectiveDeadline, EffectiveSLA, Resolution, load_and_resolve, resolve

__all__ = [
    "ActionType", "DurationModel", "EffectiveDeadline", "EffectiveSLA", "PolicyError", "PolicySet",
    "Resolution", "Rollout", "Tier", "load_and_resolve", "load_policies", "resolve",
]
