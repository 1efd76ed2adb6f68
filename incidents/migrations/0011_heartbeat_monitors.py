"""Heartbeat monitors (issue 4)."""

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
    ]
