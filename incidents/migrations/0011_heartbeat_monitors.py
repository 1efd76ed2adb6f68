"""Heartbeat monitors (issue 4)."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0010_status_subscribers"),
    ]

    operations = [
        migrations.AlterField(
            model_name="integration",
            name="kind",
            field=models.CharField(
                choices=[
                    ("alertmanager", "Prometheus Alertmanager"),
                    ("pagerduty", "PagerDuty Events API v2"),
                    ("generic", "Generic JSON webhook"),
                    ("heartbeat", "Heartbeat monitor"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="HeartbeatMonitor",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "interval_minutes",
                    models.PositiveIntegerField(
                        default=60,
                        help_text="How often the job pings.",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(44640),
                        ],
                    ),
                ),
                (
                    "grace_minutes",
                    models.PositiveIntegerField(
                        default=5,
                        help_text="How late a ping may be before it counts as missed.",
                        validators=[django.core.validators.MaxValueValidator(10080)],
                    ),
                ),
                (
                    "severity",
                    models.CharField(
                        choices=[
                            ("critical", "Critical"),
                            ("error", "Error"),
                            ("warning", "Warning"),
                            ("info", "Info"),
                        ],
                        default="error",
                        help_text="The severity of the alert a missed ping raises.",
                        max_length=10,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("new", "Waiting for the first ping"),
                            ("up", "Up"),
                            ("down", "Down: a ping was missed"),
                            ("paused", "Paused"),
                        ],
                        default="new",
                        max_length=10,
                    ),
                ),
                ("last_ping_at", models.DateTimeField(blank=True, null=True)),
                ("due_at", models.DateTimeField(blank=True, null=True)),
                ("down_since", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "integration",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="heartbeat",
                        to="incidents.integration",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["state", "due_at"], name="heartbeat_state_due")
                ],
            },
        ),
    ]
