"""Pending alert arrivals move from a flag on the alert to their own narrow table.

Clearing the flag when a burst's arrivals were written rewrote every alert of a storm a
second time (a new version of a wide row, an entry in each of its indexes). Arrivals
still pending are carried over (and back on the way down).

On PostgreSQL the flag's column and partial index stay in the database for now, the
column given a default, so processes of the earlier release still running during a
rolling deploy keep storing alerts (they name the column) and gathering their own flags.
New code neither reads nor writes them (a new alert's false puts no entry in the partial
index). A later migration drops both, once no process of the earlier release is left.
SQLite (one embedded process, no rolling deploy) drops the column now.
"""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

COPY_FORWARD = [
    "INSERT INTO incidents_alertarrival (alert_id, incident_id) "
    "SELECT id, incident_id FROM incidents_alert "
    "WHERE arrival_pending AND incident_id IS NOT NULL",
    # Taken over: an earlier-release process gathering meanwhile must not name them again.
    "UPDATE incidents_alert SET arrival_pending = false WHERE arrival_pending",
]
COPY_BACK = [
    "UPDATE incidents_alert SET arrival_pending = true "
    "WHERE id IN (SELECT alert_id FROM incidents_alertarrival)",
]
PENDING_INDEX = "alert_arrival_pending ON incidents_alert (incident_id) WHERE arrival_pending"


def retire_flag(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE incidents_alert ALTER COLUMN arrival_pending SET DEFAULT false"
        )
        return
    alert = apps.get_model("incidents", "Alert")
    schema_editor.execute("DROP INDEX IF EXISTS alert_arrival_pending")
    schema_editor.remove_field(alert, alert._meta.get_field("arrival_pending"))


def restore_flag(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE incidents_alert ALTER COLUMN arrival_pending DROP DEFAULT")
        return
    alert = apps.get_model("incidents", "Alert")
    schema_editor.add_field(alert, alert._meta.get_field("arrival_pending"))
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {PENDING_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0016_alert_arrival_pending_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="AlertArrival",
            fields=[
                (
                    "alert",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="incidents.alert",
                    ),
                ),
                (
                    "incident",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="incidents.incident",
                    ),
                ),
                (
                    "arrived_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
        ),
        migrations.RunSQL(COPY_FORWARD, COPY_BACK),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(retire_flag, restore_flag)],
            state_operations=[
                migrations.RemoveIndex(model_name="alert", name="alert_arrival_pending"),
                migrations.RemoveField(model_name="alert", name="arrival_pending"),
            ],
        ),
    ]
