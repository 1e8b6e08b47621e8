-- One row per Zendesk ticket with its CRM account, SLA target, resolution time and SLA status.
with tickets as (
    select * from {{ ref('int_ticket_sla') }}
),

accounts as (
    select account_id, account_name, industry from {{ ref('stg_salesforce__accounts') }}
)

select
    tickets.ticket_id,
    tickets.organization_id,
    tickets.account_id,
    accounts.account_name,
    accounts.industry,
    tickets.subject,
    tickets.status,
    tickets.priority,
    tickets.channel,
    tickets.is_resolved,
    tickets.created_at,
    cast(tickets.created_at as date) as created_date,
    tickets.updated_at,
    tickets.solved_at,
    tickets.sla_target_hours,
    tickets.resolution_hours,
    tickets.age_hours,
    tickets.sla_status,
    tickets.sla_status in ('breached', 'breached_open') as is_sla_breached,
    tickets.has_invalid_timestamps
from tickets
left join accounts on tickets.account_id = accounts.account_id
