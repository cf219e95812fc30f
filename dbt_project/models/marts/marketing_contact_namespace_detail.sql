{#
  The namespace detail synced to Iterable every 24 hours, one row per user e-mail with a nested
  JSON array holding one object per namespace the user belongs to. Only users created within the last
  `namespace_sync_window_months` months (two) are kept, for storage cost.

  DuckDB builds it in `namespace_detail_buckets` buckets of e-mails (macros/namespace_detail.sql): the model
  creates the table from bucket 0 and post-hooks insert the others, so no single group-by spills.
#}
{%- set buckets = namespace_detail_buckets() %}
{%- set inserts = [] %}
{%- for bucket in range(1, buckets) %}
    {%- do inserts.append(
        "insert into {{ this }} select * from ({{ namespace_detail_select(" ~ bucket ~ ", " ~ buckets ~ ") }})"
    ) %}
{%- endfor %}
{{ config(post_hook=inserts) }}

{{ namespace_detail_select(0, buckets) }}
