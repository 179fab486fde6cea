"""Save a pickled scikit-learn model as an MLflow model; run by the MLflow venv's Python, not the app's.

MLflow is kept out of the app's venv, so `realtime.py` trains the model with the app's Python and
hands it over as a pickle (both venvs pin the same scikit-learn) with the training table as CSV.
Prints one JSON line with the versions that saved the model.
"""

import argparse
import json
import pickle
import warnings
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import sklearn
from mlflow.models import infer_signature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="pickle of the fitted estimator")
    parser.add_argument("--data", type=Path, required=True, help="CSV of the features and a 'target' column")
    parser.add_argument("--out", type=Path, required=True, help="MLflow model directory to create")
    args = parser.parse_args()

    # The pickle was written a moment ago by realtime.py from a model it trained itself.
    model = pickle.loads(args.model.read_bytes())  # noqa: S301
    table = pd.read_csv(args.data)
    table.pop("target")
    with warnings.catch_warnings():
        # MLflow warns about the skops types it will trust, and about pinning; neither matters here.
        warnings.simplefilter("ignore")
        # MLflow's defaults (skops), and the signature MLflow's docs show: inputs, and the model's outputs.
        # A forest's tree type is one skops does not trust by default: MLflow asks its user to name it.
        mlflow.sklearn.save_model(
            model,
            str(args.out),
            signature=infer_signature(table, model.predict(table)),
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    print(json.dumps({"mlflow": mlflow.__version__, "scikit-learn": sklearn.__version__, "pandas": pd.__version__}))


main()
