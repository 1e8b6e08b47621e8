{#- Partition window contract with Dagster.

    Dagster runs `tag:partitioned_daily` models once per daily partition with
    `--vars '{"min_date": "<partition start ISO>", "max_date": "<partition end ISO>"}'`.
    Without those vars the filter is a no-op (full build). The window is half-open:
    min_date <= column < max_date, compared in UTC. -#}
{% macro has_partition_window() -%}
    {{ return(var('min_date', none) is not none and var('max_date', none) is not none) }}
{%- endmacro %}

{% macro partition_window_filter(column) -%}
    {%- if has_partition_window() -%}
        {{ column }} >= {{ to_utc_timestamp("'" ~ var('min_date') ~ "'") }}
        and {{ column }} < {{ to_utc_timestamp("'" ~ var('max_date') ~ "'") }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
