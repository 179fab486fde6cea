"""BatchScore keyed by (run, entity) alone: no id, no lookup or version index, no database foreign keys.

Django cannot turn an id primary key into a composite one in place, so the table is rebuilt: a new
one is created, the scores copied into it, the old one dropped and the new one renamed.
"""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

COLUMNS = "run_id, model_id, version_id, entity_id, prediction, probability, scored_at"


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0005_consumer_token_expiry"),
        ("scoring", "0002_batch_score_fewer_indexes_and_checks"),
    ]

    operations = [
        migrations.CreateModel(
            name="BatchScoreByEntity",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "run", "entity_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("entity_id", models.CharField(max_length=200)),
                ("prediction", models.JSONField()),
                (
                    "probability",
                    models.FloatField(blank=True, help_text="Of the positive class, for binary classifiers", null=True),
                ),
                ("scored_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                (
                    "model",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="registry.registeredmodel",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="scoring.batchrun",
                    ),
                ),
                (
                    "version",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="registry.modelversion",
                    ),
                ),
            ],
        ),
        migrations.RunSQL(
            f"INSERT INTO scoring_batchscorebyentity ({COLUMNS}) SELECT {COLUMNS} FROM scoring_batchscore",
            reverse_sql=f"INSERT INTO scoring_batchscore ({COLUMNS}) SELECT {COLUMNS} FROM scoring_batchscorebyentity",
        ),
        migrations.DeleteModel(name="BatchScore"),
        migrations.RenameModel(old_name="BatchScoreByEntity", new_name="BatchScore"),
        migrations.AlterField(
            model_name="batchscore",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="scores",
                to="scoring.batchrun",
            ),
        ),
    ]
