"""Pages about agents."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agents.selectors import agent_list_active


def home(request: HttpRequest) -> HttpResponse:
    """The front page: the agents people can talk to."""
    return render(request, "agents/home.html", {"agents": agent_list_active()})
