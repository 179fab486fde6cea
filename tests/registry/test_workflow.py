"""The review workflow: every transition allowed and refused, four-eyes, go-live, rollback, audit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from config.api import ConflictError
from registry import audit, consumers, workflow
from registry.choices import VersionStatus as S
from registry.models import AuditEvent, CheckRun, ModelVersion, RegisteredModel, SignOff, Tag
from tests.factories import UserFactory
from tests.support import force_checks_passed


@pytest.fixture
def version(churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]) -> ModelVersion:
    return register(churn_model, author)


def act(actor: Any, version: ModelVersion, action: str, comment: str = "") -> ModelVersion:
    return workflow.version_transition(actor=actor, version=version, action=action, comment=comment)


@pytest.fixture
def passed(version: ModelVersion, author: Any, reviewer: Any, django_capture_on_commit_callbacks: Any) -> ModelVersion:
    """A version through review and real pre-deployment checks (run eagerly on commit)."""
    act(author, version, "submit")
    with django_capture_on_commit_callbacks(execute=True):
        act(reviewer, version, "approve", "Looks right.")
    version.refresh_from_db()
    assert version.status == S.CHECKS_PASSED, version.check_runs.first().results  # type: ignore[union-attr]
    return version


def test_submit_approve_and_checks_move_the_version(passed: ModelVersion, reviewer: Any) -> None:
    signoff = passed.signoffs.get(kind=SignOff.Kind.APPROVAL)
    assert signoff.user == reviewer
    assert signoff.comment == "Looks right."
    assert set(signoff.evidence) == {f.filename for f in passed.files.all()}
    assert signoff.evidence["model.skops"] == passed.files.get(kind="artifact").sha256
    run = passed.check_runs.get()
    assert run.status == CheckRun.Status.PASSED
    assert {r["name"] for r in run.results} >= {"golden_set", "robustness", "environment", "latency"}
    actions = list(AuditEvent.objects.filter(version=passed).order_by("id").values_list("action", flat=True))
    assert actions == [
        "version.registered",
        "version.submit",
        "version.approve",
        "version.compiled",  # by the checks, as the registration's task had not run
        "checks.completed",
        "version.checks_passed",
    ]


def test_the_author_can_never_approve_or_sign_go_live(version: ModelVersion, author: Any) -> None:
    author.groups.add(*UserFactory.create(role="Reviewers").groups.all())  # an author who is also a reviewer
    author = type(author).objects.get(pk=author.pk)
    act(author, version, "submit")
    with pytest.raises(PermissionDenied, match="Four-eyes"):
        act(author, version, "approve")
    assert version.signoffs.count() == 0


def test_a_second_account_with_the_authors_email_cannot_approve(version: ModelVersion, author: Any) -> None:
    twin = UserFactory(username="ada2", email=author.email.upper(), role="Reviewers")
    act(author, version, "submit")
    with pytest.raises(PermissionDenied, match="same email"):
        act(twin, version, "approve")


def test_high_risk_models_need_two_distinct_approvals(
    version: ModelVersion, author: Any, reviewer: Any, second_reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    version.model.tags.add(Tag.objects.create(name="high-risk"))
    act(author, version, "submit")
    assert act(reviewer, version, "approve").status == S.IN_REVIEW
    with pytest.raises(ConflictError, match="already approved"):
        act(reviewer, version, "approve")
    with django_capture_on_commit_callbacks(execute=True):
        assert act(second_reviewer, version, "approve").status == S.APPROVED
    version.refresh_from_db()
    assert version.status == S.CHECKS_PASSED


def test_the_per_model_setting_overrides_the_default(version: ModelVersion, author: Any, reviewer: Any) -> None:
    version.model.required_approvals = 3
    version.model.save()
    act(author, version, "submit")
    assert act(reviewer, version, "approve").status == S.IN_REVIEW


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (S.DRAFT, "approve"),
        (S.DRAFT, "go_live"),
        (S.IN_REVIEW, "submit"),
        (S.IN_REVIEW, "go_live"),
        (S.APPROVED, "go_live"),
        (S.CHECKS_FAILED, "go_live"),
        (S.PRODUCTION, "approve"),
        (S.REJECTED, "submit"),
        (S.RETIRED, "go_live"),
        (S.DEPRECATED, "rollback"),
        (S.DEPRECATED, "request_changes"),
    ],
)
def test_transitions_outside_the_table_are_refused_naming_what_is_allowed(
    version: ModelVersion, reviewer: Any, status: str, action: str
) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(status=status)
    with pytest.raises(ConflictError, match="Allowed actions now"):
        act(reviewer if action != "submit" else version.author, version, action, "because")
    version.refresh_from_db()
    assert version.status == status


def test_every_table_entry_names_existing_statuses() -> None:
    for transition in workflow.TRANSITIONS.values():
        assert transition.target in S.values
        assert transition.sources <= set(S.values)


def test_every_status_group_names_existing_statuses() -> None:
    # The groups are written by value: inside the class body a member is still its (value, label) pair.
    for group in (S.OPEN, S.CHECK_SOURCES, S.WITH_AUTHOR):
        assert group <= set(S.values)


def test_request_changes_and_resubmit_open_a_new_round(
    version: ModelVersion, author: Any, reviewer: Any, second_reviewer: Any
) -> None:
    version.model.required_approvals = 2
    version.model.save()
    act(author, version, "submit")
    act(reviewer, version, "approve")
    with pytest.raises(ValidationError, match="comment is required"):
        act(second_reviewer, version, "request_changes")
    assert act(second_reviewer, version, "request_changes", "Explain the *drop* in recall.").status == (
        S.CHANGES_REQUESTED
    )
    assert version.comments.get().body.startswith("**Request changes:**")
    resubmitted = act(author, version, "submit")
    assert resubmitted.status == S.IN_REVIEW
    assert resubmitted.review_round == 2
    # The first round's approval does not count in the second.
    assert act(reviewer, resubmitted, "approve").status == S.IN_REVIEW


def test_roles_are_checked(version: ModelVersion, author: Any, manager: Any, outsider: Any, reviewer: Any) -> None:
    with pytest.raises(PermissionDenied, match="author of the version or the owner"):
        act(reviewer, version, "submit")
    act(author, version, "submit")
    for user in (manager, outsider):
        with pytest.raises(PermissionDenied, match="permission"):
            act(user, version, "approve")
    with pytest.raises(PermissionDenied):
        act(manager, version, "reject", "no")


def test_reject_is_final(version: ModelVersion, author: Any, reviewer: Any) -> None:
    act(author, version, "submit")
    assert act(reviewer, version, "reject", "Leaks the label.").status == S.REJECTED
    assert workflow.allowed_actions(S.REJECTED) == []


def test_go_live_retires_the_previous_version_and_notifies(
    passed: ModelVersion,
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    register: Callable[..., ModelVersion],
    django_capture_on_commit_callbacks: Any,
) -> None:
    consumers.consumer_create(actor=author, model=churn_model, name="call-centre", contact_email="cc@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        live = act(second_reviewer, passed, "go_live", "Ship it.")
    assert live.status == S.PRODUCTION
    assert any("version 1 is now in production" in m.subject for m in mail.outbox)

    v2 = register(churn_model, author)
    act(author, v2, "submit")
    with django_capture_on_commit_callbacks(execute=True):
        act(reviewer, v2, "approve")
    with django_capture_on_commit_callbacks(execute=True):
        act(second_reviewer, v2, "go_live")
    passed.refresh_from_db()
    assert passed.status == S.RETIRED
    assert ModelVersion.objects.filter(model=churn_model, status=S.PRODUCTION).get() == v2
    history = AuditEvent.objects.filter(action="model.production_changed").order_by("id")
    assert [(e.old["version"], e.new["version"]) for e in history] == [(None, 1), (1, 2)]  # type: ignore[index]

    # Rollback: the retired version is production again, signed, and v2 is retired.
    with pytest.raises(ValidationError):
        act(reviewer, passed, "rollback")
    with django_capture_on_commit_callbacks(execute=True):
        rolled = act(reviewer, passed, "rollback", "v2 misbehaves on the new price plan.")
    assert rolled.status == S.PRODUCTION
    v2.refresh_from_db()
    assert v2.status == S.RETIRED
    assert passed.signoffs.filter(kind=SignOff.Kind.ROLLBACK, user=reviewer).exists()


def test_go_live_is_refused_when_the_latest_checks_failed(passed: ModelVersion, second_reviewer: Any) -> None:
    CheckRun.objects.create(version=passed, status=CheckRun.Status.FAILED, finished_at=timezone.now())
    with pytest.raises(ConflictError, match="no passing pre-deployment checks"):
        act(second_reviewer, passed, "go_live")


def test_go_live_is_refused_when_a_file_changed_after_review(passed: ModelVersion, second_reviewer: Any) -> None:
    artifact = passed.files.get(kind="artifact")
    Path(artifact.file.path).write_bytes(b"other bytes")
    with pytest.raises(ConflictError, match="changed after registration"):
        act(second_reviewer, passed, "go_live")
    passed.refresh_from_db()
    assert passed.status == S.CHECKS_PASSED
    assert not passed.signoffs.filter(kind=SignOff.Kind.GO_LIVE).exists()


def test_deprecate_needs_a_reason_and_tells_consumers(
    passed: ModelVersion, author: Any, reviewer: Any, second_reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    consumers.consumer_create(actor=author, model=passed.model, name="crm", contact_email="crm@example.com")
    act(second_reviewer, passed, "go_live")
    with pytest.raises(ValidationError):
        act(reviewer, passed, "deprecate")
    with django_capture_on_commit_callbacks(execute=True):
        deprecated = act(reviewer, passed, "deprecate", "Trained on leaked labels.")
    assert deprecated.status == S.DEPRECATED
    assert deprecated.deprecation_reason == "Trained on leaked labels."
    message = next(m for m in mail.outbox if "Do not use" in m.subject)
    assert message.to == ["crm@example.com"]
    assert "Trained on leaked labels." in message.body
    assert not ModelVersion.objects.filter(model=passed.model, status=S.PRODUCTION).exists()


def test_production_at_answers_who_approved_on_what_evidence(
    passed: ModelVersion, reviewer: Any, second_reviewer: Any
) -> None:
    before = timezone.now()
    act(second_reviewer, passed, "go_live", "Ship it.")
    after = timezone.now()

    assert audit.production_at(model=passed.model, at=before).version is None
    answer = audit.production_at(model=passed.model, at=after)
    assert answer.version == passed
    assert [(s.kind, s.user) for s in answer.signoffs] == [("approval", reviewer), ("go_live", second_reviewer)]
    assert answer.checks is not None
    assert answer.checks.status == CheckRun.Status.PASSED


def test_audit_rows_cannot_be_changed_or_deleted(version: ModelVersion) -> None:
    event = AuditEvent.objects.get(version=version)
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.reason = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
def test_postgresql_refuses_raw_updates_and_deletes_of_audit_rows(version: ModelVersion) -> None:
    from django.db import DatabaseError, transaction

    event = AuditEvent.objects.get(version=version)
    for statement in (
        "UPDATE registry_auditevent SET reason = 'rewritten' WHERE id = %s",
        "DELETE FROM registry_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).reason == ""


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises all writers")
@pytest.mark.django_db(transaction=True)
def test_concurrent_go_lives_one_wins_the_other_gets_a_conflict(
    churn_model: RegisteredModel,
    author: Any,
    second_reviewer: Any,
    register: Callable[..., ModelVersion],
) -> None:
    versions = [force_checks_passed(register(churn_model, author)) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def go_live(v: ModelVersion) -> None:
        try:
            barrier.wait()
            act(second_reviewer, v, "go_live")
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=go_live, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ModelVersion.objects.filter(model=churn_model, status=S.PRODUCTION).count() == 1
    # Either the second waited and retired the first (both ok), or it lost the race (conflict);
    # never two production versions.
    assert sorted(outcomes) in (["conflict", "ok"], ["ok", "ok"])


def test_accepting_untrusted_types_reruns_the_checks_that_could_not_load_the_model(
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    register: Callable[..., ModelVersion],
    trained: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    import skops.io as sio
    from django.core.files.uploadedfile import SimpleUploadedFile
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier

    from registry import services

    pipeline, frame = trained
    forest = clone(pipeline).set_params(classify=RandomForestClassifier(n_estimators=5, random_state=0))
    forest.fit(frame, pipeline.predict(frame))
    version = register(churn_model, author, artifact=SimpleUploadedFile("forest.skops", sio.dumps(forest)))
    assert "sklearn.tree._tree.Tree" in version.untrusted_types
    with django_capture_on_commit_callbacks(execute=True):
        act(author, version, "submit")
    with django_capture_on_commit_callbacks(execute=True):
        act(reviewer, version, "approve")
    version.refresh_from_db()
    # Checks that cannot load the model are not run, neither at submission nor at approval.
    assert (version.status, version.check_runs.count()) == (S.APPROVED, 0)
    assert "once a reviewer accepts its untrusted types" in author.notifications.get().message

    with django_capture_on_commit_callbacks(execute=True):
        services.version_accept_untrusted_types(actor=reviewer, version=version, reason="sklearn trees")
    version.refresh_from_db()
    assert version.status == S.CHECKS_PASSED
    assert version.check_runs.count() == 1


def test_the_checks_run_at_submission_and_their_outcome_stands_at_approval(
    version: ModelVersion, author: Any, reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        act(author, version, "submit")
    version.refresh_from_db()
    run = version.check_runs.get()
    # The reviewer reads them before deciding; they do not move a version still in review.
    assert (version.status, run.status) == (S.IN_REVIEW, CheckRun.Status.PASSED)
    assert run.inputs["files"] == {f.filename: f.sha256 for f in version.files.all()}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        act(reviewer, version, "approve")
    version.refresh_from_db()
    assert (version.status, version.check_runs.count(), callbacks) == (S.CHECKS_PASSED, 1, [])


def test_the_checks_run_again_at_approval_when_what_they_judged_changed(
    version: ModelVersion, author: Any, reviewer: Any, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        act(author, version, "submit")
    # The servers were upgraded between submission and approval.
    upgraded = {"python": "3.11.99", "libraries": {"scikit-learn": "9.9.9"}}
    monkeypatch.setattr(workflow, "serving_environment", lambda: upgraded)
    with django_capture_on_commit_callbacks(execute=True):
        act(reviewer, version, "approve")
    version.refresh_from_db()
    runs = list(version.check_runs.all())
    assert len(runs) == 2 and runs[0].inputs["serving_environment"] == upgraded
    assert version.status in (S.CHECKS_PASSED, S.CHECKS_FAILED)


def test_a_run_started_again_since_does_not_decide(
    version: ModelVersion, author: Any, reviewer: Any, django_capture_on_commit_callbacks: Any
) -> None:
    act(author, version, "submit")  # its run's task is not run here: it is still running
    stale = version.check_runs.get()
    with django_capture_on_commit_callbacks(execute=True):
        act(reviewer, version, "approve")  # same inputs: the run is queued again, and decides
    version.refresh_from_db()
    assert version.status == S.CHECKS_PASSED and version.check_runs.get().pk == stale.pk

    newer = workflow.checks_start(actor=reviewer, version=version)
    CheckRun.objects.filter(pk=stale.pk).update(status=CheckRun.Status.FAILED)
    stale.refresh_from_db()
    workflow.version_checks_finished(version=version, check_run=stale)
    version.refresh_from_db()
    assert version.status == S.CHECKS_PASSED and newer.status == CheckRun.Status.RUNNING
