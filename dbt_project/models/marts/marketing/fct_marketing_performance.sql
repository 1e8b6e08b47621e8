-- Campaign performance per day: Google Ads delivery and spend, HubSpot email engagement and
-- last-touch attributed won revenue (credited on the opportunity's close date).
with campaigns as (
    select * from {{ ref('stg_hubspot__campaigns') }}
),

ads as (
    select
        campaign_id,
        report_date as performance_date,
        sum(impressions) as impressions,
        sum(clicks) as ad_clicks,
        sum(cost) as ad_spend
    from {{ ref('stg_google_ads__ad_group_ad_report') }}
    where campaign_id is not null
    group by campaign_id, report_date
),

emails as (
    select
        campaign_id,
        event_date as performance_date,
        count(*) filter (where event_type = 'SENT') as emails_sent,
        count(*) filter (where event_type = 'DELIVERED') as emails_delivered,
        count(*) filter (where event_type = 'OPEN') as email_opens,
        count(*) filter (where event_type = 'CLICK') as email_clicks,
        count(*) filter (where event_type = 'BOUNCE') as email_bounces
    from {{ ref('stg_hubspot__email_events') }}
    group by campaign_id, event_date
),

attributed as (
    select
        campaign_id,
        close_date as performance_date,
        count(*) as attributed_opportunities,
        sum(attributed_amount) as attributed_revenue
    from {{ ref('int_campaign_attribution') }}
    group by campaign_id, close_date
),

campaign_days as (
    select campaign_id, performance_date from ads
    union
    select campaign_id, performance_date from emails
    union
    select campaign_id, performance_date from attributed
)

select
    campaign_days.campaign_id || '|' || campaign_days.performance_date as campaign_day_id,
    campaign_days.campaign_id,
    campaigns.campaign_name,
    campaigns.channel,
    campaign_days.performance_date,
    coalesce(ads.impressions, 0) as impressions,
    coalesce(ads.ad_clicks, 0) as ad_clicks,
    coalesce(ads.ad_spend, 0) as ad_spend,
    case when coalesce(ads.impressions, 0) > 0 then round(ads.ad_clicks / ads.impressions, 4) end as click_through_rate,
    case when coalesce(ads.ad_clicks, 0) > 0 then round(ads.ad_spend / ads.ad_clicks, 2) end as cost_per_click,
    coalesce(emails.emails_sent, 0) as emails_sent,
    coalesce(emails.emails_delivered, 0) as emails_delivered,
    coalesce(emails.email_opens, 0) as email_opens,
    coalesce(emails.email_clicks, 0) as email_clicks,
    coalesce(emails.email_bounces, 0) as email_bounces,
    coalesce(attributed.attributed_opportunities, 0) as attributed_opportunities,
    coalesce(attributed.attributed_revenue, 0) as attributed_revenue
from campaign_days
left join campaigns on campaign_days.campaign_id = campaigns.campaign_id
left join ads
    on campaign_days.campaign_id = ads.campaign_id
    and campaign_days.performance_date = ads.performance_date
left join emails
    on campaign_days.campaign_id = emails.campaign_id
    and campaign_days.performance_date = emails.performance_date
left join attributed
    on campaign_days.campaign_id = attributed.campaign_id
    and campaign_days.performance_date = attributed.performance_date
