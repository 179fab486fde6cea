import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from registry.models import ModelVersion
from tests.conftest import stored_files


@pytest.fixture
def post_version(api, author, churn_model, version_files):
    def post(user=author, **overrides):
        return api(user).post("/api/models/churn/versions/", version_files(**overrides), format="multipart")

    return post


def test_it_registers_a_version_over_multipart(post_version):
    response = post_version()
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1
    assert body["format"] == "skops"
    assert body["status"] == "draft"
    assert body["author"] == "ada"
    assert body["environment"]["python"] == "3.11.7"
    assert {f["kind"] for f in body["files"]} == {"artifact", "notebook", "golden_set", "reference_data"}
    assert all(
        f["download_url"].startswith("http://testserver/api/models/churn/versions/1/files/") for f in body["files"]
    )


def test_it_detects_the_format_when_omitted_and_checks_it_when_declared(post_version):
    assert post_version(format="").json()["format"] == "skops"
    response = post_version(format="onnx")
    assert response.status_code == 400
    assert "artifact" in response.json()


def test_it_shows_lists_and_filters_versions(post_version, api, manager):
    post_version()
    post_version(parent="1")
    client = api(manager)
    listing = client.get("/api/models/churn/versions/").json()
    assert [v["number"] for v in listing["results"]] == [2, 1]
    assert listing["results"][0]["parent"] == 1
    assert client.get("/api/models/churn/versions/", {"status": "production"}).json()["count"] == 0
    assert client.get("/api/models/churn/versions/2/").json()["number"] == 2
    assert client.get("/api/models/churn/versions/9/").status_code == 404


def test_it_downloads_files_and_refuses_tampered_ones(post_version, api, manager):
    body = post_version().json()
    artifact = next(f for f in body["files"] if f["kind"] == "artifact")
    client = api(manager)
    response = client.get(artifact["download_url"])
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    assert hashlib.sha256(content).hexdigest() == artifact["sha256"]
    assert 'filename="model.skops"' in response["Content-Disposition"]

    stored = ModelVersion.objects.get().files.get(kind="artifact").file.path
    Path(stored).write_bytes(content + b"tampered")
    response = client.get(artifact["download_url"])
    assert response.status_code == 409
    assert "changed after registration" in response.json()["detail"]


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"artifact": SimpleUploadedFile("model.skops", b"this is not a model")}, "artifact", "recognised"),
        ({"artifact": SimpleUploadedFile("model.zip", b"PK\x03\x04broken zip")}, "artifact", ""),
        ({"format": "mlflow"}, "artifact", ""),
        ({"notebook": SimpleUploadedFile("a.ipynb", b'{"cells": [')}, "notebook", "invalid JSON"),
        ({"notebook": SimpleUploadedFile("a.ipynb", b'{"cells": []}')}, "notebook", "Jupyter"),
        ({"golden_set": SimpleUploadedFile("g.csv", b"tenure,charges\n1,2\n")}, "golden_set", "expected"),
        (
            {"golden_set": SimpleUploadedFile("g.csv", b"tenure,charges,contract,expected\n1,2,weekly,1\n")},
            "golden_set",
            "weekly",
        ),
        (
            {"golden_set": SimpleUploadedFile("g.csv", b"tenure,charges,contract,expected\n1,9999,monthly,1\n")},
            "golden_set",
            "maximum",
        ),
        ({"reference_data": SimpleUploadedFile("r.csv", b"")}, "reference_data", "empty"),
        ({"reference_data": SimpleUploadedFile("r.csv", b"a;b\n1;2\n")}, "reference_data", "separated by ';'"),
        ({"reference_data": SimpleUploadedFile("r.csv", b"a,b\n1,2\n")}, "reference_data", "missing column"),
        ({"input_schema": "[{"}, "input_schema", "Not valid JSON"),
        ({"input_schema": '[{"name": "tenure", "type": "decimal"}]'}, "input_schema", "must be one of"),
        ({"metrics": '{"auc": "good"}'}, "metrics", "finite number"),
        ({"params": '"C=1"'}, "params", "JSON object"),
        ({"parent": "7"}, "parent", "no version 7"),
    ],
)
def test_it_refuses_bad_input_with_the_field_and_leaves_nothing(post_version, tmp_path, overrides, field, reason):
    response = post_version(**overrides)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    assert reason in " ".join(body[field])
    assert ModelVersion.objects.count() == 0
    assert stored_files(tmp_path) == []
    assert post_version().json()["number"] == 1


