"""The alerts of an incident whose arrival is still to be written on its timeline.

Gathering a burst's arrivals read every alert of the incident (the incident index, then
a filter): in a long storm, tens of thousands of rows every few seconds. Built
CONCURRENTLY on PostgreSQL, so intake keeps working while it runs.
"""

from django.db import migrations, models

INDEX = "alert_arrival_pending ON incidents_alert (incident_id) WHERE arrival_pending"


def forwards(apps, schema_editor):
    how = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {INDEX}")


def backwards(apps, schema_editor):
    how = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX{how} IF EXISTS alert_arrival_pending")


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("incidents", "0015_alert_group_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.AddIndex(
                    model_name="alert",
                    index=models.Index(
                        condition=models.Q(("arrival_pending", True)),
                        fields=["incident"],
                        name="alert_arrival_pending",
                    ),
                ),
            ],
        ),
    ]
