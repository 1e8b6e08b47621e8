{#- Timestamps no later than now plus a tolerance (clock skew between connectors and warehouse). -#}
{% test not_in_future(model, column_name, tolerance_hours=24) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} > timezone('UTC', now()) + interval '{{ tolerance_hours }} hours'
{% endtest %}
