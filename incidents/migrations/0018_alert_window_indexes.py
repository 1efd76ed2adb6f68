"""The window-grouping index splits in two partial indexes, one per lookup shape.

Alerts routed by no rule get (service, -last_seen); those routed by a rule keep (service,
rule, -last_seen). Each lookup then reads its index in its own order, so the planner has
no cheaper-looking sort to choose when its statistics lag behind a storm. A new alert
still writes one of them, not both. Built and dropped CONCURRENTLY on PostgreSQL, outside
a transaction, so intake keeps working while it runs.
"""

from django.db import migrations, models

NEW_INDEXES = [
    "alert_service_default_incident ON incidents_alert (service_id, last_seen DESC) "
    "WHERE incident_id IS NOT NULL AND rule_id IS NULL",
    "alert_service_ruled_incident ON incidents_alert (service_id, rule_id, last_seen DESC) "
    "WHERE incident_id IS NOT NULL AND rule_id IS NOT NULL",
]
OLD_INDEX = (
    "alert_service_rule_incident ON incidents_alert (service_id, rule_id, last_seen DESC) "
    "WHERE incident_id IS NOT NULL"
)


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def forwards(apps, schema_editor):
    how = _concurrently(schema_editor)
    for index in NEW_INDEXES:
        schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {index}")
    schema_editor.execute(f"DROP INDEX{how} IF EXISTS {OLD_INDEX.split()[0]}")


def backwards(apps, schema_editor):
    how = _concurrently(schema_editor)
    schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {OLD_INDEX}")
    for index in NEW_INDEXES:
        schema_editor.execute(f"DROP INDEX{how} IF EXISTS {index.split()[0]}")


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("incidents", "0017_alert_arrivals"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.RemoveIndex(model_name="alert", name="alert_service_rule_incident"),
                migrations.AddIndex(
                    model_name="alert",
                    index=models.Index(
                        condition=models.Q(("incident__isnull", False), ("rule__isnull", True)),
                        fields=["service", "-last_seen"],
                        name="alert_service_default_incident",
                    ),
                ),
                migrations.AddIndex(
                    model_name="alert",
                    index=models.Index(
                        condition=models.Q(("incident__isnull", False), ("rule__isnull", False)),
                        fields=["service", "rule", "-last_seen"],
                        name="alert_service_ruled_incident",
                    ),
                ),
            ],
        ),
    ]
