with orders as (
    select customer_id, count(*) as orders, sum(amount) as lifetime_value
    from {{ ref('stg_shop__orders') }}
    group by customer_id
)

select
    c.customer_id,
    c.email,
    c.country,
    c.signed_up_at,
    coalesce(orders.orders, 0) as orders,
    coalesce(orders.lifetime_value, 0) as lifetime_value
from {{ ref('stg_shop__customers') }} as c
left join orders on orders.customer_id = c.customer_id
