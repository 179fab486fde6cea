from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import Conflict, PaginatedListApi, paginated_response
from config.parsers import FormParser, JSONParser, MultiPartParser
from registry import inputs, permissions, registration, selectors, services
from registry.choices import ModelTask, VersionStatus
from registry.loading import ArtifactIntegrityError
from registry.models import ModelVersion, RegisteredModel, VersionFile
from registry.uploads import rejected_upload_errors
from registry.views import compiled_file_response, file_response


class ModelOutput(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    tags = serializers.SerializerMethodField()
    version_count = serializers.IntegerField(read_only=True, default=None, allow_null=True)
    latest_version = serializers.IntegerField(source="latest_number", read_only=True, default=None, allow_null=True)
    production_version = serializers.IntegerField(
        source="production_number", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = RegisteredModel
        fields = [
            "name",
            "title",
            "description",
            "task",
            "owner",
            "tags",
            "business_context",
            "version_count",
            "latest_version",
            "production_version",
            "created_at",
            "updated_at",
        ]

    def get_tags(self, model: RegisteredModel) -> list[str]:
        return [tag.name for tag in model.tags.all()]


def _model_output(name: str) -> dict[str, Any]:
    # Re-read through the list selector so the response carries the same annotations as lists.
    return dict(ModelOutput(selectors.model_list().get(name=name)).data)


class ModelListApi(PaginatedListApi):
    ModelCreateInput = inputs.ModelCreateInput

    class FilterInput(serializers.Serializer):
        q = serializers.CharField(
            required=False, default="", allow_blank=True, help_text="Search name, title, description"
        )
        owner = serializers.CharField(required=False, default="", allow_blank=True, help_text="Owner's username")
        tag = serializers.CharField(required=False, default="", allow_blank=True)
        task = serializers.ChoiceField(choices=ModelTask.choices, required=False, default="", allow_blank=True)
        status = serializers.ChoiceField(
            choices=VersionStatus.choices,
            required=False,
            default="",
            allow_blank=True,
            help_text="Models having a version in this status, e.g. production",
        )

    @extend_schema(parameters=[FilterInput], responses=ModelOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = self.FilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        models = selectors.model_list(
            search=data["q"], owner=data["owner"], tag=data["tag"], task=data["task"], status=data["status"]
        )
        return paginated_response(request=request, view=self, queryset=models, serializer_class=ModelOutput)

    @extend_schema(request=ModelCreateInput, responses={201: ModelOutput})
    def post(self, request: Request) -> Response:
        permissions.require_create_models(request.user)
        payload = self.ModelCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        model = services.model_create(actor=request.user, **payload.validated_data)
        return Response(_model_output(model.name), status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    @extend_schema(responses=ModelOutput)
    def get(self, request: Request, name: str) -> Response:
        selectors.model_get(name=name)
        return Response(_model_output(name))

    @extend_schema(request=inputs.ModelUpdateInput, responses=ModelOutput)
    def patch(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        permissions.require_edit_model(request.user, model)
        payload = inputs.ModelUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        services.model_update(actor=request.user, model=model, **payload.validated_data)
        return Response(_model_output(name))


class VersionFileOutput(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = VersionFile
        fields = ["id", "kind", "filename", "sha256", "size", "rows", "download_url"]

    def get_download_url(self, version_file: VersionFile) -> str:
        version = version_file.version
        request = self.context.get("request")
        path = f"/api/models/{version.model.name}/versions/{version.number}/files/{version_file.pk}/download/"
        return request.build_absolute_uri(path) if request else path


class VersionOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    author = serializers.CharField(source="author.username")
    # DRF's Field.parent is the enclosing serializer; a field of that name shadows it for mypy only.
    parent = serializers.IntegerField(source="parent.number", default=None, allow_null=True)  # type: ignore[assignment]
    requires_trust = serializers.BooleanField()
    trust_accepted_by = serializers.CharField(source="trust_accepted_by.username", default=None, allow_null=True)
    files = VersionFileOutput(many=True)
    serving_engine = serializers.SerializerMethodField(
        help_text='{"engine": "onnx" (the verified compiled graph) or the native format, "reason": why}'
    )

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "number",
            "status",
            "format",
            "framework",
            "estimator",
            "environment",
            "requirements",
            "input_schema",
            "input_schema_source",
            "output_schema",
            "params",
            "metrics",
            "training_data_uri",
            "training_data_rows",
            "training_data_sha256",
            "code_uri",
            "code_commit",
            "parent",
            "release_notes",
            "untrusted_types",
            "requires_trust",
            "trust_accepted_by",
            "trust_accepted_at",
            "reference_profile",
            "author",
            "created_at",
            "files",
            "mlflow",
            "serving_engine",
        ]

    def get_serving_engine(self, version: ModelVersion) -> dict[str, str]:
        return selectors.serving_engine(version=version).as_json()


class VersionListApi(PaginatedListApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    VersionCreateInput = inputs.VersionCreateInput

    class FilterInput(serializers.Serializer):
        status = serializers.ChoiceField(choices=VersionStatus.choices, required=False, default="", allow_blank=True)
        author = serializers.CharField(required=False, default="", allow_blank=True, help_text="Author's username")

    @extend_schema(parameters=[FilterInput], responses=VersionOutput(many=True))
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        filters = self.FilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        versions = (
            selectors.version_list(model=model, **filters.validated_data)
            .select_related("compilation")
            .prefetch_related("files", "check_runs")
        )
        return paginated_response(request=request, view=self, queryset=versions, serializer_class=VersionOutput)

    @extend_schema(
        request={"multipart/form-data": VersionCreateInput},
        responses={201: VersionOutput},
    )
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        permissions.require_register_versions(request.user)
        data = request.data
        too_large = rejected_upload_errors(request._request)
        if too_large:
            raise serializers.ValidationError(too_large)
        payload = self.VersionCreateInput(data=data)
        payload.is_valid(raise_exception=True)
        upload = registration.VersionUpload(**payload.validated_data)
        version = registration.version_register(actor=request.user, model=model, upload=upload)
        version = selectors.version_get(model_name=name, number=version.number)
        return Response(VersionOutput(version, context={"request": request}).data, status=status.HTTP_201_CREATED)


class VersionDetailApi(APIView):
    @extend_schema(responses=VersionOutput)
    def get(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        return Response(VersionOutput(version, context={"request": request}).data)


class VersionFileDownloadApi(APIView):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            409: OpenApiResponse(description="The stored file no longer matches its sha256"),
        }
    )
    def get(self, request: Request, name: str, number: int, file_id: int) -> FileResponse:
        version = selectors.version_get(model_name=name, number=number)
        version_file = selectors.version_file_get(version=version, file_id=file_id)
        try:
            response = file_response(version_file)
        except ArtifactIntegrityError as exc:
            raise Conflict(str(exc)) from exc
        # Bytes to save, whatever the file's name suggests (text/csv for a golden set, a document's own
        # type): one documented type, which generated clients can read.
        response["Content-Type"] = "application/octet-stream"
        return response


class VersionCompiledDownloadApi(APIView):
    @extend_schema(
        summary="Download the compiled ONNX graph (its sha256 and verification: serving_engine and the checks)",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="The version has no compiled graph"),
            409: OpenApiResponse(description="The stored file no longer matches its sha256"),
        },
    )
    def get(self, request: Request, name: str, number: int) -> FileResponse:
        version = selectors.version_get(model_name=name, number=number)
        compilation = selectors.compilation_file_get(version=version)
        try:
            return compiled_file_response(compilation)
        except ArtifactIntegrityError as exc:
            raise Conflict(str(exc)) from exc


class VersionAcceptTrustApi(APIView):
    class AcceptTrustInput(serializers.Serializer):
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(
        request=AcceptTrustInput, responses=VersionOutput, summary="Accept the untrusted types of an artifact"
    )
    def post(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        permissions.require_accept_untrusted_types(request.user, version)
        payload = self.AcceptTrustInput(data=request.data)
        payload.is_valid(raise_exception=True)
        services.version_accept_untrusted_types(actor=request.user, version=version, **payload.validated_data)
        version = selectors.version_get(model_name=name, number=number)
        return Response(VersionOutput(version, context={"request": request}).data)
