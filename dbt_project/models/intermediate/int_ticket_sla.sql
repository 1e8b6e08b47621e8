-- Zendesk tickets with resolution time against the resolution SLA for their priority
-- (var ticket_sla_hours). A ticket whose solved_at precedes created_at is flagged and gets no
-- resolution time rather than a negative one.
{%- set sla = var('ticket_sla_hours') %}
with tickets as (
    select * from {{ ref('stg_zendesk__tickets') }}
),

organizations as (
    select * from {{ ref('stg_zendesk__organizations') }}
),

timed as (
    select
        tickets.*,
        organizations.account_id,
        case tickets.priority
            {%- for priority, hours in sla.items() %}
            when '{{ priority }}' then {{ hours }}
            {%- endfor %}
            else {{ sla['normal'] }}
        end as sla_target_hours,
        tickets.solved_at is not null and tickets.solved_at < tickets.created_at as has_invalid_timestamps,
        case
            when tickets.solved_at >= tickets.created_at
                then round(epoch(tickets.solved_at - tickets.created_at) / 3600.0, 2)
        end as resolution_hours,
        round(epoch(timezone('UTC', now()) - tickets.created_at) / 3600.0, 2) as age_hours
    from tickets
    left join organizations on tickets.organization_id = organizations.organization_id
)

select
    *,
    case
        when resolution_hours is not null and resolution_hours <= sla_target_hours then 'met'
        when resolution_hours is not null then 'breached'
        when has_invalid_timestamps then 'unknown'
        when is_resolved then 'unknown'
        when age_hours > sla_target_hours then 'breached_open'
        else 'pending'
    end as sla_status
from timed
