with latest as (
    {{ fivetran_latest(source('shop', 'customers'), 'id') }}
)

select
    id as customer_id,
    email,
    country,
    segment,
    signed_up_at
from latest
