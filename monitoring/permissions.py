"""Who may do what in monitoring: every rule written once, as a named predicate.

Services enforce these (raising PermissionDenied with a reason); pages ask them before they offer a
form and hand their answers to templates as booleans. The registry's own rules (who reads models, who
registers versions) stay in registry/permissions.py and are called from here.
"""

from __future__ import annotations

from typing import Any

from registry.models import RegisteredModel
from registry.permissions import may_register_versions, may_view_models

CONFIGURE_MONITORING = "monitoring.change_monitoringconfig"
ACTUALS_REFUSAL = "Only data scientists and the model's consumers may post actuals."


def may_configure_monitoring(user: Any, model: RegisteredModel) -> bool:
    """Settings, report schedule, alert rules, retraining recipe, schedule and runs: one rule for all of
    them, the model's owner or a monitoring admin."""
    is_owner = getattr(user, "pk", None) is not None and user.pk == model.owner_id
    return bool(is_owner or user.has_perm(CONFIGURE_MONITORING))


def may_record_actuals(user: Any) -> bool:
    """Post actuals: data scientists, and consumer tokens (for their own predictions)."""
    return may_register_versions(user) or bool(getattr(user, "is_consumer", False))


def may_request_reports(user: Any) -> bool:
    """Ask for a report now: anyone who may read the models."""
    return may_view_models(user)
