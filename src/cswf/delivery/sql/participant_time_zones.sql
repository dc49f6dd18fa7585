-- participant_time_zones: each account's and contact's IANA time zone from its latest snapshot
-- on or before $day, for quiet hours. Contacts without a zone of their own take their
-- account's. Tables that have not landed yet are simply absent (see zones.py).
WITH accounts AS (
    SELECT account_id AS participant_id, time_zone
    FROM raw_accounts
    WHERE snapshot_date <= $day
    QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY snapshot_date DESC) = 1
)
SELECT participant_id, time_zone FROM accounts WHERE time_zone IS NOT NULL
{contacts}
