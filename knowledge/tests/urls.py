"""The project's URLs plus the documents API, as voiceapp/urls.py is to include it."""

from django.urls import include, path

from voiceapp.urls import urlpatterns as project

urlpatterns = [*project, path("api/knowledge/", include("knowledge.urls"))]
