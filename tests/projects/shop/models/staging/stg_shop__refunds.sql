-- Every landed column passed through: a column the source drops simply disappears here.
select *
from {{ source('shop', 'refunds') }}
