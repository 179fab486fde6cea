"""The API of the MLflow import: a version registered from an MLflow tracking server's model registry."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.openapi import error_responses
from registry import mlflow_import, permissions, selectors
from registry.api import VersionOutput


class VersionImportMlflowApi(APIView):
    class ImportInput(serializers.Serializer):
        tracking_uri = serializers.CharField(
            max_length=250, help_text="The MLflow tracking server, e.g. https://mlflow.example.com"
        )
        model_name = serializers.CharField(max_length=200, help_text="The registered model's name in MLflow")
        version = serializers.RegexField(
            r"^[1-9][0-9]*$", max_length=18, required=False, help_text="The MLflow version number; or give alias"
        )
        alias = serializers.CharField(max_length=200, required=False, help_text="An MLflow alias, e.g. champion")

    @extend_schema(
        request=ImportInput,
        responses={
            201: VersionOutput,
            **error_responses(
                400,
                409,
                502,
                e400="Bad input, a tracking server that is not allowed, or a model, version, alias or model "
                "files MLflow does not have; the failing fields with their reasons",
                e409="This MLflow version was already imported into this model (the detail names the version)",
                e502="The MLflow tracking server is unreachable, too slow, refused the credentials or answered wrongly",
            ),
        },
        summary="Import a version from an MLflow tracking server's model registry",
    )
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        # Before the body is read: whoever may not register versions learns nothing about MLflow from it.
        permissions.require_register_versions(request.user)
        payload = self.ImportInput(data=request.data)
        payload.is_valid(raise_exception=True)
        version = mlflow_import.version_import_mlflow(actor=request.user, model=model, **payload.validated_data)
        version = selectors.version_get(model_name=name, number=version.number)
        return Response(VersionOutput(version, context={"request": request}).data, status=status.HTTP_201_CREATED)
