from django.contrib import admin
from django.urls import path

from agents import views as agent_views

admin.site.site_header = "Voice agents"
admin.site.site_title = "Voice agents"
admin.site.index_title = "Agents, conversations and knowledge"

urlpatterns = [
    path("", agent_views.home, name="home"),
    path("admin/", admin.site.urls),
]
