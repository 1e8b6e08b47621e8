{#- Timestamps land either naive (UTC by convention) or with a time zone depending on the
    connector; normalise every one to a naive UTC timestamp. The profile pins TimeZone=UTC. -#}
{% macro to_utc_timestamp(column) -%}
    timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{#- Stripe amounts are integer minor units (cents); the result is an exact decimal(18, 2).
    divisor=1200 turns a yearly price in cents into a monthly one in dollars. -#}
{% macro cents_to_dollars(column, divisor=100) -%}
    cast(cast({{ column }} as double) / {{ divisor }} as decimal(18, 2))
{%- endmacro %}
