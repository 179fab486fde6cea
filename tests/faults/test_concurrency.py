"""The same decision taken twice at the same moment: go-lives, approvals, batch runs of one schedule.

Each contender runs in its own thread with its own database connection, all released together by a
barrier, against a committed database (transaction=True). On PostgreSQL the row locks decide; on SQLite
the database's single write lock does (BEGIN IMMEDIATE), which still proves the outcome is consistent.

What is right, and enforced:
- Go-live: a go-live means "this version is production from now on". Two at once are serialised per
  model: both succeed, the later replaces the earlier exactly as if it had been clicked a moment later,
  and the audit trail tells that story (v1 → a → b), with one production version at every instant.
- Approval: a reviewer's approval is recorded once per review round (a double click gets 409); two
  reviewers at once both count towards the quorum, and the move to "approved" (with one check run)
  happens once. With a quorum of one, the second approval finds the version approved and gets 409.
- Batch: one run per job at a time. Beat firing twice makes one run; "Run now" clicked twice makes one
  run and a 409; the same run's start delivered twice at once scores every row exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from config.api import ConflictError
from registry import audit, workflow
from registry.choices import VersionStatus as S
from registry.models import AuditEvent, ModelVersion, RegisteredModel, SignOff, Tag
from scoring import queue, tasks
from scoring.batch import runs, services
from scoring.models import BatchChunk, BatchJob, BatchRun, BatchScore
from tests.scoring.batch_support import customer_table, nightly_job, put_in_production, use_input_dir, write_input
from tests.support import force_checks_passed

pytestmark = pytest.mark.django_db(transaction=True)


def race(*contenders: Callable[[], Any], timeout: float = 120) -> list[Any]:
    """Run each callable in its own thread, released at the same moment; each one's result or exception."""
    barrier = threading.Barrier(len(contenders))
    outcomes: list[Any] = [None] * len(contenders)

    def run(index: int, contender: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = contender()
        except Exception as exc:  # the outcome to judge, whatever it is
            outcomes[index] = exc
        finally:
            connection.close()  # each thread has its own connection; leave none open for teardown

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a contender hung (deadlock?)"
    return outcomes


def errors(outcomes: list[Any]) -> list[Exception]:
    return [outcome for outcome in outcomes if isinstance(outcome, Exception)]


# --- go-live ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_previous", [True, False], ids=["replacing-production", "first-production"])
def test_two_go_lives_at_once_leave_one_production_version_and_a_consistent_audit_trail(
    with_previous: bool,
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    register: Callable[..., ModelVersion],
) -> None:
    first = register(churn_model, author)
    if with_previous:
        put_in_production(first, author, reviewer, second_reviewer)
    a = force_checks_passed(register(churn_model, author))
    b = force_checks_passed(register(churn_model, author))

    outcomes = race(
        lambda: workflow.version_transition(actor=reviewer, version=a, action="go_live"),
        lambda: workflow.version_transition(actor=second_reviewer, version=b, action="go_live"),
    )

    assert errors(outcomes) == []  # serialised: the later one replaces the earlier, nothing fails
    production = list(ModelVersion.objects.filter(model=churn_model, status=S.PRODUCTION))
    assert len(production) == 1
    winner = production[0]
    loser = b if winner == a else a
    loser.refresh_from_db()
    assert loser.status == S.RETIRED
    # The production history is one unbroken chain ending at the version in production now.
    changes = list(AuditEvent.objects.filter(model=churn_model, action="model.production_changed").order_by("at", "id"))
    chain = [((event.old or {}).get("version"), (event.new or {}).get("version")) for event in changes]
    start = [(None, first.number)] if with_previous else []
    assert chain == [*start, (start[0][1] if start else None, loser.number), (loser.number, winner.number)]
    retired = AuditEvent.objects.filter(action="version.retired", version=loser).get()
    assert retired.new == {"status": S.RETIRED, "replaced_by": winner.number}
    for version in (a, b):
        assert AuditEvent.objects.filter(action="version.go_live", version=version).count() == 1
        assert version.signoffs.filter(kind=SignOff.Kind.GO_LIVE).count() == 1
    assert audit.production_at(model=churn_model, at=timezone.now()).version == winner


# --- approvals --------------------------------------------------------------------------------------


@pytest.fixture
def in_review(churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]) -> ModelVersion:
    version = register(churn_model, author)
    return workflow.version_transition(actor=author, version=version, action="submit")


def test_the_same_approval_sent_twice_at_once_is_recorded_once(
    in_review: ModelVersion, reviewer: Any, api: Callable[[Any], APIClient]
) -> None:
    """A double click (two HTTP requests of one reviewer): one sign-off, and the other request gets a 409."""
    url = f"/api/models/churn/versions/{in_review.number}/transitions/"
    outcomes = race(
        lambda: api(reviewer).post(url, {"action": "approve"}, format="json"),
        lambda: api(reviewer).post(url, {"action": "approve"}, format="json"),
    )

    assert errors(outcomes) == []
    assert sorted(response.status_code for response in outcomes) == [200, 409], [r.content for r in outcomes]
    assert in_review.signoffs.filter(kind=SignOff.Kind.APPROVAL).count() == 1
    assert AuditEvent.objects.filter(action="version.approve", version=in_review).count() == 1
    in_review.refresh_from_db()
    assert in_review.status in (S.APPROVED, S.CHECKS_PASSED, S.CHECKS_FAILED)
    assert in_review.check_runs.count() == 1


