"""Usage counters by period (minute, hour, day), so that old minutes can be rolled up."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0007_prediction_partitioned_by_day"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="scoringstats", name="one_stats_row_per_minute"),
        migrations.RenameField(model_name="scoringstats", old_name="minute", new_name="start"),
        migrations.AlterField(
            model_name="scoringstats",
            name="start",
            field=models.DateTimeField(help_text="Start of the period (UTC)"),
        ),
        migrations.AddField(
            model_name="scoringstats",
            name="granularity",
            field=models.CharField(
                choices=[("minute", "Minute"), ("hour", "Hour"), ("day", "Day")], default="minute", max_length=6
            ),
        ),
        migrations.AlterField(model_name="scoringstats", name="requests", field=models.PositiveBigIntegerField(default=0)),
        migrations.AlterField(model_name="scoringstats", name="rows", field=models.PositiveBigIntegerField(default=0)),
        migrations.AlterField(model_name="scoringstats", name="errors", field=models.PositiveBigIntegerField(default=0)),
        migrations.AlterModelOptions(name="scoringstats", options={"ordering": ["-start"]}),
        migrations.AddConstraint(
            model_name="scoringstats",
            constraint=models.UniqueConstraint(fields=("version", "granularity", "start"), name="one_stats_row_per_period"),
        ),
        migrations.AddIndex(
            model_name="scoringstats", index=models.Index(fields=["granularity", "start"], name="stats_by_period")
        ),
    ]
