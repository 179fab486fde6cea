"""The review workflow: one transition table, and the services that move versions through it.

Every transition locks the version row, checks who may act and from which status, writes the
new status and an audit row in one transaction. Sign-offs record the sha256 of every file the
signer reviewed, and go-live re-reads the files to prove they are still those bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.api import ConflictError
from registry import notifications, permissions
from registry.audit import audit_event_create
from registry.choices import VersionStatus as S
from registry.compilation_services import compilation_run
from registry.loading import ArtifactIntegrityError, verified_path
from registry.models import AuditEvent, CheckRun, Comment, ModelVersion, RegisteredModel, SignOff
from registry.selectors import production_version

logger = logging.getLogger(__name__)

SUBMIT, APPROVE, REQUEST_CHANGES, REJECT = "submit", "approve", "request_changes", "reject"
GO_LIVE, ROLLBACK, DEPRECATE = "go_live", "rollback", "deprecate"
REVIEW_PERMISSION = "registry.review_version"
GO_LIVE_PERMISSION = "registry.go_live_version"

_OPEN = frozenset({S.DRAFT, S.IN_REVIEW, S.APPROVED, S.CHECKS_PASSED, S.CHECKS_FAILED})


@dataclass(frozen=True)
class Transition:
    action: str
    label: str
    sources: frozenset[str]
    target: str
    # None: the version's author or the model's owner acts (submitting their own work).
    permission: str | None
    # The author may never sign this (four-eyes).
    four_eyes: bool = False
    comment_required: bool = False


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in [
        Transition(SUBMIT, "Submit for review", frozenset({S.DRAFT, S.CHANGES_REQUESTED}), S.IN_REVIEW, None),
        # Approving records a sign-off; the status moves once the model's quorum is reached.
        Transition(APPROVE, "Approve", frozenset({S.IN_REVIEW}), S.APPROVED, REVIEW_PERMISSION, four_eyes=True),
        Transition(
            REQUEST_CHANGES,
            "Request changes",
            _OPEN - {S.DRAFT},
            S.CHANGES_REQUESTED,
            REVIEW_PERMISSION,
            comment_required=True,
        ),
        Transition(REJECT, "Reject", _OPEN, S.REJECTED, REVIEW_PERMISSION, comment_required=True),
        Transition(GO_LIVE, "Go live", frozenset({S.CHECKS_PASSED}), S.PRODUCTION, GO_LIVE_PERMISSION, four_eyes=True),
        Transition(
            ROLLBACK,
            "Roll back to this version",
            frozenset({S.RETIRED}),
            S.PRODUCTION,
            GO_LIVE_PERMISSION,
            four_eyes=True,
            comment_required=True,
        ),
        Transition(
            DEPRECATE,
            "Mark do not use",
            frozenset({S.PRODUCTION, S.RETIRED}),
            S.DEPRECATED,
            REVIEW_PERMISSION,
            comment_required=True,
        ),
    ]
}
# Set by the pre-deployment checks (a worker), not by people.
CHECK_SOURCES = frozenset({S.APPROVED, S.CHECKS_PASSED, S.CHECKS_FAILED})


def allowed_actions(status: str) -> list[str]:
    return [action for action, t in TRANSITIONS.items() if status in t.sources]


def _refusal(actor: Any, version: ModelVersion, transition: Transition) -> str | None:
    """Why `actor` may not take `transition` on `version`, or None."""
    if not getattr(actor, "is_authenticated", False):
        return "Sign in first."
    if transition.permission is None:
        if actor.pk not in (version.author_id, version.model.owner_id):
            return "Only the author of the version or the owner of the model may submit it."
        return None
    if transition.four_eyes:
        refusal = permissions.four_eyes_refusal(actor, version.author)
        if refusal is not None:
            return refusal
        if transition.action == APPROVE:
            for signoff in _round_approvals(version).select_related("user"):
                if signoff.user_id != actor.pk and permissions.same_person(actor, signoff.user):
                    return (
                        f"Four-eyes: this account has the same email as {signoff.user}, who already approved "
                        "in this review round; approvals must come from different people."
                    )
    if not actor.has_perm(transition.permission):
        return f"You do not have the permission to {transition.label.lower()}."
    return None


def _round_approvals(version: ModelVersion) -> Any:
    return version.signoffs.filter(kind=SignOff.Kind.APPROVAL, review_round=version.review_round)


def approvals_needed(version: ModelVersion) -> int:
    """The quorum of the current review round: the model's, but never fewer than when it was submitted.

    Removing the high-risk tag or lowering required_approvals while a version is in review must not
    let it through on fewer approvals; the quorum at submission is read back from the audit trail,
    which nobody can rewrite.
    """
    needed = version.model.approvals_needed
    submitted = (
        AuditEvent.objects.filter(version=version, action=f"version.{SUBMIT}", new__review_round=version.review_round)
        .order_by("-at", "-id")
        .values_list("new", flat=True)
        .first()
    )
    if isinstance(submitted, dict) and isinstance(submitted.get("approvals_needed"), int):
        needed = max(needed, submitted["approvals_needed"])
    return needed


def available_actions(*, user: Any, version: ModelVersion) -> list[Transition]:
    """The transitions `user` may take now: what the page offers as buttons."""
    available = []
    for action in allowed_actions(version.status):
        transition = TRANSITIONS[action]
        if _refusal(user, version, transition) is not None:
            continue
        if (
            action == APPROVE
            and version.signoffs.filter(
                kind=SignOff.Kind.APPROVAL, review_round=version.review_round, user=user
            ).exists()
        ):
            continue
        available.append(transition)
    return available


def _evidence(version: ModelVersion) -> dict[str, str]:
    """The sha256 of each file as stored now; refuses if any no longer matches its registration."""
    evidence = {}
    for version_file in version.files.all():
        try:
            verified_path(version_file)
        except ArtifactIntegrityError as exc:
            raise ConflictError(str(exc)) from exc
        evidence[version_file.filename] = version_file.sha256
    return evidence


def _set_status(version: ModelVersion, status: str) -> None:
    version.status = status
    version.status_changed_at = timezone.now()
    version.save(update_fields=["status", "status_changed_at", "review_round", "deprecation_reason"])


def version_transition(*, actor: Any, version: ModelVersion, action: str, comment: str = "") -> ModelVersion:
    """Take `action` on `version`, or raise PermissionDenied / ConflictError / ValidationError."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise ValidationError({"action": [f"Unknown action {action!r}; one of {', '.join(TRANSITIONS)}."]})
    comment = comment.strip()
    if transition.comment_required and not comment:
        raise ValidationError({"comment": [f"Say why: a comment is required to {transition.label.lower()}."]})
    try:
        with transaction.atomic():
            locked = ModelVersion.objects.select_for_update().select_related("model", "author").get(pk=version.pk)
            refusal = _refusal(actor, locked, transition)
            if refusal:
                raise PermissionDenied(refusal)
            if locked.status not in transition.sources:
                allowed = ", ".join(allowed_actions(locked.status)) or "none"
                raise ConflictError(
                    f"{locked} is {locked.get_status_display().lower()}: cannot {transition.label.lower()}. "
                    f"Allowed actions now: {allowed}."
                )
            old_status = locked.status
            _HANDLERS[action](actor, locked, transition, comment)
            new: dict[str, Any] = {"status": locked.status, "review_round": locked.review_round}
            if action == SUBMIT:
                new["approvals_needed"] = locked.model.approvals_needed  # the round's quorum, for approvals_needed()
            audit_event_create(
                actor=actor,
                action=f"version.{action}",
                version=locked,
                old={"status": old_status},
                new=new,
                reason=comment,
            )
    except IntegrityError as exc:
        # The partial unique index on production versions: another go-live won the race.
        raise ConflictError(
            f"Another version of {version.model.name} went live at the same moment; reload and decide again."
        ) from exc
    logger.info("%s: %s by %s -> %s", locked, action, actor, locked.status)
    return locked


