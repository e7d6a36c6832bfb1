"""The JSON API, one module per feature, and the OpenAPI document."""
