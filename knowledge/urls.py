"""URLs of the documents API; the project includes them under ``api/knowledge/``."""

from django.urls import path

from knowledge import views

app_name = "knowledge"

urlpatterns = [
    path("documents", views.document_upload, name="document-upload"),
    path("documents/<int:pk>", views.document_detail, name="document-detail"),
]
