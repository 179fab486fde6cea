from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.api import ConflictError
from registry import (
    audit,
    check_runs,
    consumers,
    inputs,
    mlflow_import,
    permissions,
    registration,
    selectors,
    services,
    workflow,
)
from registry.choices import FileKind, ModelTask, VersionStatus
from registry.forms import MlflowImportForm, field_errors, flash_errors, form_apply_errors
from registry.loading import ArtifactIntegrityError, verified_compiled_path, verified_path
from registry.models import Compilation, RegisteredModel, Tag, VersionFile
from registry.panels import model_panels, version_panels
from registry.rendering import render_markdown, render_notebook
from registry.tables import read_table
from registry.uploads import rejected_upload_errors

GOLDEN_PREVIEW_ROWS = 10


def file_response(version_file: VersionFile) -> FileResponse:
    """The registered bytes as a download; ArtifactIntegrityError if they were changed since."""
    path = verified_path(version_file)
    return FileResponse(path.open("rb"), as_attachment=True, filename=version_file.filename)


def compiled_file_response(compilation: Compilation) -> FileResponse:
    """The compiled graph as a download; ArtifactIntegrityError if its bytes changed since compilation."""
    path = verified_compiled_path(compilation)
    version = compilation.version
    filename = f"{version.model.name}-v{version.number}.onnx"
    return FileResponse(path.open("rb"), as_attachment=True, filename=filename)


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "search": request.GET.get("q", "").strip(),
        "owner": request.GET.get("owner", "").strip(),
        "tag": request.GET.get("tag", "").strip(),
        "task": request.GET.get("task", "").strip(),
        "status": request.GET.get("status", "").strip(),
    }
    page = Paginator(selectors.model_list(**filters), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "registry/model_list.html",
        {
            "page": page,
            "filters": filters,
            "tasks": ModelTask.choices,
            "statuses": VersionStatus.choices,
            "tags": Tag.objects.filter(models__isnull=False).distinct(),
            "may_create": permissions.may_create_models(request.user),
        },
    )


@require_GET
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = selectors.model_get(name=name)
    return _model_page(request, model, MlflowImportForm(initial={"model_name": model.name}))


def _model_page(
    request: HttpRequest,
    model: RegisteredModel,
    mlflow_form: MlflowImportForm,
    status: int = 200,
    upload: Mapping[str, Any] | None = None,
) -> HttpResponse:
    return render(
        request,
        "registry/model_detail.html",
        {
            "model": model,
            "description_html": render_markdown(model.description),
            "versions": selectors.version_list(model=model),
            "production": selectors.production_version(model=model),
            "production_history": audit.production_history(model=model),
            "consumers": selectors.consumer_list(model=model),
            "deprecated": selectors.deprecated_versions(model=model),
            "mlflow_form": mlflow_form if permissions.may_register_versions(request.user) else None,
            "may_register": permissions.may_register_versions(request.user),
            "may_add_consumer": permissions.may_create_consumer(request.user, model),
            "may_edit": permissions.may_edit_model(request.user, model),
            "panels": model_panels(model),
            "upload": upload or {},
            "mlflow_imports_allowed": bool(settings.MF_MLFLOW_ALLOWED_HOSTS),
        },
        status=status,
    )


def _posted_tags(request: HttpRequest) -> list[str]:
    """The tags field of a form, "telco, high-risk", as the API's list of tags."""
    return [tag.strip() for tag in request.POST.get("tags", "").split(",") if tag.strip()]


def _submitted(payload: Any, service: Callable[..., Any]) -> tuple[Any, Mapping[str, Any]]:
    """A form post validated by the API's serializer, then given to the service: its result, or None and
    the errors by field (the serializer's, else the service's)."""
    if not payload.is_valid():
        return None, field_errors(payload.errors)
    try:
        return service(**payload.validated_data), {}
    except ValidationError as exc:
        return None, exc.message_dict


