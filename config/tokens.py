"""User API tokens: `POST /api/auth/token/` exchanges a username and password for a token.

Tokens come from django-rest-knox: only a SHA-512 of each token is stored, every login gets a token
of its own that expires after REST_KNOX["TOKEN_TTL"], and a token can be revoked (one, or all of a
user's). Failed attempts go through django.contrib.auth's authenticate() with the request, so
django-axes counts them and locks the username/address out exactly as on the login page (429).
"""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in, user_logged_out
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.authentication import UserTokenAuthentication, forget_user_tokens
from config.openapi import error_responses


class UserTokenOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`; shown once, store it now")
    expiry = serializers.DateTimeField(help_text="When the token stops working")


class TokenObtainApi(APIView):
    """Username and password in, a new expiring token out (one per call: each client has its own)."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    class TokenObtainInput(serializers.Serializer):
        # No username is longer (User.username), and axes stores a failed one in 255 characters (a 500 beyond).
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)

    @extend_schema(
        request=TokenObtainInput,
        responses={
            200: UserTokenOutput,
            **error_responses(
                400,
                429,
                e400="Wrong credentials, or a field missing",
                e429="Too many failed attempts for this username from this address; Retry-After says how long",
            ),
        },
        summary="Get an API token",
        description="400 for wrong credentials; 429 once too many have failed for this username from "
        "this address (Retry-After says for how long).",
        auth=[],
    )
    def post(self, request: Request) -> Response:
        payload = self.TokenObtainInput(data=request.data)
        payload.is_valid(raise_exception=True)
        # The Django request, not DRF's: axes marks a lockout on it, and its middleware answers 429.
        user = authenticate(request._request, **payload.validated_data)
        if user is None or not user.is_active:
            raise serializers.ValidationError({"non_field_errors": ["Unable to log in with provided credentials."]})
        instance, token = AuthToken.objects.create(user=user, expiry=knox_settings.TOKEN_TTL)
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response(UserTokenOutput({"token": token, "expiry": instance.expiry}).data)


class TokenRevokeApi(APIView):
    """Revokes the token that authenticates this request."""

    authentication_classes = [UserTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None}, summary="Revoke this API token")
    def post(self, request: Request) -> Response:
        request.auth.delete()
        forget_user_tokens(request.user.pk)
        user_logged_out.send(sender=request.user.__class__, request=request._request, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRevokeAllApi(APIView):
    """Revokes every API token of the signed-in user (a lost laptop, a leaked notebook); works from a
    browser session too, for when the token itself is what was lost."""

    authentication_classes = [UserTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: inline_serializer("TokensRevoked", {"revoked": serializers.IntegerField()})},
        summary="Revoke all your API tokens",
    )
    def post(self, request: Request) -> Response:
        revoked, _ = AuthToken.objects.filter(user=request.user).delete()
        forget_user_tokens(request.user.pk)
        user_logged_out.send(sender=request.user.__class__, request=request._request, user=request.user)
        return Response({"revoked": revoked})
