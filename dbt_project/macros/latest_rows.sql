{#- Connector landing files hold one file per sync with new and updated rows, so one primary key
    can appear in several files: keep the latest version of each key. Fivetran soft deletes are
    applied after picking the latest version, so a delete in a later sync removes the row.
    Ties on the sync timestamp (a key written twice in one sync) go to the later file, then the
    later row in the file: the sources add _landing_file and file_row_number for this. -#}
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

{#- Airbyte (append + dedup emulated here): latest extraction wins; at-least-once delivery
    duplicates of append-only streams collapse to one row. -#}
{% macro airbyte_latest(relation, key) -%}
    select *
    from {{ relation }}
    qualify row_number() over (
        partition by {{ key }}
        order by _airbyte_extracted_at desc, _landing_file desc, file_row_number desc
    ) = 1
{%- endmacro %}
