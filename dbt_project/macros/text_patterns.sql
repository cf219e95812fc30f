{#-
  Regular expressions that behave the same on DuckDB and Snowflake. Write patterns without backslashes (`[0-9]`,
  `[.]`, `[[:space:]]`): a backslash is an escape character in a Snowflake string literal and not in DuckDB's.
  `[[:space:]]` is ASCII whitespace on both: space, tab, newline, carriage return, vertical tab, form feed.
-#}

{#- Whether the whole text matches `pattern` (NULL for NULL text). -#}
{% macro matches_pattern(text, pattern) -%}
    {{ return(adapter.dispatch('matches_pattern', 'marketing_pipelines')(text, pattern)) }}
{%- endmacro %}

{#- Snowflake's REGEXP_LIKE matches the whole text. -#}
{% macro default__matches_pattern(text, pattern) -%}
    regexp_like({{ text }}, '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__matches_pattern(text, pattern) -%}
    regexp_full_match({{ text }}, '{{ pattern }}')
{%- endmacro %}

{#- The text with every match of `pattern` removed. -#}
{% macro remove_pattern(text, pattern) -%}
    {{ return(adapter.dispatch('remove_pattern', 'marketing_pipelines')(text, pattern)) }}
{%- endmacro %}

{#- Snowflake's REGEXP_REPLACE replaces every occurrence. -#}
{% macro default__remove_pattern(text, pattern) -%}
    regexp_replace({{ text }}, '{{ pattern }}', '')
{%- endmacro %}

{#- DuckDB's regexp_replace replaces the first occurrence unless told 'g'. -#}
{% macro duckdb__remove_pattern(text, pattern) -%}
    regexp_replace({{ text }}, '{{ pattern }}', '', 'g')
{%- endmacro %}

{#- The text without leading and trailing whitespace of any kind (see `trim_whitespace`); NULL when nothing is
    left. -#}
{% macro strip_whitespace(text) -%}
    nullif({{ trim_whitespace(text) }}, '')
{%- endmacro %}

{#- A label's matching key: it ignores case, whitespace, hyphens and underscores (' mql ', 'Bad  data', 'Gitlab admin',
    ' sold_to ' and 'SOLD-TO' match 'MQL', 'Bad Data', 'GitLab Admin' and 'Sold-To'); NULL when nothing is left.
    A raw value maps to a canonical label only when exactly one label has its key. -#}
{% macro loose_match_key(text) -%}
    nullif({{ remove_pattern('lower(' ~ text ~ ')', '[-_[:space:]]') }}, '')
{%- endmacro %}
