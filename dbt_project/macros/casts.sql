{#- Timestamps land either naive (UTC by convention) or with a time zone depending on the
    connector; normalise every one to a naive UTC timestamp. The profile pins TimeZone=UTC. -#}
{% macro to_utc_timestamp(column) -%}
    timezone('UTC', cast({{ column }} as timestamptz))
{%- endmacro %}

{#- Stripe amounts are integer minor units (cents). -#}
{% macro cents_to_dollars(column, scale=2) -%}
    round(cast({{ column }} as decimal(18, 2)) / 100, {{ scale }})
{%- endmacro %}
