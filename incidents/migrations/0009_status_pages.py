"""Status pages, components, public updates (issue 5)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import oncall.models


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0008_alert_routing"),
        ("oncall", "0003_calendar_feeds_handoff_notices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="StatusUpdateTemplate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("investigating", "Investigating"),
                            ("identified", "Identified"),
                            ("monitoring", "Monitoring"),
                            ("resolved", "Resolved"),
                        ],
                        default="investigating",
                        max_length=16,
                    ),
                ),
                ("message", models.TextField(help_text="Markdown.")),
                ("order", models.PositiveSmallIntegerField(default=0)),
            ],
            options={
                "ordering": ["order", "name"],
            },
        ),
        migrations.CreateModel(
            name="StatusPage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("slug", models.SlugField(max_length=60, unique=True)),
                ("title", models.CharField(max_length=120)),
                (
                    "description",
                    models.TextField(blank=True, help_text="Shown under the title. Plain text."),
                ),
                (
                    "visibility",
                    models.CharField(
                        choices=[
                            ("public", "Public: anyone, no sign-in"),
                            ("internal", "Internal: anyone signed in"),
                            ("restricted", "Internal: members of chosen teams only"),
                        ],
                        default="public",
                        max_length=16,
                    ),
                ),
                (
                    "time_zone",
                    models.CharField(
                        default="UTC",
                        help_text="Days in the history bars and times on a public page are in this zone.",
                        max_length=64,
                        validators=[oncall.models.validate_time_zone],
                    ),
                ),
                ("order", models.PositiveSmallIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "teams",
                    models.ManyToManyField(
                        blank=True,
                        help_text="For restricted pages: whose members may read it.",
                        related_name="status_pages",
                        to="oncall.team",
                    ),
                ),
            ],
            options={
                "ordering": ["order", "title"],
            },
        ),
        migrations.CreateModel(
            name="ComponentGroup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("description", models.TextField(blank=True)),
                ("order", models.PositiveSmallIntegerField(default=0)),
                (
                    "page",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="groups",
                        to="incidents.statuspage",
                    ),
                ),
            ],
            options={
                "ordering": ["order", "name"],
            },
        ),
        migrations.CreateModel(
            name="Component",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("description", models.TextField(blank=True)),
                ("order", models.PositiveSmallIntegerField(default=0)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("operational", "Operational"),
                            ("under_maintenance", "Under maintenance"),
                            ("degraded_performance", "Degraded performance"),
                            ("partial_outage", "Partial outage"),
                            ("major_outage", "Major outage"),
                        ],
                        default="operational",
                        max_length=24,
                    ),
                ),
                ("status_changed_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "services",
                    models.ManyToManyField(
                        blank=True,
                        help_text="The services whose incidents affect this component.",
                        related_name="status_components",
                        to="incidents.service",
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="components",
                        to="incidents.componentgroup",
                    ),
                ),
                (
                    "page",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="components",
                        to="incidents.statuspage",
                    ),
                ),
            ],
            options={
                "ordering": ["order", "name"],
            },
        ),
        migrations.CreateModel(
            name="StatusPageIncident",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("public_title", models.CharField(max_length=200)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("investigating", "Investigating"),
                            ("identified", "Identified"),
                            ("monitoring", "Monitoring"),
                            ("resolved", "Resolved"),
                        ],
                        max_length=16,
                    ),
                ),
                ("first_published_at", models.DateTimeField()),
                ("last_published_at", models.DateTimeField()),
                ("resolved_at", models.DateTimeField(blank=True, null=True)),
                (
                    "incident",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="status_page_entries",
                        to="incidents.incident",
                    ),
                ),
                (
                    "page",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="page_incidents",
                        to="incidents.statuspage",
                    ),
                ),
            ],
            options={
                "ordering": ["-first_published_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="StatusUpdate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("investigating", "Investigating"),
                            ("identified", "Identified"),
                            ("monitoring", "Monitoring"),
                            ("resolved", "Resolved"),
                        ],
                        max_length=16,
                    ),
                ),
                ("message", models.TextField(help_text="Markdown.")),
                ("message_html", models.TextField()),
                ("published_at", models.DateTimeField()),
                (
                    "author",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "incident",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="status_updates",
                        to="incidents.incident",
                    ),
                ),
                (
                    "pages",
                    models.ManyToManyField(
                        related_name="status_updates", to="incidents.statuspage"
                    ),
                ),
            ],
            options={
                "ordering": ["-published_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="ComponentStatusInterval",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("operational", "Operational"),
                            ("under_maintenance", "Under maintenance"),
                            ("degraded_performance", "Degraded performance"),
                            ("partial_outage", "Partial outage"),
                            ("major_outage", "Major outage"),
                        ],
                        max_length=24,
                    ),
                ),
                ("started_at", models.DateTimeField()),
                ("ended_at", models.DateTimeField(blank=True, null=True)),
                (
                    "component",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="intervals",
                        to="incidents.component",
                    ),
                ),
                (
                    "incident",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="component_intervals",
                        to="incidents.incident",
                    ),
                ),
                (
                    "set_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["component", "started_at", "pk"],
                "indexes": [
                    models.Index(fields=["component", "ended_at"], name="interval_component_ended")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("ended_at__isnull", True)),
                        fields=("component",),
                        name="one_open_interval_per_component",
                    )
                ],
            },
        ),
        migrations.AddConstraint(
            model_name="componentgroup",
            constraint=models.UniqueConstraint(
                fields=("page", "name"), name="unique_group_name_per_page"
            ),
        ),
        migrations.AddConstraint(
            model_name="component",
            constraint=models.UniqueConstraint(
                fields=("page", "name"), name="unique_component_name_per_page"
            ),
        ),
        migrations.AddIndex(
            model_name="statuspageincident",
            index=models.Index(fields=["page", "resolved_at"], name="page_incident_resolved"),
        ),
        migrations.AddConstraint(
            model_name="statuspageincident",
            constraint=models.UniqueConstraint(
                fields=("page", "incident"), name="one_entry_per_page_incident"
            ),
        ),
        migrations.AddIndex(
            model_name="statusupdate",
            index=models.Index(fields=["incident", "-published_at"], name="status_update_incident"),
        ),
    ]
