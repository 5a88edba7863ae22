"""Who may call each HTTP API method.

Two kinds of rule, both named per HTTP method on a permission class:

- *staff rules*: the user is staff (``is_staff``) **and** has the model permission, or is
  a superuser. Managing agents and documents works this way, as in the admin.
- *permission rules*: the user has the permission, staff or not. Reviewing conversations
  works this way: the Operators group carries ``view_conversation`` and ``label_turn``.

A method a class does not name only needs a signed-in user, so that a method the view does
not implement answers 405 (not 403) to everyone who may use the endpoint at all.
Anonymous requests are refused with 401 before any of this (``IsAuthenticated``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from django.contrib.auth.models import AnonymousUser, User
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

READ_METHODS = ("GET", "HEAD", "OPTIONS")


def staff_has_perm(user: User | AnonymousUser, perm: str) -> bool:
    """Staff with ``perm``, or a superuser (the admin's rule for what staff may change)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or (user.is_staff and user.has_perm(perm))


def user_has_perms(user: User | AnonymousUser, perms: tuple[str, ...]) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perms(perms))


class MethodPermissions(BasePermission):
    """Base class: ``perms`` maps an HTTP method to the permissions it needs."""

    perms: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    staff: ClassVar[bool] = False

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user.is_authenticated:
            return False
        needed = self.perms.get(request.method or "", ())
        if self.staff:
            return all(staff_has_perm(user, perm) for perm in needed)
        return user_has_perms(user, needed)


def for_methods(methods: tuple[str, ...], *perms: str) -> dict[str, tuple[str, ...]]:
    """``{method: perms}`` for each of ``methods``: shorthand for the classes' ``perms``."""
    return {method: perms for method in methods}
