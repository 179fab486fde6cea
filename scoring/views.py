"""Batch scoring pages: a model's jobs, a job with its schedule and runs, a run with its rejects."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.api import ConflictError
from registry import selectors
from registry.csv_export import csv_response
from registry.forms import flash_errors, form_apply_errors
from registry.models import RegisteredModel
from scoring.archive.format import label
from scoring.batch import runs, services
from scoring.batch import selectors as batch_selectors
from scoring.forms import BatchJobForm, ScheduleForm, schedule_form_apply
from scoring.models import BatchJob, BatchRun
from scoring.permissions import may_manage_batches, may_view_batches

RUNS_PER_PAGE = 20
REJECTS_PER_PAGE = 50
EXPORT_CHUNK_ROWS = 5_000


def _model(request: HttpRequest, name: str) -> RegisteredModel:
    if not may_view_batches(request.user):
        raise PermissionDenied
    return selectors.model_get(name=name)


@require_http_methods(["GET", "POST"])
def job_list(request: HttpRequest, name: str) -> HttpResponse:
    model = _model(request, name)
    form = BatchJobForm(request.POST or None, request.FILES or None, model=model)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_create(actor=request.user, model=model, **form.cleaned_data)
        except ValidationError as exc:
            form_apply_errors(form, exc)
        else:
            messages.success(request, f"Created the batch job {job.name}. Run it now or give it a schedule.")
            return redirect(job)
    return render(
        request,
        "scoring/job_list.html",
        {
            "model": model,
            "rows": batch_selectors.job_list(model=model),
            "form": form,
            "may_manage": may_manage_batches(request.user),
            "production": selectors.production_version(model=model),
        },
        status=400 if form.errors else 200,
    )


def _render_job(request: HttpRequest, job: BatchJob, schedule_form: ScheduleForm, status: int = 200) -> HttpResponse:
    page = Paginator(batch_selectors.run_list(job=job), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "scoring/job_detail.html",
        {
            "model": job.model,
            "job": job,
            "schedule": batch_selectors.schedule_of(job),
            "schedule_form": schedule_form,
            "page": page,
            "may_manage": may_manage_batches(request.user),
        },
        status=status,
    )


@require_GET
def job_detail(request: HttpRequest, name: str, job: str) -> HttpResponse:
    found = batch_selectors.job_get(model=_model(request, name), name=job)
    return _render_job(request, found, ScheduleForm.for_task(found.periodic_task))


@require_POST
def job_schedule(request: HttpRequest, name: str, job: str) -> HttpResponse:
    found = batch_selectors.job_get(model=_model(request, name), name=job)
    if not may_manage_batches(request.user):
        # Refused before the form is read, as creating a job is: a 403, not a form error.
        raise PermissionDenied
    form = ScheduleForm(request.POST)
    message = schedule_form_apply(
        form,
        what=found.name,
        unscheduled="no longer runs on a schedule",
        set_schedule=lambda **when: services.job_schedule(actor=request.user, job=found, **when).periodic_task,
        unset_schedule=lambda: services.job_unschedule(actor=request.user, job=found),
    )
    if message is not None:
        messages.success(request, message)
        return redirect(found)
    return _render_job(request, found, form, status=400)


@require_POST
def job_run(request: HttpRequest, name: str, job: str) -> HttpResponse:
    found = batch_selectors.job_get(model=_model(request, name), name=job)
    try:
        run = runs.run_start(job=found, actor=request.user)
    except (PermissionDenied, ValidationError, ConflictError) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, f"Run {run.pk} started.")
    return redirect(found)


@require_GET
def run_detail(request: HttpRequest, name: str, run_id: int) -> HttpResponseBase:
    model = _model(request, name)
    run = batch_selectors.run_get(run_id=run_id)
    if run.job.model_id != model.pk:
        raise PermissionDenied
    export = request.GET.get("export", "")
    if export == "scores":  # spreadsheet-safe and streamed, however many rows
        scores = batch_selectors.run_scores(run=run).iterator(chunk_size=EXPORT_CHUNK_ROWS)
        return csv_response(
            header=["entity_id", "prediction", "probability", "scored_at"],
            rows=((entity, label(output), score, at.isoformat()) for entity, output, score, at in scores),
            filename=f"{model.name}-run-{run.pk}-scores.csv",
        )
    if export == "rejects":
        rejects_rows = batch_selectors.run_rejects(run=run).values_list("row_number", "entity_id", "reason")
        return csv_response(
            header=["row_number", "entity_id", "reason"],
            rows=rejects_rows.iterator(chunk_size=EXPORT_CHUNK_ROWS),
            filename=f"{model.name}-run-{run.pk}-rejects.csv",
        )
    rejects = Paginator(batch_selectors.run_rejects(run=run), REJECTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "scoring/run_detail.html",
        {
            "model": model,
            "job": run.job,
            "run": run,
            "progress": batch_selectors.run_progress(run=run),
            "page": rejects,
            "may_resume": run.status == BatchRun.Status.FAILED and may_manage_batches(request.user),
        },
    )


@require_POST
def run_resume(request: HttpRequest, name: str, run_id: int) -> HttpResponse:
    model = _model(request, name)
    run = batch_selectors.run_get(run_id=run_id)
    if run.job.model_id != model.pk:
        raise PermissionDenied
    try:
        runs.run_resume(actor=request.user, run=run)
    except (PermissionDenied, ConflictError) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, f"Run {run.pk} resumes: chunks already done are kept.")
    return redirect("scoring:run-detail", model.name, run.pk)
