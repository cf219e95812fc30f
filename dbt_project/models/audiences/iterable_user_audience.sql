{#
  Exactly the Iterable `users/bulkUpdate` user objects to send: one per e-mail of a recently created user
  (the two-month window), with the namespace array and CRM marketing fields as `dataFields`.
  Only opted-in people: anyone whose CRM contact is opted out, or whose e-mail unsubscribed in Marketo,
  is left out (only the opt-in `GitLab Marketing` message type is used).
#}
with namespace_detail as (
    select * from {{ ref('marketing_contact_namespace_detail') }}
),

contacts as (
    select * from {{ ref('marketing_contacts') }}
    where email is not null
    qualify row_number() over (partition by email order by updated_at desc, person_id desc) = 1
),

{# Consent first: an e-mail is left out when any CRM contact carrying it is opted out, not only the latest. -#}
opted_out_emails as (
    select email from {{ ref('marketing_contacts') }}
    where email is not null and not is_opted_in
    union
    select email from {{ ref('stg_marketo__unsubscribes') }}
    where email is not null
),

final as (
    select
        namespace_detail.email,
        cast(namespace_detail.user_id as {{ dbt.type_string() }}) as user_id,
        contacts.person_id,
        namespace_detail.user_created_at,
        {{ json_object([
            ('namespaces', 'namespace_detail.namespace_detail'),
            ('namespaceCount', 'namespace_detail.namespace_count'),
            ('leadStatus', 'contacts.lead_status'),
            ('initialSource', 'contacts.initial_source'),
            ('initialSourceBucket', 'contacts.initial_source_bucket'),
            ('personScore', 'contacts.person_score'),
            ('isMql', 'contacts.is_mql'),
        ]) }} as data_fields
    from namespace_detail
    left join contacts on namespace_detail.email = contacts.email
    left join opted_out_emails on namespace_detail.email = opted_out_emails.email
    where opted_out_emails.email is null
)

select * from final
