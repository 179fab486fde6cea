"""Four-eyes cannot be bypassed: not through the API, the pages, the Django admin, a second account
of the same person, nor by changing a version (or its quorum) after review began."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from registry import workflow
from registry.choices import VersionStatus as S
from registry.models import ModelVersion, RegisteredModel, SignOff, Tag
from tests.factories import UserFactory
from tests.support import force_checks_passed

URL = "/api/models/churn/versions/1/"


@pytest.fixture
def version(churn_model: RegisteredModel, author: Any, register: Callable[..., ModelVersion]) -> ModelVersion:
    return register(churn_model, author)


@pytest.fixture
def reviewing_author(author: Any) -> Any:
    """Ada is also a reviewer: only four-eyes, not a missing permission, stops her."""
    author.groups.add(*UserFactory.create(username="any-reviewer", role="Reviewers").groups.all())
    return type(author).objects.get(pk=author.pk)


@pytest.fixture
def checks_passed(version: ModelVersion, author: Any, reviewer: Any) -> ModelVersion:
    """Approved, with passing checks. The real checks are tested in tests/registry; their latency
    budget is not what is under test here, so their outcome is set rather than measured."""
    workflow.version_transition(actor=author, version=version, action="submit")
    workflow.version_transition(actor=reviewer, version=version, action="approve")
    return force_checks_passed(version)


def transition(api: Any, user: Any, action: str, comment: str = "") -> Any:
    return api(user).post(f"{URL}transitions/", {"action": action, "comment": comment}, format="json")


def status_of(version: ModelVersion) -> str:
    version.refresh_from_db()
    return version.status


# --- the API ---------------------------------------------------------------------------------------


def test_it_refuses_the_authors_own_approval_through_the_api(
    api: Any, version: ModelVersion, reviewing_author: Any
) -> None:
    assert transition(api, reviewing_author, "submit").status_code == 200
    response = transition(api, reviewing_author, "approve", "Mine is fine.")
    assert response.status_code == 403
    assert "Four-eyes" in response.json()["detail"]
    assert status_of(version) == S.IN_REVIEW
    assert not version.signoffs.exists()


def test_it_refuses_the_authors_own_go_live_through_the_api(
    api: Any, checks_passed: ModelVersion, reviewing_author: Any
) -> None:
    response = transition(api, reviewing_author, "go_live", "Ship my own.")
    assert response.status_code == 403
    assert "Four-eyes" in response.json()["detail"]
    assert status_of(checks_passed) == S.CHECKS_PASSED
    assert not checks_passed.signoffs.filter(kind=SignOff.Kind.GO_LIVE).exists()


# --- the pages -------------------------------------------------------------------------------------


def test_it_refuses_the_authors_own_sign_offs_posted_from_the_browser(
    client: Client, checks_passed: ModelVersion, reviewing_author: Any, version: ModelVersion
) -> None:
    client.force_login(reviewing_author)
    for action in ("go_live", "approve"):
        response = client.post("/models/churn/versions/1/transition/", {"action": action, "comment": "mine"})
        assert response.status_code == 302
        errors = [str(m) for m in get_messages(response.wsgi_request)]
        assert any("Four-eyes" in e or "cannot" in e for e in errors), errors
    assert status_of(checks_passed) == S.CHECKS_PASSED
    assert list(checks_passed.signoffs.values_list("kind", flat=True)) == [SignOff.Kind.APPROVAL]


# --- the Django admin ------------------------------------------------------------------------------


def test_the_admin_cannot_edit_a_versions_status_or_its_sign_offs(
    client: Client, checks_passed: ModelVersion, admin_user: Any
) -> None:
    client.force_login(admin_user)
    change = f"/admin/registry/modelversion/{checks_passed.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200  # shown, read-only
    assert 'name="status"' not in page.content.decode()
    assert client.post(change, {"status": S.PRODUCTION}).status_code == 403
    assert status_of(checks_passed) == S.CHECKS_PASSED

    signoff = checks_passed.signoffs.get()
    assert client.post(f"/admin/registry/signoff/{signoff.pk}/change/", {"user": admin_user.pk}).status_code == 403
    assert (
        client.post("/admin/registry/signoff/add/", {"version": checks_passed.pk, "kind": "go_live"}).status_code == 403
    )
    assert client.post(f"/admin/registry/signoff/{signoff.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/registry/modelversion/{checks_passed.pk}/delete/", {"post": "yes"}).status_code == 403
    assert checks_passed.signoffs.count() == 1


def test_the_admin_cannot_lower_a_models_quorum(client: Client, churn_model: RegisteredModel, admin_user: Any) -> None:
    churn_model.tags.add(Tag.objects.create(name="high-risk"))
    churn_model.required_approvals = 3
    churn_model.save()
    client.force_login(admin_user)
    response = client.post(
        f"/admin/registry/registeredmodel/{churn_model.pk}/change/",
        {"title": "Churn", "owner": churn_model.owner_id, "required_approvals": "1", "tags": []},
    )
    assert response.status_code in (200, 302)
    churn_model.refresh_from_db()
    assert churn_model.required_approvals == 3
    assert [tag.name for tag in churn_model.tags.all()] == ["high-risk"]


# --- a second account of the same person -------------------------------------------------------------


@pytest.mark.parametrize("action", ["approve", "go_live"])
def test_it_refuses_a_second_account_with_the_authors_email(
    api: Any, checks_passed: ModelVersion, version: ModelVersion, author: Any, action: str
) -> None:
    twin = UserFactory(username="ada-work", email=f"  {author.email.upper()} ", role="Reviewers")
    if action == "approve":
        ModelVersion.objects.filter(pk=version.pk).update(status=S.IN_REVIEW)
    response = transition(api, twin, action)
    assert response.status_code == 403
    assert "same email" in response.json()["detail"]


def test_two_accounts_with_one_email_count_as_one_approval(
    api: Any,
    version: ModelVersion,
    author: Any,
    reviewer: Any,
    second_reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    version.model.tags.add(Tag.objects.create(name="high-risk"))  # two approvals needed
    transition(api, author, "submit")
    assert transition(api, reviewer, "approve").json()["status"] == S.IN_REVIEW
    rita_again = UserFactory(username="rita-admin", email=reviewer.email.title(), role="Reviewers")
    response = transition(api, rita_again, "approve")
    assert response.status_code == 403
    assert "different people" in response.json()["detail"]
    assert status_of(version) == S.IN_REVIEW
    assert version.signoffs.count() == 1
    # The page does not offer her the button either.
    assert workflow.TRANSITIONS["approve"] not in workflow.available_actions(user=rita_again, version=version)
    with django_capture_on_commit_callbacks(execute=True):
        assert transition(api, second_reviewer, "approve").json()["status"] == S.APPROVED


# --- changing the version, or its quorum, after review began ---------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_registered_version_has_no_edit_endpoint(
    api: Any, checks_passed: ModelVersion, author: Any, method: str
) -> None:
    response = getattr(api(author), method)(URL, {"status": "production", "params": {"C": 9}}, format="json")
    assert response.status_code == 405
    checks_passed.refresh_from_db()
    assert checks_passed.status == S.CHECKS_PASSED
    assert checks_passed.params == {"C": 1.0, "penalty": "l2"}


def test_go_live_is_refused_when_the_approved_artifact_changed_on_disk(
    api: Any, checks_passed: ModelVersion, second_reviewer: Any
) -> None:
    artifact = checks_passed.files.get(kind="artifact")
    with artifact.file.open("ab") as stored:
        stored.write(b"swapped after approval")
    response = transition(api, second_reviewer, "go_live")
    assert response.status_code == 409
    assert "sha256" in response.json()["detail"] or "changed" in response.json()["detail"]
    assert status_of(checks_passed) == S.CHECKS_PASSED


def test_removing_the_high_risk_tag_during_review_does_not_lower_the_quorum(
    api: Any, version: ModelVersion, author: Any, reviewer: Any
) -> None:
    version.model.tags.add(Tag.objects.create(name="high-risk"))
    assert transition(api, author, "submit").json()["approvals_needed"] == 2
    response = api(author).patch("/api/models/churn/", {"tags": []}, format="json")
    assert response.status_code == 200
    assert response.json()["tags"] == []
    answer = transition(api, reviewer, "approve").json()
    assert answer["status"] == S.IN_REVIEW  # one approval of the two the round was submitted with
    assert answer["approvals_needed"] == 2


# --- vouching for untrusted types --------------------------------------------------------------------

TRUST_URL = f"{URL}accept-untrusted-types/"


@pytest.fixture
def untrusted(version: ModelVersion) -> ModelVersion:
    ModelVersion.objects.filter(pk=version.pk).update(untrusted_types=["sklearn.tree._tree.Tree"])
    version.refresh_from_db()
    return version


def test_a_second_account_with_the_authors_email_cannot_accept_untrusted_types_through_the_api(
    api: Any, untrusted: ModelVersion, author: Any
) -> None:
    twin = UserFactory(username="ada-work", email=f" {author.email.upper()}", role="Reviewers")
    response = api(twin).post(TRUST_URL, {"reason": "looks fine"}, format="json")
    assert response.status_code == 403
    assert "under this account or another" in response.json()["detail"]
    untrusted.refresh_from_db()
    assert untrusted.trust_accepted_at is None


def test_a_second_account_with_the_authors_email_is_neither_offered_nor_granted_trust_in_the_page(
    client: Client, untrusted: ModelVersion, author: Any, reviewer: Any
) -> None:
    twin: Any = UserFactory(username="ada-work", email=author.email.title(), role="Reviewers")
    client.force_login(twin)
    page = client.get("/models/churn/versions/1/")
    assert page.status_code == 200
    assert "accept-untrusted-types" not in page.content.decode()
    response = client.post("/models/churn/versions/1/accept-untrusted-types/", {"reason": "ok"})
    assert response.status_code == 302
    assert "under this account or another" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    untrusted.refresh_from_db()
    assert untrusted.trust_accepted_at is None
    # A reviewer who is someone else is offered the form and may accept.
    client.force_login(reviewer)
    assert "accept-untrusted-types" in client.get("/models/churn/versions/1/").content.decode()
    client.post("/models/churn/versions/1/accept-untrusted-types/", {"reason": "checked the tree"})
    untrusted.refresh_from_db()
    assert untrusted.trust_accepted_by == reviewer
