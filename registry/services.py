"""Writes of registered models, and a reviewer's trust in a version's artifact. Each service checks its
business rules, runs in one transaction and records an audit event; views and the API only parse input and
call these. Registering a version is in registration.py, its review in workflow.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from registry import check_runs, permissions, queue
from registry.audit import audit_event_create
from registry.choices import AuditAction, ModelTask, VersionStatus
from registry.models import ModelVersion, RegisteredModel, Tag

# --- models ---------------------------------------------------------------------------------


def _tags(names: Iterable[str]) -> list[Tag]:
    tags = []
    for raw in names:
        name = raw.strip().lower()
        if name:
            tags.append(Tag.objects.get_or_create(name=name)[0])
    return tags


def _model_snapshot(model: RegisteredModel) -> dict[str, Any]:
    return {
        "title": model.title,
        "description": model.description,
        "task": model.task,
        "owner": model.owner.get_username(),
        "tags": sorted(tag.name for tag in model.tags.all()),
        "business_context": model.business_context,
    }


@transaction.atomic
def model_create(
    *,
    actor: Any,
    name: str,
    title: str,
    task: str,
    description: str = "",
    tags: Iterable[str] = (),
    business_context: str = "",
) -> RegisteredModel:
    permissions.require_create_models(actor)
    if RegisteredModel.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A model named {name!r} already exists."]})
    if task not in ModelTask.values:
        raise ValidationError({"task": [f"Must be one of {', '.join(ModelTask.values)}."]})
    model = RegisteredModel(
        name=name,
        title=title or name,
        task=task,
        description=description,
        business_context=business_context,
        owner=actor,
    )
    model.full_clean()
    model.save()
    model.tags.set(_tags(tags))
    audit_event_create(actor=actor, action=AuditAction.MODEL_CREATED, model=model, new=_model_snapshot(model))
    return model


@transaction.atomic
def model_update(
    *,
    actor: Any,
    model: RegisteredModel,
    title: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    business_context: str | None = None,
) -> RegisteredModel:
    permissions.require_edit_model(actor, model)
    old = _model_snapshot(model)
    if title is not None:
        model.title = title
    if description is not None:
        model.description = description
    if business_context is not None:
        model.business_context = business_context
    model.full_clean()
    model.save()
    if tags is not None:
        model.tags.set(_tags(tags))
    new = _model_snapshot(model)
    changed = {key for key in new if new[key] != old[key]}
    if changed:
        audit_event_create(
            actor=actor,
            action=AuditAction.MODEL_UPDATED,
            model=model,
            old={key: old[key] for key in sorted(changed)},
            new={key: new[key] for key in sorted(changed)},
        )
    return model


# --- versions -------------------------------------------------------------------------------


@transaction.atomic
def version_accept_untrusted_types(*, actor: Any, version: ModelVersion, reason: str = "") -> ModelVersion:
    """A reviewer vouches for the artifact's types, which allows workers to load it."""
    permissions.require_accept_untrusted_types(actor, version)
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if not locked.requires_trust:
        raise ValidationError({"detail": ["This version has no untrusted types to accept."]})
    if locked.trust_accepted_at is not None:
        raise ValidationError({"detail": ["The untrusted types of this version are already accepted."]})
    locked.trust_accepted_by = actor
    locked.trust_accepted_at = timezone.now()
    locked.save(update_fields=["trust_accepted_by", "trust_accepted_at"])
    audit_event_create(
        actor=actor,
        action=AuditAction.VERSION_TRUST_ACCEPTED,
        version=locked,
        new={"untrusted_types": locked.untrusted_types},
        reason=reason,
    )
    # A model nobody vouched for is not loaded, so not compiled either: now it can be.
    queue.compile_version(locked)
    if locked.status in VersionStatus.CHECK_SOURCES | {VersionStatus.IN_REVIEW}:
        # The checks that could not load the model can now run, before the approval as after it.
        check_runs.checks_request(actor=actor, version=locked)
    return locked
