-- contact_latest: for each tick and contact, the latest contact snapshot visible at the tick
-- (the plan: macros/latest_snapshot.sql). A contact removed upstream stays: conditions can test
-- snapshot_age_days.
{% from "macros/latest_snapshot.sql" import latest_snapshot %}
{{ latest_snapshot(source("landing", "raw_contacts"), "contact_id") }}
