"""sqlcommenter: a middleware that appends a sqlcommenter comment (route, controller,
framework, and optionally a traceparent) to every SQL statement a request runs, so that
pgtally can group statements by route and by request. doc/django.md shows the same code."""

import secrets
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.urls import Resolver404, resolve


class SqlCommenterMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            match = resolve(request.path_info)
            tags = {'route': match.route, 'controller': match.view_name}
        except Resolver404:
            tags = {'route': request.path_info}
        tags['framework'] = 'django'
        if getattr(settings, 'PGT_TRACEPARENT', False):
            tags['traceparent'] = '00-%s-%s-01' % (secrets.token_hex(16), secrets.token_hex(8))
        comment = '/*%s*/' % ','.join("%s='%s'" % (key, quote(value, safe=''))
                                      for key, value in sorted(tags.items()))

        def add_comment(execute, sql, params, many, context):
            # With parameters the driver expands %-placeholders, so the url-encoding's %
            # must be doubled; without them the text is sent as it is.
            text = comment if params is None else comment.replace('%', '%%')
            return execute('%s %s' % (sql, text), params, many, context)

        with connection.execute_wrapper(add_comment):
            return self.get_response(request)
