"""The site's own error pages (404 and 500), in its style, with a way back."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


class NotFoundHere(Http404):
    """A 404 whose message is written for the visitor ("This agent is switched off at the
    moment."); other 404s say only that nothing is at the path."""


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    message = str(exception) if isinstance(exception, NotFoundHere) else ""
    return render(
        request, "404.html", {"message": message, "request_path": request.path}, status=404
    )
