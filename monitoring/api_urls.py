from django.urls import path

from monitoring import api

urlpatterns = [
    path("models/<slug:name>/actuals/", api.ActualsApi.as_view(), name="actuals"),
    path("models/<slug:name>/reports/", api.ReportListApi.as_view(), name="report-list"),
    path("reports/<int:report_id>/", api.ReportDetailApi.as_view(), name="report-detail"),
    path("reports/<int:report_id>/evidently/", api.EvidentlyReportApi.as_view(), name="evidently-report"),
    path("reports/<int:report_id>/evidently/html/", api.EvidentlyReportHtmlApi.as_view(), name="evidently-report-html"),
    path("models/<slug:name>/alert-rules/", api.AlertRuleListApi.as_view(), name="alert-rule-list"),
    path("alerts/", api.AlertListApi.as_view(), name="alert-list"),
    path("models/<slug:name>/retraining/", api.RetrainingRecipeApi.as_view(), name="retraining-recipe"),
    path("models/<slug:name>/retraining/run/", api.RetrainApi.as_view(), name="retrain"),
]
