"""Actual.prediction, a foreign key, becomes the plain uuid column prediction_id; every row is kept.

Predictions are deleted from the hot table once archived, and on PostgreSQL that table is partitioned by
day with the key (id, at), which no foreign key can reference. Only the foreign-key constraint goes: the
column, its index and both constraints that name it stay as they are, so after the first operation the
rest changes Django's state only.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0005_alert_rule_judged_until"),
        ("scoring", "0005_archived_hour"),
    ]
    # The prediction table cannot be partitioned while a foreign key points at it.
    run_before = [("scoring", "0007_prediction_partitioned_by_day")]

    operations = [
        # Drops the constraint (on SQLite, by rebuilding the table with its rows); column and index stay.
        migrations.AlterField(
            model_name="actual",
            name="prediction",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="scoring.prediction",
            ),
        ),
        # The same column (uuid on PostgreSQL, char(32) on SQLite), index and constraints under the new field.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="actual", name="one_actual_per_prediction"),
                migrations.RemoveConstraint(model_name="actual", name="actual_has_a_key"),
                migrations.RemoveField(model_name="actual", name="prediction"),
                migrations.AddField(
                    model_name="actual",
                    name="prediction_id",
                    field=models.UUIDField(blank=True, db_index=True, null=True),
                ),
                migrations.AddConstraint(
                    model_name="actual",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("prediction_id__isnull", False)),
                        fields=("model", "prediction_id"),
                        name="one_actual_per_prediction",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="actual",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("prediction_id__isnull", False),
                            models.Q(("entity_id", ""), _negated=True),
                            _connector="OR",
                        ),
                        name="actual_has_a_key",
                    ),
                ),
            ],
        ),
    ]
