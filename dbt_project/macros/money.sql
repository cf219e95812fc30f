{#- Money is exact: decimal(18,2) (NUMBER(18,2) on Snowflake), never a float, so an amount reaches every
    destination with exactly the digits it arrived with. -#}
{% macro money_type() -%}
    decimal(18, 2)
{%- endmacro %}

{#- An amount written as text: an optional leading '-', 1 to 16 digits, optionally a '.' and one or two decimals.
    Anything else is not an amount: more decimals (never rounded), an exponent (1e3), a '+', underscores, thousands
    separators, currency signs, non-ASCII digits. Surrounding whitespace is stripped before (`strip_whitespace`).
    `company_carr_matches_source` checks the result with its own parser of the same rule. -#}
{% macro amount_pattern() -%}
    -?[0-9]{1,16}([.][0-9]{1,2})?
{%- endmacro %}

{#- Text to money: NULL unless the text (already stripped of surrounding whitespace) is an amount by
    `amount_pattern`; such a text fits decimal(18,2) exactly, so the cast neither rounds nor overflows (Snowflake's
    TRY_CAST only takes text, so `text` must be a string on every engine). -#}
{% macro safe_money(text) -%}
    case when {{ matches_pattern(text, amount_pattern()) }} then {{ dbt.safe_cast(text, money_type()) }} end
{%- endmacro %}
