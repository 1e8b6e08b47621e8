select a.account_id, a.account_name, a.segment, count(i.invoice_id) as invoices
from {{ ref('stg_crm__accounts') }} a left join {{ ref('stg_billing__invoices') }} i using (account_id)
group by all
