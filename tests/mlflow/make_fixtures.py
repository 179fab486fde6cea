"""Write the MLflow model fixtures of tests/registry/test_mlflow_models.py with MLflow itself.

Run by the MLflow venv's Python, never the app's (MLflow is kept out of the app's venv):

    .venv-mlflow/bin/python tests/mlflow/make_fixtures.py

For each case, writes `fixtures/<case>/model/` exactly as `mlflow.sklearn.save_model` (or
`mlflow.pyfunc.save_model`) writes it, and `fixtures/<case>/expected.json`: the body of an
`/invocations` request and the answer MLflow gives to it. The answer is computed as MLflow's scoring
server computes it: the body is parsed by MLflow's own request parser against the model's signature,
then passed to `mlflow.pyfunc.load_model(path).predict`; so the rows predicted on are exactly the rows
of the stored body (no float rounding by pandas' `to_json` in between).
Deterministic: fixed seeds, and the volatile fields MLflow writes (model_uuid, utc_time_created) are
kept as MLflow wrote them, since regenerating is a deliberate act that changes the fixtures anyway.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import skops.io as sio
from mlflow.models import infer_signature
from mlflow.pyfunc.scoring_server import _parse_json_data
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NUMBERS = ["tenure", "monthly_charges"]
CATEGORIES = ["contract", "internet"]


def churn_table(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features with string categories, a string label and a numeric target."""
    random = np.random.RandomState(seed)
    frame = pd.DataFrame(
        {
            "tenure": random.randint(0, 72, rows).astype("int64"),
            "monthly_charges": np.round(random.uniform(18, 120, rows), 2),
            "contract": random.choice(["monthly", "yearly", "two_year"], rows),
            "internet": random.choice(["dsl", "fiber", "none"], rows),
        }
    )
    risk = (frame["contract"] == "monthly") * 1.5 + frame["monthly_charges"] / 60 - frame["tenure"] / 30
    label = pd.Series(np.where(risk + random.normal(0, 0.5, rows) > 0.8, "churn", "stay"), name="label")
    spend = frame["monthly_charges"] * frame["tenure"] / 10 + random.normal(0, 5, rows)
    return frame, label, pd.Series(spend, name="spend")


