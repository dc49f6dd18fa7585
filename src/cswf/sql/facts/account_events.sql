-- account_events: a account's recent_events, joined onto account_facts (extends: account_facts).
SELECT as_of, participant_id, recent_events FROM {{ ref('recent_events') }}
