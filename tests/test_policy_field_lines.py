"""Each policy knows the line of each of its own fields (errors point there), also in a file of
many policies: the per-policy line map is built in one pass over the document."""

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.policies.model import parse_policy_text


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_line_of_each_field_of_each_policy(shapes):
    lines = ["policies:"]
    expected = []
    for i, (with_tier, with_lag) in enumerate(shapes):
        where = {"name": len(lines) + 1}
        lines.append(f"  - name: p{i}")
        where["select"] = len(lines) + 1
        lines.append(f"    select: [{{group: g{i}}}]")
        where["deadline"] = len(lines) + 1
        lines.append(f"    deadline: {{cron: '{i % 60} 6 * * *', timezone: UTC}}")
        if with_tier:
            where["tier"] = len(lines) + 1
            lines.append("    tier: high")
        if with_lag:
            where["max_lag"] = len(lines) + 1
            lines.append("    max_lag: 30h")
        expected.append(where)
    policies, errors = parse_policy_text("\n".join(lines) + "\n", "p.yaml")
    assert errors == []
    assert len(policies) == len(shapes)
    for policy, where in zip(policies, expected):
        assert policy.where == f"p.yaml:{where['name']}"
        for field, line in where.items():
            assert policy.line_of(field) == line, (policy.name, field)
        assert policy.line_of("deadline", "cron") == where["deadline"]
        if "tier" not in where:  # a field the policy does not have: the policy's own line
            assert policy.line_of("tier") == where["name"]
