-- Zendesk tickets: latest version per ticket.
with latest as (
    {{ fivetran_latest(source('zendesk', 'ticket'), 'id') }}
)

select
    cast(id as bigint) as ticket_id,
    cast(organization_id as bigint) as organization_id,
    cast(subject as varchar) as subject,
    lower(cast(status as varchar)) as status,
    lower(cast(priority as varchar)) as priority,
    lower(cast(channel as varchar)) as channel,
    lower(cast(status as varchar)) in ('solved', 'closed') as is_resolved,
    {{ to_utc_timestamp('created_at') }} as created_at,
    {{ to_utc_timestamp('updated_at') }} as updated_at,
    {{ to_utc_timestamp('solved_at') }} as solved_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
