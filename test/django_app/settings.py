"""settings: the test Django project, configured from the environment so that one code base
runs against PostgreSQL directly or through pgtally, with or without transactions per request
and persistent connections.

  PGT_DJANGO_DB_HOST       database host (default 127.0.0.1)
  PGT_DJANGO_DB_PORT       database port: PostgreSQL's or pgtally's (default 5432)
  PGT_DJANGO_CONN_MAX_AGE  seconds, or 'none' for connections that never expire (default 0)
  PGT_DJANGO_ATOMIC        1: ATOMIC_REQUESTS, every view in one transaction (default 0)
  PGT_DJANGO_TRACEPARENT   1: add a W3C traceparent with a fresh trace-id per request to the
                           sqlcommenter comment (default 0)
"""

import os


def _flag(name):
    return os.environ.get(name, '0').lower() in ('1', 'yes', 'true', 'on')


def _conn_max_age():
    value = os.environ.get('PGT_DJANGO_CONN_MAX_AGE', '0')
    return None if value.lower() == 'none' else int(value)


SECRET_KEY = 'pgtally-test-only-not-secret'
DEBUG = False
ALLOWED_HOSTS = ['127.0.0.1', 'localhost', 'testserver']

INSTALLED_APPS = ['django_app.shop']
MIDDLEWARE = ['django_app.sqlcommenter.SqlCommenterMiddleware']
ROOT_URLCONF = 'django_app.urls'

USE_TZ = True
TIME_ZONE = 'UTC'
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'

APPLICATION_NAME = 'pgtally-django-test'

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.postgresql',
        'HOST': os.environ.get('PGT_DJANGO_DB_HOST', '127.0.0.1'),
        'PORT': os.environ.get('PGT_DJANGO_DB_PORT', '5432'),
        'NAME': 'app',
        'USER': 'app',
        'PASSWORD': 'app_pw',
        'CONN_MAX_AGE': _conn_max_age(),
        'ATOMIC_REQUESTS': _flag('PGT_DJANGO_ATOMIC'),
        # A transaction pooler cannot keep a cursor open across transactions.
        'DISABLE_SERVER_SIDE_CURSORS': True,
        'OPTIONS': {'application_name': APPLICATION_NAME},
    },
}

# Read by the sqlcommenter middleware.
PGT_TRACEPARENT = _flag('PGT_DJANGO_TRACEPARENT')

# With DEBUG off Django would only mail errors to the admins; the tests want them on stderr.
LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'stderr': {'class': 'logging.StreamHandler'}},
    'loggers': {'django': {'handlers': ['stderr'], 'level': 'WARNING'}},
}
