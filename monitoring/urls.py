from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", views.dashboard, name="dashboard"),
    path("models/<slug:name>/monitoring/", views.model_monitoring, name="model"),
    path("models/<slug:name>/monitoring/run/", views.run_report, name="run-report"),
    path("models/<slug:name>/monitoring/settings/", views.configure, name="configure"),
    path("models/<slug:name>/monitoring/schedule/", views.schedule, name="schedule"),
    path("models/<slug:name>/monitoring/actuals/", views.upload_actuals, name="upload-actuals"),
    path("models/<slug:name>/monitoring/watch/", views.watch, name="watch"),
    path(
        "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/",
        views.evidently_report,
        name="evidently-report",
    ),
]
