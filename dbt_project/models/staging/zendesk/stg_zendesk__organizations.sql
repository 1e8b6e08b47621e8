-- Zendesk organizations: latest version per organization; external_id is the CRM account id.
with latest as (
    {{ fivetran_latest(source('zendesk', 'organization'), 'id') }}
)

select
    cast(id as bigint) as organization_id,
    cast(name as varchar) as organization_name,
    cast(external_id as varchar) as account_id,
    {{ to_utc_timestamp('created_at') }} as created_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
