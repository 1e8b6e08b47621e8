{{ config(tags=['weekly']) }}
select date_trunc('week', i.issued_at) as week, a.segment, sum(i.amount) as revenue
from {{ ref('stg_billing__invoices') }} i join {{ ref('dim_accounts') }} a using (account_id)
where i.status = 'paid'
  and i.issued_at >= '{{ var("week_start") }}' and i.issued_at < '{{ var("week_end") }}'
group by all
