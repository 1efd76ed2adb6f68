"""Status pages, components, public updates (issue 5)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0008_alert_routing"),
    ]

    operations = []
