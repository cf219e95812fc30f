{#
  The body of marketing_contact_namespace_detail for one bucket of e-mails: those whose hash modulo `buckets`
  is `bucket` (every e-mail when `buckets` is 1). A user's namespaces all land in its e-mail's bucket, so the
  buckets are disjoint and together give the whole table.
#}
{% macro namespace_detail_select(bucket, buckets) -%}
with users as (
    select * from {{ ref('stg_gitlab__users') }}
    where email is not null
        and created_at >= {{ dbt.dateadd('month', -1 * var('namespace_sync_window_months'), as_of_date()) }}
        {%- if buckets > 1 %}
        and hash(email) % {{ buckets }} = {{ bucket }}
        {%- endif %}
),

members as (
    select * from {{ ref('stg_gitlab__members') }}
),

namespaces as (
    select * from {{ ref('stg_gitlab__namespaces') }}
),

access_levels as (
    select * from {{ ref('dim_access_level') }}
),

member_counts as (
    select
        namespace_id,
        count(*) as current_member_count
    from members
    group by namespace_id
),

user_namespaces as (
    select
        users.email,
        users.user_id,
        users.created_at as user_created_at,
        namespaces.namespace_id,
        {{ json_object([
            ('ACTIVE_STAGE_COUNT', "case when namespaces.list_of_stages is null then 0 else "
                ~ dbt.length('namespaces.list_of_stages') ~ " - "
                ~ dbt.length(dbt.replace('namespaces.list_of_stages', "','", "''")) ~ " + 1 end"),
            ('CREATED_AT', 'namespaces.created_at'),
            ('CREATOR_USER_ID', 'namespaces.creator_user_id'),
            ('CURRENT_MEMBER_COUNT', 'coalesce(member_counts.current_member_count, 0)'),
            ('GITLAB_PLAN_IS_PAID', 'namespaces.is_plan_paid'),
            ('GITLAB_PLAN_TITLE', 'namespaces.plan_title'),
            ('GLM_CONTENT', 'namespaces.glm_content'),
            ('GLM_SOURCE', 'namespaces.glm_source'),
            ('IS_ACTIVE_TRIAL', "coalesce(namespaces.trial_start_date <= " ~ as_of_date()
                ~ " and namespaces.trial_end_date >= " ~ as_of_date() ~ ", false)"),
            ('IS_IMPACTED_BY_USER_LIMIT', 'namespaces.is_impacted_by_user_limit'),
            ('IS_NAMESPACE_PQL', 'namespaces.is_namespace_pql'),
            ('IS_SETUP_FOR_COMPANY', 'namespaces.is_setup_for_company'),
            ('LIST_OF_STAGES', 'namespaces.list_of_stages'),
            ('NAMESPACE_ID', 'namespaces.namespace_id'),
            ('TRIAL_START_DATE', 'namespaces.trial_start_date'),
            ('USER_ACCESS_LEVEL', 'members.access_level'),
            ('USER_ACCESS_LEVEL_NAME', 'access_levels.access_level_name'),
            ('USER_ID', 'users.user_id'),
        ]) }} as namespace_object
    from users
    inner join members on users.user_id = members.user_id
    inner join namespaces on members.namespace_id = namespaces.namespace_id
    left join member_counts on namespaces.namespace_id = member_counts.namespace_id
    left join access_levels on members.access_level = access_levels.access_level
),

final as (
    select
        email,
        min(user_id) as user_id,
        min(user_created_at) as user_created_at,
        count(*) as namespace_count,
        {{ json_array_agg('namespace_object', 'namespace_id') }} as namespace_detail
    from user_namespaces
    group by email
)

select * from final
{%- endmacro %}

{#
  How many buckets the model is built in. DuckDB: `namespace_detail_buckets` (var), so that each bucket's
  group-by fits in memory instead of spilling; Snowflake: one (a single statement).
#}
{% macro namespace_detail_buckets() -%}
    {{ return(adapter.dispatch('namespace_detail_buckets', 'marketing_pipelines')()) }}
{%- endmacro %}

{% macro default__namespace_detail_buckets() -%}
    {{ return(1) }}
{%- endmacro %}

{% macro duckdb__namespace_detail_buckets() -%}
    {{ return(var('namespace_detail_buckets') | int) }}
{%- endmacro %}
