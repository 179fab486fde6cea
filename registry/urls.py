from django.urls import path

from registry import audit_views, notification_views, views, workflow_views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="model-list"),
    # Not under models/: "new" is a valid model name.
    path("new-model/", views.model_create, name="model-create"),
    path("models/<slug:name>/", views.model_detail, name="model-detail"),
    path("models/<slug:name>/edit/", views.model_edit, name="model-edit"),
    path("models/<slug:name>/versions/new/", views.version_upload, name="version-upload"),
    path("models/<slug:name>/consumers/new/", views.consumer_add, name="consumer-add"),
    path("models/<slug:name>/import-mlflow/", views.version_import_mlflow, name="version-import-mlflow"),
    path("models/<slug:name>/versions/<int:number>/", views.version_detail, name="version-detail"),
    path(
        "models/<slug:name>/versions/<int:number>/accept-untrusted-types/",
        views.version_accept_trust,
        name="version-accept-trust",
    ),
    path("reviews/", workflow_views.review_inbox, name="review-inbox"),
    path("audit/", audit_views.audit_log, name="audit-log"),
    path("notifications/", notification_views.notification_list, name="notifications"),
    path("models/<slug:name>/production-at/", audit_views.production_at_page, name="production-at"),
    path(
        "models/<slug:name>/versions/<int:number>/transition/",
        workflow_views.version_transition,
        name="version-transition",
    ),
    path("models/<slug:name>/versions/<int:number>/checks/", workflow_views.version_run_checks, name="version-checks"),
    path("models/<slug:name>/versions/<int:number>/comments/", workflow_views.version_comment, name="version-comment"),
    path(
        "models/<slug:name>/versions/<int:number>/compiled/",
        views.compiled_download,
        name="compiled-download",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/files/<int:file_id>/",
        views.file_download,
        name="file-download",
    ),
]