def preprocessing() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
            ("numbers", StandardScaler(), NUMBERS),
        ]
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON values at full precision (json.dumps writes floats' shortest exact repr)."""
    return [{str(name): _json_value(value) for name, value in row.items()} for row in frame.to_dict(orient="records")]


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def split_body(frame: pd.DataFrame) -> dict[str, Any]:
    rows = records(frame)
    columns = [str(name) for name in frame.columns]
    return {"dataframe_split": {"columns": columns, "data": [[row[name] for name in columns] for row in rows]}}


def save(case: str, save_model: Callable[[str], None], request: dict[str, Any], description: str) -> None:
    """Save the model with MLflow, then answer `request` as MLflow's scoring server would."""
    directory = FIXTURES / case
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    model_path = directory / "model"
    with warnings.catch_warnings():
        # MLflow warns that pickle formats run code on load: two cases use them on purpose.
        warnings.simplefilter("ignore")
        save_model(str(model_path))
    expected: dict[str, Any] = {"description": description, "request": request}
    if (model_path / "MLmodel").read_text().count("loader_module: mlflow.sklearn"):
        model = mlflow.pyfunc.load_model(str(model_path))
        parsed = _parse_json_data(json.dumps(request), model.metadata, model.metadata.get_input_schema())
        predictions = model.predict(parsed.data, params=parsed.params)
        expected["predictions"] = np.asarray(predictions).tolist()
    (directory / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    size = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    print(f"{case}: {size / 1024:.0f} KB")


def trusted(model: Any) -> list[str]:
    """The types a user passes to MLflow so that skops may load the model (MLflow does not find them)."""
    return sio.get_untrusted_types(data=sio.dumps(model))


def classifier() -> None:
    frame, label, _ = churn_table(200, seed=0)
    model = Pipeline(
        [
            ("preprocess", preprocessing()),
            ("model", RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)),
        ]
    ).fit(frame, label)
    signature = infer_signature(frame, model.predict(frame))
    rows, _, _ = churn_table(12, seed=1)
    save(
        "classifier",
        lambda path: mlflow.sklearn.save_model(
            model, path, signature=signature, input_example=frame.head(3), skops_trusted_types=trusted(model)
        ),
        split_body(rows),
        "Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler), RandomForestClassifier) with string labels, "
        "skops (MLflow's default), infer_signature(X, model.predict(X)), input_example=X.head(3).",
    )


def regressor() -> None:
    frame, _, spend = churn_table(200, seed=2)
    model = Pipeline(
        [
            ("preprocess", preprocessing()),
            ("model", GradientBoostingRegressor(n_estimators=5, max_depth=2, random_state=0)),
        ]
    ).fit(frame, spend)
    signature = infer_signature(frame, model.predict(frame))
    rows, _, _ = churn_table(12, seed=3)
    save(
        "regressor",
        lambda path: mlflow.sklearn.save_model(
            model, path, signature=signature, input_example=frame.head(2), skops_trusted_types=trusted(model)
        ),
        {"dataframe_records": records(rows)},
        "Pipeline(ColumnTransformer, GradientBoostingRegressor), skops, tensor output signature.",
    )


def cloudpickle_classifier() -> None:
    frame, label, _ = churn_table(150, seed=4)
    target = (label == "churn").astype("int64")
    model = Pipeline([("preprocess", preprocessing()), ("model", LogisticRegression())]).fit(frame, target)
    rows, _, _ = churn_table(10, seed=5)
    save(
        "cloudpickle_classifier",
        lambda path: mlflow.sklearn.save_model(
            model, path, signature=infer_signature(frame, model.predict(frame)), serialization_format="cloudpickle"
        ),
        split_body(rows),
        "Pipeline(ColumnTransformer, LogisticRegression) with 0/1 labels, serialization_format='cloudpickle'.",
    )


def pickle_regressor() -> None:
    frame, _, spend = churn_table(100, seed=6)
    numbers = frame[NUMBERS]
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(numbers, spend)
    rows, _, _ = churn_table(8, seed=7)
    save(
        "pickle_regressor",
        lambda path: mlflow.sklearn.save_model(
            model, path, signature=infer_signature(numbers, model.predict(numbers)), serialization_format="pickle"
        ),
        split_body(rows[NUMBERS]),
        "DecisionTreeRegressor on two numeric columns, serialization_format='pickle'.",
    )


def tensor_input() -> None:
    random = np.random.RandomState(8)
    features = random.normal(size=(120, 4))
    target = (features[:, 0] + features[:, 1] * features[:, 2] > 0).astype("int64")
    model = LogisticRegression().fit(features, target)
    rows = np.round(random.normal(size=(10, 4)), 6)
    save(
        "tensor_input",
        # No signature given: MLflow infers a tensor signature from the numpy input example.
        lambda path: mlflow.sklearn.save_model(
            model, path, input_example=features[:3], skops_trusted_types=trusted(model)
        ),
        {"inputs": rows.tolist()},
        "LogisticRegression fitted on a numpy array, saved with a numpy input example: tensor input and output.",
    )


def no_signature() -> None:
    frame, label, _ = churn_table(120, seed=9)
    model = Pipeline(
        [("preprocess", preprocessing()), ("model", DecisionTreeClassifier(max_depth=3, random_state=0))]
    ).fit(frame, label)
    # Rows of the reference data: a schema inferred from it bounds numbers by its minimum and maximum.
    rows = frame.sample(10, random_state=10)
    save(
        "no_signature",
        lambda path: mlflow.sklearn.save_model(model, path, signature=False, skops_trusted_types=trusted(model)),
        split_body(rows),
        "Pipeline(ColumnTransformer, DecisionTreeClassifier) saved with signature=False and no input example.",
    )
    # The reference data a user uploads beside the model: the schema is inferred from it.
    frame.to_csv(FIXTURES / "no_signature" / "reference.csv", index=False)


def example_without_signature() -> None:
    frame, label, _ = churn_table(120, seed=11)
    model = Pipeline(
        [("preprocess", preprocessing()), ("model", DecisionTreeClassifier(max_depth=3, random_state=0))]
    ).fit(frame, label)
    rows, _, _ = churn_table(10, seed=12)
    save(
        "example_without_signature",
        lambda path: mlflow.sklearn.save_model(
            model, path, signature=False, input_example=frame.head(5), skops_trusted_types=trusted(model)
        ),
        split_body(rows),
        "Saved with signature=False and input_example=X.head(5): the schema comes from the example.",
    )


def all_types() -> None:
    random = np.random.RandomState(13)
    rows = 80

    def table(count: int) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "active": random.rand(count) > 0.5,
                "visits": random.randint(0, 50, count).astype("int32"),
                "lifetime_events": random.randint(0, 10**9, count).astype("int64"),
                "ratio": random.rand(count).astype("float32"),
                "amount": np.round(random.uniform(0, 500, count), 3),
                "city": random.choice(["paris", "lyon", "nice"], count),
                "signed_up": pd.Timestamp("2024-01-01") + pd.to_timedelta(random.randint(0, 500, count), unit="D"),
                "avatar": [bytes(random.randint(0, 256, 6).astype("uint8")) for _ in range(count)],
                "note": [None if random.rand() < 0.5 else f"note {i}" for i in range(count)],
            }
        )
        return frame

    frame = table(rows)
    target = ((frame["amount"] > 250) ^ frame["active"]).astype("int64")
    model = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numbers", StandardScaler(), ["visits", "lifetime_events", "ratio", "amount"]),
                        ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                        ("active", "passthrough", ["active"]),
                    ],
                    remainder="drop",  # the date, the bytes and the optional note are not features
                ),
            ),
            ("model", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ]
    ).fit(frame, target)
    signature = infer_signature(
        frame, model.predict(frame), params={"threshold": 0.5, "explain": False, "mode": "fast", "top_k": 3}
    )
    request = split_body(table(10))
    request["params"] = {"threshold": 0.7, "mode": "slow"}
    save(
        "all_types",
        lambda path: mlflow.sklearn.save_model(
            model, path, signature=signature, input_example=frame.head(2), skops_trusted_types=trusted(model)
        ),
        request,
        "Every MLflow column type (boolean, integer, long, float, double, string, datetime, binary), an optional "
        "column and a params schema; the pipeline drops the date, bytes and note columns.",
    )


