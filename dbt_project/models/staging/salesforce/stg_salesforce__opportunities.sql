-- Salesforce opportunities: latest version per deal, with open / won / lost flags.
with latest as (
    {{ fivetran_latest(source('salesforce', 'opportunity'), 'id') }}
)

select
    cast(id as varchar) as opportunity_id,
    cast(account_id as varchar) as account_id,
    cast(owner_id as varchar) as owner_user_id,
    cast(name as varchar) as opportunity_name,
    cast(stage_name as varchar) as stage_name,
    cast(amount as decimal(18, 2)) as amount,
    cast(close_date as date) as close_date,
    stage_name in ('Closed Won', 'Closed Lost') as is_closed,
    stage_name = 'Closed Won' as is_won,
    -- The CRM's own flag, kept for reconciliation; stage_name is the source of truth.
    coalesce(cast(is_won as boolean), false) as is_won_flag,
    {{ to_utc_timestamp('created_date') }} as created_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
