"""REST endpoints of the review workflow, checks, comments and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PaginatedListApi, paginated_response
from registry import audit, check_runs, comments, permissions, selectors, workflow
from registry.choices import VersionStatus
from registry.models import AuditEvent, CheckRun, Comment, SignOff


class SignOffOutput(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")

    class Meta:
        model = SignOff
        fields = ["kind", "review_round", "user", "at", "comment", "evidence"]


class CheckRunOutput(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True)

    class Meta:
        model = CheckRun
        fields = [
            "id",
            "status",
            "requested_by",
            "started_at",
            "finished_at",
            "results",
            "error",
            "serving_environment",
        ]


class CommentOutput(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username")
    parent = serializers.IntegerField(source="parent_id", default=None, allow_null=True)  # type: ignore[assignment]

    class Meta:
        model = Comment
        fields = ["id", "parent", "author", "body", "created_at"]


class AuditEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None, allow_null=True)
    model = serializers.CharField(source="model.name", default=None, allow_null=True)
    version = serializers.IntegerField(source="version.number", default=None, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "action", "model", "version", "old", "new", "reason", "via"]


class VersionTransitionApi(APIView):
    class TransitionInput(serializers.Serializer):
        action = serializers.ChoiceField(choices=list(workflow.TRANSITIONS))
        comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=20_000)

    class TransitionOutput(serializers.Serializer):
        model = serializers.CharField()
        number = serializers.IntegerField()
        status = serializers.ChoiceField(choices=VersionStatus.choices)
        approvals = serializers.IntegerField()
        approvals_needed = serializers.IntegerField()
        allowed_actions = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        request=TransitionInput,
        responses={
            200: TransitionOutput,
            400: OpenApiResponse(description="Unknown action or missing comment"),
            403: OpenApiResponse(description="You may not take this action (role or four-eyes)"),
            409: OpenApiResponse(description="Not allowed from the current status; names the allowed actions"),
        },
    )
    def post(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        workflow.require_some_transition(request.user, version)
        payload = self.TransitionInput(data=request.data)
        payload.is_valid(raise_exception=True)
        version = workflow.version_transition(actor=request.user, version=version, **payload.validated_data)
        return Response(
            {
                "model": name,
                "number": version.number,
                "status": version.status,
                "approvals": selectors.round_approvals(version=version).count(),
                "approvals_needed": workflow.approvals_needed(version),
                "allowed_actions": workflow.allowed_actions(version.status),
            }
        )


class VersionChecksApi(PaginatedListApi):
    @extend_schema(responses=CheckRunOutput(many=True))
    def get(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        runs = selectors.check_run_list(version=version)
        return paginated_response(request=request, view=self, queryset=runs, serializer_class=CheckRunOutput)

    @extend_schema(request=None, responses={202: CheckRunOutput, 409: OpenApiResponse(description="Already running")})
    def post(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        check_run = check_runs.checks_request(actor=request.user, version=version)
        check_run.refresh_from_db()
        return Response(CheckRunOutput(check_run).data, status=status.HTTP_202_ACCEPTED)


class VersionSignOffsApi(APIView):
    @extend_schema(responses=SignOffOutput(many=True))
    def get(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        return Response(SignOffOutput(selectors.signoff_list(version=version), many=True).data)


class VersionCommentsApi(APIView):
    class CommentInput(serializers.Serializer):
        body = serializers.CharField(max_length=comments.MAX_COMMENT_LENGTH, help_text="Markdown")
        parent = serializers.IntegerField(required=False, allow_null=True, help_text="The comment replied to")  # type: ignore[assignment]

    @extend_schema(responses=CommentOutput(many=True))
    def get(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        return Response(CommentOutput(selectors.comment_list(version=version), many=True).data)

    @extend_schema(request=CommentInput, responses={201: CommentOutput})
    def post(self, request: Request, name: str, number: int) -> Response:
        version = selectors.version_get(model_name=name, number=number)
        permissions.require_comment(request.user)
        payload = self.CommentInput(data=request.data)
        payload.is_valid(raise_exception=True)
        parent_id = payload.validated_data.get("parent")
        parent = selectors.comment_get(version=version, comment_id=parent_id) if parent_id else None
        if parent_id and parent is None:
            raise serializers.ValidationError({"parent": [f"No comment {parent_id} on this version."]})
        comment = comments.comment_create(
            actor=request.user, version=version, body=payload.validated_data["body"], parent=parent
        )
        return Response(CommentOutput(comment).data, status=status.HTTP_201_CREATED)


class AuditFilter(serializers.Serializer):
    model = serializers.CharField(required=False, default="", allow_blank=True)
    version = serializers.IntegerField(required=False, allow_null=True, default=None)
    action = serializers.CharField(required=False, default="", allow_blank=True)
    actor = serializers.CharField(required=False, default="", allow_blank=True)
    since = serializers.DateTimeField(required=False, allow_null=True, default=None)
    until = serializers.DateTimeField(required=False, allow_null=True, default=None)


class AuditListApi(PaginatedListApi):
    @extend_schema(parameters=[AuditFilter], responses=AuditEventOutput(many=True))
    def get(self, request: Request) -> Response:
        filters = AuditFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = audit.event_list(**filters.validated_data)
        return paginated_response(request=request, view=self, queryset=events, serializer_class=AuditEventOutput)


class AuditExportApi(APIView):
    @extend_schema(parameters=[AuditFilter], responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request) -> StreamingHttpResponse:
        filters = AuditFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return audit.csv_response(audit.event_list(**filters.validated_data))


class ProductionAtApi(APIView):
    class ProductionAtOutput(serializers.Serializer):
        model = serializers.CharField()
        at = serializers.DateTimeField()
        version = serializers.IntegerField(allow_null=True)
        in_production_since = serializers.DateTimeField(allow_null=True)
        changed_by = serializers.CharField(allow_null=True)
        reason = serializers.CharField(allow_blank=True)
        signoffs = SignOffOutput(many=True)
        checks = CheckRunOutput(allow_null=True)

    @extend_schema(
        parameters=[OpenApiParameter("t", OpenApiTypes.DATETIME, required=True, description="ISO 8601 time")],
        responses=ProductionAtOutput,
    )
    def get(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        at = _parse_time(request.query_params.get("t", ""))
        answer = audit.production_at(model=model, at=at)
        event = answer.event
        return Response(
            {
                "model": model.name,
                "at": at,
                "version": answer.version.number if answer.version else None,
                "in_production_since": answer.since if answer.version else None,
                "changed_by": event.actor.username if event and event.actor else None,
                "reason": event.reason if event else "",
                "signoffs": SignOffOutput(answer.signoffs, many=True).data,
                "checks": CheckRunOutput(answer.checks).data if answer.checks else None,
            }
        )


def _parse_time(raw: str) -> datetime:
    value: Any = None
    try:
        value = parse_datetime(raw.strip().replace(" ", "+")) if raw.strip() else None
    except ValueError:
        value = None
    if value is None:
        raise serializers.ValidationError({"t": ["Give a time in ISO 8601, e.g. 2026-11-23T09:30:00Z."]})
    value = value if timezone.is_aware(value) else timezone.make_aware(value, timezone.get_default_timezone())
    # In UTC: PostgreSQL refuses offsets beyond ±15:59 (e.g. -21:28) that Python accepts.
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise serializers.ValidationError({"t": ["Out of range: give a time between years 1 and 9999."]}) from exc