def logged_model() -> None:
    """Logged in a run (as most users do) rather than saved: MLmodel then has run_id, artifact_path, model_id."""
    frame, label, _ = churn_table(150, seed=14)
    model = Pipeline(
        [("preprocess", preprocessing()), ("model", DecisionTreeClassifier(max_depth=3, random_state=0))]
    ).fit(frame, label)
    rows, _, _ = churn_table(10, seed=15)

    def log(path: str) -> None:
        with tempfile.TemporaryDirectory() as store:
            mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
            # Artifacts in the temporary store too (by default MLflow writes them to ./mlruns).
            experiment = mlflow.create_experiment("fixtures", artifact_location=f"{store}/artifacts")
            with mlflow.start_run(experiment_id=experiment):
                mlflow.log_param("max_depth", 3)
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    signature=infer_signature(frame, model.predict(frame)),
                    input_example=frame.head(2),
                    skops_trusted_types=trusted(model),
                )
            mlflow.artifacts.download_artifacts(info.model_uri, dst_path=path)
            mlflow.set_tracking_uri(None)

    save(
        "logged_model",
        log,
        split_body(rows),
        "Pipeline(ColumnTransformer, DecisionTreeClassifier) logged with mlflow.sklearn.log_model in a run.",
    )


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return model_input["x"] * 2


def pyfunc_only() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    save(
        "pyfunc_only",
        lambda path: mlflow.pyfunc.save_model(
            path, python_model=Doubler(), signature=infer_signature(frame, frame["x"] * 2)
        ),
        split_body(frame),
        "A python_function model (mlflow.pyfunc.PythonModel): no sklearn flavor, must be refused.",
    )


def main() -> None:
    for make in (
        classifier,
        regressor,
        cloudpickle_classifier,
        pickle_regressor,
        tensor_input,
        no_signature,
        example_without_signature,
        all_types,
        logged_model,
        pyfunc_only,
    ):
        make()
    print(f"mlflow {mlflow.__version__}: fixtures written to {FIXTURES}")


if __name__ == "__main__":
    main()
