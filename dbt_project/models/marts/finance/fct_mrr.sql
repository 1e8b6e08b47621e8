-- MRR per customer per month with the movement against the previous month
-- (new, expansion, contraction, churn, reactivation, retained).
with monthly as (
    select * from {{ ref('int_mrr_by_customer_month') }}
),

with_previous as (
    select
        *,
        lag(mrr) over (partition by customer_id order by month_start) as previous_mrr,
        max(mrr) over (
            partition by customer_id order by month_start
            rows between unbounded preceding and 1 preceding
        ) as max_previous_mrr
    from monthly
)

select
    customer_month_id,
    customer_id,
    account_id,
    month_start,
    mrr,
    coalesce(previous_mrr, 0) as previous_mrr,
    mrr - coalesce(previous_mrr, 0) as mrr_change,
    paying_subscriptions,
    case
        when coalesce(previous_mrr, 0) = 0 and mrr > 0 and coalesce(max_previous_mrr, 0) = 0 then 'new'
        when coalesce(previous_mrr, 0) = 0 and mrr > 0 then 'reactivation'
        when previous_mrr > 0 and mrr = 0 then 'churn'
        when mrr > previous_mrr then 'expansion'
        when mrr < previous_mrr then 'contraction'
        when mrr > 0 then 'retained'
        else 'inactive'
    end as mrr_movement
from with_previous
