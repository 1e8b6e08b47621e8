-- Daily product usage per CRM account: active users, sessions and events by type.
-- Built from the staging event log (full rebuild, unpartitioned); the daily-partitioned detail
-- lives in fct_product_events_daily.
with events as (
    select * from {{ ref('stg_product__events') }}
),

users as (
    select user_id, account_id from {{ ref('stg_product__users') }}
)

select
    events.event_date || '|' || users.account_id as account_day_id,
    events.event_date as usage_date,
    users.account_id,
    count(distinct events.user_id) as active_users,
    count(distinct events.session_id) as sessions,
    count(*) as events,
    count(*) filter (where events.event_type = 'page_view') as page_views,
    count(*) filter (where events.event_type = 'feature_used') as feature_uses,
    count(*) filter (where events.event_type = 'invite_sent') as invites_sent,
    count(*) filter (where events.event_type = 'export') as exports,
    count(*) filter (where events.event_type = 'login') as logins
from events
inner join users on events.user_id = users.user_id
where users.account_id is not null
group by events.event_date, users.account_id
