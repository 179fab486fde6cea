"""The review workflow: one transition table, and the services that move versions through it.

Every transition locks the version row, checks who may act and from which status, writes the
new status and an audit row in one transaction. Sign-offs record the sha256 of every file the
signer reviewed, and go-live re-reads the files to prove they are still those bytes. The one move
nobody signs, from a finished pre-deployment check run, is `version_checks_finished`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.api import ConflictError
from registry import notifications, permissions, queue, selectors
from registry.audit import audit_event_create, quorum_at_submission
from registry.checks.environment import serving_environment
from registry.choices import AuditAction
from registry.choices import VersionStatus as S
from registry.loading import ArtifactIntegrityError, verified_path
from registry.models import CheckRun, Comment, ModelVersion, RegisteredModel, SignOff

logger = logging.getLogger(__name__)

SUBMIT, APPROVE, REQUEST_CHANGES, REJECT = "submit", "approve", "request_changes", "reject"
GO_LIVE, ROLLBACK, DEPRECATE = "go_live", "rollback", "deprecate"


@dataclass(frozen=True)
class Transition:
    action: str
    label: str
    sources: frozenset[str]
    target: str
    audit_action: AuditAction
    # Who may take it (a predicate of permissions.py); None: the version's author or the model's owner
    # (submitting their own work).
    may: Callable[[Any], bool] | None
    # The author may never sign this (four-eyes).
    four_eyes: bool = False
    comment_required: bool = False


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in [
        Transition(
            SUBMIT,
            "Submit for review",
            frozenset({S.DRAFT, S.CHANGES_REQUESTED}),
            S.IN_REVIEW,
            AuditAction.VERSION_SUBMIT,
            None,
        ),
        # Approving records a sign-off; the status moves once the model's quorum is reached.
        Transition(
            APPROVE,
            "Approve",
            frozenset({S.IN_REVIEW}),
            S.APPROVED,
            AuditAction.VERSION_APPROVE,
            permissions.may_review,
            four_eyes=True,
        ),
        Transition(
            REQUEST_CHANGES,
            "Request changes",
            S.OPEN - {S.DRAFT},
            S.CHANGES_REQUESTED,
            AuditAction.VERSION_REQUEST_CHANGES,
            permissions.may_review,
            comment_required=True,
        ),
        Transition(
            REJECT,
            "Reject",
            S.OPEN,
            S.REJECTED,
            AuditAction.VERSION_REJECT,
            permissions.may_review,
            comment_required=True,
        ),
        Transition(
            GO_LIVE,
            "Go live",
            frozenset({S.CHECKS_PASSED}),
            S.PRODUCTION,
            AuditAction.VERSION_GO_LIVE,
            permissions.may_go_live,
            four_eyes=True,
        ),
        Transition(
            ROLLBACK,
            "Roll back to this version",
            frozenset({S.RETIRED}),
            S.PRODUCTION,
            AuditAction.VERSION_ROLLBACK,
            permissions.may_go_live,
            four_eyes=True,
            comment_required=True,
        ),
        Transition(
            DEPRECATE,
            "Mark do not use",
            frozenset({S.PRODUCTION, S.RETIRED}),
            S.DEPRECATED,
            AuditAction.VERSION_DEPRECATE,
            permissions.may_review,
            comment_required=True,
        ),
    ]
}


def allowed_actions(status: str) -> list[str]:
    return [action for action, t in TRANSITIONS.items() if status in t.sources]


def _refusal(actor: Any, version: ModelVersion, transition: Transition) -> str | None:
    """Why `actor` may not take `transition` on `version`, or None."""
    if not getattr(actor, "is_authenticated", False):
        return "Sign in first."
    if transition.may is None:
        if not permissions.is_author_or_owner(actor, version):
            return "Only the author of the version or the owner of the model may submit it."
        return None
    if transition.four_eyes:
        refusal = permissions.four_eyes_refusal(actor, version.author)
        if refusal is not None:
            return refusal
        if transition.action == APPROVE:
            for signoff in selectors.round_approvals(version=version).select_related("user"):
                if signoff.user_id != actor.pk and permissions.same_person(actor, signoff.user):
                    return (
                        f"Four-eyes: this account has the same email as {signoff.user}, who already approved "
                        "in this review round; approvals must come from different people."
                    )
    if not transition.may(actor):
        return f"You do not have the permission to {transition.label.lower()}."
    return None


def approvals_needed(version: ModelVersion) -> int:
    """The quorum of the current review round: the model's, but never fewer than when it was submitted.

    Removing the high-risk tag or lowering required_approvals while a version is in review must not
    let it through on fewer approvals; the quorum at submission is read back from the audit trail,
    which nobody can rewrite.
    """
    needed = version.model.approvals_needed
    submitted = quorum_at_submission(version)
    return needed if submitted is None else max(needed, submitted)


def require_some_transition(actor: Any, version: ModelVersion) -> None:
    """Refuse, before the action asked for is read, whoever may take no transition of `version` in any
    status: the API's permission check that comes before validation."""
    if permissions.is_author_or_owner(actor, version):
        return
    if not any(transition.may(actor) for transition in TRANSITIONS.values() if transition.may is not None):
        raise PermissionDenied("You may take no action on versions: that is for their authors and reviewers.")


