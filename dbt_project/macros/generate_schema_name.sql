{#- Where each model lands in the warehouse.

    Models go to the schema named after their layer folder (staging, intermediate, marts),
    derived here from the model's path instead of a `+schema` config: a configured schema would
    become part of dagster-dbt's asset key (marts/fct_mrr), while the orchestrator's asset graph
    and the SLA policies address dbt models by their bare name (fct_mrr, stg_*).
    An explicit `schema` config still wins and is used as-is (no <target>_ prefix). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set layers = ['staging', 'intermediate', 'marts'] -%}
    {%- if custom_schema_name is not none -%}
        {{ custom_schema_name | trim }}
    {%- elif node is not none and node.resource_type == 'model' and node.fqn | length > 2 and node.fqn[1] in layers -%}
        {{ node.fqn[1] }}
    {%- else -%}
        {{ target.schema }}
    {%- endif -%}
{%- endmacro %}
