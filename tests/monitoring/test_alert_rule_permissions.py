"""Who may add an alert rule: whoever the monitoring page offers the form to, and nobody else.

Rule creation once checked "data scientist or owner" while the page offered the form by "owner or
monitoring admin": a data scientist who did not own the model could add rules through the API, and a
monitoring admin was offered a form that always refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import Client

from monitoring.models import AlertRule
from registry import roles
from registry.models import RegisteredModel
from tests.factories import UserFactory

RULE = {"name": "drift", "metric": "drift_share", "comparison": ">", "threshold": 0.5}


def other_data_scientist() -> Any:
    """Dora, a data scientist who does not own the churn model."""
    return UserFactory(username="dora", role=roles.DATA_SCIENTIST)


def monitoring_admin() -> Any:
    """Mona, a manager allowed to change how every model is monitored."""
    user: Any = UserFactory(username="mona", role=roles.MANAGER)
    user.user_permissions.add(Permission.objects.get(codename="change_monitoringconfig"))
    return user


def offers_the_rule_form(user: Any) -> bool:
    client = Client()
    client.force_login(user)
    page = client.get("/models/churn/monitoring/")
    assert page.status_code == 200
    return 'id="alert-rule-form"' in page.content.decode()


@pytest.mark.parametrize(
    ("persona", "may_add"),
    [
        (lambda author: author, True),
        (lambda author: monitoring_admin(), True),
        (lambda author: other_data_scientist(), False),
    ],
    ids=["owner", "monitoring-admin", "data-scientist-not-owner"],
)
def test_it_lets_add_a_rule_exactly_whom_the_page_offers_the_form(
    churn_model: RegisteredModel, author: Any, api: Any, persona: Any, may_add: bool
) -> None:
    user = persona(author)
    assert offers_the_rule_form(user) is may_add
    answer = api(user).post("/api/models/churn/alert-rules/", RULE, format="json")
    assert answer.status_code == (201 if may_add else 403), answer.content
    assert AlertRule.objects.filter(model=churn_model).exists() is may_add


def test_it_refuses_the_page_form_to_a_data_scientist_who_does_not_own_the_model(
    churn_model: RegisteredModel,
) -> None:
    client = Client()
    client.force_login(other_data_scientist())
    page = client.post("/models/churn/monitoring/alert-rules/", RULE, follow=True).content.decode()
    assert "Only the model&#x27;s owner or a monitoring admin defines its alert rules." in page
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize(("role", "offered"), [(roles.DATA_SCIENTIST, True), (roles.REVIEWER, False)])
def test_the_actuals_upload_is_offered_to_whoever_may_record_actuals(
    churn_model: RegisteredModel, role: str, offered: bool
) -> None:
    someone: Any = UserFactory(username="someone", role=role)
    client = Client()
    client.force_login(someone)
    page = client.get("/models/churn/monitoring/").content.decode()
    assert ('id="actuals-file"' in page) is offered
    response = client.post("/models/churn/monitoring/actuals/", {})
    refused = "may post actuals" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert refused is not offered
