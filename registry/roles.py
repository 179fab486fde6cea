"""The roles of Model Factory, as Django groups with permissions.

Groups are (re)synchronised after every migrate, so a new permission reaches its role without a
hand-written data migration. "May upload pickles" is deliberately in no role: an admin grants it
to named people.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

DATA_SCIENTIST = "Data scientists"
REVIEWER = "Reviewers"
MANAGER = "Managers"
ADMIN = "Admins"

_READ = ["registry.view_registeredmodel", "registry.view_modelversion", "registry.view_versionfile"]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    DATA_SCIENTIST: [
        *_READ,
        "registry.add_registeredmodel",
        "registry.change_registeredmodel",
        "registry.add_modelversion",
    ],
    REVIEWER: [
        *_READ,
        "registry.review_version",
        "registry.go_live_version",
        "registry.accept_untrusted_types",
    ],
    MANAGER: [*_READ],
}


def ensure_roles() -> None:
    for group_name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        query = Q()
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            query |= Q(content_type__app_label=app_label, codename=codename)
        permissions = list(Permission.objects.filter(query))
        if len(permissions) != len(codenames):
            # Permissions of an app that has not been migrated yet; the next post_migrate completes it.
            continue
        group.permissions.set(permissions)
    admins, _ = Group.objects.get_or_create(name=ADMIN)
    admins.permissions.set(Permission.objects.all())


def ensure_roles_after_migrate(**kwargs: Any) -> None:
    ensure_roles()
