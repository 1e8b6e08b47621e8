-- One row per opportunity with account, owner, stage order, win-probability-weighted amount
-- and age, for the sales pipeline dashboard.
with opportunities as (
    select * from {{ ref('stg_salesforce__opportunities') }}
),

accounts as (
    select account_id, account_name, industry, billing_country
    from {{ ref('stg_salesforce__accounts') }}
),

users as (
    select user_id, user_name, title from {{ ref('stg_salesforce__users') }}
),

stages as (
    select * from (values
        ('Prospecting', 1, 0.10),
        ('Qualification', 2, 0.20),
        ('Proposal', 3, 0.50),
        ('Negotiation', 4, 0.75),
        ('Closed Won', 5, 1.00),
        ('Closed Lost', 6, 0.00)
    ) as stages(stage_name, stage_order, win_probability)
)

select
    opportunities.opportunity_id,
    opportunities.opportunity_name,
    opportunities.account_id,
    accounts.account_name,
    accounts.industry,
    accounts.billing_country,
    opportunities.owner_user_id,
    users.user_name as owner_name,
    users.title as owner_title,
    opportunities.stage_name,
    stages.stage_order,
    stages.win_probability,
    opportunities.is_closed,
    opportunities.is_won,
    opportunities.amount,
    round(opportunities.amount * stages.win_probability, 2) as weighted_amount,
    opportunities.created_at,
    opportunities.close_date,
    date_trunc('quarter', opportunities.close_date) as close_quarter,
    not opportunities.is_closed and opportunities.close_date < cast(timezone('UTC', now()) as date) as is_past_due,
    datediff('day', cast(opportunities.created_at as date), opportunities.close_date) as days_to_close
from opportunities
left join accounts on opportunities.account_id = accounts.account_id
left join users on opportunities.owner_user_id = users.user_id
left join stages on opportunities.stage_name = stages.stage_name