def available_actions(*, user: Any, version: ModelVersion) -> list[Transition]:
    """The transitions `user` may take now: what the page offers as buttons."""
    available = []
    for action in allowed_actions(version.status):
        transition = TRANSITIONS[action]
        if _refusal(user, version, transition) is not None:
            continue
        if action == APPROVE and selectors.round_approvals(version=version).filter(user=user).exists():
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


def checks_inputs(version: ModelVersion, files: dict[str, str] | None = None) -> dict[str, Any]:
    """What a run of the pre-deployment checks judges: anything else here, and its outcome may differ.
    `files`: the version's `_evidence`, when the caller has just read it (every file is hashed again)."""
    return {
        "review_round": version.review_round,
        "files": files if files is not None else _evidence(version),
        "trust_accepted_at": version.trust_accepted_at.isoformat() if version.trust_accepted_at else None,
        "serving_environment": serving_environment(),
    }


def checks_start(*, actor: Any, version: ModelVersion, inputs: dict[str, Any] | None = None) -> CheckRun:
    """A run of the pre-deployment checks of `version`, queued as the caller's transaction commits."""
    inputs = inputs if inputs is not None else checks_inputs(version)
    check_run = CheckRun.objects.create(version=version, requested_by=actor, inputs=inputs)
    queue.run_version_checks(check_run)
    return check_run


def review_topic(version: ModelVersion) -> str:
    """What the reviewers' "waiting for your review" notifications ask for."""
    return f"review:{version.pk}"


def _set_status(version: ModelVersion, status: str) -> None:
    if version.status == S.IN_REVIEW and status != S.IN_REVIEW:  # the review is over: nobody is asked any more
        notifications.notification_close(topic=review_topic(version))
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
                # The round's quorum, read back by approvals_needed().
                new["approvals_needed"] = locked.model.approvals_needed
            audit_event_create(
                actor=actor,
                action=transition.audit_action,
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
    if version.is_trusted:  # reviewers read the checks' results before they approve, not after
        checks_start(actor=actor, version=version)
    notifications.notify_users(
        users=selectors.reviewer_list(version=version),
        message=f"{version} by {version.author} is waiting for your review.",
        url=version.get_absolute_url(),
        topic=review_topic(version),
    )


def _approve(actor: Any, version: ModelVersion, transition: Transition, comment: str) -> None:
    approvals = selectors.round_approvals(version=version)
    if approvals.filter(user=actor).exists():
        raise ConflictError(f"You already approved {version} in this review round.")
    evidence = _evidence(version)
    SignOff.objects.create(
        version=version,
        kind=SignOff.Kind.APPROVAL,
        review_round=version.review_round,
        user=actor,
        comment=comment,
        evidence=evidence,
    )
    notifications.notification_close(topic=review_topic(version), user=actor)  # asked, and done
    if approvals.values("user").distinct().count() >= approvals_needed(version):
        _set_status(version, S.APPROVED)
        latest = version.check_runs.first()
        inputs = checks_inputs(version, files=evidence)
        message = f"{version} is approved; pre-deployment checks are running."
        if not version.is_trusted:  # accepting its types starts them (services.version_accept_untrusted_types)
            message = f"{version} is approved; its checks run once a reviewer accepts its untrusted types."
        elif latest is None or latest.inputs != inputs or latest.status == CheckRun.Status.ERROR:
            checks_start(actor=actor, version=version, inputs=inputs)
        elif latest.status == CheckRun.Status.RUNNING:
            # Queued again in case its task was lost: the task is idempotent, and the run's outcome moves
            # the version when it is recorded.
            queue.run_version_checks(latest)
        else:  # the run started at submission judged exactly this version: its outcome stands
            version_checks_finished(version=version, check_run=latest)
            return
        notifications.notify_users(users=[version.author], message=message, url=version.get_absolute_url())


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
            action=AuditAction.VERSION_RETIRED,
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
    production = selectors.production_version(model=version.model)
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
        action=AuditAction.MODEL_PRODUCTION_CHANGED,
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


# --- the move nobody signs ------------------------------------------------------------------------

_CHECKS_OUTCOMES = {
    S.CHECKS_PASSED: AuditAction.VERSION_CHECKS_PASSED,
    S.CHECKS_FAILED: AuditAction.VERSION_CHECKS_FAILED,
}


def version_checks_finished(*, version: ModelVersion, check_run: CheckRun) -> None:
    """Move a version the pre-deployment checks apply to by the outcome of `check_run`, a finished run.

    Called inside the caller's transaction, with `version` locked; a version that has moved on (rejected,
    say, or in production) keeps its status, and so does one whose checks were started again since.
    """
    if version.status not in S.CHECK_SOURCES or version.check_runs.values_list("pk", flat=True).first() != check_run.pk:
        return  # a run superseded by a later one does not decide
    target = S.CHECKS_PASSED if check_run.status == CheckRun.Status.PASSED else S.CHECKS_FAILED
    if version.status == target:
        return
    old = version.status
    _set_status(version, target)
    audit_event_create(
        actor=None, action=_CHECKS_OUTCOMES[target], version=version, old={"status": old}, new={"status": target}
    )
    notifications.notify_users(
        users=[version.author],
        message=f"Pre-deployment checks of {version}: {check_run.get_status_display().lower()}.",
        url=version.get_absolute_url(),
    )