@require_http_methods(["GET", "POST"])
def model_create(request: HttpRequest) -> HttpResponse:
    """The "New model" form, validated as `POST /api/models/` validates."""
    if not permissions.may_create_models(request.user):
        raise PermissionDenied
    errors: Mapping[str, Any] = {}
    if request.method == "POST":
        # Fields left empty are not sent, as an API client leaves them out (then they take their defaults).
        fields = ("name", "title", "description", "task", "business_context")
        data: dict[str, Any] = {key: request.POST[key] for key in fields if request.POST.get(key, "").strip()}
        model, errors = _submitted(
            inputs.ModelCreateInput(data={**data, "tags": _posted_tags(request)}),
            lambda **valid: services.model_create(actor=request.user, **valid),
        )
        if model is not None:
            messages.success(request, f"Model {model.name} created: register its first version below.")
            return redirect(model)
    return render(
        request,
        "registry/model_form.html",
        {"values": request.POST, "errors": errors, "tasks": ModelTask.choices},
        status=400 if errors else 200,
    )


@require_http_methods(["GET", "POST"])
def model_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The model's "Edit" form, validated as `PATCH /api/models/{name}/` validates."""
    model = selectors.model_get(name=name)
    if not permissions.may_edit_model(request.user, model):
        raise PermissionDenied
    errors: Mapping[str, Any] = {}
    values: Mapping[str, Any] = {
        "title": model.title,
        "description": model.description,
        "business_context": model.business_context,
        "tags": ", ".join(model.tags.values_list("name", flat=True)),
    }
    if request.method == "POST":
        values = request.POST
        data: dict[str, Any] = {key: request.POST.get(key, "") for key in ("title", "description", "business_context")}
        saved, errors = _submitted(
            inputs.ModelUpdateInput(data={**data, "tags": _posted_tags(request)}),
            lambda **valid: services.model_update(actor=request.user, model=model, **valid),
        )
        if saved is not None:
            messages.success(request, f"Model {model.name} saved.")
            return redirect(model)
    return render(
        request,
        "registry/model_form.html",
        {"model": model, "values": values, "errors": errors, "tasks": ModelTask.choices},
        status=400 if errors else 200,
    )


@require_POST
def version_upload(request: HttpRequest, name: str) -> HttpResponse:
    """The model page's "Register a version" form, validated and registered as `POST .../versions/` is."""
    model = selectors.model_get(name=name)
    if not permissions.may_register_versions(request.user):
        raise PermissionDenied
    errors: Mapping[str, Any] | ValidationError | None = rejected_upload_errors(request)
    if errors is None:
        # Fields left empty are not sent, as a client leaves them out of the API's multipart body.
        data: dict[str, Any] = {key: value for key, value in request.POST.items() if str(value).strip()}
        data.update({key: request.FILES[key] for key in request.FILES if key != "documents"})
        data["documents"] = request.FILES.getlist("documents")
        payload = inputs.VersionCreateInput(data=data)
        if payload.is_valid():
            upload = registration.VersionUpload(**payload.validated_data)
            try:
                version = registration.version_register(actor=request.user, model=model, upload=upload)
            except ValidationError as exc:
                errors = exc
            else:
                messages.success(request, f"Registered {version}: submit it for review when it is ready.")
                return redirect(version)
        else:
            errors = field_errors(payload.errors)
    flash_errors(request, errors)
    form = MlflowImportForm(initial={"model_name": model.name})
    return _model_page(request, model, form, status=400, upload=request.POST)


@require_POST
@never_cache  # the page shows the consumer's token, once
def consumer_add(request: HttpRequest, name: str) -> HttpResponse:
    """The model page's "Add a consumer" form: the new token is shown on the page that answers, once."""
    model = selectors.model_get(name=name)
    if not permissions.may_create_consumer(request.user, model):
        raise PermissionDenied
    fields = ("name", "description", "contact_email", "webhook_url")
    data = {key: request.POST[key] for key in fields if request.POST.get(key, "").strip()}
    payload = inputs.ConsumerCreateInput(data=data)
    if not payload.is_valid():
        flash_errors(request, payload.errors)
        return redirect(f"{model.get_absolute_url()}#consumers")
    # Pinning a version is an API matter (`pinned_version`); the page's consumer follows production.
    chosen = {key: value for key, value in payload.validated_data.items() if key != "pinned_version"}
    try:
        consumer, token = consumers.consumer_create(actor=request.user, model=model, **chosen)
    except ValidationError as exc:
        flash_errors(request, exc)
        return redirect(f"{model.get_absolute_url()}#consumers")
    return render(request, "registry/consumer_created.html", {"model": model, "consumer": consumer, "token": token})


