from registry.models import RegisteredModel
from tests.factories import RegisteredModelFactory, UserFactory


def test_it_requires_authentication(api, db):
    response = api(None).get("/api/models/")
    assert response.status_code == 401


def test_it_creates_a_model(api, author):
    response = api(author).post(
        "/api/models/",
        {"name": "churn", "title": "Customer churn", "task": "classification", "tags": ["telco"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["owner"] == "ada"
    assert body["tags"] == ["telco"]
    assert body["version_count"] == 0
    assert body["production_version"] is None


def test_it_refuses_a_duplicate_name_with_the_field(api, author):
    RegisteredModelFactory(name="churn")
    response = api(author).post("/api/models/", {"name": "churn", "task": "classification"}, format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["name"][0]


def test_it_refuses_a_bad_name_and_task(api, author):
    response = api(author).post("/api/models/", {"name": "Not a slug!", "task": "clustering"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "task"}


def test_it_refuses_model_creation_to_managers(api, manager):
    response = api(manager).post("/api/models/", {"name": "churn", "task": "classification"}, format="json")
    assert response.status_code == 403
    assert not RegisteredModel.objects.exists()


def test_it_lists_filters_and_paginates(api, manager, author):
    other = UserFactory(username="bob")
    for index in range(30):
        RegisteredModelFactory(name=f"m-{index:02d}", owner=author if index % 2 else other)
    tagged = RegisteredModel.objects.get(name="m-03")
    tagged.tags.create(name="high-risk")

    client = api(manager)
    first = client.get("/api/models/").json()
    assert first["count"] == 30
    assert len(first["results"]) == 25
    assert first["next"]
    assert client.get("/api/models/", {"owner": "ada"}).json()["count"] == 15
    assert [m["name"] for m in client.get("/api/models/", {"tag": "high-risk"}).json()["results"]] == ["m-03"]
    assert client.get("/api/models/", {"q": "m-1"}).json()["count"] == 10
    assert client.get("/api/models/", {"status": "production"}).json()["count"] == 0
    bad = client.get("/api/models/", {"status": "shipping"})
    assert bad.status_code == 400
    assert "status" in bad.json()


def test_it_updates_a_model_for_its_owner_only(api, author, reviewer):
    RegisteredModelFactory(name="churn", owner=author)
    assert api(reviewer).patch("/api/models/churn/", {"title": "Hijacked"}, format="json").status_code == 403
    response = api(author).patch(
        "/api/models/churn/", {"title": "Customer churn", "tags": ["telco", "risk"]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Customer churn"
    assert response.json()["tags"] == ["risk", "telco"]


def test_it_answers_404_for_an_unknown_model(api, manager):
    assert api(manager).get("/api/models/nope/").status_code == 404
