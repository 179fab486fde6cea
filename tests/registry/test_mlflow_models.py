"""MLflow model directories written by MLflow itself (tests/mlflow/fixtures, made by make_fixtures.py):
registered through the API, reviewed, served, and compared with what MLflow's pyfunc predicted."""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from registry import artifacts, mlmodel, services
from registry.checks.environment import check_environment, serving_environment
from registry.checks.results import FAILED, GOLDEN_SET, PASSED, ROBUSTNESS
from registry.checks.robustness import PREDICTED, REJECTED
from registry.checks.runner import run_checks
from registry.choices import SchemaSource
from registry.client import ModelFactory
from registry.models import ModelVersion, RegisteredModel
from tests.conftest import PASSWORD
from tests.factories import RegisteredModelFactory

FIXTURES = Path(__file__).resolve().parents[1] / "mlflow" / "fixtures"

# Case, task, and the files uploaded beside the model.
SERVED = [
    ("classifier", "classification", SchemaSource.MLFLOW_SIGNATURE),
    ("regressor", "regression", SchemaSource.MLFLOW_SIGNATURE),
    ("cloudpickle_classifier", "classification", SchemaSource.MLFLOW_SIGNATURE),
    ("pickle_regressor", "regression", SchemaSource.MLFLOW_SIGNATURE),
    ("tensor_input", "classification", SchemaSource.MLFLOW_SIGNATURE),
    ("no_signature", "classification", SchemaSource.REFERENCE_DATA),
    ("example_without_signature", "classification", SchemaSource.INPUT_EXAMPLE),
    ("all_types", "classification", SchemaSource.MLFLOW_SIGNATURE),
    ("logged_model", "classification", SchemaSource.MLFLOW_SIGNATURE),
]


def model_zip(case: str, *, replace: dict[str, bytes] | None = None, prefix: str = "model/") -> bytes:
    """The fixture's model directory zipped as a user zips it, with some members replaced."""
    directory = FIXTURES / case / "model"
    members = {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}
    members.update(replace or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            archive.writestr(prefix + name, members[name])
    return buffer.getvalue()


def expected(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / case / "expected.json").read_text())
    return data


def mlmodel_text(case: str) -> str:
    return (FIXTURES / case / "model" / "MLmodel").read_text()


@pytest.fixture
def pickler(author: Any) -> Any:
    author.user_permissions.add(Permission.objects.get(codename="upload_pickle"))
    return type(author).objects.get(pk=author.pk)  # a fresh object: permissions are cached per instance


@pytest.fixture
def upload(api: Callable[[Any], Any], pickler: Any) -> Callable[..., Any]:
    def post(case: str, name: str = "m", task: str = "classification", **files: Any) -> Any:
        if not RegisteredModel.objects.filter(name=name).exists():
            RegisteredModelFactory.create(
                name=name, task=task, owner=pickler, latency_budget_ms=5_000, batch_latency_budget_ms=120_000
            )
        data = {"artifact": SimpleUploadedFile(f"{case}.zip", files.pop("artifact", None) or model_zip(case))}
        data.update(files)
        return api(pickler).post(f"/api/models/{name}/versions/", data, format="multipart")

    return post


@pytest.fixture(autouse=True)
def _native_engine(settings: Any) -> None:
    """MLflow's predictions are compared with the native model's: no compiled graph takes over serving.
    (The compiled engine should later be compared with the same fixtures, within its own tolerance.)"""
    settings.MF_COMPILE_MODELS = False


def same_predictions(got: list[Any], want: list[Any]) -> bool:
    """Labels exactly, numbers to 1e-9 relative."""
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if isinstance(b, float) and not isinstance(a, bool) and isinstance(a, int | float):
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=0):
                return False
        elif a != b:
            return False
    return True


# --- served as MLflow serves them ----------------------------------------------------------------


