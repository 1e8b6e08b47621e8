-- MRR can never be negative, per customer-month or in total per month.
select 'customer_month' as level, customer_month_id as id, mrr
from {{ ref('fct_mrr') }}
where mrr < 0

union all

select 'month' as level, cast(month_start as varchar) as id, sum(mrr) as mrr
from {{ ref('fct_mrr') }}
group by month_start
having sum(mrr) < 0
