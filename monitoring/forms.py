"""Forms of the monitoring page; the services check everything again and name bad fields."""

from __future__ import annotations

from typing import Any

from django import forms

from monitoring.models import AlertRule, MonitoringConfig, RetrainingRecipe
from monitoring.services import CONFIG_FIELDS, RECIPE_FIELDS
from scoring.batch import sources


class ColumnsField(forms.CharField):
    """Column names, comma-separated in the page, a list in the database."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return [part.strip() for part in (value or "").split(",") if part.strip()]


class MonitoringConfigForm(forms.ModelForm):
    slice_columns = ColumnsField(required=False, help_text="Input columns, comma-separated, e.g. region, contract")
    sensitive_columns = ColumnsField(required=False, help_text="Slice columns checked for fairness gaps")

    class Meta:
        model = MonitoringConfig
        fields = list(CONFIG_FIELDS)
        labels = {"fdr_correction": "False-discovery-rate correction (Benjamini-Hochberg)"}


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["name", "metric", "parameter", "slice", "comparison", "threshold", "retrain"]
        help_texts = {
            "parameter": "The metric (roc_auc, f1, rmse…), the feature, or column:measure for fairness "
            "(e.g. senior_citizen:true_positive_rate)",
        }


class RetrainingRecipeForm(forms.ModelForm):
    data_connection = forms.ChoiceField(label="Database", required=False)

    class Meta:
        model = RetrainingRecipe
        fields = list(RECIPE_FIELDS)
        labels = {"callable_path": "Function", "data_path": "Training data file", "data_query": "Or a SQL query"}
        widgets = {"data_query": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["data_connection"].choices = [("", "—")] + [  # type: ignore[attr-defined]
            (name, name) for name in sorted(sources.scoring_databases())
        ]
        self.fields["data_path"].help_text = f"CSV or Parquet, relative to {sources.batch_input_dir()}"
