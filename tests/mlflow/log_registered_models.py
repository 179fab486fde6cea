"""Log and register the models of tests/registry/test_mlflow_import.py on a running MLflow tracking server.

Run by the MLflow venv's Python, never the app's (MLflow is kept out of the app's venv):

    .venv-mlflow/bin/python tests/mlflow/log_registered_models.py http://127.0.0.1:5000 answers.json

Everything goes through MLflow's own client, as a data scientist would do it: runs with params, metrics
and tags, `mlflow.sklearn.log_model(..., registered_model_name=...)` with the signature MLflow infers,
and an alias. `answers.json` records what the tests compare with: the run ids, the rows, and the
predictions MLflow itself gives for them (`mlflow.pyfunc.load_model("models:/<name>/<version>")`).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

REGISTERED = "churn-mlflow"
WITHOUT_MLMODEL = "churn-notes-only"
ON_S3 = "churn-on-s3"
ALIAS = "champion"
REPOSITORY = "https://git.example.com/retention/churn.git"


def customers(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    random = np.random.RandomState(seed)
    # Whole numbers and two decimals: the rows survive JSON unchanged, so the tests predict on these rows.
    frame = pd.DataFrame(
        {
            "tenure": random.randint(0, 72, rows).astype("int64"),
            "charges": np.round(random.uniform(20, 120, rows), 2),
            "contract": random.choice(["monthly", "yearly"], rows),
        }
    )
    label = ((frame["contract"] == "monthly") & (frame["tenure"] < 24)).astype("int64")
    return frame, label


def pipeline(classifier: Any) -> Pipeline:
    prepare = ColumnTransformer(
        [("numbers", StandardScaler(), ["tenure", "charges"]), ("contract", OneHotEncoder(), ["contract"])]
    )
    return Pipeline([("prepare", prepare), ("classify", classifier)])


def log_version(
    frame: pd.DataFrame,
    label: pd.Series,
    classifier: Any,
    params: dict[str, Any],
    commit: str,
    trusted_types: list[str] | None = None,
) -> tuple[str, str]:
    model = pipeline(classifier).fit(frame, label)
    with mlflow.start_run(run_name=f"train-{type(classifier).__name__}") as run:
        mlflow.log_params(params)
        mlflow.log_metrics({"accuracy": float(model.score(frame, label)), "auc": 0.91})
        mlflow.set_tags(
            {"team": "retention", "mlflow.source.git.commit": commit, "mlflow.source.git.repoURL": REPOSITORY}
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(frame, model.predict(frame)),
            input_example=frame.head(3),
            registered_model_name=REGISTERED,
            skops_trusted_types=trusted_types,
        )
    return run.info.run_id, str(info.registered_model_version)


def main(tracking_uri: str, answers_path: Path) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("churn-training")
    client = MlflowClient()
    frame, label = customers(300, seed=7)
    # MLflow itself refuses to save a tree without being told its node storage type is trusted.
    tree_run, tree_version = log_version(
        frame,
        label,
        DecisionTreeClassifier(max_depth=4, random_state=0),
        {"max_depth": 4},
        "a1b2c3d4" * 5,
        trusted_types=["sklearn.tree._tree.Tree"],
    )
    linear_run, linear_version = log_version(
        frame, label, LogisticRegression(C=0.5), {"C": 0.5, "solver": "lbfgs"}, "e5f6a7b8" * 5
    )
    client.set_registered_model_alias(REGISTERED, ALIAS, linear_version)
    client.update_model_version(REGISTERED, linear_version, description="Logistic regression, fewer false alarms.")

    # A registered version whose files are no MLflow model: only notes, no MLmodel.
    with mlflow.start_run(run_name="notes") as run, tempfile.TemporaryDirectory() as folder:
        notes = Path(folder) / "notes.txt"
        notes.write_text("Not a model.\n")
        mlflow.log_artifact(str(notes), artifact_path="model")
        notes_run = run.info.run_id
        artifact_uri = run.info.artifact_uri
    client.create_registered_model(WITHOUT_MLMODEL)
    client.create_model_version(WITHOUT_MLMODEL, source=f"{artifact_uri}/model", run_id=notes_run)
    # A version whose files are in a bucket the tracking server does not proxy.
    client.create_registered_model(ON_S3)
    client.create_model_version(ON_S3, source="s3://models-bucket/churn/model")

    rows = customers(40, seed=11)[0]
    answers: dict[str, Any] = {
        "registered": REGISTERED,
        "without_mlmodel": WITHOUT_MLMODEL,
        "on_s3": ON_S3,
        "alias": ALIAS,
        "repository": REPOSITORY,
        "versions": {
            tree_version: {"run_id": tree_run, "commit": "a1b2c3d4" * 5},
            linear_version: {"run_id": linear_run, "commit": "e5f6a7b8" * 5},
        },
        "alias_version": linear_version,
        "rows": json.loads(rows.to_json(orient="records")),
        "predictions": {},
    }
    stored_rows = pd.DataFrame(answers["rows"])
    for version in (tree_version, linear_version):
        loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/{version}")
        answers["predictions"][version] = np.asarray(loaded.predict(stored_rows)).tolist()
    answers_path.write_text(json.dumps(answers, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
