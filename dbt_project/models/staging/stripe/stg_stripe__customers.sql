-- Stripe customers: latest version per customer, linked to the CRM account via metadata.
with latest as (
    {{ fivetran_latest(source('stripe', 'customer'), 'id') }}
)

select
    cast(id as varchar) as customer_id,
    cast(salesforce_account_id as varchar) as account_id,
    cast(name as varchar) as customer_name,
    lower(cast(email as varchar)) as email,
    {{ to_utc_timestamp('created') }} as created_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
