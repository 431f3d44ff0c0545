"""Request body parsing for every API view, the edge-facing ones too."""

from __future__ import annotations

import codecs
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

from cdncontract.limits import load_json


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the protocol's depth limit (cdncontract.limits.MAX_JSON_DEPTH).

    DRF's own lets the decoder's RecursionError through as a 500, on the login call too.
    """

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: dict[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return load_json(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:  # malformed, badly encoded or too deep
            raise ParseError(f"JSON parse error - {exc}") from exc
