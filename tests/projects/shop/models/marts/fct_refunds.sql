select
    id as refund_id,
    order_id,
    cast(amount as double) / 100 as refund_amount,
    refunded_at
from {{ ref('stg_shop__refunds') }}
