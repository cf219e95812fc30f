{#- Money is exact: decimal(18,2) (NUMBER(18,2) on Snowflake), never a float, so an amount reaches every
    destination with exactly the digits it arrived with. -#}
{% macro money_type() -%}
    decimal(18, 2)
{%- endmacro %}

{#- Text to money: NULL when the text is not a number or does not fit 16 digits and cents (Snowflake's TRY_CAST
    only takes text, so `text` must be a string on every engine). More than two decimals round to the cent. -#}
{% macro safe_money(text) -%}
    {{ dbt.safe_cast(text, money_type()) }}
{%- endmacro %}
