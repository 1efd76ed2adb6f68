from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from incidents import signals

        signals.connect_paging()
        signals.connect_severity_cache()
        # Status page subscribers: connects their signal receivers and registers their
        # Celery tasks (autodiscovery only looks in incidents/tasks.py).
        from incidents.statuspages import subscriptions, tasks  # noqa: F401
