from django.urls import path

from scoring import views

app_name = "scoring"

urlpatterns = [
    path("models/<slug:name>/batch/", views.job_list, name="job-list"),
    path("models/<slug:name>/batch/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("models/<slug:name>/batch/runs/<int:run_id>/resume/", views.run_resume, name="run-resume"),
    path("models/<slug:name>/batch/<slug:job>/", views.job_detail, name="job-detail"),
    path("models/<slug:name>/batch/<slug:job>/schedule/", views.job_schedule, name="job-schedule"),
    path("models/<slug:name>/batch/<slug:job>/run/", views.job_run, name="job-run"),
]
