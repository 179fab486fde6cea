"""A fresh Model Factory for a benchmark: the database migrated and one model put in production.

Everything goes through the product's own services (registration, untrusted-type review, submit,
approve, the pre-deployment checks, go-live, a consumer token). The checks that a worker would run
after approval are computed here directly, so no worker is needed yet.

Call `configure()` first: it sets the environment (data directory, database, broker) and starts
Django; the registry is imported only after that.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def configure(env: dict[str, str]) -> None:
    """Point Django at the benchmark's own data directory, database and broker, and migrate."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.base"
    sys.path.insert(0, str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


@dataclass(frozen=True)
class Production:
    model: Any  # registry.models.RegisteredModel
    version: Any  # registry.models.ModelVersion, in production
    author: Any  # a data scientist, who may also manage batch jobs
    token: str  # a consumer token for the model
    user_token: str  # the author's API token (knox), as a person or a notebook calls the API


def register_in_production(
    *,
    name: str,
    title: str,
    artifact: Path,
    golden_set: Path,
    columns: list[str] | None,
    onnx: Path | None = None,
    reference_data: Path | None = None,
    input_schema: list[dict[str, Any]] | None = None,
) -> Production:
    """Register, review, check and put in production. `input_schema` (typed fields) or `columns`
    (all float) give the schema; with neither it comes from the artifact
    (an MLflow model's signature). Compilation runs in the checks, as a worker's checks run it when the
    registration's own compile task has not been picked up yet (there is no worker here)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.files.uploadedfile import SimpleUploadedFile
    from knox.models import AuthToken

    from registry import check_runs, consumers, registration, roles, services, workflow
    from registry.choices import VersionStatus
    from registry.models import CheckRun

    def user(username: str, group: str) -> Any:
        created, _ = get_user_model().objects.get_or_create(username=username, email=f"{username}@example.com")
        created.groups.add(Group.objects.get(name=group))
        return get_user_model().objects.get(pk=created.pk)  # a fresh object: permissions are cached

    def upload(path: Path) -> SimpleUploadedFile:
        return SimpleUploadedFile(path.name, path.read_bytes())

    roles.ensure_roles()
    author = user("bench-author", roles.DATA_SCIENTIST)
    reviewer, second_reviewer = user("bench-reviewer", roles.REVIEWER), user("bench-reviewer-2", roles.REVIEWER)
    model = services.model_create(actor=author, name=name, title=title, task="classification", description=title)
    environment = {
        "python": sys.version.split()[0],
        "libraries": {library: package_version(library) for library in ("scikit-learn", "numpy", "pandas", "skops")},
    }
    version = registration.version_register(
        actor=author,
        model=model,
        upload=registration.VersionUpload(
            artifact=upload(artifact),
            onnx=upload(onnx) if onnx is not None else None,
            golden_set=upload(golden_set),
            reference_data=upload(reference_data) if reference_data is not None else None,
            # Types only, no ranges: the same contract as an MLflow signature.
            input_schema=input_schema
            or (
                [{"name": column, "type": "float", "required": True} for column in columns]
                if columns is not None
                else None
            ),
            environment=environment,
            release_notes="Benchmark model.",
        ),
    )
    if version.untrusted_types:  # skops lists the tree classes: a reviewer vouches for them
        version = services.version_accept_untrusted_types(actor=reviewer, version=version, reason="Benchmark model.")
    version = workflow.version_transition(actor=author, version=version, action=workflow.SUBMIT)
    version = workflow.version_transition(actor=reviewer, version=version, action=workflow.APPROVE)
    for check_run in version.check_runs.filter(status=CheckRun.Status.RUNNING):
        check_runs.checks_record(check_run_id=check_run.pk)
    version.refresh_from_db()
    if version.status != VersionStatus.CHECKS_PASSED:
        latest = version.check_runs.order_by("-started_at", "-id").first()
        failed = [r["summary"] for r in (latest.results if latest else []) if r["status"] == "failed"]
        raise RuntimeError(f"The pre-deployment checks did not pass ({version.status}): {failed}")
    version = workflow.version_transition(actor=second_reviewer, version=version, action=workflow.GO_LIVE)
    _, token = consumers.consumer_create(actor=author, model=model, name="bench", contact_email="b@example.com")
    _, user_token = AuthToken.objects.create(user=author, expiry=None)
    return Production(model=model, version=version, author=author, token=token, user_token=user_token)
