"""Who may do what in monitoring: every rule written once, as a named predicate.

Services enforce these through the `require_*` functions (PermissionDenied with a reason), which APIs
call before they validate a body; pages ask them before they offer a form and hand their answers to
templates as booleans. The registry's own rules (who reads models, who
registers versions) stay in registry/permissions.py and are called from here.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from registry.models import RegisteredModel
from registry.permissions import may_register_versions, may_review

CONFIGURE_MONITORING = "monitoring.change_monitoringconfig"
ACTUALS_REFUSAL = "Only data scientists and the model's consumers may post actuals."


def may_configure_monitoring(user: Any, model: RegisteredModel) -> bool:
    """Settings, report schedule, alert rules, retraining recipe, schedule and runs: one rule for all of
    them, the model's owner or a monitoring admin."""
    is_owner = getattr(user, "pk", None) is not None and user.pk == model.owner_id
    return bool(is_owner or user.has_perm(CONFIGURE_MONITORING))


def require_configure_monitoring(user: Any, model: RegisteredModel, doing: str) -> None:
    """`doing` ends the refusal: "Only the model's owner or a monitoring admin <doing>."."""
    if not may_configure_monitoring(user, model):
        raise PermissionDenied(f"Only the model's owner or a monitoring admin {doing}.")


def may_record_actuals(user: Any) -> bool:
    """Post actuals: data scientists, and consumer tokens (for their own predictions)."""
    return may_register_versions(user) or bool(getattr(user, "is_consumer", False))


def require_record_actuals(user: Any) -> None:
    if not may_record_actuals(user):
        raise PermissionDenied(ACTUALS_REFUSAL)


def may_request_reports(user: Any) -> bool:
    """Compute a report now, or Evidently's report of a window: data scientists and reviewers. Managers
    read the reports the schedule computes; a report over months of predictions is minutes of a worker."""
    return may_register_versions(user) or may_review(user)


def require_request_reports(user: Any) -> None:
    if not may_request_reports(user):
        raise PermissionDenied("Only data scientists and reviewers may compute reports.")
