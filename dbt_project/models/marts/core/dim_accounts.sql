-- Account dimension: the account 360 plus a lifecycle stage and a simple health score that
-- the revenue, pipeline and support dashboards slice by.
with accounts as (
    select * from {{ ref('int_account_360') }}
)

select
    *,
    case
        when current_mrr > 0 then 'customer'
        when lifetime_revenue > 0 then 'churned'
        when open_opportunities > 0 then 'opportunity'
        else 'prospect'
    end as lifecycle_stage,
    -- 0..100: adoption (40) + support experience (30) + billing standing (30).
    cast(round(
        40 * case when product_users = 0 then 0 else least(active_users_30d / product_users, 1) end
        + 30 * case when tickets_total = 0 then 1 else 1 - least(sla_breaches / tickets_total, 1) end
        + 30 * case when past_due_subscriptions = 0 and open_receivables = 0 then 1
                    when past_due_subscriptions = 0 then 0.5
                    else 0 end
    ) as integer) as health_score
from accounts
