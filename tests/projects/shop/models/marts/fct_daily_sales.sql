select
    cast(ordered_at as date) as sale_date,
    channel,
    count(*) as orders,
    sum(amount) as revenue,
    sum(discount_cents) as discount_cents
from {{ ref('int_orders_enriched') }}
where status <> 'cancelled'
group by 1, 2
