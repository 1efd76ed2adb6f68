"""Alert indexes a new alert writes only when it needs them (see Alert.Meta).

The alert table is the busiest: on PostgreSQL the new indexes are built CONCURRENTLY
before the old ones are dropped CONCURRENTLY, outside a transaction, so intake and the
alert pages keep working while it runs. The foreign keys themselves do not change (only
their automatic indexes go), so the model changes are state only: no constraint is
dropped and re-validated.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

NEW_INDEXES = [
    "alert_service_rule_incident ON incidents_alert (service_id, rule_id, last_seen DESC) "
    "WHERE incident_id IS NOT NULL",
    "alert_rule ON incidents_alert (rule_id) WHERE rule_id IS NOT NULL",
    "alert_acknowledged_by ON incidents_alert (acknowledged_by_id) "
    "WHERE acknowledged_by_id IS NOT NULL",
]
OLD_INDEXES = [
    "alert_service_rule_seen",
    "incidents_alert_service_id_0981ca9c",
    "incidents_alert_rule_id_0c732018",
    "incidents_alert_acknowledged_by_id_903b24ef",
]
OLD_DEFINITIONS = [
    "alert_service_rule_seen ON incidents_alert (service_id, rule_id, last_seen DESC)",
    "incidents_alert_service_id_0981ca9c ON incidents_alert (service_id)",
    "incidents_alert_rule_id_0c732018 ON incidents_alert (rule_id)",
    "incidents_alert_acknowledged_by_id_903b24ef ON incidents_alert (acknowledged_by_id)",
]


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def forwards(apps, schema_editor):
    how = _concurrently(schema_editor)
    for index in NEW_INDEXES:
        schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {index}")
    for name in OLD_INDEXES:
        schema_editor.execute(f"DROP INDEX{how} IF EXISTS {name}")


def backwards(apps, schema_editor):
    how = _concurrently(schema_editor)
    for index in OLD_DEFINITIONS:
        schema_editor.execute(f"CREATE INDEX{how} IF NOT EXISTS {index}")
    for index in NEW_INDEXES:
        schema_editor.execute(f"DROP INDEX{how} IF EXISTS {index.split()[0]}")


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("incidents", "0013_alert_open_integration_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.RemoveIndex(
                    model_name="alert",
                    name="alert_service_rule_seen",
                ),
                migrations.AlterField(
                    model_name="alert",
                    name="acknowledged_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="alert",
                    name="rule",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="incidents.alertrule",
                    ),
                ),
                migrations.AlterField(
                    model_name="alert",
                    name="service",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="alerts",
                        to="incidents.service",
                    ),
                ),
                migrations.AddIndex(
                    model_name="alert",
                    index=models.Index(
                        condition=models.Q(("incident__isnull", False)),
                        fields=["service", "rule", "-last_seen"],
                        name="alert_service_rule_incident",
                    ),
                ),
                migrations.AddIndex(
                    model_name="alert",
                    index=models.Index(
                        condition=models.Q(("rule__isnull", False)),
                        fields=["rule"],
                        name="alert_rule",
                    ),
                ),
                migrations.AddIndex(
                    model_name="alert",
                    index=models.Index(
                        condition=models.Q(("acknowledged_by__isnull", False)),
                        fields=["acknowledged_by"],
                        name="alert_acknowledged_by",
                    ),
                ),
            ],
        ),
    ]
