from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: synthetic churn data, its model versions and the monitoring story `load_demo` plays."""

    name = "demo"
    verbose_name = "Demo"
