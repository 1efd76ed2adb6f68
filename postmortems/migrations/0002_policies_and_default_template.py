"""SEV1 and SEV2 require a postmortem within 5 working days of resolution; the others are
optional. The blameless default template."""

from django.db import migrations

from postmortems.sections import DEFAULT_SECTIONS, DEFAULT_TEMPLATE_NAME


def forwards(apps, schema_editor):
    Severity = apps.get_model("incidents", "Severity")
    PostmortemPolicy = apps.get_model("postmortems", "PostmortemPolicy")
    PostmortemTemplate = apps.get_model("postmortems", "PostmortemTemplate")
    for severity in Severity.objects.all():
        PostmortemPolicy.objects.get_or_create(
            severity=severity,
            defaults={"required": severity.name in ("SEV1", "SEV2"), "due_working_days": 5},
        )
    PostmortemTemplate.objects.get_or_create(
        name=DEFAULT_TEMPLATE_NAME,
        defaults={
            "is_default": True,
            "sections": DEFAULT_SECTIONS,
            "description": "Blameless sections from summary to lessons, with prompts that ask "
            "what about the system allowed this, never who.",
        },
    )


def backwards(apps, schema_editor):
    apps.get_model("postmortems", "PostmortemPolicy").objects.all().delete()
    apps.get_model("postmortems", "PostmortemTemplate").objects.filter(
        name=DEFAULT_TEMPLATE_NAME
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("postmortems", "0001_initial"),
        ("incidents", "0003_groups_and_severities"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
