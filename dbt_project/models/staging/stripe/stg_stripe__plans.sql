-- Stripe price plans: latest version per plan, amounts in dollars, monthly equivalent amount.
with latest as (
    {{ fivetran_latest(source('stripe', 'plan'), 'id') }}
)

select
    cast(id as varchar) as plan_id,
    cast(nickname as varchar) as plan_name,
    cast(amount as bigint) as amount_cents,
    {{ cents_to_dollars('amount') }} as amount,
    lower(cast(currency as varchar)) as currency,
    lower(cast(interval as varchar)) as billing_interval,
    case lower(cast(interval as varchar))
        when 'year' then {{ cents_to_dollars('amount', 1200) }}
        else {{ cents_to_dollars('amount') }}
    end as monthly_amount,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
