"""Password reset by email, only where the operator has set up mail.

Without ``EMAIL_HOST`` the reset pages say how to get a new password instead of offering a
form whose mail could never leave (Django would try localhost:25 and answer 500 with a
traceback that anyone could trigger). With mail set up, a message that cannot be sent is
one ERROR line in the log (Django logs it; ``voiceapp.logs.OneLineFilter`` keeps it to one
line), and the person sees the usual "check your email" page, which never says whether
the address belongs to an account.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render


class PasswordResetView(auth_views.PasswordResetView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not settings.EMAIL_HOST:
            return render(request, "registration/password_reset_unavailable.html")
        return super().dispatch(request, *args, **kwargs)
