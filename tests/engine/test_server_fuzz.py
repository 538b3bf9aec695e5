"""Fuzzing of the HTTP API against its own OpenAPI schema: schemathesis cases, in-process ASGI (no network).

Valid (positive) and schema-violating (negative) requests to every operation: no 5xx, every error is JSON
`{"error": ...}`, and the answers conform to the schema. schemathesis' pytest loader (`from_fixture`) fails on
pytest 9 (`Function._nodeid`), so the cases come from `schema.as_strategy` under a plain `@given`.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from videosearch.engine import SearchEngine
from videosearch.engine.server import create_app


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_api_conforms_to_its_schema_and_every_error_is_json(engine: SearchEngine, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(engine))

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        # Rules beyond JSON Schema (a blank query, an all-zero vector, ids with control characters) answer 4xx to
        # schema-valid requests, so ST202 "schema-valid request rejected" does not apply; every other check does.
        response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error, str) and error

    check()