def test_it_refuses_an_upload_over_the_limit_naming_the_field(post_version, settings, tmp_path):
    settings.MF_MAX_UPLOAD_BYTES = 150 * 1024
    response = post_version(reference_data=SimpleUploadedFile("big.csv", b"tenure\n" + b"1\n" * 200_000))
    assert response.status_code == 400, response.content
    assert "larger than the upload limit of 150.0\xa0KB" in response.json()["reference_data"][0]
    assert ModelVersion.objects.count() == 0
    assert stored_files(tmp_path) == []


def test_it_refuses_registration_to_managers(post_version, manager):
    assert post_version(user=manager).status_code == 403
    assert ModelVersion.objects.count() == 0


def test_it_accepts_untrusted_types_through_the_api(post_version, api, reviewer, author):
    post_version()
    version = ModelVersion.objects.get()
    version.untrusted_types = ["sklearn.tree._tree.Tree"]
    version.save()
    assert api(author).post("/api/models/churn/versions/1/accept-untrusted-types/").status_code == 403
    response = api(reviewer).post("/api/models/churn/versions/1/accept-untrusted-types/", {"reason": "ok"})
    assert response.status_code == 200
    assert response.json()["trust_accepted_by"] == "rita"


def test_it_imports_an_mlflow_model_zip_without_mlflow(api, author, churn_model, client):
    from tests.registry.test_mlflow_models import model_zip

    response = api(author).post(
        "/api/models/churn/versions/",
        {"artifact": SimpleUploadedFile("churn-mlflow.zip", model_zip("classifier"))},
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["format"] == "mlflow"
    assert body["input_schema"] == [
        {"name": "tenure", "type": "integer", "required": True},
        {"name": "monthly_charges", "type": "float", "required": True},
        {"name": "contract", "type": "string", "required": True},
        {"name": "internet", "type": "string", "required": True},
    ]
    assert body["environment"]["python"] == "3.11.7"
    assert "scikit-learn==1.9.1" in body["requirements"]
    golden = next(f for f in body["files"] if f["kind"] == "golden_set")
    assert golden["rows"] == 3
    client.force_login(author)
    page = client.get("/models/churn/versions/1/").content.decode()
    assert "MLflow" in page
    assert "92.46" in page  # the input example is the first golden row


def test_it_accepts_an_onnx_export_and_refuses_a_broken_one(post_version, trained):
    import numpy as np
    from skl2onnx import to_onnx

    response = post_version(onnx=SimpleUploadedFile("model.onnx", b"not onnx"))
    assert response.status_code == 400
    assert "not a valid ONNX model" in response.json()["onnx"][0]

    pipeline, frame = trained
    sample = frame.head(1).astype({"tenure": np.float32, "charges": np.float32})
    exported = to_onnx(pipeline, sample, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
    response = post_version(onnx=SimpleUploadedFile("model.onnx", exported.SerializeToString()))
    assert response.status_code == 201, response.json()
    assert "onnx" in {f["kind"] for f in response.json()["files"]}


def test_the_version_list_asks_the_same_queries_however_many_versions(post_version, api, manager):
    client = api(manager)

    def queries_of_the_list() -> int:
        executed: list[str] = []

        def count(execute, sql, params, many, context):
            executed.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            assert client.get("/api/models/churn/versions/").status_code == 200
        return len(executed)

    post_version()
    queries_of_the_list()  # the first request also reads the manager's permissions
    one = queries_of_the_list()
    post_version()
    post_version()
    # Each version's serving engine reads its compilation and check runs from the prefetched relations.
    assert queries_of_the_list() == one
    listing = client.get("/api/models/churn/versions/").json()
    assert [v["serving_engine"]["engine"] for v in listing["results"]] == ["skops"] * 3
