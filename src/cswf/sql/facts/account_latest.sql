-- account_latest: for each tick and account, the latest account snapshot visible at the tick
-- (the plan: macros/latest_snapshot.sql). Accounts stay once seen, churned ones included.
{% from "macros/latest_snapshot.sql" import latest_snapshot %}
{{ latest_snapshot(source("landing", "raw_accounts"), "account_id") }}
