-- fct_revenue_daily must account for every paid dollar in Stripe: total collected equals the
-- sum of amount_paid over paid invoices (a join or calendar bug would drop or duplicate days).
with mart as (
    select coalesce(sum(amount_collected), 0) as collected from {{ ref('fct_revenue_daily') }}
),

source as (
    select coalesce(sum(amount_paid), 0) as collected
    from {{ ref('stg_stripe__invoices') }}
    where status = 'paid'
)

select mart.collected as mart_collected, source.collected as invoices_collected
from mart, source
where abs(mart.collected - source.collected) > 0.01
