"""What the API and the pages accept when a model is created or edited, or a version or a consumer
created: one set of rules and messages for both (the pages validate a form post with the same serializer)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.choices import ArtifactFormat, ModelTask


class ModelCreateInput(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    title = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    description = serializers.CharField(required=False, default="", allow_blank=True)
    task = serializers.ChoiceField(choices=ModelTask.choices)
    tags = serializers.ListField(child=serializers.SlugField(max_length=50), required=False, default=list)
    business_context = serializers.CharField(required=False, default="", allow_blank=True)


class ModelUpdateInput(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.SlugField(max_length=50), required=False)
    business_context = serializers.CharField(required=False, allow_blank=True)


# A multipart field is text: documented as a string, a generated client sends the JSON text it is given
# rather than its own rendering of a list or a dict.
@extend_schema_field(OpenApiTypes.STR)
class JsonText(serializers.JSONField):
    """JSON sent as a multipart text field (or as JSON); the service parses and explains it."""

    def get_value(self, dictionary: Any) -> Any:
        return dictionary.get(self.field_name, serializers.empty)

    def to_internal_value(self, data: Any) -> Any:
        return data


class VersionCreateInput(serializers.Serializer):
    artifact = serializers.FileField(help_text="skops (default), ONNX, joblib/pickle, or an MLflow model zip")
    format = serializers.ChoiceField(
        choices=ArtifactFormat.choices, required=False, allow_blank=True, help_text="Detected when omitted"
    )
    release_notes = serializers.CharField(required=False, default="", allow_blank=True)
    notebook = serializers.FileField(required=False)
    golden_set = serializers.FileField(
        required=False, help_text="CSV of input rows plus their validated output in column 'expected'"
    )
    reference_data = serializers.FileField(required=False, help_text="CSV or Parquet; the drift baseline")
    training_data = serializers.FileField(required=False, help_text="Optional snapshot of the training data")
    onnx = serializers.FileField(
        required=False, help_text="An ONNX export of the same model; the checks compare it with the artifact"
    )
    documents = serializers.ListField(child=serializers.FileField(), required=False, default=list)
    input_schema = JsonText(required=False, help_text="List of {name, type, required, minimum, maximum, categories}")
    output_schema = JsonText(required=False)
    params = JsonText(required=False)
    metrics = JsonText(required=False, help_text="Object of metric name to number")
    environment = JsonText(required=False, help_text='{"python": "3.11.7", "libraries": {"scikit-learn": "1.5.2"}}')
    requirements = serializers.CharField(required=False, default="", allow_blank=True)
    training_data_uri = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    training_data_rows = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, allow_null=True)
    training_data_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, default="", allow_blank=True)
    code_uri = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    code_commit = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    parent = serializers.IntegerField(required=False, min_value=1, allow_null=True)  # type: ignore[assignment]


class ConsumerCreateInput(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, default="", allow_blank=True)
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        default=None,
        help_text="Username of the person responsible for the consumer; defaults to you",
    )
    contact_email = serializers.EmailField(required=False, default="", allow_blank=True)
    webhook_url = serializers.URLField(required=False, default="", allow_blank=True, max_length=500)
    pinned_version = serializers.IntegerField(required=False, default=None, allow_null=True, min_value=1)
    token_expires_at = serializers.DateTimeField(
        required=False, default=None, allow_null=True, help_text="When the token expires; default in a year"
    )
