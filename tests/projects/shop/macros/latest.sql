{% macro fivetran_latest(relation, key) -%}
    select *
    from (
        select *
        from {{ relation }}
        qualify row_number() over (
            partition by {{ key }}
            order by _fivetran_synced desc, _landing_file desc, file_row_number desc
        ) = 1
    )
    where not coalesce(_fivetran_deleted, false)
{%- endmacro %}

{% macro cents_to_dollars(column) -%}
    cast(cast({{ column }} as double) / 100 as decimal(18, 2))
{%- endmacro %}
