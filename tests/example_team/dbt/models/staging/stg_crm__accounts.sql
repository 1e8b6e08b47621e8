select id as account_id, name as account_name, segment, created_at from {{ source('crm', 'accounts') }}
