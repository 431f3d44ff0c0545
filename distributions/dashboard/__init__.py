"""The operator dashboard: server-rendered pages with htmx, mounted at /dashboard/ (issue 13).

It reads through `distributions.selectors` and writes through `distributions.services`, and
validates with the API's serializers, so a page and the API answer by the same rules.
"""
