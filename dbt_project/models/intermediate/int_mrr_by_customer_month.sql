-- Monthly recurring revenue per Stripe customer per calendar month.
-- Each customer gets a continuous month spine from its first subscription month to the current
-- month, so months without revenue show up as 0 (needed to see churn and reactivation).
-- A subscription counts in every month from its start month through its end month (canceled) or
-- the current month (active / past_due); trials are left out.
with subscriptions as (
    select * from {{ ref('int_subscriptions_enriched') }}
),

subscription_months as (
    select
        subscription_id,
        customer_id,
        account_id,
        cast(month_start as date) as month_start,
        plan_monthly_amount as mrr
    from subscriptions,
        unnest(generate_series(
            cast(date_trunc('month', started_at) as timestamp),
            cast(date_trunc('month', coalesce(ended_at, greatest(timezone('UTC', now()), started_at))) as timestamp),
            interval 1 month
        )) as months(month_start)
    -- Trials are not revenue yet; active, past_due and (until they end) canceled ones are.
    where status in ('active', 'past_due', 'canceled')
),

customer_spine as (
    select
        customer_id,
        any_value(account_id) as account_id,
        min(month_start) as first_month
    from subscription_months
    group by customer_id
),

spine as (
    select
        customer_spine.customer_id,
        customer_spine.account_id,
        cast(month_start as date) as month_start
    from customer_spine,
        unnest(generate_series(
            cast(customer_spine.first_month as timestamp),
            cast(date_trunc('month', timezone('UTC', now())) as timestamp),
            interval 1 month
        )) as months(month_start)
),

monthly as (
    select
        customer_id,
        month_start,
        sum(mrr) as mrr,
        count(*) filter (where mrr > 0) as paying_subscriptions
    from subscription_months
    group by customer_id, month_start
)

select
    spine.customer_id || '|' || strftime(spine.month_start, '%Y-%m') as customer_month_id,
    spine.customer_id,
    spine.account_id,
    spine.month_start,
    coalesce(monthly.mrr, 0) as mrr,
    coalesce(monthly.paying_subscriptions, 0) as paying_subscriptions
from spine
left join monthly
    on spine.customer_id = monthly.customer_id
    and spine.month_start = monthly.month_start
