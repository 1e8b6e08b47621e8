-- Subscriptions with their plan, customer and CRM account, and the MRR each contributes today.
-- MRR counts active and past_due subscriptions (past_due is still contracted revenue); trials
-- and canceled subscriptions contribute nothing.
with subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }}
),

plans as (
    select * from {{ ref('stg_stripe__plans') }}
),

customers as (
    select * from {{ ref('stg_stripe__customers') }}
)

select
    subscriptions.subscription_id,
    subscriptions.customer_id,
    customers.account_id,
    subscriptions.plan_id,
    plans.plan_name,
    plans.billing_interval,
    subscriptions.status,
    subscriptions.status in ('active', 'past_due') as is_revenue_generating,
    plans.monthly_amount as plan_monthly_amount,
    case
        when subscriptions.status in ('active', 'past_due') then plans.monthly_amount
        else 0
    end as current_mrr,
    subscriptions.created_at as started_at,
    -- A canceled subscription ends with its last paid period; guard against a period end that
    -- precedes the start (bad source data) so month spines stay well-formed.
    case
        when subscriptions.status = 'canceled'
            then greatest(coalesce(subscriptions.current_period_end, subscriptions.created_at), subscriptions.created_at)
    end as ended_at,
    subscriptions.current_period_start,
    subscriptions.current_period_end
from subscriptions
inner join plans on subscriptions.plan_id = plans.plan_id
left join customers on subscriptions.customer_id = customers.customer_id
