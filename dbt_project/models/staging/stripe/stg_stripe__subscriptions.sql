-- Stripe subscriptions: latest version per subscription with its current billing period.
with latest as (
    {{ fivetran_latest(source('stripe', 'subscription'), 'id') }}
)

select
    cast(id as varchar) as subscription_id,
    cast(customer_id as varchar) as customer_id,
    cast(plan_id as varchar) as plan_id,
    lower(cast(status as varchar)) as status,
    {{ to_utc_timestamp('current_period_start') }} as current_period_start,
    {{ to_utc_timestamp('current_period_end') }} as current_period_end,
    {{ to_utc_timestamp('created') }} as created_at,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
