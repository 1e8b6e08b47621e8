"""Human-readable explanation of one asset's effective SLA (used by `policies explain`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from orchestrator.policies.model import format_duration

if TYPE_CHECKING:
    from orchestrator.policies.resolve import Resolution


def fmt_instant(at: datetime, tz) -> str:
    local = at.astimezone(tz)
    return f"{local:%a %Y-%m-%d %H:%M %Z} ({at.astimezone(timezone.utc):%H:%M} UTC)"


def explain_text(res: Resolution, key: str) -> str:
    sla = res.sla(key)
    lines = [key]
    if sla is None:
        lines.append("  not governed by any SLA policy (no policy selects it or anything downstream)")
        return "\n".join(lines)
    by = lambda n: res.policy(n)  # noqa: E731
    prim = by(sla.primary_policy)
    how = "selected directly" if sla.direct else "inherited through its downstream deadline"
    lines.append(f"  primary policy: {prim.name} ({prim.where}), {how}")
    if len(sla.policies) > 1:
        lines.append(f"  also selected by: {', '.join(sla.policies[1:])} (lower precedence)")
    lines.append(f"  tier: {sla.tier.value}")
    lines.append(f"  predicted duration of this asset: {format_duration(sla.predicted_duration_s)}"
                 f" ({res.durations.estimate(res.graph.node(key)).basis})")  # type: ignore[union-attr]
    dl = sla.deadline
    if dl is not None:
        src = by(dl.policy)
        zone = dl.schedule.zone
        lines.append(f"  effective deadline: {fmt_instant(dl.at, zone)}")
        lines.append(
            f"    = {dl.target} due {fmt_instant(dl.target_deadline, zone)}"
            f" minus {format_duration(dl.lead)} of predicted work downstream"
        )
        lines.append(f"    source policy: {src.name} ({src.file}:{src.line_of('deadline')}),"
                     f" {dl.schedule.describe()}")
        lines.append("  critical path (this asset first, the policy's asset last):")
        chain = res.chain(key, dl.policy)
        width = max(len(link.key) for link in chain)
        for i, link in enumerate(chain):
            mark = "  <- policy deadline" if i == len(chain) - 1 else ""
            lines.append(
                f"    {link.key:<{width}}  complete by {link.complete_by.astimezone(zone):%H:%M %Z}"
                f"  runs ~{format_duration(link.duration_s):>6} ({link.basis}){mark}"
            )
        others = sorted(
            (n for n in res._leads.get(key, {}) if n != dl.policy and n in res._targets),
        )
        for name in others:
            lead = res._leads[key][name][0]
            at = res._targets[name] - timedelta(seconds=lead)
            lines.append(f"  also reached by {name}'s deadline: complete by "
                         f"{fmt_instant(at, by(name).schedule().zone)} (less urgent)")
    if sla.max_lag is not None:
        lines.append(f"  max lag: {format_duration(sla.max_lag)} (from {sla.max_lag_policy}'s "
                     f"max_lag {format_duration(by(sla.max_lag_policy).max_lag)} minus path)")
    for name in sla.infeasible:
        for inf in res.infeasible:
            if inf.policy == name:
                lines.append(f"  CANNOT BE MET: {inf.message}")
                break
        else:
            lines.append(f"  CANNOT BE MET: {name}'s deadline/max_lag (path too long)")
    lines.append(f"  rollout: {sla.rollout.value}; without approval: "
                 + (", ".join(sorted(a.value for a in sla.auto_approve)) or "nothing")
                 + ("" if sla.rollout.value == "auto" or not sla.auto_approve
                    else f" (ignored: rollout is {sla.rollout.value})"))
    lines.append(f"  owners: {', '.join(sla.owners) or '-'}")
    for name, budget in sla.budgets:
        parts = [f"{budget.per_day:g} {budget.unit}/day" if budget.per_day is not None else "",
                 f"{budget.per_month:g} {budget.unit}/month" if budget.per_month is not None else ""]
        lines.append(f"  budget ({name}, shared by {len(res.governed_by(name))} assets): "
                     + ", ".join(p for p in parts if p))
    for w in sla.off_peak:
        lines.append(f"  off-peak: {w.describe()}")
    for w in sla.blackout:
        lines.append(f"  blackout: {w.describe()}")
    return "\n".join(lines)