def test_two_reviewers_approving_at_once_reach_a_quorum_of_two_once(
    churn_model: RegisteredModel, in_review: ModelVersion, reviewer: Any, second_reviewer: Any
) -> None:
    churn_model.tags.add(Tag.objects.create(name="high-risk"))

    outcomes = race(
        lambda: workflow.version_transition(actor=reviewer, version=in_review, action="approve"),
        lambda: workflow.version_transition(actor=second_reviewer, version=in_review, action="approve"),
    )

    assert errors(outcomes) == []
    approvals = in_review.signoffs.filter(kind=SignOff.Kind.APPROVAL, review_round=in_review.review_round)
    assert sorted(approvals.values_list("user__username", flat=True)) == ["ravi", "rita"]
    events = list(AuditEvent.objects.filter(action="version.approve", version=in_review).order_by("id"))
    # The first approval kept it in review, the second reached the quorum: never both, never neither. The
    # checks run at submission judged these very files, so their outcome stands at once.
    assert [(event.new or {}).get("status") for event in events] == [S.IN_REVIEW, S.CHECKS_PASSED]
    assert in_review.check_runs.count() == 1


def test_with_a_quorum_of_one_the_second_approval_at_the_same_moment_is_refused(
    in_review: ModelVersion, reviewer: Any, second_reviewer: Any
) -> None:
    outcomes = race(
        lambda: workflow.version_transition(actor=reviewer, version=in_review, action="approve"),
        lambda: workflow.version_transition(actor=second_reviewer, version=in_review, action="approve"),
    )

    refused = errors(outcomes)
    assert len(refused) == 1 and isinstance(refused[0], ConflictError), refused
    assert "checks passed: cannot approve" in str(refused[0])  # the submission's checks stood at the quorum
    assert in_review.signoffs.filter(kind=SignOff.Kind.APPROVAL).count() == 1
    assert AuditEvent.objects.filter(action="version.approve", version=in_review).count() == 1
    assert in_review.check_runs.count() == 1


# --- batch runs of one schedule ---------------------------------------------------------------------


ROWS = 120


@pytest.fixture
def scheduled_job(
    settings: Any,
    tmp_path: Path,
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    register: Callable[..., ModelVersion],
) -> BatchJob:
    put_in_production(register(churn_model, author), author, reviewer, second_reviewer)
    write_input(use_input_dir(settings, tmp_path), customer_table(ROWS), "nightly.csv")
    job = nightly_job(churn_model, author, input_path="nightly.csv", chunk_rows=20)
    return services.job_schedule(actor=author, job=job, crontab="0 2 * * *")


@pytest.fixture
def queued_starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs whose start was queued, kept instead of run at once, so the race is only about creating runs."""
    queued: list[int] = []
    monkeypatch.setattr(queue, "start_batch_run", lambda run_id, **_: queued.append(run_id))
    return queued


def assert_scored_exactly_once(run: BatchRun) -> None:
    run.refresh_from_db()
    assert run.status == BatchRun.Status.SUCCEEDED, run.error
    assert (run.rows_total, run.rows_scored, run.rows_rejected) == (ROWS, ROWS, 0)
    assert run.chunks_done == run.chunks_total == ROWS // 20
    assert BatchChunk.objects.filter(run=run).count() == run.chunks_total
    scores = BatchScore.objects.filter(run=run)
    assert scores.count() == ROWS
    assert scores.values("entity_id").distinct().count() == ROWS
    assert AuditEvent.objects.filter(action="batch_run.succeeded", new__run=run.pk).count() == 1


def test_beat_firing_twice_at_once_starts_one_run(scheduled_job: BatchJob, queued_starts: list[int]) -> None:
    outcomes = race(lambda: tasks.run_batch_job(scheduled_job.pk), lambda: tasks.run_batch_job(scheduled_job.pk))

    assert errors(outcomes) == []
    run = BatchRun.objects.get(job=scheduled_job)  # exactly one
    assert run.trigger == runs.TRIGGER_SCHEDULE
    assert queued_starts == [run.pk]
    assert AuditEvent.objects.filter(action="batch_run.requested").count() == 1
    tasks.start_batch_run(run.pk)
    assert_scored_exactly_once(run)


def test_run_now_clicked_twice_at_once_starts_one_run_and_answers_409(
    scheduled_job: BatchJob, author: Any, api: Callable[[Any], APIClient], queued_starts: list[int]
) -> None:
    url = "/api/models/churn/batch-jobs/nightly/runs/"
    outcomes = race(lambda: api(author).post(url, {}, format="json"), lambda: api(author).post(url, {}, format="json"))

    assert errors(outcomes) == []
    assert sorted(response.status_code for response in outcomes) in ([201, 409], [202, 409]), [
        r.content for r in outcomes
    ]
    run = BatchRun.objects.get(job=scheduled_job)
    assert queued_starts == [run.pk]


def test_a_run_started_twice_at_once_scores_every_row_exactly_once(
    scheduled_job: BatchJob, queued_starts: list[int]
) -> None:
    """The start task delivered twice at the same moment (a redelivery, or beat and a resume): both
    deliveries prepare and score chunks concurrently, and every entity is scored once."""
    run = runs.run_start(job=scheduled_job, trigger=runs.TRIGGER_SCHEDULE)

    outcomes = race(lambda: tasks.start_batch_run(run.pk), lambda: tasks.start_batch_run(run.pk))

    assert errors(outcomes) == []
    assert_scored_exactly_once(run)
