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
    path("models/<slug:name>/monitoring/alert-rules/", views.alert_rule_create, name="alert-rule-create"),
    path("models/<slug:name>/monitoring/retraining/", views.retraining_recipe, name="retraining-recipe"),
    path("models/<slug:name>/monitoring/retraining/schedule/", views.retraining_schedule, name="retraining-schedule"),
    path("models/<slug:name>/monitoring/retraining/run/", views.retrain_now, name="retrain-now"),
    path(
        "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/",
        views.evidently_report,
        name="evidently-report",
    ),
    path(
        "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/build/",
        views.evidently_report_request,
        name="evidently-report-request",
    ),
    path(
        "models/<slug:name>/monitoring/reports/<int:report_id>/evidently/html/",
        views.evidently_report_html,
        name="evidently-report-html",
    ),
]
