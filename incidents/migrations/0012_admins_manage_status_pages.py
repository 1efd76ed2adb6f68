"""The Admins group configures status pages (pages, groups, components, update templates)
as it configures services: without this only superusers could, and a responder asking to
schedule maintenance had nobody but a superuser to turn to."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MODELS = ("statuspage", "componentgroup", "component", "statusupdatetemplate")


def forwards(apps, schema_editor):
    # Permissions are normally created after all migrations; this one needs them now.
    app_config = apps.get_app_config("incidents")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins, _ = Group.objects.get_or_create(name="Admins")
    admins.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="incidents",
            codename__in=[f"{a}_{m}" for m in MODELS for a in ("add", "change", "delete", "view")],
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0011_heartbeat_monitors"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
