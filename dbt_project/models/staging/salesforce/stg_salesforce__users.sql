-- Salesforce users (account owners and sales reps): latest version per user.
with latest as (
    {{ fivetran_latest(source('salesforce', 'user'), 'id') }}
)

select
    cast(id as varchar) as user_id,
    cast(name as varchar) as user_name,
    lower(cast(email as varchar)) as email,
    cast(title as varchar) as title,
    coalesce(cast(is_active as boolean), false) as is_active,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
