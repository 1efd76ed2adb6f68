"""Organisation roles as groups, and the default severity ladder with written definitions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SEVERITIES = [
    (1, "SEV1", "Critical", 30,
     "A critical customer-facing service is down or data is at risk for many customers. "
     "All hands: page the on-call commander now."),
    (2, "SEV2", "Major", 60,
     "A major feature is unavailable or badly degraded for a significant share of customers, "
     "or a SEV1 is likely if nothing is done."),
    (3, "SEV3", "Minor", 120,
     "A minor feature is degraded or a workaround exists; customers notice little. "
     "Handle in working hours."),
    (4, "SEV4", "Low", 240,
     "No customer impact yet: a near miss, a failing internal tool or a risk worth tracking."),
]

GROUPS = {
    "Viewers": [("incidents", "view_incident")],
    "Responders": [("incidents", "view_incident"), ("incidents", "change_incident")],
    "Admins": [
        ("incidents", "view_incident"),
        ("incidents", "change_incident"),
        *[("incidents", f"{action}_{model}")
          for model in ("severity", "incidenttype", "service")
          for action in ("add", "change", "delete", "view")],
        *[("oncall", f"{action}_{model}")
          for model in ("team", "teammembership", "user")
          for action in ("add", "change", "delete", "view")],
    ],
}


def forwards(apps, schema_editor):
    # Permissions are normally created after all migrations; this one needs them now.
    for app_label in ("incidents", "oncall"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    Severity = apps.get_model("incidents", "Severity")
    for level, name, label, cadence, description in SEVERITIES:
        Severity.objects.get_or_create(
            level=level,
            defaults={"name": name, "label": label, "update_cadence_minutes": cadence,
                      "description": description},
        )
    IncidentType = apps.get_model("incidents", "IncidentType")
    for name, description in [
        ("Outage", "Something customers rely on does not work."),
        ("Degradation", "It works, slowly or partly."),
        ("Security", "A suspected or confirmed security incident. Usually restricted."),
        ("Data", "Data loss, corruption or exposure."),
    ]:
        IncidentType.objects.get_or_create(name=name, defaults={"description": description})


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_initial"),
        ("oncall", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
