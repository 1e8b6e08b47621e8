with latest as (
    {{ fivetran_latest(source('shop', 'orders'), 'id') }}
)

select
    id as order_id,
    customer_id,
    cast(amount as bigint) as amount_cents,
    {{ cents_to_dollars('amount') }} as amount,
    coalesce(discount, 0) as discount_cents,
    lower(status) as status,
    channel,
    cast(ordered_at as timestamp) as ordered_at
from latest
