-- Stripe invoices: latest version per invoice, amounts in cents and dollars.
with latest as (
    {{ fivetran_latest(source('stripe', 'invoice'), 'id') }}
)

select
    cast(id as varchar) as invoice_id,
    cast(customer_id as varchar) as customer_id,
    cast(subscription_id as varchar) as subscription_id,
    lower(cast(status as varchar)) as status,
    cast(amount_due as bigint) as amount_due_cents,
    cast(amount_paid as bigint) as amount_paid_cents,
    {{ cents_to_dollars('amount_due') }} as amount_due,
    {{ cents_to_dollars('amount_paid') }} as amount_paid,
    {{ to_utc_timestamp('created') }} as created_at,
    cast({{ to_utc_timestamp('created') }} as date) as invoice_date,
    {{ to_utc_timestamp('_fivetran_synced') }} as synced_at
from latest
