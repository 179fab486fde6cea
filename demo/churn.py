"""A synthetic telco customer-churn dataset and the two model versions the demo registers.

The data is drawn from a fixed generative story so that the effects a retention analyst expects
are there for the models to find: month-to-month contracts, fiber, electronic checks, repeated
support calls, short tenure and high charges all raise churn. Two effects are not additive on the
logit scale (support calls past a threshold, and fiber on a month-to-month contract), which is
what lets the gradient-boosted version beat the logistic baseline honestly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

NUMERIC_FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "senior_citizen",
    "paperless_billing",
    "num_products",
]
CATEGORICAL_FEATURES = ["contract", "internet_service", "payment_method", "region"]
FEATURES = [
    "tenure_months",
    "contract",
    "monthly_charges",
    "total_charges",
    "region",
    "payment_method",
    "internet_service",
    "support_calls",
    "senior_citizen",
    "paperless_billing",
    "num_products",
]
TARGET = "churned"
ID_COLUMN = "customer_id"

CONTRACTS = ["month-to-month", "one-year", "two-year"]
REGIONS = ["north", "south", "east", "west", "central"]
PAYMENT_METHODS = ["electronic-check", "mailed-check", "bank-transfer", "credit-card"]
INTERNET_SERVICES = ["dsl", "fiber", "none"]

TEST_SIZE = 0.2
GOLDEN_ROWS = 20
LOGISTIC: dict[str, Any] = {"C": 1.0, "max_iter": 1000, "class_weight": "balanced"}
# Shallow trees and many rounds: the non-additive effects are two-way, and deeper trees only
# overfit the noise on a few thousand rows.
BOOSTING: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 500,
    "max_depth": 3,
    "min_samples_leaf": 50,
    "l2_regularization": 1.0,
    "class_weight": "balanced",
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 20,
}


def _choose(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One category index per row, each row drawn from its own probability vector."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random(len(probabilities))[:, None]
    # Rounding can leave the last cumulative value a hair under 1.
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def generate_customers(
    n: int = 50_000, seed: int = 7, *, price_increase: float | None = None, start_id: int = 1
) -> pd.DataFrame:
    """`n` customers as columns [ID_COLUMN, *FEATURES, TARGET]; one seed always gives one frame.

    `price_increase` (0.15 for +15%) raises every monthly charge after the history that
    `total_charges` records, and makes customers more likely to leave: the drift the monitoring
    demo detects. Charges may then exceed the usual 120 ceiling, as they would in production.
    """
    rng = np.random.default_rng(seed)

    # Many customers are recent, a loyal core has stayed for years.
    tenure = np.rint(72 * rng.beta(0.75, 0.95, n)).astype(np.int64)
    senior = (rng.random(n) < 0.16).astype(np.int64)
    paperless = (rng.random(n) < 0.6).astype(np.int64)
    region = rng.choice(len(REGIONS), n, p=[0.22, 0.24, 0.18, 0.2, 0.16])

    years = tenure / 72
    contract_logits = np.column_stack([1.3 - 3.0 * years, np.full(n, -0.2), -1.6 + 3.2 * years])
    contract = _choose(rng, _softmax(contract_logits))
    internet = rng.choice(len(INTERNET_SERVICES), n, p=[0.34, 0.44, 0.22])
    # Paperless customers pay online more often; electronic checks are the typical online method.
    payment_logits = np.column_stack([0.4 * paperless, 0.5 * (1 - paperless) - 0.2, np.zeros(n), 0.1 * paperless])
    payment = _choose(rng, _softmax(payment_logits))

    has_internet = internet != 2
    product_chance = np.where(has_internet, 0.35, 0.1) + 0.002 * tenure
    products = 1 + rng.binomial(5, np.minimum(product_chance, 0.9))

    base_price = np.choose(internet, [48.0, 74.0, 20.0])
    charges = base_price + 7.5 * (products - 1) + rng.normal(0, 6.0, n)
    charges = np.round(np.clip(charges, 18.0, 120.0), 2)
    # Totals are history: a little under or over tenure x today's price (promotions, past changes).
    totals = np.round(charges * tenure * rng.uniform(0.93, 1.03, n), 2)

    fiber = internet == 1
    calls_rate = 0.9 + 0.8 * fiber + 0.4 * senior + 0.6 * (tenure < 6)
    support_calls = np.minimum(rng.poisson(calls_rate), 10).astype(np.int64)

    if price_increase:
        charges = np.round(charges * (1 + price_increase), 2)

    month_to_month = contract == 0
    logit = (
        -1.75
        + np.choose(contract, [0.8, -0.7, -1.7])
        + np.choose(internet, [0.0, 0.4, -0.6])
        + 0.5 * (payment == 0)
        + 0.1 * support_calls
        # Patience runs out: the third and later calls hurt far more than the first two.
        + 1.0 * np.maximum(support_calls - 2, 0)
        + 1.5 * np.exp(-tenure / 5)
        - 0.015 * tenure
        + 0.3 * senior
        + 0.2 * paperless
        - 0.18 * (products - 1)
        + np.choose(region, [0.0, 0.15, -0.05, 0.1, -0.1])
        # Customers who can leave at any time react to price; contract holders mostly cannot.
        + np.where(month_to_month, 0.035, 0.005) * (charges - 65)
        # Fiber on a flexible contract is the segment competitors target.
        + 1.1 * (fiber & month_to_month)
        + (2.5 * price_increase if price_increase else 0.0)
        # What the CRM never sees (a competitor's offer, a house move) keeps churn uncertain.
        + rng.normal(0, 1.2, n)
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    return pd.DataFrame(
        {
            ID_COLUMN: np.arange(start_id, start_id + n, dtype=np.int64),
            "tenure_months": tenure,
            "contract": np.array(CONTRACTS, dtype=object)[contract],
            "monthly_charges": charges,
            "total_charges": totals,
            "region": np.array(REGIONS, dtype=object)[region],
            "payment_method": np.array(PAYMENT_METHODS, dtype=object)[payment],
            "internet_service": np.array(INTERNET_SERVICES, dtype=object)[internet],
            "support_calls": support_calls,
            "senior_citizen": senior,
            "paperless_billing": paperless,
            "num_products": products.astype(np.int64),
            TARGET: churned,
        }
    )


@dataclass
class TrainedVersion:
    """A fitted estimator with everything the registry asks for when it is registered."""

    estimator: Pipeline
    release_notes: str
    params: dict[str, Any]
    metrics: dict[str, float]
    golden_inputs: pd.DataFrame
    golden_expected: pd.Series
    training_rows: int


def _preprocessing() -> ColumnTransformer:
    # Dense output: gradient boosting does not take sparse input, and there are few categories.
    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), NUMERIC_FEATURES),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                CATEGORICAL_FEATURES,
            ),
        ]
    )


def _evaluate(estimator: Pipeline, inputs: pd.DataFrame, labels: pd.Series) -> dict[str, float]:
    predicted = estimator.predict(inputs)
    probability = estimator.predict_proba(inputs)[:, 1]
    scores = {
        "accuracy": accuracy_score(labels, predicted),
        "precision": precision_score(labels, predicted, zero_division=0),
        "recall": recall_score(labels, predicted, zero_division=0),
        "f1": f1_score(labels, predicted, zero_division=0),
        "roc_auc": roc_auc_score(labels, probability),
    }
    return {name: round(float(value), 4) for name, value in scores.items()}


def _metrics_table(metrics: dict[str, float], baseline: dict[str, float] | None = None) -> str:
    labels = {
        "accuracy": "Accuracy",
        "precision": "Precision",
        "recall": "Recall",
        "f1": "F1",
        "roc_auc": "ROC AUC",
    }
    if baseline is None:
        lines = ["| Metric | Test split |", "| --- | ---: |"]
        lines += [f"| {label} | {metrics[name]:.4f} |" for name, label in labels.items()]
    else:
        lines = ["| Metric | Version 1 | This version | Change |", "| --- | ---: | ---: | ---: |"]
        lines += [
            f"| {label} | {baseline[name]:.4f} | {metrics[name]:.4f} | {metrics[name] - baseline[name]:+.4f} |"
            for name, label in labels.items()
        ]
    return "\n".join(lines)


def train_versions(customers: pd.DataFrame, seed: int = 7) -> list[TrainedVersion]:
    """Version 1 (logistic regression) and version 2 (gradient boosting), on one shared split."""
    # One thread: the data is too small to gain from OpenMP, and its spinning threads make
    # boosting several times slower (predicting 20 rows takes a second) when another process
    # shares the two cores.
    with threadpool_limits(limits=1):
        return _train_versions(customers, seed)


def _train_versions(customers: pd.DataFrame, seed: int) -> list[TrainedVersion]:
    train, test = train_test_split(customers, test_size=TEST_SIZE, random_state=seed, stratify=customers[TARGET])
    train_inputs, train_labels = train[FEATURES], train[TARGET]
    test_inputs, test_labels = test[FEATURES], test[TARGET]
    golden_inputs = test_inputs.head(GOLDEN_ROWS).reset_index(drop=True)
    split = (
        f"Trained on {len(train):,} customers; metrics on {len(test):,} held-out customers "
        f"(stratified {TEST_SIZE:.0%} split, seed {seed}). Churn rate in training: "
        f"{train_labels.mean():.1%}."
    )

    baseline = Pipeline(
        [
            ("preprocess", _preprocessing()),
            ("classifier", LogisticRegression(**LOGISTIC, random_state=seed)),
        ]
    )
    baseline.fit(train_inputs, train_labels)
    baseline_metrics = _evaluate(baseline, test_inputs, test_labels)
    baseline_notes = "\n".join(
        [
            "## Version 1: logistic regression baseline",
            "",
            "Logistic regression on standardised numeric features and one-hot encoded contract, "
            "internet service, payment method and region. Classes are weighted so that the "
            "minority churn class is not ignored: recall matters more than precision for the "
            "retention team's call list.",
            "",
            split,
            "",
            _metrics_table(baseline_metrics),
        ]
    )

    boosted = Pipeline(
        [
            ("preprocess", _preprocessing()),
            ("classifier", HistGradientBoostingClassifier(**BOOSTING, random_state=seed)),
        ]
    )
    boosted.fit(train_inputs, train_labels)
    boosted_metrics = _evaluate(boosted, test_inputs, test_labels)
    boosted_classifier = boosted.named_steps["classifier"]
    boosted_notes = "\n".join(
        [
            "## Version 2: gradient boosting",
            "",
            "### What changed since version 1",
            "",
            "* The classifier is now histogram gradient boosting instead of logistic regression, "
            "so it can pick up effects that are not additive: churn climbs steeply from the "
            "third support call on, and fiber customers on month-to-month contracts leave more "
            "often than either factor alone predicts.",
            f"* Early stopping on a 10% validation slice of the training set stopped after "
            f"{boosted_classifier.n_iter_} boosting rounds.",
            "* Same features, preprocessing, class weighting and train/test split as version 1, "
            "so the metrics below compare like with like.",
            "",
            split,
            "",
            _metrics_table(boosted_metrics, baseline_metrics),
        ]
    )

    boosted_params = {
        "classifier": "HistGradientBoostingClassifier",
        **BOOSTING,
        "boosting_rounds": int(boosted_classifier.n_iter_),
    }
    return [
        _version(
            baseline,
            baseline_notes,
            {"classifier": "LogisticRegression", **LOGISTIC},
            baseline_metrics,
            golden_inputs,
            len(train),
            seed,
        ),
        _version(boosted, boosted_notes, boosted_params, boosted_metrics, golden_inputs, len(train), seed),
    ]


def _version(
    estimator: Pipeline,
    release_notes: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    golden_inputs: pd.DataFrame,
    training_rows: int,
    seed: int,
) -> TrainedVersion:
    return TrainedVersion(
        estimator=estimator,
        release_notes=release_notes,
        params={**params, "test_size": TEST_SIZE, "random_state": seed},
        metrics=metrics,
        golden_inputs=golden_inputs.copy(),
        golden_expected=pd.Series(estimator.predict(golden_inputs).astype(np.int64), name=TARGET),
        training_rows=training_rows,
    )


def retrain(frame: pd.DataFrame) -> dict[str, Any]:
    """The demo's retraining recipe (`demo.churn:retrain`): version 1's pipeline on recent data.

    `frame` holds recent production customers with their actual churn; the result is what
    monitoring.retraining registers as a new draft version.
    """
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=0, stratify=frame[TARGET])
    estimator = Pipeline(
        [("preprocess", _preprocessing()), ("classifier", LogisticRegression(**LOGISTIC, random_state=0))]
    )
    estimator.fit(train[FEATURES], train[TARGET])
    golden = test[FEATURES].head(GOLDEN_ROWS).reset_index(drop=True)
    return {
        "estimator": estimator,
        "X_sample": frame[FEATURES],  # the schema's ranges must cover the reference data registered with it
        "metrics": _evaluate(estimator, test[FEATURES], test[TARGET]),
        "golden": (golden, estimator.predict(golden)),
        "reference": frame[[*FEATURES, TARGET]],
    }
