-- Product application users: latest version per user, each belonging to a CRM account.
with latest as (
    {{ airbyte_latest(source('product', 'users'), 'user_id') }}
)

select
    cast(user_id as varchar) as user_id,
    cast(account_id as varchar) as account_id,
    lower(cast(email as varchar)) as email,
    lower(cast(plan as varchar)) as plan,
    {{ to_utc_timestamp('signed_up_at') }} as signed_up_at,
    {{ to_utc_timestamp('_airbyte_extracted_at') }} as extracted_at
from latest
