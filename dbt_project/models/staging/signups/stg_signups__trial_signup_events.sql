{{ stg_signup_events('trial_signup_events', 'trial_signups') }}
