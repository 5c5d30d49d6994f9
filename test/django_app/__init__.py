"""django_app: a small Django 3.2 project whose views cause (and fix) N+1 query patterns, used
by test/test_django_nplus1.py to prove pgtally's N+1 detection end to end."""
