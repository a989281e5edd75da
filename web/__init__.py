"""The composition root: settings, the Starlette app and HTTP API, the CLI, the embedded runtime."""
