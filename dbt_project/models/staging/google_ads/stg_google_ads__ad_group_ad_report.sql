-- Google Ads daily ad performance: latest version per report row, cost converted from micros.
with latest as (
    {{ airbyte_latest(source('google_ads', 'ad_group_ad_report'), 'id') }}
)

select
    cast(id as varchar) as ad_report_id,
    cast(campaign_id as varchar) as campaign_id,
    cast(segments_date as date) as report_date,
    cast(impressions as bigint) as impressions,
    cast(clicks as bigint) as clicks,
    cast(cost_micros as bigint) as cost_micros,
    cast(cast(cost_micros as double) / 1000000 as decimal(18, 2)) as cost,
    {{ to_utc_timestamp('_airbyte_extracted_at') }} as extracted_at
from latest
