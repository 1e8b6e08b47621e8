-- Last-touch attribution of won opportunities to marketing campaigns.
-- An engagement touch is an OPEN or CLICK of a campaign email by a recipient who is a Salesforce
-- contact; a won opportunity is credited to the latest touch at its account within the 90 days
-- before the opportunity was created (one row per attributed opportunity).
with touches as (
    select
        email_events.campaign_id,
        contacts.account_id,
        email_events.created_at as touched_at
    from {{ ref('stg_hubspot__email_events') }} as email_events
    inner join {{ ref('stg_salesforce__contacts') }} as contacts
        on email_events.recipient_email = contacts.email
    where email_events.event_type in ('OPEN', 'CLICK')
),

won as (
    select *
    from {{ ref('stg_salesforce__opportunities') }}
    where is_won
),

candidates as (
    select
        won.opportunity_id,
        won.account_id,
        won.amount,
        won.close_date,
        won.created_at as opportunity_created_at,
        touches.campaign_id,
        touches.touched_at,
        row_number() over (
            partition by won.opportunity_id
            order by touches.touched_at desc, touches.campaign_id
        ) as touch_rank
    from won
    inner join touches
        on won.account_id = touches.account_id
        and touches.touched_at <= won.created_at
        and touches.touched_at >= won.created_at - interval 90 day
)

select
    opportunity_id,
    campaign_id,
    account_id,
    touched_at as attributed_touch_at,
    opportunity_created_at,
    close_date,
    amount as attributed_amount
from candidates
where touch_rank = 1
