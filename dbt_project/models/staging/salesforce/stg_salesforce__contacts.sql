-- Salesforce contacts: latest version per contact, email lower-cased for matching.
with latest as (
    {{ fivetran_latest(source('salesforce', 'contact'), 'id') }}
)

select
    cast(id as varchar) as contact_id,
    cast(account_id as varchar) as account_id,
    cast(first_name as varchar) as first_name,
    cast(last_name as varchar) as last_name,
    trim(concat_ws(' ', first_name, last_name)) as full_name,
    lower(cast(email as varchar)) as email,
    {{ to_utc_timestamp('created_date') }} as created_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
