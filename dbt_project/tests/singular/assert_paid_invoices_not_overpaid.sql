-- A paid invoice should not collect more than it asked for (amount_paid <= amount_due).
-- Warn only: Stripe allows overpayment via customer balance, and the sandbox scenario draws
-- amount_paid and amount_due independently, so this is a data-quality signal, not a blocker.
{{ config(severity='warn') }}

select invoice_id, amount_due_cents, amount_paid_cents
from {{ ref('stg_stripe__invoices') }}
where status = 'paid'
  and amount_paid_cents > amount_due_cents