@pytest.mark.parametrize(("case", "task", "source"), SERVED, ids=[case for case, _, _ in SERVED])
def test_it_serves_what_mlflow_predicts(
    case: str,
    task: str,
    source: str,
    upload: Callable[..., Any],
    api: Callable[[Any], Any],
    reviewer: Any,
    go_live: Callable[[ModelVersion], ModelVersion],
) -> None:
    files = {}
    if case == "no_signature":
        reference = (FIXTURES / case / "reference.csv").read_bytes()
        files["reference_data"] = SimpleUploadedFile("reference.csv", reference)
    response = upload(case, task=task, **files)
    assert response.status_code == 201, response.json()
    version = ModelVersion.objects.get(model__name="m")
    assert version.input_schema_source == source
    if version.requires_trust:
        services.version_accept_untrusted_types(actor=reviewer, version=version, reason="MLflow fixture")
    version = go_live(version)
    assert version.status == "production", list(version.check_runs.values_list("results", flat=True))

    want = expected(case)
    answer = api(reviewer).post("/api/models/m/invocations", want["request"], format="json")

    assert answer.status_code == 200, answer.json()
    assert same_predictions(answer.json()["predictions"], want["predictions"]), (
        answer.json()["predictions"],
        want["predictions"],
    )


def test_mlflow_metadata_is_kept_and_shown(upload: Callable[..., Any], client: Any, reviewer: Any) -> None:
    response = upload("classifier")

    assert response.status_code == 201, response.json()
    body = response.json()
    written = yaml.safe_load(mlmodel_text("classifier"))
    kept = body["mlflow"]["mlmodel"]
    assert kept["mlflow_version"] == "3.17.2"
    assert kept["model_uuid"] == written["model_uuid"]
    assert kept["utc_time_created"] == written["utc_time_created"]
    assert kept["serialization_format"] == "skops"
    assert kept["skops_trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert set(kept["flavors"]) == {"python_function", "sklearn"}
    assert kept["signature"]["outputs"] == [{"type": "tensor", "tensor-spec": {"dtype": "object", "shape": [-1]}}]
    assert kept["requirements"]["scikit-learn"] == "1.9.1"
    assert kept["python_env"]["python"] == "3.11.7"
    assert "import" not in body["mlflow"]
    assert body["input_schema_source"] == SchemaSource.MLFLOW_SIGNATURE
    assert body["output_schema"] == [{"name": "prediction", "type": "string", "required": True}]
    assert body["environment"]["python"] == "3.11.7"
    assert body["environment"]["libraries"]["skops"] == "0.16.0"
    # MLflow's trusted types do not trust anything: a reviewer still has to accept them.
    assert body["untrusted_types"] == ["sklearn.tree._tree.Tree"]
    assert body["trust_accepted_by"] is None

    client.force_login(reviewer)
    page = client.get("/models/m/versions/1/").content.decode()
    assert written["model_uuid"] in page
    assert "3.17.2" in page
    assert "MLflow signature" in page
    assert "skops_trusted_types" in page or "trusted by MLflow" in page


def test_a_logged_model_keeps_its_run_and_artifact_path(upload: Callable[..., Any], client: Any) -> None:
    response = upload("logged_model")

    assert response.status_code == 201, response.json()
    written = yaml.safe_load(mlmodel_text("logged_model"))
    kept = response.json()["mlflow"]["mlmodel"]
    assert kept["run_id"] == written["run_id"]
    assert kept["artifact_path"] == written["artifact_path"]
    assert kept["model_id"] == written["model_id"]
    client.force_login(ModelVersion.objects.get().author)
    card = client.get("/models/m/versions/1/").content.decode()
    assert written["run_id"] in card
    assert written["artifact_path"] in card


def test_a_model_without_signature_says_where_its_schema_came_from(upload: Callable[..., Any], client: Any) -> None:
    response = upload("example_without_signature")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["input_schema_source"] == SchemaSource.INPUT_EXAMPLE
    # Five example rows say nothing of ranges or of every category: only the types are kept.
    assert body["input_schema"] == [
        {"name": "tenure", "type": "integer", "required": True},
        {"name": "monthly_charges", "type": "float", "required": True},
        {"name": "contract", "type": "string", "required": True},
        {"name": "internet", "type": "string", "required": True},
    ]
    client.force_login(ModelVersion.objects.get().author)
    page = client.get("/models/m/versions/1/").content.decode()
    assert "Inferred from the MLflow input example" in page


def test_a_model_without_signature_or_data_is_refused_naming_what_to_send(upload: Callable[..., Any]) -> None:
    response = upload("no_signature")

    assert response.status_code == 400
    assert "no signature and no input example" in response.json()["input_schema"][0]
    assert ModelVersion.objects.count() == 0


def test_every_mlflow_column_type_and_the_params_schema(upload: Callable[..., Any]) -> None:
    response = upload("all_types")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert [(f["name"], f["type"], f["required"]) for f in body["input_schema"]] == [
        ("active", "boolean", True),
        ("visits", "integer", True),
        ("lifetime_events", "integer", True),
        ("ratio", "float", True),
        ("amount", "float", True),
        ("city", "string", True),
        ("signed_up", "datetime", True),
        ("avatar", "binary", True),
        ("note", "string", False),
    ]
    kept = body["mlflow"]["mlmodel"]
    assert kept["column_types"]["visits"] == "integer"
    assert kept["column_types"]["lifetime_events"] == "long"
    assert kept["column_types"]["ratio"] == "float"
    assert [p["name"] for p in kept["signature"]["params"]] == ["threshold", "explain", "mode", "top_k"]


def test_the_tensor_input_is_served_from_rows_and_columns(
    upload: Callable[..., Any], api: Callable[[Any], Any], reviewer: Any, go_live: Callable[..., Any]
) -> None:
    assert upload("tensor_input").status_code == 201
    go_live(ModelVersion.objects.get())
    want = expected("tensor_input")
    rows = want["request"]["inputs"]
    client = api(reviewer)

    for body in (
        {"instances": rows},
        {"dataframe_split": {"data": rows}},
        {"dataframe_records": [{f"column_{i}": v for i, v in enumerate(row)} for row in rows]},
    ):
        answer = client.post("/api/models/m/invocations", body, format="json")
        assert answer.status_code == 200, answer.json()
        assert answer.json()["predictions"] == want["predictions"]
    short = client.post("/api/models/m/invocations", {"inputs": [rows[0][:3]]}, format="json")
    assert short.status_code == 400
    assert "4 values" in short.json()["detail"]


@pytest.fixture
def all_types_in_production(upload: Callable[..., Any], reviewer: Any, go_live: Callable[..., Any]) -> ModelVersion:
    """The all_types model registered, its untrusted types accepted by Rita, reviewed and in production."""
    assert upload("all_types").status_code == 201
    version = ModelVersion.objects.get()
    services.version_accept_untrusted_types(actor=reviewer, version=version)
    return go_live(version)


def test_bad_datetime_and_binary_values_are_named(
    all_types_in_production: ModelVersion, api: Callable[[Any], Any], reviewer: Any
) -> None:
    request = expected("all_types")["request"]
    columns = request["dataframe_split"]["columns"]
    row = dict(zip(columns, request["dataframe_split"]["data"][0], strict=True))

    answer = api(reviewer).post(
        "/api/models/m/invocations",
        {"dataframe_records": [{**row, "signed_up": "last tuesday", "avatar": "not base64!"}]},
        format="json",
    )

    assert answer.status_code == 400
    errors = {error["field"]: error["error"] for error in answer.json()["errors"]}
    assert errors == {
        "avatar": "'not base64!' is not base64-encoded binary",
        "signed_up": "'last tuesday' is not an ISO-8601 date and time",
    }
    # The optional column may be left out, as MLflow allows.
    without_note = {key: value for key, value in row.items() if key != "note"}
    answer = api(reviewer).post("/api/models/m/invocations", {"dataframe_records": [without_note]}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["predictions"] == expected("all_types")["predictions"][:1]
    # The params schema is checked as MLflow checks it; params it does not name are ignored, as by MLflow.
    for params, status in (({"threshold": "high"}, 400), ({"top_k": 2.5}, 400), ({"top_k": 2, "other": []}, 200)):
        answer = api(reviewer).post(
            "/api/models/m/invocations", {"dataframe_records": [row], "params": params}, format="json"
        )
        assert answer.status_code == status, (params, answer.json())
    bad = api(reviewer).post(
        "/api/models/m/invocations", {"dataframe_records": [row], "params": {"threshold": "high"}}, format="json"
    )
    assert bad.json()["detail"] == "params.threshold: 'high' is not a double (the model's params schema)."


def test_dates_and_bytes_are_logged_as_sent_and_reproduce(
    all_types_in_production: ModelVersion, api: Callable[[Any], Any], reviewer: Any
) -> None:
    request = expected("all_types")["request"]
    client = api(reviewer)

    answer = client.post("/api/models/m/predict/", request, format="json").json()

    first = answer["prediction_ids"][0]
    logged = client.get(f"/api/predictions/{first}/").json()["input"]
    assert logged["signed_up"] == "2024-06-12"  # datetimes as ISO-8601 text, bytes base64-encoded again
    assert logged["avatar"] == "GmRKAbjQ"
    reproduced = client.post(f"/api/predictions/{first}/reproduce/").json()
    assert reproduced["identical"] is True
    assert reproduced["reproduced_output"] == expected("all_types")["predictions"][0]


def test_the_command_and_the_client_register_the_directory_mlflow_saved(
    pickler: Any, live_server: Any, tmp_path: Path
) -> None:
    RegisteredModelFactory.create(name="m", owner=pickler)
    call_command("register_version", "m", str(FIXTURES / "regressor" / "model"), "--user", pickler.username)
    with pytest.raises(CommandError, match="no MLmodel file"):
        call_command("register_version", "m", str(tmp_path), "--user", pickler.username)

    client = ModelFactory.login(live_server.url, pickler.username, PASSWORD)
    registered = client.register_file("m", FIXTURES / "cloudpickle_classifier" / "model")

    assert registered["number"] == 2
    assert [
        version.mlflow["mlmodel"]["serialization_format"] for version in ModelVersion.objects.order_by("number")
    ] == [
        "skops",
        "cloudpickle",
    ]


# --- refused, with the reason --------------------------------------------------------------------


def test_a_python_function_only_model_is_refused_naming_what_is_supported(upload: Callable[..., Any]) -> None:
    response = upload("pyfunc_only")

    assert response.status_code == 400
    message = response.json()["artifact"][0]
    assert "sklearn flavor" in message
    assert "python_function" in message
    assert "skops, cloudpickle or pickle" in message
    assert ModelVersion.objects.count() == 0


def test_pickled_mlflow_models_need_the_pickle_permission(api: Callable[[Any], Any], author: Any) -> None:
    RegisteredModelFactory.create(name="m", owner=author)
    response = api(author).post(
        "/api/models/m/versions/",
        {"artifact": SimpleUploadedFile("m.zip", model_zip("cloudpickle_classifier"))},
        format="multipart",
    )

    assert response.status_code == 400
    assert "may upload pickles" in response.json()["artifact"][0]


def with_signature(case: str, part: str, value: str) -> bytes:
    """The fixture's zip with one part of its MLmodel signature replaced."""
    mlmodel = yaml.safe_load(mlmodel_text(case))
    mlmodel["signature"][part] = value
    return model_zip(case, replace={"MLmodel": yaml.safe_dump(mlmodel).encode()})


IMAGE_TENSOR = '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 28, 28]}}]'
DECIMAL_COLUMN = '[{"type": "decimal", "name": "price", "required": true}]'
BAD_ZIPS: dict[str, tuple[Callable[[], bytes], str]] = {
    "not-mlflow": (
        lambda: zip_of({"README.md": b"# not a model"}),
        "neither a skops file nor an MLflow model directory",
    ),
    "yaml": (
        lambda: model_zip("classifier", replace={"MLmodel": b"flavors: [unclosed\n  sklearn: {"}),
        "not valid YAML",
    ),
    "not-mapping": (lambda: model_zip("classifier", replace={"MLmodel": b"- just\n- a list\n"}), "not a YAML mapping"),
    "signature-json": (
        lambda: with_signature("classifier", "inputs", "[{oops"),
        "signature's inputs are not valid JSON",
    ),
    "unknown-type": (
        lambda: with_signature("classifier", "inputs", DECIMAL_COLUMN),
        "column 'price' has type 'decimal'",
    ),
    "tensor-shape": (
        lambda: with_signature("tensor_input", "inputs", IMAGE_TENSOR),
        "shape [-1, 28, 28]",
    ),
    "serialization": (
        lambda: model_zip(
            "classifier", replace={"MLmodel": mlmodel_text("classifier").replace(": skops\n", ": joblib\n").encode()}
        ),
        "serialization_format 'joblib'",
    ),
    "requirements": (
        lambda: model_zip("classifier", replace={"requirements.txt": b"\xff\xfe not utf-8"}),
        "requirements.txt is not UTF-8",
    ),
    "example": (
        lambda: model_zip("classifier", replace={"input_example.json": b"{not json"}),
        "input example is not valid JSON",
    ),
    "missing-model-file": (
        lambda: zip_of({"MLmodel": mlmodel_text("classifier").encode()}),
        "names 'model.skops', which is not in the zip",
    ),
}


@pytest.mark.parametrize("problem", list(BAD_ZIPS))
def test_bad_mlflow_zips_are_a_400_naming_the_problem(upload: Callable[..., Any], tmp_path: Path, problem: str) -> None:
    artifact, message = BAD_ZIPS[problem]

    response = upload("classifier", artifact=artifact())

    assert response.status_code == 400, response.json()
    assert message in response.json()["artifact"][0]
    assert ModelVersion.objects.count() == 0
    assert not [path for path in (tmp_path / "artifacts").rglob("*") if path.is_file()]


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# --- checks --------------------------------------------------------------------------------------


def test_the_environment_check_compares_mlflow_pins(upload: Callable[..., Any]) -> None:
    assert upload("regressor").status_code == 201
    version = ModelVersion.objects.get()

    result = check_environment(version, serving_environment())

    libraries = {row["library"]: row for row in result.details}
    assert libraries["scikit-learn"]["registered"] == "1.9.1"
    assert libraries["skops"]["registered"] == "0.16.0"
    assert libraries["python"]["registered"] == "3.11.7"


def test_robustness_covers_datetime_and_binary_fields(upload: Callable[..., Any], reviewer: Any) -> None:
    assert upload("all_types").status_code == 201
    version = ModelVersion.objects.get()
    services.version_accept_untrusted_types(actor=reviewer, version=version)
    version.refresh_from_db()

    outcome = run_checks(version)

    robustness = next(result for result in outcome.results if result.name == ROBUSTNESS)
    cases = {(row["field"], row["case"]): row["outcome"] for row in robustness.details}
    assert robustness.status == PASSED, robustness.summary
    assert cases[("signed_up", "wrong type ('not-a-date')")] == REJECTED
    assert cases[("avatar", "wrong type ('not base64!')")] == REJECTED
    assert cases[("signed_up", "with a time zone")] == PREDICTED
    golden = next(result for result in outcome.results if result.name == GOLDEN_SET)
    assert golden.status != FAILED, golden.summary


def test_inspection_reads_the_fixture_without_mlflow(tmp_path: Path) -> None:
    path = tmp_path / "m.zip"
    path.write_bytes(model_zip("tensor_input", prefix=""))

    inspection = artifacts.inspect_artifact(path)

    assert inspection.mlflow is not None
    assert inspection.mlflow.signature.tensor_dtype == "float64"
    assert [f["name"] for f in inspection.mlflow.input_schema or []] == [f"column_{i}" for i in range(4)]
    assert inspection.mlflow.input_example is not None
    assert len(inspection.mlflow.input_example) == 3


# --- what older MLflow releases and other savers write -------------------------------------------


@pytest.mark.parametrize(
    "example",
    [
        {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]},
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}},
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        {"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
        {"inputs": {"a": [1, 2], "b": ["x", "y"]}},
    ],
    ids=["split", "serving-split", "records", "serving-records", "inputs-columns"],
)
def test_input_examples_in_every_layout_become_rows(example: Any) -> None:
    rows = mlmodel.example_rows(json.dumps(example).encode(), mlmodel.Signature())

    assert rows == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_a_two_dimensional_tensor_output_is_one_field_per_column() -> None:
    outputs = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}])

    signature = mlmodel.parse_signature({"outputs": outputs})

    assert [(f["name"], f["type"]) for f in signature.outputs or []] == [
        ("prediction_0", "float"),
        ("prediction_1", "float"),
        ("prediction_2", "float"),
    ]


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (
            {
                "inputs": '[{"type": "tensor", "name": "a", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}, '
                '{"type": "tensor", "name": "b", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}}]'
            },
            "named tensors (a, b)",
        ),
        ({"inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "complex128", "shape": [-1, 2]}}]'}, "'complex128'"),
        ({"inputs": '[{"type": "double", "name": "x"}, {"type": "long", "name": "x"}]'}, "'x': appears twice"),
        ({"inputs": '{"type": "double"}'}, "must be a JSON list"),
        ({"params": '[{"name": "alpha", "type": "decimal", "default": 1}]'}, "param 'alpha' has type 'decimal'"),
        ("inputs: x", "must be a mapping"),
    ],
    ids=["named-tensors", "tensor-dtype", "duplicate-column", "not-a-list", "param-type", "not-a-mapping"],
)
def test_signatures_that_cannot_be_served_are_explained(signature: Any, message: str) -> None:
    with pytest.raises(mlmodel.MlmodelError, match=re.escape(message)):
        mlmodel.parse_signature(signature)
