{#-
  Contact roles are recognised however they are spelled: a raw role maps to its canonical value ('GitLab Admin',
  'Sold-To') when it matches exactly one of them ignoring case, whitespace, hyphens and underscores ('Gitlab admin',
  ' sold_to ', 'SOLD-TO'); any other role keeps its text without surrounding whitespace. `raw_gitlab_role` keeps what
  arrived. `has_usable_email`: the e-mail has the shape of an address (something@domain.tld, no whitespace), so a
  sync can send it.
-#}
with source as (
    select * from {{ source('cs', 'cs_contacts') }}
),

roles as (
    select 'GitLab Admin' as gitlab_role
    union all
    select 'Sold-To' as gitlab_role
),

canonical_roles as (
    select
        {{ loose_match_key('gitlab_role') }} as match_key,
        min(gitlab_role) as gitlab_role
    from roles
    group by 1
    having count(*) = 1
),

renamed as (
    select
        cast(source.account_id as bigint) as account_id,
        cast(source.person_id as bigint) as person_id,
        {{ normalize_text('source.email') }} as email,
        coalesce(canonical_roles.gitlab_role, {{ strip_whitespace('source.gitlab_role') }}) as gitlab_role,
        source.gitlab_role as raw_gitlab_role
    from source
    left join canonical_roles
        on {{ loose_match_key('source.gitlab_role') }} = canonical_roles.match_key
    where source.account_id is not null
),

final as (
    select
        renamed.*,
        coalesce({{ matches_pattern('renamed.email', '[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:]]+') }}, false)
            as has_usable_email
    from renamed
)

select * from final