def _submit(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    version.review_round += 1
    _set_status(version, S.IN_REVIEW)
    reviewers = (
        get_user_model()
        .objects.filter(Q(groups__permissions__codename="review_version") | Q(is_superuser=True), is_active=True)
        .exclude(pk=version.author_id)
    )
    notifications.notify_users(
        users=list(reviewers.distinct()),
        message=f"{version} by {version.author} is waiting for your review.",
        url=version.get_absolute_url(),
    )


def _approve(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    approvals = _round_approvals(version)
    if approvals.filter(user=actor).exists():
        raise ConflictError(f"You already approved {version} in this review round.")
    SignOff.objects.create(
        version=version,
        kind=SignOff.Kind.APPROVAL,
        review_round=version.review_round,
        user=actor,
        comment=comment,
        evidence=_evidence(version),
    )
    if approvals.values("user").distinct().count() >= approvals_needed(version):
        _set_status(version, S.APPROVED)
        check_run = CheckRun.objects.create(version=version, requested_by=actor)
        _queue_checks(check_run)
        notifications.notify_users(
            users=[version.author],
            message=f"{version} is approved; pre-deployment checks are running.",
            url=version.get_absolute_url(),
        )


def _queue_checks(check_run: CheckRun) -> None:
    from registry.tasks import run_version_checks

    transaction.on_commit(lambda: run_version_checks.delay(check_run.pk))


def _reject_or_request_changes(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    _set_status(version, transition.target)
    Comment.objects.create(version=version, author=actor, body=f"**{transition.label}:** {comment}")
    notifications.notify_users(
        users=[version.author],
        message=f"{actor} chose to {transition.label.lower()} on {version}: {comment}",
        url=version.get_absolute_url(),
    )


def _go_live(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    latest = version.check_runs.order_by("-started_at", "-id").first()
    if latest is None or latest.status != CheckRun.Status.PASSED:
        raise ConflictError(f"{version} has no passing pre-deployment checks; run them again before go-live.")
    _promote(actor, version, SignOff.Kind.GO_LIVE, comment)


def _rollback(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    _promote(actor, version, SignOff.Kind.ROLLBACK, comment)


def _promote(actor: Any, version: ModelVersion, kind: str, comment: str) -> None:
    SignOff.objects.create(
        version=version,
        kind=kind,
        review_round=version.review_round,
        user=actor,
        comment=comment,
        evidence=_evidence(version),
    )
    # Go-lives of one model are serialised on the model's row: one that arrives at the same moment waits,
    # then retires the version the first put live, exactly as if clicked a moment later. Without this
    # lock both would read the same "previous" and the loser would fail on the one-production index.
    RegisteredModel.objects.select_for_update().only("pk").get(pk=version.model_id)
    previous = ModelVersion.objects.select_for_update().filter(model=version.model, status=S.PRODUCTION).first()
    if previous is not None:
        _set_status(previous, S.RETIRED)
        audit_event_create(
            actor=actor,
            action="version.retired",
            version=previous,
            old={"status": S.PRODUCTION},
            new={"status": S.RETIRED, "replaced_by": version.number},
            reason=comment,
        )
    _set_status(version, S.PRODUCTION)
    _production_changed(actor, version.model, old=previous, new=version, reason=comment)


def _deprecate(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    was_production = version.status == S.PRODUCTION
    version.deprecation_reason = comment
    _set_status(version, S.DEPRECATED)
    if was_production:
        _production_changed(actor, version.model, old=version, new=None, reason=comment)
    production = production_version(model=version.model)
    use_instead = f"Use version {production.number} instead." if production else "No version is in production now."
    notifications.notify_consumers(
        model=version.model,
        event="version.deprecated",
        subject=f"[Model Factory] Do not use {version}",
        message=f"{version} has been marked do not use by {actor}: {comment}\n{use_instead}",
        payload={
            "version": version.number,
            "reason": comment,
            "production_version": production.number if production else None,
        },
    )


def _production_changed(
    actor: Any, model: RegisteredModel, *, old: ModelVersion | None, new: ModelVersion | None, reason: str
) -> None:
    audit_event_create(
        actor=actor,
        action="model.production_changed",
        model=model,
        version=new,
        old={"version": old.number if old else None},
        new={"version": new.number if new else None},
        reason=reason,
    )
    if new is not None:
        text = f"{model.name} version {new.number} is now in production"
        text += f" (replacing version {old.number})." if old else "."
    else:
        text = f"{model.name} has no production version any more (version {old.number if old else '?'} withdrawn)."
    notifications.notify_consumers(
        model=model,
        event="model.production_changed",
        subject=f"[Model Factory] {text}",
        message=f"{text}\nSigned by {actor}. Reason: {reason or '(none given)'}",
        payload={"old_version": old.number if old else None, "new_version": new.number if new else None},
    )
    notifications.notify_users(users=[model.owner], message=text, url=model.get_absolute_url())


_HANDLERS = {
    SUBMIT: _submit,
    APPROVE: _approve,
    REQUEST_CHANGES: _reject_or_request_changes,
    REJECT: _reject_or_request_changes,
    GO_LIVE: _go_live,
    ROLLBACK: _rollback,
    DEPRECATE: _deprecate,
}


# --- pre-deployment checks ------------------------------------------------------------------------


def checks_request(*, actor: Any, version: ModelVersion) -> CheckRun:
    """Run the checks again on demand (reviewers and the author)."""
    if not (actor.has_perm(REVIEW_PERMISSION) or actor.pk in (version.author_id, version.model.owner_id)):
        raise PermissionDenied("Only reviewers, the author and the model's owner may run the checks.")
    with transaction.atomic():
        if version.check_runs.filter(status=CheckRun.Status.RUNNING).exists():
            raise ConflictError(f"The checks of {version} are already running.")
        check_run = CheckRun.objects.create(version=version, requested_by=actor)
        audit_event_create(actor=actor, action="checks.requested", version=version, new={"check_run": check_run.pk})
        _queue_checks(check_run)
    return check_run


def checks_record(*, check_run_id: int) -> CheckRun | None:
    """Compute and store a requested run, then move the version by its outcome. Idempotent."""
    from registry.checks import run_checks

    check_run = CheckRun.objects.select_related("version__model").filter(pk=check_run_id).first()
    if check_run is None or check_run.status != CheckRun.Status.RUNNING:
        return check_run
    # The checks verify the compiled graph: compile now if the registration's task has not (yet).
    try:
        compilation_run(version_id=check_run.version_id)
    except Exception:  # e.g. the artifact store is full: the checks still run, and the native model serves
        logger.exception("Compiling %s for its checks failed", check_run.version)
    try:
        outcome = run_checks(check_run.version)
        status = CheckRun.Status.PASSED if outcome.passed else CheckRun.Status.FAILED
        results = [result.as_json() for result in outcome.results]
        environment, error = outcome.serving_environment, ""
    except Exception as exc:  # a bug in a check must not leave the run "running" forever
        logger.exception("Checks of %s could not run", check_run.version)
        status, results, environment, error = CheckRun.Status.ERROR, [], {}, f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        locked = CheckRun.objects.select_for_update().get(pk=check_run.pk)
        if locked.status != CheckRun.Status.RUNNING:
            return locked
        locked.status, locked.results, locked.serving_environment, locked.error = status, results, environment, error
        locked.finished_at = timezone.now()
        locked.save()
        version = ModelVersion.objects.select_for_update().select_related("model").get(pk=locked.version_id)
        audit_event_create(
            actor=None,
            action="checks.completed",
            version=version,
            new={
                "check_run": locked.pk,
                "status": status,
                "failed": [r["name"] for r in results if r["status"] == "failed"],
            },
        )
        if version.status in CHECK_SOURCES:
            target = S.CHECKS_PASSED if status == CheckRun.Status.PASSED else S.CHECKS_FAILED
            if version.status != target:
                old = version.status
                _set_status(version, target)
                audit_event_create(
                    actor=None, action=f"version.{target}", version=version, old={"status": old}, new={"status": target}
                )
                notifications.notify_users(
                    users=[version.author],
                    message=f"Pre-deployment checks of {version}: {locked.get_status_display().lower()}.",
                    url=version.get_absolute_url(),
                )
    return locked


# --- comments -------------------------------------------------------------------------------------


def comment_create(*, actor: Any, version: ModelVersion, body: str, parent: Comment | None = None) -> Comment:
    if not (actor.has_perm(REVIEW_PERMISSION) or actor.has_perm("registry.add_modelversion")):
        raise PermissionDenied("Only reviewers and data scientists may comment.")
    body = body.strip()
    if not body:
        raise ValidationError({"body": ["Write something."]})
    if len(body) > 20_000:
        raise ValidationError({"body": ["At most 20,000 characters."]})
    if parent is not None and parent.version_id != version.pk:
        raise ValidationError({"parent": ["That comment belongs to another version."]})
    with transaction.atomic():
        comment = Comment.objects.create(version=version, author=actor, body=body, parent=parent)
        audit_event_create(
            actor=actor,
            action="comment.created",
            version=version,
            new={"comment": comment.pk, "parent": parent.pk if parent else None, "body": body},
        )
        others = {version.author, *(c.author for c in version.comments.select_related("author"))} - {actor}
        notifications.notify_users(
            users=list(others), message=f"{actor} commented on {version}.", url=version.get_absolute_url()
        )
    return comment


# --- the audit trail, read back -------------------------------------------------------------------


@dataclass
class ProductionAt:
    model: RegisteredModel
    at: datetime
    version: ModelVersion | None
    since: datetime | None
    event: AuditEvent | None
    signoffs: list[SignOff]
    checks: CheckRun | None


def production_at(*, model: RegisteredModel, at: datetime) -> ProductionAt:
    """What was in production at `at`, since when, who signed it and on what evidence."""
    event = (
        AuditEvent.objects.filter(model=model, action="model.production_changed", at__lte=at)
        .select_related("actor", "version")
        .order_by("-at", "-id")
        .first()
    )
    number = (event.new or {}).get("version") if event else None
    version = model.versions.filter(number=number).first() if number else None
    signoffs: list[SignOff] = []
    checks = None
    if version is not None and event is not None:
        went_live = version.signoffs.filter(kind__in=[SignOff.Kind.GO_LIVE, SignOff.Kind.ROLLBACK], at__lte=event.at)
        last_go_live = went_live.order_by("-at").first()
        approvals = version.signoffs.filter(kind=SignOff.Kind.APPROVAL, at__lte=event.at)
        if last_go_live is not None:
            approvals = approvals.filter(review_round=last_go_live.review_round)
        signoffs = [*approvals.select_related("user"), *([last_go_live] if last_go_live else [])]
        checks = (
            version.check_runs.filter(status=CheckRun.Status.PASSED, finished_at__lte=event.at)
            .order_by("-finished_at")
            .first()
        )
    return ProductionAt(
        model=model,
        at=at,
        version=version,
        since=event.at if event else None,
        event=event,
        signoffs=signoffs,
        checks=checks,
    )
