"""Joining by Alertmanager group: an index on the group key's md5 (PostgreSQL only).

The (integration, -last_seen) index of open alerts let the planner, its row counts stale
during a storm into a new incident, read and sort every open alert of the group for each
new one. SQLite (the embedded, one-user setup) has no md5 and does without.
"""

from django.db import migrations

GROUP_INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS alert_open_group_seen ON incidents_alert "
    "(integration_id, md5(group_key), last_seen DESC) "
    "WHERE NOT status = 'resolved' AND group_key <> ''"
)


OLD_INDEX = (
    "alert_open_integration_seen ON incidents_alert (integration_id, last_seen DESC) "
    "WHERE NOT status = 'resolved'"
)


def create_group_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(GROUP_INDEX)
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS alert_open_integration_seen")
    else:
        schema_editor.execute("DROP INDEX IF EXISTS alert_open_integration_seen")


def drop_group_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {OLD_INDEX}")
        schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS alert_open_group_seen")
    else:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {OLD_INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("incidents", "0014_alert_indexes_new_alerts_write"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create_group_index, drop_group_index)],
            state_operations=[
                migrations.RemoveIndex(model_name="alert", name="alert_open_integration_seen")
            ],
        ),
    ]
