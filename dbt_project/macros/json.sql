{#
  Cross-warehouse JSON helpers. `json_object` builds one object from (key, expression) pairs, keeping nulls;
  `json_array_agg` aggregates such objects into a JSON array in a stable order.
#}
{% macro json_object(pairs) -%}
    {{ return(adapter.dispatch('json_object', 'marketing_pipelines')(pairs)) }}
{%- endmacro %}

{% macro default__json_object(pairs) -%}
    json_object(
        {%- for key, expression in pairs %}
        '{{ key }}', {{ expression }}{{ "," if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{% macro snowflake__json_object(pairs) -%}
    object_construct_keep_null(
        {%- for key, expression in pairs %}
        '{{ key }}', {{ expression }}{{ "," if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{% macro json_array_agg(expression, order_by) -%}
    {{ return(adapter.dispatch('json_array_agg', 'marketing_pipelines')(expression, order_by)) }}
{%- endmacro %}

{#
  DuckDB: an ordered aggregate (`list(x order by y)`) buffers every group in memory and cannot spill, so a
  large group-by fails under `memory_limit`. An unordered `list` of (sort key, value) structs spills like any
  hash aggregate; sorting each group's list afterwards (structs compare field by field) gives the same order,
  and the transform keeps only the values.
#}
{% macro default__json_array_agg(expression, order_by) -%}
    to_json(list_transform(
        list_sort(list({'sort_key': {{ order_by }}, 'value': {{ expression }}})),
        lambda item: struct_extract(item, 'value')
    ))
{%- endmacro %}

{% macro snowflake__json_array_agg(expression, order_by) -%}
    array_agg({{ expression }}) within group (order by {{ order_by }})
{%- endmacro %}