@require_POST
def version_import_mlflow(request: HttpRequest, name: str) -> HttpResponse:
    """The model page's "Import from MLflow" form: the new version's page, or the form with the problem."""
    model = selectors.model_get(name=name)
    if not permissions.may_register_versions(request.user):
        raise PermissionDenied
    form = MlflowImportForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            version = mlflow_import.version_import_mlflow(actor=request.user, model=model, **form.cleaned_data)
        except ValidationError as exc:
            form_apply_errors(form, exc)
        except ConflictError as exc:
            form.add_error(None, str(exc))
            status = 409
        except mlflow_import.MlflowUnavailableError as exc:
            form.add_error("tracking_uri", str(exc))
            status = 502
        else:
            messages.success(request, f"Imported {version} from MLflow.")
            return redirect(version)
    return _model_page(request, model, form, status=status)


@require_GET
def version_detail(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    files = list(version.files.all())
    by_kind = {file.kind: file for file in files if file.kind != FileKind.DOCUMENT}
    notebook_html = notebook_error = None
    if FileKind.NOTEBOOK in by_kind:
        try:
            notebook_html = render_notebook(verified_path(by_kind[FileKind.NOTEBOOK]).read_bytes())
        except ArtifactIntegrityError as exc:
            notebook_error = str(exc)
    golden_preview = None
    if FileKind.GOLDEN_SET in by_kind:
        golden_preview = _table_preview(by_kind[FileKind.GOLDEN_SET])
    user = request.user
    return render(
        request,
        "registry/version_detail.html",
        {
            "version": version,
            "model": version.model,
            "files": files,
            "artifact": by_kind.get(FileKind.ARTIFACT),
            "release_notes_html": render_markdown(version.release_notes),
            "notebook_html": notebook_html,
            "notebook_error": notebook_error,
            "golden_preview": golden_preview,
            "comparison": selectors.version_comparison(version=version),
            "review": selectors.version_review(version=version),
            "actions": workflow.available_actions(user=user, version=version),
            "panels": version_panels(version),
            "serving": selectors.serving_engine(version=version),
            "untrusted_refusal": check_runs.UNTRUSTED_REFUSAL,
            "may_run_checks": permissions.may_request_checks(user, version),
            "can_accept_trust": (
                version.requires_trust
                and version.trust_accepted_at is None
                and permissions.may_accept_untrusted_types(user, version)
            ),
        },
    )


def _table_preview(version_file: VersionFile) -> dict[str, object] | str:
    try:
        # read_table, as registration did: a golden set may be Parquet as well as CSV.
        frame = read_table(verified_path(version_file)).head(GOLDEN_PREVIEW_ROWS)
    except (ArtifactIntegrityError, ValueError) as exc:
        return str(exc)
    return {"columns": list(frame.columns), "rows": frame.astype(object).where(frame.notna(), "").values.tolist()}


@require_GET
def file_download(request: HttpRequest, name: str, number: int, file_id: int) -> HttpResponseBase:
    version = selectors.version_get(model_name=name, number=number)
    version_file = selectors.version_file_get(version=version, file_id=file_id)
    try:
        return file_response(version_file)
    except ArtifactIntegrityError as exc:
        messages.error(request, str(exc))
        return redirect(version)


@require_GET
def compiled_download(request: HttpRequest, name: str, number: int) -> HttpResponseBase:
    version = selectors.version_get(model_name=name, number=number)
    compilation = selectors.compilation_file_get(version=version)
    try:
        return compiled_file_response(compilation)
    except ArtifactIntegrityError as exc:
        messages.error(request, str(exc))
        return redirect(version)


@require_POST
def version_accept_trust(request: HttpRequest, name: str, number: int) -> HttpResponse:
    version = selectors.version_get(model_name=name, number=number)
    try:
        services.version_accept_untrusted_types(
            actor=request.user, version=version, reason=request.POST.get("reason", "")
        )
    except (PermissionDenied, ValidationError) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, f"You accepted the untrusted types of {version}.")
    return redirect(version)
