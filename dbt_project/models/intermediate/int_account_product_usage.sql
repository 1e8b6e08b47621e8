-- Product adoption per CRM account: users, recently active users and event volume.
-- Reads the staging event log (not the partitioned fct_product_events_daily) so that the
-- unpartitioned part of the graph never waits on a partitioned model.
with users as (
    select * from {{ ref('stg_product__users') }}
),

events as (
    select * from {{ ref('stg_product__events') }}
),

user_activity as (
    select
        user_id,
        max(occurred_at) as last_event_at,
        count(*) filter (where occurred_at >= timezone('UTC', now()) - interval 7 day) as events_7d,
        count(*) filter (where occurred_at >= timezone('UTC', now()) - interval 30 day) as events_30d,
        count(*) filter (where event_type = 'feature_used' and occurred_at >= timezone('UTC', now()) - interval 30 day) as feature_uses_30d
    from events
    group by user_id
)

select
    users.account_id,
    count(*) as product_users,
    count(*) filter (where user_activity.events_7d > 0) as active_users_7d,
    count(*) filter (where user_activity.events_30d > 0) as active_users_30d,
    coalesce(sum(user_activity.events_30d), 0) as events_30d,
    coalesce(sum(user_activity.feature_uses_30d), 0) as feature_uses_30d,
    max(user_activity.last_event_at) as last_event_at,
    min(users.signed_up_at) as first_signup_at
from users
left join user_activity on users.user_id = user_activity.user_id
where users.account_id is not null
group by users.account_id
