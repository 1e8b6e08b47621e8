-- Daily invoicing and collections from Stripe on a continuous calendar (days without invoices
-- are 0): invoiced, collected (paid invoices), outstanding (open) and written off
-- (uncollectible), in USD.
with invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
),

bounds as (
    select min(invoice_date) as first_day, max(invoice_date) as last_day from invoices
),

calendar as (
    select cast(day as date) as revenue_date
    from bounds,
        unnest(generate_series(
            cast(bounds.first_day as timestamp), cast(bounds.last_day as timestamp), interval 1 day
        )) as days(day)
    where bounds.first_day is not null
),

daily as (
    select
        invoice_date,
        count(*) as invoices_issued,
        count(*) filter (where status = 'paid') as invoices_paid,
        sum(amount_due) filter (where status <> 'void') as amount_invoiced,
        sum(amount_paid) filter (where status = 'paid') as amount_collected,
        sum(amount_due - amount_paid) filter (where status = 'open') as amount_outstanding,
        sum(amount_due) filter (where status = 'uncollectible') as amount_written_off,
        count(distinct customer_id) as customers_invoiced
    from invoices
    group by invoice_date
)

select
    calendar.revenue_date,
    coalesce(daily.invoices_issued, 0) as invoices_issued,
    coalesce(daily.invoices_paid, 0) as invoices_paid,
    coalesce(daily.customers_invoiced, 0) as customers_invoiced,
    coalesce(daily.amount_invoiced, 0) as amount_invoiced,
    coalesce(daily.amount_collected, 0) as amount_collected,
    greatest(coalesce(daily.amount_outstanding, 0), 0) as amount_outstanding,
    coalesce(daily.amount_written_off, 0) as amount_written_off,
    sum(coalesce(daily.amount_collected, 0)) over (
        partition by date_trunc('month', calendar.revenue_date) order by calendar.revenue_date
    ) as amount_collected_mtd
from calendar
left join daily on calendar.revenue_date = daily.invoice_date
