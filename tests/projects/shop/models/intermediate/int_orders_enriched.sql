select
    o.*,
    c.country,
    c.segment
from {{ ref('stg_shop__orders') }} as o
left join {{ ref('stg_shop__customers') }} as c on o.customer_id = c.customer_id
