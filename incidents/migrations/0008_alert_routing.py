"""Alert routing rules, maintenance windows, and what people do to alerts by hand (issue 4)."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0007_alerts_and_integrations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="alert",
            name="acknowledged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="alert",
            name="acknowledged_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="alert",
            name="in_maintenance",
            field=models.BooleanField(default=False),
        ),
        migrations.CreateModel(
            name="AlertRule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position", models.PositiveIntegerField(default=0)),
                ("name", models.CharField(blank=True, max_length=100)),
                ("matchers", models.JSONField(blank=True, default=list)),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("open", "Open or join an incident"),
                            ("record", "Record the alert only"),
                        ],
                        default="open",
                        max_length=10,
                    ),
                ),
                (
                    "grouping",
                    models.CharField(
                        choices=[
                            ("group_key", "Same Alertmanager group joins one incident"),
                            ("window", "Alerts within a time window join one incident"),
                            ("none", "Every alert opens its own incident"),
                        ],
                        default="group_key",
                        max_length=10,
                    ),
                ),
                (
                    "window_minutes",
                    models.PositiveIntegerField(
                        blank=True,
                        null=True,
                        validators=[django.core.validators.MinValueValidator(1)],
                    ),
                ),
                (
                    "auto_resolve",
                    models.BooleanField(
                        default=False,
                        help_text="Resolve the incident when all of its alerts have resolved.",
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "service",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="alert_rules",
                        to="incidents.service",
                    ),
                ),
                (
                    "severity",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="incidents.severity",
                    ),
                ),
            ],
            options={
                "ordering": ["service", "position", "pk"],
            },
        ),
        migrations.AddField(
            model_name="alert",
            name="rule",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="incidents.alertrule",
            ),
        ),
        migrations.CreateModel(
            name="MaintenanceWindow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("starts_at", models.DateTimeField()),
                ("ends_at", models.DateTimeField()),
                ("reason", models.CharField(max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("cancelled_at", models.DateTimeField(blank=True, null=True)),
                (
                    "cancelled_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "service",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="maintenance_windows",
                        to="incidents.service",
                    ),
                ),
            ],
            options={
                "ordering": ["starts_at", "pk"],
                "indexes": [
                    models.Index(fields=["service", "ends_at"], name="maintenance_service_end")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("ends_at__gt", models.F("starts_at"))),
                        name="maintenance_ends_after_start",
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="alert",
            index=models.Index(
                fields=["service", "rule", "-last_seen"], name="alert_service_rule_seen"
            ),
        ),
            migrations.AddField(
            model_name="alert",
            name="arrival_pending",
            field=models.BooleanField(default=False),
        ),
]
