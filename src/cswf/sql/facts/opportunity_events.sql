-- opportunity_events: a opportunity's recent_events, joined onto opportunity_facts (extends: opportunity_facts).
SELECT as_of, participant_id, recent_events FROM {{ ref('recent_events') }}
