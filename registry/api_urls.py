from django.urls import path

from registry import api, consumer_api, mlflow_api, workflow_api

urlpatterns = [
    path("models/", api.ModelListApi.as_view(), name="model-list"),
    path("models/<slug:name>/", api.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<slug:name>/versions/", api.VersionListApi.as_view(), name="version-list"),
    path(
        "models/<slug:name>/versions/import-mlflow/",
        mlflow_api.VersionImportMlflowApi.as_view(),
        name="version-import-mlflow",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/",
        api.VersionDetailApi.as_view(),
        name="version-detail",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/accept-untrusted-types/",
        api.VersionAcceptTrustApi.as_view(),
        name="version-accept-trust",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/compiled/download/",
        api.VersionCompiledDownloadApi.as_view(),
        name="compiled-download",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/files/<int:file_id>/download/",
        api.VersionFileDownloadApi.as_view(),
        name="file-download",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/transitions/",
        workflow_api.VersionTransitionApi.as_view(),
        name="version-transition",
    ),
    path("models/<slug:name>/versions/<int:number>/checks/", workflow_api.VersionChecksApi.as_view(), name="checks"),
    path(
        "models/<slug:name>/versions/<int:number>/signoffs/", workflow_api.VersionSignOffsApi.as_view(), name="signoffs"
    ),
    path(
        "models/<slug:name>/versions/<int:number>/comments/", workflow_api.VersionCommentsApi.as_view(), name="comments"
    ),
    path("models/<slug:name>/production-at/", workflow_api.ProductionAtApi.as_view(), name="production-at"),
    path("models/<slug:name>/consumers/", consumer_api.ConsumerListApi.as_view(), name="consumer-list"),
    path(
        "models/<slug:name>/consumers/<slug:consumer>/",
        consumer_api.ConsumerDetailApi.as_view(),
        name="consumer-detail",
    ),
    path(
        "models/<slug:name>/consumers/<slug:consumer>/token/",
        consumer_api.ConsumerTokenApi.as_view(),
        name="consumer-token",
    ),
    path(
        "models/<slug:name>/consumers/<slug:consumer>/deliveries/",
        consumer_api.ConsumerDeliveryListApi.as_view(),
        name="consumer-deliveries",
    ),
    path("audit/", workflow_api.AuditListApi.as_view(), name="audit-list"),
    path("audit/export/", workflow_api.AuditExportApi.as_view(), name="audit-export"),
    path("notifications/", consumer_api.NotificationListApi.as_view(), name="notification-list"),
]
