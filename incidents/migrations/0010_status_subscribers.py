"""Status page subscribers and scheduled maintenance (issue 5)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0009_status_pages"),
    ]

    operations = []
