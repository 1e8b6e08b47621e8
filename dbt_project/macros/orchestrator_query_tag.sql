{#- Per-model cost attribution: every query a model runs carries the model's identity, so the
    orchestrator's Snowflake and BigQuery cost sources (orchestrator/cost) price each dbt model.

    * Snowflake: the session `query_tag` is set to JSON while a model materializes and reset
      after it, so QUERY_ATTRIBUTION_HISTORY.QUERY_TAG names the model
      (`snowflake__set_query_tag` / `snowflake__unset_query_tag` below override dbt-snowflake's,
      which dispatch finds first in the root project). An explicit `query_tag` config on a
      model still wins.
    * BigQuery: dbt_project.yml sets `query-comment: {comment: "{{ orchestrator_query_comment(node) }}",
      job-label: true}`; dbt-bigquery turns the comment's JSON keys into job labels
      (INFORMATION_SCHEMA.JOBS.labels: `dbt_model`, `dbt_resource`).
    * Any other adapter (DuckDB, the embedded default): nothing is set; the comment is a SQL
      comment only.

    To use it in your own project: copy this file into your project's macros/ and add the
    `query-comment` block to your dbt_project.yml (README "Your own dbt project"). -#}

{% macro orchestrator_query_tag(node=none) -%}
    {#- JSON identifying the node: {"app": "dbt", "node_id", "dbt_model", "dagster_asset", "dbt_invocation_id"}.
        dagster_asset mirrors dagster-dbt's default key (meta.dagster.asset_key, else the
        configured schema + name, else the name); the cost sources prefer node_id when they
        know the project's asset graph. -#}
    {%- set node = node if node is not none else (model if model is defined else none) -%}
    {%- if node is none or node is not mapping and node.unique_id is not defined -%}
        {{ return(tojson({"app": "dbt", "dbt_invocation_id": invocation_id})) }}
    {%- endif -%}
    {%- set cfg = node.config if node.config is defined and node.config is not none else {} -%}
    {%- set meta = (cfg.get('meta') if cfg.get is defined else none) or node.meta or {} -%}
    {%- set key = ((meta.get('dagster') or {}).get('asset_key')) if meta is mapping else none -%}
    {%- if not key -%}
        {%- set schema = cfg.get('schema') if cfg.get is defined else none -%}
        {%- set key = [schema, node.name] if schema else [node.name] -%}
    {%- endif -%}
    {{ return(tojson({
        "app": "dbt",
        "node_id": node.unique_id,
        "dbt_model": node.name,
        "dagster_asset": (key if key is string else key | join('/')),
        "dbt_invocation_id": invocation_id,
    })) }}
{%- endmacro %}


{% macro orchestrator_query_comment(node) -%}
    {#- dbt's query comment (BigQuery job labels with job-label: true): flat keys and values that
        survive label sanitising (lower case, [a-z0-9_-], 63 characters). -#}
    {%- if node is none -%}
        {{ return(tojson({"app": "dbt", "dbt_invocation_id": invocation_id})) }}
    {%- endif -%}
    {{ return(tojson({
        "app": "dbt",
        "dbt_model": node.name,
        "dbt_resource": node.resource_type,
        "dbt_invocation_id": invocation_id,
    })) }}
{%- endmacro %}


{% macro snowflake__set_query_tag() -%}
    {%- set new_query_tag = config.get('query_tag') or orchestrator_query_tag() -%}
    {%- set original_query_tag = get_current_query_tag() -%}
    {%- set literal = new_query_tag | replace("\\", "\\\\") | replace("'", "\\'") -%}
    {%- do run_query("alter session set query_tag = '" ~ literal ~ "'") -%}
    {{ return(original_query_tag) }}
{%- endmacro %}


{% macro snowflake__unset_query_tag(original_query_tag) -%}
    {#- Always reset (dbt-snowflake resets only when a query_tag config was set), so tests and
        hooks that run between models are not charged to the last model. Runs the statement
        itself: callers use it with `do`. -#}
    {%- if original_query_tag -%}
        {%- do run_query("alter session set query_tag = '" ~ (original_query_tag | replace("\\", "\\\\") | replace("'", "\\'")) ~ "'") -%}
    {%- else -%}
        {%- do run_query("alter session unset query_tag") -%}
    {%- endif -%}
{%- endmacro %}
