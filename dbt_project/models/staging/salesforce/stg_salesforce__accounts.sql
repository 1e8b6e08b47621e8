-- Salesforce accounts: latest version per account; Salesforce-side deletes (is_deleted) dropped too.
with latest as (
    {{ fivetran_latest(source('salesforce', 'account'), 'id') }}
)

select
    cast(id as varchar) as account_id,
    cast(name as varchar) as account_name,
    cast(industry as varchar) as industry,
    upper(cast(billing_country as varchar)) as billing_country,
    cast(owner_id as varchar) as owner_user_id,
    {{ to_utc_timestamp('created_date') }} as created_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
where not coalesce(cast(is_deleted as boolean), false)
