"""Creating a model, registering a version by upload and adding a consumer in the pages, with the API's
rules and messages; the forms are offered only to those allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from registry import tokens
from registry.models import Consumer, ModelVersion, RegisteredModel


def test_a_data_scientist_creates_a_model_in_the_page(client: Any, author: Any, manager: Any) -> None:
    client.force_login(manager)
    assert 'id="new-model"' not in client.get("/").content.decode()
    assert client.get("/new-model/").status_code == 403

    client.force_login(author)
    assert 'id="new-model"' in client.get("/").content.decode()
    bad = client.post("/new-model/", {"name": "churn model", "task": "guessing", "title": "Churn"})
    page = bad.content.decode()
    assert bad.status_code == 400
    assert "name: Enter a valid" in page and "task: " in page and 'value="Churn"' in page  # kept to correct
    created = client.post(
        "/new-model/",
        {"name": "churn", "title": "Customer churn", "task": "classification", "tags": "telco, high-risk"},
    )
    assert created.status_code == 302 and created["Location"] == "/models/churn/"
    model = RegisteredModel.objects.get(name="churn")
    assert (model.owner, model.approvals_needed, sorted(model.tags.values_list("name", flat=True))) == (
        author,
        2,
        ["high-risk", "telco"],
    )
    again = client.post("/new-model/", {"name": "churn", "task": "classification"})
    assert "name: A model named &#x27;churn&#x27; already exists." in again.content.decode()


def test_the_owner_edits_the_model_in_the_page_and_the_audit_log_keeps_it(
    client: Any, author: Any, manager: Any, churn_model: RegisteredModel
) -> None:
    client.force_login(manager)
    assert 'id="edit-model"' not in client.get("/models/churn/").content.decode()
    assert client.post("/models/churn/edit/", {"title": "Mine"}).status_code == 403

    client.force_login(author)
    assert 'id="edit-model"' in client.get("/models/churn/").content.decode()
    form = client.get("/models/churn/edit/").content.decode()
    assert f'value="{churn_model.title}"' in form and 'name="name"' not in form  # the name cannot change
    bad = client.post("/models/churn/edit/", {"title": "", "tags": "telco, not a slug", "description": "Kept"})
    page = bad.content.decode()
    assert bad.status_code == 400
    assert "title: This field may not be blank." in page and "Kept</textarea>" in page
    assert "tags: item 2: Enter a valid" in page
    saved = client.post(
        "/models/churn/edit/",
        {"title": "Customer churn", "tags": "telco, high-risk", "description": "Who leaves.", "business_context": ""},
    )
    assert saved.status_code == 302 and saved["Location"] == "/models/churn/"
    churn_model.refresh_from_db()
    assert (churn_model.title, churn_model.description) == ("Customer churn", "Who leaves.")
    assert sorted(churn_model.tags.values_list("name", flat=True)) == ["high-risk", "telco"]
    assert churn_model.audit_events.filter(action="model.updated", actor=author).count() == 1


def test_a_version_is_registered_by_upload_with_the_apis_messages(
    client: Any, author: Any, manager: Any, churn_model: RegisteredModel, version_files: Callable[..., dict[str, Any]]
) -> None:
    client.force_login(manager)
    assert 'id="upload-form"' not in client.get("/models/churn/").content.decode()
    assert client.post("/models/churn/versions/new/", version_files()).status_code == 403

    client.force_login(author)
    assert 'id="upload-form"' in client.get("/models/churn/").content.decode()
    bad = client.post("/models/churn/versions/new/", version_files(artifact=None, metrics="{not json"))
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "artifact: No file was submitted." in page
    assert "First **churn** model." in page  # the notes typed are not lost
    response = client.post("/models/churn/versions/new/", version_files(metrics="[1, 2]"))
    assert response.status_code == 400 and "metrics: " in response.content.decode()
    assert not ModelVersion.objects.exists()

    fields = version_files(environment=None, training_data_uri=None, code_uri=None, code_commit=None)
    response = client.post("/models/churn/versions/new/", fields, follow=True)
    version = ModelVersion.objects.get()
    assert response.redirect_chain[-1][0] == "/models/churn/versions/1/"
    assert "Registered churn v1" in response.content.decode()
    assert (version.author, version.metrics["auc"], version.status) == (author, 0.91, "draft")
    assert sorted(version.files.values_list("kind", flat=True)) == [
        "artifact",
        "golden_set",
        "notebook",
        "reference_data",
    ]


def test_the_owner_adds_a_consumer_and_sees_its_token_once(
    client: Any, author: Any, manager: Any, churn_model: RegisteredModel
) -> None:
    client.force_login(manager)
    assert 'id="add-consumer"' not in client.get("/models/churn/").content.decode()
    assert client.post("/models/churn/consumers/new/", {"name": "crm"}).status_code == 403

    client.force_login(author)
    refused = client.post("/models/churn/consumers/new/", {"name": "call centre", "contact_email": "nope"}, follow=True)
    assert "name: Enter a valid" in refused.content.decode() and "contact_email: Enter a valid email" in (
        refused.content.decode()
    )
    response = client.post(
        "/models/churn/consumers/new/",
        {"name": "call-centre", "contact_email": "cc@example.com", "webhook_url": "https://hooks.example.com/mf"},
    )
    page = response.content.decode()
    consumer = Consumer.objects.get()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    token = page.split('<pre class="code" id="token">')[1].split("</pre>")[0]
    assert tokens.consumer_for_token(token) == consumer and consumer.webhook_secret in page
    assert token not in client.get("/models/churn/").content.decode()  # never shown again
