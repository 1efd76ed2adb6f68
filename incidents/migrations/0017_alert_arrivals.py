"""Pending alert arrivals move from a flag on the alert to their own narrow table.

Clearing the flag when a burst's arrivals were written rewrote every alert of a storm a
second time (a new version of a wide row, an entry in each of its indexes). Arrivals
still pending are carried over, and back on the way down. The flag's partial index is
dropped CONCURRENTLY on PostgreSQL, so intake keeps working while it goes.
"""

import django.db.models.deletion
from django.db import migrations, models

COPY_FORWARD = (
    "INSERT INTO incidents_alertarrival (alert_id, incident_id) "
    "SELECT id, incident_id FROM incidents_alert "
    "WHERE arrival_pending AND incident_id IS NOT NULL"
)
COPY_BACK = (
    "UPDATE incidents_alert SET arrival_pending = true "
    "WHERE id IN (SELECT alert_id FROM incidents_alertarrival)"
)
PENDING_INDEX = "alert_arrival_pending ON incidents_alert (incident_id) WHERE arrival_pending"


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_pending_index(apps, schema_editor):
    schema_editor.execute(
        f"DROP INDEX{_concurrently(schema_editor)} IF EXISTS alert_arrival_pending"
    )


def create_pending_index(apps, schema_editor):
    schema_editor.execute(
        f"CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS {PENDING_INDEX}"
    )


class Migration(migrations.Migration):
    atomic = False  # DROP/CREATE INDEX CONCURRENTLY cannot run in a transaction

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
            ],
        ),
        migrations.RunSQL(COPY_FORWARD, COPY_BACK),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_pending_index, create_pending_index)],
            state_operations=[
                migrations.RemoveIndex(model_name="alert", name="alert_arrival_pending"),
            ],
        ),
        migrations.RemoveField(model_name="alert", name="arrival_pending"),
    ]
