from django.urls import path

from scoring import api, batch_api, sql_api

urlpatterns = [
    path("models/<slug:name>/predict/", api.PredictApi.as_view(), name="predict"),
    path("models/<slug:name>/versions/<int:number>/predict/", api.VersionPredictApi.as_view(), name="version-predict"),
    path("models/<slug:name>/invocations", api.InvocationsApi.as_view(), name="invocations"),
    path("predictions/<uuid:prediction_id>/", api.PredictionDetailApi.as_view(), name="prediction-detail"),
    path(
        "predictions/<uuid:prediction_id>/reproduce/", api.PredictionReproduceApi.as_view(), name="prediction-reproduce"
    ),
    path("models/<slug:name>/batch-jobs/", batch_api.BatchJobListApi.as_view(), name="batch-job-list"),
    path("models/<slug:name>/sql-runs/", sql_api.SqlRunListApi.as_view(), name="sql-run-list"),
    path("sql-runs/<int:run_id>/usage/", sql_api.SqlRunReportApi.as_view(), name="sql-run-report"),
    path("models/<slug:name>/batch-jobs/<slug:job>/", batch_api.BatchJobDetailApi.as_view(), name="batch-job-detail"),
    path(
        "models/<slug:name>/batch-jobs/<slug:job>/schedule/",
        batch_api.BatchJobScheduleApi.as_view(),
        name="batch-job-schedule",
    ),
    path(
        "models/<slug:name>/batch-jobs/<slug:job>/runs/", batch_api.BatchJobRunListApi.as_view(), name="batch-job-runs"
    ),
    path("batch-runs/<int:run_id>/", batch_api.BatchRunDetailApi.as_view(), name="batch-run-detail"),
    path("batch-runs/<int:run_id>/resume/", batch_api.BatchRunResumeApi.as_view(), name="batch-run-resume"),
    path("batch-runs/<int:run_id>/rejects/", batch_api.BatchRunRejectListApi.as_view(), name="batch-run-rejects"),
    path("batch-runs/<int:run_id>/output/", batch_api.BatchRunOutputApi.as_view(), name="batch-run-output"),
    path("models/<slug:name>/scores/<str:entity_id>/", batch_api.EntityScoreApi.as_view(), name="entity-score"),
]
