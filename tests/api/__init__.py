"""HTTP tests against a real ``livecart serve``, one file per part of the API. Every refusal is
also checked to have changed nothing. Fixtures are in conftest.py, builders in tests/helpers.py."""
