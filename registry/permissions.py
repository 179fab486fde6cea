"""Who may do what in the registry: every rule written once, as a named predicate.

Services enforce these through the `require_*` functions (PermissionDenied with a reason); APIs call
the same functions before they validate a body, so a caller who may not write learns nothing of the
write's rules, and pages hand the `may_*` answers to templates. Permission names appear only
here and in `roles.py`, which grants them.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from registry.models import Consumer, ModelVersion, RegisteredModel

VIEW_MODELS = "registry.view_registeredmodel"
CREATE_MODELS = "registry.add_registeredmodel"
EDIT_MODELS = "registry.change_registeredmodel"
REGISTER_VERSIONS = "registry.add_modelversion"
UPLOAD_PICKLE = "registry.upload_pickle"
ACCEPT_UNTRUSTED_TYPES = "registry.accept_untrusted_types"
REVIEW = "registry.review_version"
GO_LIVE = "registry.go_live_version"
CREATE_CONSUMERS = "registry.add_consumer"
MANAGE_CONSUMERS = "registry.change_consumer"
VIEW_CONSUMERS = "registry.view_consumer"


def _has(user: Any, permission: str) -> bool:
    # Users and consumer principals (scoring/authentication.py) alike; an anonymous user has none.
    return bool(user.has_perm(permission))


def same_person(one: Any, other: Any) -> bool:
    """Two accounts are one person if they are the same row or share an email (case-insensitive): a
    second account must not give a second signature, nor vouch for its own author's artifact."""
    if one is None or other is None:
        return False
    if one.pk == other.pk:
        return True
    first, second = (
        (getattr(one, "email", "") or "").strip().lower(),
        (getattr(other, "email", "") or "").strip().lower(),
    )
    return bool(first) and first == second


def four_eyes_refusal(actor: Any, author: Any) -> str | None:
    """Why `actor` may not sign off what `author` made (the same account, or the same person), or None."""
    if actor.pk == author.pk:
        return "Four-eyes: the author of a version cannot sign it off."
    if same_person(actor, author):
        return "Four-eyes: this account has the same email as the author of the version."
    return None


def may_view_models(user: Any) -> bool:
    return _has(user, VIEW_MODELS)


def may_create_models(user: Any) -> bool:
    return _has(user, CREATE_MODELS)


def require_create_models(user: Any) -> None:
    if not may_create_models(user):
        raise PermissionDenied("You may not create models.")


def may_edit_model(user: Any, model: RegisteredModel) -> bool:
    return bool(getattr(user, "pk", None) is not None and user.pk == model.owner_id) or _has(user, EDIT_MODELS)


def require_edit_model(user: Any, model: RegisteredModel) -> None:
    if not may_edit_model(user, model):
        raise PermissionDenied("Only the owner or a data scientist may edit this model.")


def may_register_versions(user: Any) -> bool:
    """Register versions, import them from MLflow, comment on them."""
    return _has(user, REGISTER_VERSIONS)


def require_register_versions(user: Any) -> None:
    if not may_register_versions(user):
        raise PermissionDenied("You may not register versions.")


def may_upload_pickle(user: Any) -> bool:
    """Register an artifact that runs code when it is loaded (joblib/pickle, cloudpickle)."""
    return _has(user, UPLOAD_PICKLE)


def may_review(user: Any) -> bool:
    return _has(user, REVIEW)


def may_go_live(user: Any) -> bool:
    return _has(user, GO_LIVE)


def is_author_or_owner(user: Any, version: ModelVersion) -> bool:
    return getattr(user, "pk", None) is not None and user.pk in (version.author_id, version.model.owner_id)


def may_request_checks(user: Any, version: ModelVersion) -> bool:
    return may_review(user) or is_author_or_owner(user, version)


def may_comment(user: Any) -> bool:
    return may_review(user) or may_register_versions(user)


def require_comment(user: Any) -> None:
    if not may_comment(user):
        raise PermissionDenied("Only reviewers and data scientists may comment.")


def may_score(user: Any) -> bool:
    """Score with a user's token or session: data scientists and reviewers try the versions they make and
    judge. Managers read what was scored; applications score with their consumer token."""
    return may_register_versions(user) or may_review(user)


def untrusted_types_refusal(user: Any, version: ModelVersion) -> str | None:
    """Why `user` may not vouch for `version`'s untrusted types, or None: a reviewer who is not its author,
    under any account."""
    if not _has(user, ACCEPT_UNTRUSTED_TYPES):
        return "Only reviewers may accept untrusted types."
    if same_person(user, version.author):
        return "The author of a version cannot accept its untrusted types, under this account or another."
    return None


def may_accept_untrusted_types(user: Any, version: ModelVersion) -> bool:
    return untrusted_types_refusal(user, version) is None


def require_accept_untrusted_types(user: Any, version: ModelVersion) -> None:
    refusal = untrusted_types_refusal(user, version)
    if refusal is not None:
        raise PermissionDenied(refusal)


def may_create_consumer(user: Any, model: RegisteredModel) -> bool:
    return bool(getattr(user, "pk", None) is not None and user.pk == model.owner_id) or _has(user, CREATE_CONSUMERS)


def require_create_consumer(user: Any, model: RegisteredModel) -> None:
    if not may_create_consumer(user, model):
        raise PermissionDenied("Only the model's owner or a registry admin may register consumers.")


def may_manage_consumer(user: Any, consumer: Consumer) -> bool:
    """Edit, deactivate, rotate or revoke: the model's owner, the consumer's owner, or a consumer admin."""
    return bool(
        getattr(user, "pk", None) is not None and user.pk in (consumer.model.owner_id, consumer.owner_id)
    ) or _has(user, MANAGE_CONSUMERS)


def require_manage_consumer(user: Any, consumer: Consumer) -> None:
    if not may_manage_consumer(user, consumer):
        raise PermissionDenied("Only the owner of the model or of the consumer may change it.")


def may_view_consumers(user: Any, model: RegisteredModel) -> bool:
    return (
        bool(getattr(user, "pk", None) is not None and user.pk == model.owner_id)
        or _has(user, VIEW_CONSUMERS)
        or may_view_models(user)
    )
