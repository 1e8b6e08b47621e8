-- One row per CRM account joining the four systems that know about it:
-- Salesforce (owner, pipeline), Stripe (MRR, revenue, receivables), Zendesk (support load, SLA)
-- and the product database (adoption). Every metric defaults to 0 when a system has no data.
with accounts as (
    select * from {{ ref('stg_salesforce__accounts') }}
),

owners as (
    select * from {{ ref('stg_salesforce__users') }}
),

billing as (
    select
        customers.account_id,
        count(distinct customers.customer_id) as billing_customers,
        min(customers.created_at) as first_billing_at
    from {{ ref('stg_stripe__customers') }} as customers
    where customers.account_id is not null
    group by customers.account_id
),

subscriptions as (
    select
        account_id,
        sum(current_mrr) as current_mrr,
        count(*) filter (where is_revenue_generating) as active_subscriptions,
        count(*) filter (where status = 'past_due') as past_due_subscriptions
    from {{ ref('int_subscriptions_enriched') }}
    where account_id is not null
    group by account_id
),

invoices as (
    select
        customers.account_id,
        sum(invoices.amount_paid) filter (where invoices.status = 'paid') as lifetime_revenue,
        sum(invoices.amount_due - invoices.amount_paid) filter (where invoices.status = 'open') as open_receivables
    from {{ ref('stg_stripe__invoices') }} as invoices
    inner join {{ ref('stg_stripe__customers') }} as customers
        on invoices.customer_id = customers.customer_id
    where customers.account_id is not null
    group by customers.account_id
),

support as (
    select
        account_id,
        count(*) as tickets_total,
        count(*) filter (where not is_resolved) as open_tickets,
        count(*) filter (where created_at >= timezone('UTC', now()) - interval 30 day) as tickets_30d,
        count(*) filter (where sla_status in ('breached', 'breached_open')) as sla_breaches
    from {{ ref('int_ticket_sla') }}
    where account_id is not null
    group by account_id
),

pipeline as (
    select
        account_id,
        sum(amount) filter (where not is_closed) as open_pipeline_amount,
        count(*) filter (where not is_closed) as open_opportunities,
        sum(amount) filter (where is_won) as won_amount
    from {{ ref('stg_salesforce__opportunities') }}
    group by account_id
),

usage as (
    select * from {{ ref('int_account_product_usage') }}
)

select
    accounts.account_id,
    accounts.account_name,
    accounts.industry,
    accounts.billing_country,
    accounts.owner_user_id,
    owners.user_name as owner_name,
    owners.email as owner_email,
    accounts.created_at,
    coalesce(billing.billing_customers, 0) as billing_customers,
    billing.first_billing_at,
    coalesce(subscriptions.current_mrr, 0) as current_mrr,
    coalesce(subscriptions.active_subscriptions, 0) as active_subscriptions,
    coalesce(subscriptions.past_due_subscriptions, 0) as past_due_subscriptions,
    coalesce(invoices.lifetime_revenue, 0) as lifetime_revenue,
    -- Overpaid open invoices (amount_paid > amount_due) do not reduce receivables below 0.
    greatest(coalesce(invoices.open_receivables, 0), 0) as open_receivables,
    coalesce(support.tickets_total, 0) as tickets_total,
    coalesce(support.open_tickets, 0) as open_tickets,
    coalesce(support.tickets_30d, 0) as tickets_30d,
    coalesce(support.sla_breaches, 0) as sla_breaches,
    coalesce(pipeline.open_pipeline_amount, 0) as open_pipeline_amount,
    coalesce(pipeline.open_opportunities, 0) as open_opportunities,
    coalesce(pipeline.won_amount, 0) as won_amount,
    coalesce(usage.product_users, 0) as product_users,
    coalesce(usage.active_users_7d, 0) as active_users_7d,
    coalesce(usage.active_users_30d, 0) as active_users_30d,
    coalesce(usage.events_30d, 0) as events_30d,
    usage.last_event_at
from accounts
left join owners on accounts.owner_user_id = owners.user_id
left join billing on accounts.account_id = billing.account_id
left join subscriptions on accounts.account_id = subscriptions.account_id
left join invoices on accounts.account_id = invoices.account_id
left join support on accounts.account_id = support.account_id
left join pipeline on accounts.account_id = pipeline.account_id
left join usage on accounts.account_id = usage.account_id
