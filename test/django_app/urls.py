"""urls: the bad views under bad/ and their fixed versions under fixed/ (same suffix)."""

from django.urls import path

from .shop import views

urlpatterns = [
    path('bad/fk-loop/', views.fk_loop, name='bad-fk-loop'),
    path('bad/count-loop/', views.count_loop, name='bad-count-loop'),
    path('bad/m2m-loop/', views.m2m_loop, name='bad-m2m-loop'),
    path('bad/reverse-fk-loop/', views.reverse_fk_loop, name='bad-reverse-fk-loop'),
    path('bad/create-loop/', views.create_loop, name='bad-create-loop'),
    path('bad/same-get/<int:pk>/', views.same_get, name='bad-same-get'),
    path('fixed/fk-loop/', views.fk_select_related, name='fixed-fk-loop'),
    path('fixed/count-loop/', views.count_annotate, name='fixed-count-loop'),
    path('fixed/m2m-loop/', views.m2m_prefetch, name='fixed-m2m-loop'),
    path('fixed/reverse-fk-loop/', views.reverse_fk_prefetch, name='fixed-reverse-fk-loop'),
    path('fixed/create-loop/', views.create_bulk, name='fixed-create-loop'),
    path('fixed/same-get/<int:pk>/', views.single_get, name='fixed-same-get'),
]
