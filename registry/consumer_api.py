"""API of a model's consumers (with their tokens and webhook deliveries) and of in-app notifications."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import PaginatedListApi, paginated_response
from registry import consumers, inputs, notifications, permissions, selectors, tokens
from registry.models import Consumer, ModelVersion, Notification, RegisteredModel, WebhookDelivery


class ConsumerOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    owner = serializers.CharField(source="owner.username")
    pinned_version = serializers.IntegerField(source="pinned_version.number", default=None, allow_null=True)
    has_webhook_secret = serializers.SerializerMethodField()
    token_status = serializers.SerializerMethodField(
        help_text='"active", or why the token is refused: "expired", "revoked" or "deactivated" (the consumer)'
    )

    class Meta:
        model = Consumer
        # Never token_hash or webhook_secret: the prefix is enough to tell tokens apart.
        fields = [
            "name",
            "model",
            "description",
            "owner",
            "contact_email",
            "webhook_url",
            "has_webhook_secret",
            "pinned_version",
            "token_prefix",
            "token_expires_at",
            "token_revoked_at",
            "token_status",
            "active",
            "created_at",
        ]

    def get_has_webhook_secret(self, consumer: Consumer) -> bool:
        return bool(consumer.webhook_secret)

    def get_token_status(self, consumer: Consumer) -> str:
        if not consumer.active:
            return "deactivated"
        if consumer.token_revoked_at is not None:
            return "revoked"
        return "expired" if consumer.token_refusal() else "active"


class ConsumerCreatedOutput(ConsumerOutput):
    token = serializers.CharField(help_text="The consumer's API token; shown once, store it now")
    webhook_secret = serializers.CharField(
        allow_blank=True, help_text="Verifies X-ModelFactory-Signature; shown once, empty without a webhook"
    )

    class Meta(ConsumerOutput.Meta):
        fields = [*ConsumerOutput.Meta.fields, "token", "webhook_secret"]


class ConsumerUpdatedOutput(ConsumerOutput):
    webhook_secret = serializers.CharField(
        required=False, help_text="Present only when this change created the webhook secret; shown once"
    )

    class Meta(ConsumerOutput.Meta):
        fields = [*ConsumerOutput.Meta.fields, "webhook_secret"]


class TokenOutput(serializers.Serializer):
    token = serializers.CharField(help_text="The new API token; shown once. The old one no longer works.")
    token_prefix = serializers.CharField()
    token_expires_at = serializers.DateTimeField()


class DeliveryOutput(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "status", "payload", "attempts", "created_at", "delivered_at"]


class NotificationOutput(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "message", "url", "created_at", "read_at"]


def _consumer_output(consumer: Consumer, **once: str) -> dict[str, Any]:
    return {**ConsumerOutput(consumer).data, **once}


def _pinned_version(model: RegisteredModel, number: int | None) -> ModelVersion | None:
    if number is None:
        return None
    version = model.versions.filter(number=number).first()
    if version is None:
        raise serializers.ValidationError({"pinned_version": [f"{model.name} has no version {number}."]})
    return version


def _model_for_reading(request: Request, name: str) -> RegisteredModel:
    model = selectors.model_get(name=name)
    if not permissions.may_view_consumers(request.user, model):
        raise PermissionDenied("You may not see the consumers of this model.")
    return model


class ConsumerListApi(PaginatedListApi):
    ConsumerCreateInput = inputs.ConsumerCreateInput

    @extend_schema(responses=ConsumerOutput(many=True), summary="List a model's consumers")
    def get(self, request: Request, name: str) -> Response:
        model = _model_for_reading(request, name)
        listed = selectors.consumer_list(model=model)
        return paginated_response(request=request, view=self, queryset=listed, serializer_class=ConsumerOutput)

    @extend_schema(request=ConsumerCreateInput, responses={201: ConsumerCreatedOutput}, summary="Register a consumer")
    def post(self, request: Request, name: str) -> Response:
        model = selectors.model_get(name=name)
        permissions.require_create_consumer(request.user, model)
        payload = self.ConsumerCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data["pinned_version"] = _pinned_version(model, data["pinned_version"])
        consumer, token = consumers.consumer_create(actor=request.user, model=model, **data)
        body = _consumer_output(consumer, token=token, webhook_secret=consumer.webhook_secret)
        return Response(body, status=status.HTTP_201_CREATED)


class ConsumerDetailApi(APIView):
    class ConsumerUpdateInput(serializers.Serializer):
        description = serializers.CharField(required=False, allow_blank=True)
        contact_email = serializers.EmailField(required=False, allow_blank=True)
        webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
        pinned_version = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, help_text="A version number, or null to unpin"
        )
        active = serializers.BooleanField(required=False)
        token_expires_at = serializers.DateTimeField(
            required=False, help_text="Move the current token's expiry (it must be in the future)"
        )
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(responses=ConsumerOutput)
    def get(self, request: Request, name: str, consumer: str) -> Response:
        model = _model_for_reading(request, name)
        return Response(_consumer_output(selectors.consumer_get(model=model, name=consumer)))

    @extend_schema(request=ConsumerUpdateInput, responses=ConsumerUpdatedOutput)
    def patch(self, request: Request, name: str, consumer: str) -> Response:
        model = selectors.model_get(name=name)
        target = selectors.consumer_get(model=model, name=consumer)
        permissions.require_manage_consumer(request.user, target)
        payload = self.ConsumerUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        if "pinned_version" in data:
            data["pinned_version"] = _pinned_version(model, data["pinned_version"])
        had_secret = bool(target.webhook_secret)
        expires_at = data.pop("token_expires_at", None)
        target = consumers.consumer_update(actor=request.user, consumer=target, **data)
        if expires_at is not None:
            target = tokens.consumer_set_token_expiry(
                actor=request.user, consumer=target, expires_at=expires_at, reason=data["reason"]
            )
        # A webhook added after creation gets its secret now; this response is the only place it shows.
        once = {"webhook_secret": target.webhook_secret} if target.webhook_secret and not had_secret else {}
        return Response(_consumer_output(target, **once))


class ConsumerTokenApi(APIView):
    class TokenRotateInput(serializers.Serializer):
        reason = serializers.CharField(required=False, default="", allow_blank=True)
        expires_at = serializers.DateTimeField(
            required=False, default=None, allow_null=True, help_text="When the new token expires; default in a year"
        )

    class TokenRevokeInput(serializers.Serializer):
        reason = serializers.CharField(required=False, default="", allow_blank=True)

    @extend_schema(request=TokenRotateInput, responses=TokenOutput, summary="Replace a consumer's API token")
    def post(self, request: Request, name: str, consumer: str) -> Response:
        model = selectors.model_get(name=name)
        target = selectors.consumer_get(model=model, name=consumer)
        permissions.require_manage_consumer(request.user, target)
        payload = self.TokenRotateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        token = tokens.consumer_rotate_token(actor=request.user, consumer=target, **payload.validated_data)
        return Response(
            TokenOutput(
                {"token": token, "token_prefix": target.token_prefix, "token_expires_at": target.token_expires_at}
            ).data
        )

    @extend_schema(
        request=TokenRevokeInput,
        responses={200: ConsumerOutput},
        summary="Revoke a consumer's API token",
        description="The token stops working; the consumer stays registered. POST issues a new token.",
    )
    def delete(self, request: Request, name: str, consumer: str) -> Response:
        model = selectors.model_get(name=name)
        target = selectors.consumer_get(model=model, name=consumer)
        permissions.require_manage_consumer(request.user, target)
        payload = self.TokenRevokeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        target = tokens.consumer_revoke_token(actor=request.user, consumer=target, **payload.validated_data)
        return Response(_consumer_output(target))


class ConsumerDeliveryListApi(PaginatedListApi):
    @extend_schema(responses=DeliveryOutput(many=True), summary="Webhook deliveries to a consumer, newest first")
    def get(self, request: Request, name: str, consumer: str) -> Response:
        model = _model_for_reading(request, name)
        target = selectors.consumer_get(model=model, name=consumer)
        deliveries = selectors.delivery_list(consumer=target)
        return paginated_response(request=request, view=self, queryset=deliveries, serializer_class=DeliveryOutput)


class NotificationListApi(PaginatedListApi):
    # Everyone signed in has their own notifications, with a role or without one.
    permission_classes = [IsAuthenticated]

    class NotificationFilterInput(serializers.Serializer):
        unread = serializers.BooleanField(required=False, default=False, help_text="Only unread notifications")

    class NotificationMarkReadInput(serializers.Serializer):
        ids = serializers.ListField(
            # Ids are 64-bit: SQLite cannot even compare a larger number with them.
            child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
            required=False,
            default=None,
            allow_null=True,
            help_text="Notifications to mark read; omit to mark all read",
        )

    @extend_schema(
        parameters=[NotificationFilterInput], responses=NotificationOutput(many=True), summary="Your notifications"
    )
    def get(self, request: Request) -> Response:
        filters = self.NotificationFilterInput(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = selectors.notification_list(user=request.user, unread_only=filters.validated_data["unread"])
        return paginated_response(request=request, view=self, queryset=items, serializer_class=NotificationOutput)

    @extend_schema(
        request=NotificationMarkReadInput,
        responses=inline_serializer(
            "NotificationsMarkedRead",
            {"marked_read": serializers.IntegerField(), "unread": serializers.IntegerField()},
        ),
        summary="Mark your notifications read",
    )
    def post(self, request: Request) -> Response:
        payload = self.NotificationMarkReadInput(data=request.data)
        payload.is_valid(raise_exception=True)
        marked = notifications.notification_mark_read(user=request.user, notification_ids=payload.validated_data["ids"])
        unread = selectors.unread_notifications(request.user).count()
        return Response({"marked_read": marked, "unread": unread})
