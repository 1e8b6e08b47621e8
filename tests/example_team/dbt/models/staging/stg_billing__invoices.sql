select id as invoice_id, account_id, amount_cents / 100.0 as amount, status, issued_at
from {{ source('billing', 'invoices') }}
