"""Status page subscribers, their deliveries, and scheduled maintenance (issue 5)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0009_status_pages"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ScheduledMaintenance",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("title", models.CharField(max_length=200)),
                ("message", models.TextField(blank=True)),
                ("starts_at", models.DateTimeField()),
                ("ends_at", models.DateTimeField()),
                ("notice_minutes", models.PositiveIntegerField(default=60)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("scheduled", "Scheduled"),
                            ("in_progress", "In progress"),
                            ("completed", "Completed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="scheduled",
                        max_length=12,
                    ),
                ),
                ("notice_sent_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("cancelled_at", models.DateTimeField(blank=True, null=True)),
                ("statuses_before", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "components",
                    models.ManyToManyField(
                        blank=True, related_name="maintenances", to="incidents.component"
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
                    "page",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="maintenances",
                        to="incidents.statuspage",
                    ),
                ),
            ],
            options={
                "ordering": ["starts_at", "pk"],
            },
        ),
        migrations.CreateModel(
            name="StatusEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("update", "Incident update"),
                            ("component", "Component status"),
                            ("maintenance_scheduled", "Maintenance coming up"),
                            ("maintenance_started", "Maintenance started"),
                            ("maintenance_completed", "Maintenance completed"),
                            ("maintenance_cancelled", "Maintenance cancelled"),
                        ],
                        max_length=24,
                    ),
                ),
                ("key", models.CharField(max_length=120)),
                ("data", models.JSONField(default=dict)),
                ("component_ids", models.JSONField(blank=True, default=list)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("fanned_out_at", models.DateTimeField(blank=True, null=True)),
                (
                    "maintenance",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="incidents.scheduledmaintenance",
                    ),
                ),
                (
                    "page",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="status_events",
                        to="incidents.statuspage",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="StatusSubscriber",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("email", "Email"), ("webhook", "Webhook")],
                        default="email",
                        max_length=10,
                    ),
                ),
                ("email", models.EmailField(blank=True, max_length=254)),
                ("url", models.URLField(blank=True, max_length=500)),
                ("secret", models.CharField(blank=True, max_length=128)),
                ("label", models.CharField(blank=True, max_length=100)),
                ("pending_component_ids", models.JSONField(blank=True, default=list)),
                ("confirmation_token_hash", models.CharField(blank=True, max_length=64)),
                ("confirmation_sent_at", models.DateTimeField(blank=True, null=True)),
                ("confirmed_at", models.DateTimeField(blank=True, null=True)),
                ("unsubscribed_at", models.DateTimeField(blank=True, null=True)),
                ("link_generation", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("last_error", models.TextField(blank=True)),
                ("last_error_at", models.DateTimeField(blank=True, null=True)),
                (
                    "components",
                    models.ManyToManyField(
                        blank=True, related_name="subscribers", to="incidents.component"
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "page",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="subscribers",
                        to="incidents.statuspage",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="status_subscriptions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["page", "kind", "email", "url"],
            },
        ),
        migrations.CreateModel(
            name="StatusDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("due_at", models.DateTimeField()),
                ("enqueued_at", models.DateTimeField(blank=True, null=True)),
                ("claimed_at", models.DateTimeField(blank=True, null=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("receipt", models.CharField(blank=True, max_length=200)),
                ("error", models.TextField(blank=True)),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="incidents.statusevent",
                    ),
                ),
                (
                    "subscriber",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="incidents.statussubscriber",
                    ),
                ),
            ],
            options={
                "ordering": ["pk"],
            },
        ),
        migrations.AddIndex(
            model_name="scheduledmaintenance",
            index=models.Index(fields=["state", "starts_at"], name="sched_maint_state_start"),
        ),
        migrations.AddConstraint(
            model_name="scheduledmaintenance",
            constraint=models.CheckConstraint(
                condition=models.Q(("ends_at__gt", models.F("starts_at"))),
                name="scheduled_maintenance_ends_after_start",
            ),
        ),
        migrations.AddIndex(
            model_name="statusevent",
            index=models.Index(
                condition=models.Q(("fanned_out_at__isnull", True)),
                fields=["created_at"],
                name="status_event_not_fanned_out",
            ),
        ),
        migrations.AddConstraint(
            model_name="statusevent",
            constraint=models.UniqueConstraint(
                fields=("page", "key"), name="one_status_event_per_key"
            ),
        ),
        migrations.AddIndex(
            model_name="statussubscriber",
            index=models.Index(
                condition=models.Q(
                    ("confirmed_at__isnull", False), ("unsubscribed_at__isnull", True)
                ),
                fields=["page", "kind"],
                name="status_subscriber_active",
            ),
        ),
        migrations.AddConstraint(
            model_name="statussubscriber",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind", "email")),
                fields=("page", "email"),
                name="one_email_subscriber_per_page",
            ),
        ),
        migrations.AddConstraint(
            model_name="statussubscriber",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "email"), models.Q(("email", ""), _negated=True)),
                    models.Q(("kind", "webhook"), models.Q(("url", ""), _negated=True)),
                    _connector="OR",
                ),
                name="status_subscriber_has_address",
            ),
        ),
        migrations.AddIndex(
            model_name="statusdelivery",
            index=models.Index(
                condition=models.Q(("state", "pending")),
                fields=["due_at"],
                name="status_delivery_pending",
            ),
        ),
        migrations.AddConstraint(
            model_name="statusdelivery",
            constraint=models.UniqueConstraint(
                fields=("event", "subscriber"), name="one_status_delivery_per_subscriber"
            ),
        ),
    ]
