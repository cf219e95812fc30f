{{ stg_signup_events('free_registration_events', 'free_registrations') }}
