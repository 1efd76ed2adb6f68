import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("firebreak")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def current_task_queue() -> str | None:
    """The queue the task being run came from (None outside a worker, or run eagerly):
    its follow-ups go there, so workers dedicated to a queue keep their own work."""
    from celery import current_task

    request = current_task.request if current_task else None
    if request is None or getattr(request, "is_eager", False):
        return None
    return (getattr(request, "delivery_info", None) or {}).get("routing_key") or None


def running_eagerly() -> bool:
    """Whether the task being run was run in place (CELERY_TASK_ALWAYS_EAGER): countdowns
    are ignored then, so a task that schedules itself again would run again at once."""
    from celery import current_task

    return bool(current_task and getattr(current_task.request, "is_eager", False))
