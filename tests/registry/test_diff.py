"""Parameter diffs compare one parameter across a pipeline prefix instead of removing and re-adding it."""

from registry.diff import ADDED, CHANGED, REMOVED, SAME, diff_params


def test_a_bare_estimators_parameter_matches_the_pipelines_prefixed_one() -> None:
    rows = {
        row.key: row
        for row in diff_params(
            {"C": 1.0, "max_iter": 200, "penalty": "l2", "tol": 0.001},
            {"classifier__C": 0.5, "classifier__max_iter": 200, "classifier__penalty": "l2", "scaler__copy": True},
        )
    }

    c = rows["classifier__C"]
    assert (c.old, c.change, c.old_key, c.delta) == (1.0, CHANGED, "C", -0.5)
    assert (rows["classifier__max_iter"].change, rows["classifier__max_iter"].old_key) == (SAME, "max_iter")
    assert (rows["tol"].change, rows["scaler__copy"].change) == (REMOVED, ADDED)
    assert set(rows) == {"classifier__C", "classifier__max_iter", "classifier__penalty", "tol", "scaler__copy"}


def test_a_name_two_steps_share_is_not_guessed() -> None:
    rows = {row.key: row for row in diff_params({"C": 1.0, "a": 1}, {"first__C": 1.0, "second__C": 2.0, "a": 1})}

    assert (rows["C"].change, rows["first__C"].change, rows["second__C"].change) == (REMOVED, ADDED, ADDED)
    assert rows["a"].change == SAME and rows["a"].old_key is None
