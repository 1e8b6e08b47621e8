-- HubSpot campaigns: latest version per campaign.
with latest as (
    {{ airbyte_latest(source('hubspot', 'campaigns'), 'id') }}
)

select
    cast(id as varchar) as campaign_id,
    cast(name as varchar) as campaign_name,
    lower(cast(channel as varchar)) as channel,
    {{ to_utc_timestamp('started_at') }} as started_at,
    {{ to_utc_timestamp('_airbyte_extracted_at') }} as extracted_at
from latest
