"""Joining by Alertmanager group: the lookup as a PostgreSQL function that plans with
sorting and bitmap scans off (PostgreSQL only).

The lookup must walk the (integration, md5(group_key), -last_seen) index newest first and
stop at the first alert in an open incident. On statistics taken before a storm (a new
integration analysed with hardly any alerts, until autovacuum's next analyse) the planner
found "read the whole group, then sort it" just as cheap, and a storm's every new alert
read all the alerts before it. A function's own settings hold for the plans made inside
it, and with those two off the ordered walk is the only plan left. (The window lookups'
order is their partial indexes' own, see migration 0018.)

The open statuses are those of incidents.models.OPEN_STATUSES.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION firebreak_alert_group_incident(
    p_integration bigint, p_group text, p_exclude bigint
) RETURNS bigint LANGUAGE plpgsql STABLE
SET enable_sort = off SET enable_bitmapscan = off
AS $$
BEGIN
    RETURN (
        SELECT a.incident_id FROM incidents_alert a
        WHERE a.integration_id = p_integration AND md5(a.group_key) = md5(p_group)
          AND a.group_key = p_group AND NOT (a.status = 'resolved') AND a.group_key <> ''
          AND a.id <> p_exclude
          AND (SELECT i.status FROM incidents_incident i WHERE i.id = a.incident_id)
              IN ('investigating', 'identified', 'monitoring')
        ORDER BY a.last_seen DESC LIMIT 1
    );
END
$$
"""
DROP = "DROP FUNCTION IF EXISTS firebreak_alert_group_incident(bigint, text, bigint)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0018_alert_window_indexes"),
    ]

    operations = [migrations.RunPython(create, drop)]
