"""Loaded by the schemathesis run (SCHEMATHESIS_HOOKS, tests/test_openapi_fuzz.py): WHIP and
WHEP offers are SDP, plain text on the wire."""

import schemathesis

schemathesis.serializer.alias("application/sdp", "text/plain")
