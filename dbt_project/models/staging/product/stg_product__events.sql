-- Product event log (append-only): one row per event, redelivered duplicates removed.
with latest as (
    {{ airbyte_latest(source('product', 'events'), 'event_id') }}
)

select
    cast(event_id as varchar) as event_id,
    cast(user_id as varchar) as user_id,
    lower(cast(event_type as varchar)) as event_type,
    cast(session_id as varchar) as session_id,
    {{ to_utc_timestamp('occurred_at') }} as occurred_at,
    cast({{ to_utc_timestamp('occurred_at') }} as date) as event_date,
    {{ to_utc_timestamp('_airbyte_extracted_at') }} as extracted_at
from latest
