-- contact_events: a contact's recent_events, joined onto contact_facts (extends: contact_facts).
SELECT as_of, participant_id, recent_events FROM {{ ref('recent_events') }}
