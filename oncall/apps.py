from django.apps import AppConfig


class OncallConfig(AppConfig):
    name = "oncall"
    verbose_name = "People and on-call"

    def ready(self) -> None:
        from oncall import signals  # noqa: F401
