from pathlib import Path

from registry import workflow
from registry.models import ModelVersion
from tests.factories import RegisteredModelFactory


def test_it_sends_anonymous_visitors_to_the_login_page(client, db):
    for path in ("/", "/models/churn/", "/models/churn/versions/1/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_it_logs_in_with_the_form(client, author):
    page = client.get("/login/")
    assert b"Sign in" in page.content
    response = client.post("/login/", {"username": "ada", "password": "correct horse battery staple"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.post("/login/", {"username": "ada", "password": "wrong"}).status_code == 200


def test_it_lists_models_with_search_and_filters(client, manager, author):
    RegisteredModelFactory.create(name="churn", title="Customer churn", owner=author).tags.create(name="telco")
    RegisteredModelFactory(name="fraud", title="Card fraud", owner=author)
    client.force_login(manager)
    page = client.get("/").content.decode()
    assert "Customer churn" in page and "Card fraud" in page
    page = client.get("/", {"q": "fraud"}).content.decode()
    assert "Card fraud" in page and "Customer churn" not in page
    page = client.get("/", {"tag": "telco"}).content.decode()
    assert "Customer churn" in page and "Card fraud" not in page
    assert "No model matches" in client.get("/", {"q": "zzz"}).content.decode()


def test_it_shows_a_model_with_its_versions(client, manager, churn_model, author, register):
    register(churn_model, author)
    register(churn_model, author, metrics='{"auc": 0.93, "accuracy": 0.9}', parent="1")
    client.force_login(manager)
    page = client.get("/models/churn/").content.decode()
    assert "Version 2" in page and "Version 1" in page
    assert "No version is in production yet" in page


def test_it_shows_a_version_with_notebook_notes_and_diff(client, manager, churn_model, author, register):
    register(churn_model, author)
    register(
        churn_model,
        author,
        metrics='{"auc": 0.93, "accuracy": 0.88}',
        params='{"classifier__C": 0.5, "classifier__penalty": "l2"}',
    )
    client.force_login(manager)
    page = client.get("/models/churn/versions/2/").content.decode()
    assert "classifier__C" in page and "(v1: C)" in page  # one parameter, renamed, not removed and added
    assert "First <strong>churn</strong> model." in page
    assert "trained ok" in page  # notebook output
    assert "Compared with" in page and "previous version" in page
    assert "0.0200" in page  # auc delta
    assert "model.skops" in page
    assert "golden" in page.lower()


def test_it_downloads_from_the_page_and_refuses_tampered_files(client, manager, churn_model, author, register):
    version = register(churn_model, author)
    artifact = version.files.get(kind="artifact")
    client.force_login(manager)
    response = client.get(artifact.get_absolute_url())
    assert response.status_code == 200
    Path(artifact.file.path).write_bytes(b"swapped")
    response = client.get(artifact.get_absolute_url(), follow=True)
    assert "changed after registration" in response.content.decode()


def test_it_offers_trust_acceptance_only_to_reviewers(client, reviewer, author, churn_model, register):
    version = register(churn_model, author)
    ModelVersion.objects.filter(pk=version.pk).update(untrusted_types=["sklearn.tree._tree.Tree"])
    url = "/models/churn/versions/1/"
    client.force_login(author)
    assert "Accept these types" not in client.get(url).content.decode()
    response = client.post(f"{url}accept-untrusted-types/", follow=True)
    assert "Only reviewers may accept" in response.content.decode()

    client.force_login(reviewer)
    page = client.get(url).content.decode()
    assert "Accept these types" in page
    # The checks would only fail to load the model: the button says why it is off, and the form refuses.
    assert "disabled" in page and "holds types nobody has accepted yet" in page
    response = client.post(f"{url}checks/", follow=True)
    assert "holds types nobody has accepted yet" in response.content.decode()
    assert not version.check_runs.exists()
    response = client.post(f"{url}accept-untrusted-types/", {"reason": "checked"}, follow=True)
    assert "You accepted the untrusted types" in response.content.decode()
    assert ModelVersion.objects.get().trust_accepted_by == reviewer
    assert 'action="/models/churn/versions/1/checks/"' in client.get(url).content.decode()


def test_the_version_page_puts_the_evidence_before_the_decision(
    client, reviewer, manager, author, churn_model, register
):
    version = register(churn_model, author, release_notes="Retrained on **October**.")
    workflow.version_transition(actor=author, version=version, action="submit")
    client.force_login(reviewer)
    page = client.get("/models/churn/versions/1/").content.decode()
    order = [page.index(marker) for marker in ('id="checks"', "Release notes", 'id="comparison"', 'id="notebook"',
                                               'id="review"', 'id="comments"')]  # fmt: skip
    assert order == sorted(order)
    assert 'href="#review"' in page and 'value="approve"' in page
    assert 'action="/models/churn/versions/1/checks/"' in page

    client.force_login(manager)  # reads everything, may run nothing
    page = client.get("/models/churn/versions/1/").content.decode()
    assert 'id="to-decision"' not in page and "Run the checks again" not in page


def test_the_comparison_says_when_the_estimator_type_changed(client, reviewer, author, churn_model, register, trained):
    import skops.io as sio
    from django.core.files.uploadedfile import SimpleUploadedFile
    from sklearn.base import clone
    from sklearn.tree import DecisionTreeClassifier

    pipeline, frame = trained
    register(churn_model, author)
    tree = clone(pipeline).set_params(classify=DecisionTreeClassifier(max_depth=3, random_state=0))
    tree.fit(frame, pipeline.predict(frame))
    register(churn_model, author, artifact=SimpleUploadedFile("tree.skops", sio.dumps(tree)))
    client.force_login(reviewer)
    assert 'id="estimator-changed"' not in client.get("/models/churn/versions/1/").content.decode()
    page = client.get("/models/churn/versions/2/").content.decode()
    assert "<code>sklearn.linear_model.LogisticRegression</code> in version 1" in page
    assert "<code>sklearn.tree.DecisionTreeClassifier</code> now" in page
