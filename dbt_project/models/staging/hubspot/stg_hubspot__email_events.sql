-- HubSpot email engagement events (append-only): one row per event.
with latest as (
    {{ airbyte_latest(source('hubspot', 'email_events'), 'id') }}
)

select
    cast(id as varchar) as email_event_id,
    cast(campaign_id as varchar) as campaign_id,
    lower(cast(recipient as varchar)) as recipient_email,
    upper(cast(type as varchar)) as event_type,
    {{ to_utc_timestamp('created_at') }} as created_at,
    cast({{ to_utc_timestamp('created_at') }} as date) as event_date,
    {{ to_utc_timestamp('_airbyte_extracted_at') }} as extracted_at
from latest
