-- opportunity_latest: for each tick and opportunity, the latest opportunity snapshot visible at
-- the tick (the plan: macros/latest_snapshot.sql). Closed opportunities stay: conditions test
-- is_open or stage.
{% from "macros/latest_snapshot.sql" import latest_snapshot %}
{{ latest_snapshot(source("landing", "raw_opportunities"), "opportunity_id") }}
