"""Pages about agents: the list, and each agent's chat page (text and voice)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from agents.links import signed_link_valid
from agents.selectors import AgentNotFound, agent_get_active, agent_is_public, agent_list_active
from voiceapp.errors import NotFoundHere


def home(request: HttpRequest) -> HttpResponse:
    """The front page: the agents this visitor can talk to. Non-public agents are listed
    only to signed-in users; anonymous visitors see public agents alone."""
    agents = agent_list_active()
    if not request.user.is_authenticated:
        agents = agents.filter(is_public=True)
    return render(request, "agents/home.html", {"agents": agents})


def agent_chat(request: HttpRequest, slug: str) -> HttpResponse:
    """One agent's page: a text chat and a voice call over the agent's two sockets.

    The sockets check access themselves (``conversations.access.may_talk_to``); the page
    applies the same rule so that nobody is shown a page that cannot work: a non-public
    agent needs a signed-in user or a valid signed link (``?sig=``, passed on to the
    sockets), and anyone else is sent to sign in.
    """
    try:
        agent = agent_get_active(slug=slug)
    except AgentNotFound as exc:
        # Whether a private agent exists is not told to those who may not use it.
        if exc.inactive and (request.user.is_authenticated or agent_is_public(slug=slug)):
            raise NotFoundHere("This agent is switched off at the moment.") from exc
        raise NotFoundHere("There is no agent here.") from exc
    sig = request.GET.get("sig", "")
    signed = bool(sig) and signed_link_valid(
        agent.slug, sig, max_age=settings.VOICE_LINK_MAX_AGE_SECONDS
    )
    if not (agent.is_public or request.user.is_authenticated or signed):
        return redirect_to_login(request.get_full_path())
    return render(request, "agents/chat.html", {"agent": agent, "sig": sig if signed else ""})
