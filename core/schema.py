"""OpenAPI post-processing: every operation documents the JSON errors SPEC §4 promises.

Views declare their success shapes with extend_schema; the error answers are the same
everywhere ({"detail", "code"}, core/api.py), so they are added here once instead of on
every view — which is what a schema-driven fuzzer (chat/tests/test_fuzz_api.py) checks.
"""

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {
            "type": "string",
            "enum": ["invalid", "invalid_image", "auth_required", "forbidden", "not_found", "truncated",
                     "too_large", "rate_limited", "recall_window_passed", "server_error"],
        },
        "fields": {"type": "object"},
        "retry_after": {"type": "number"},
    },
    "required": ["detail", "code"],
}
ERRORS = {
    "400": "Invalid input.",
    "401": "Authentication required.",
    "403": "Not allowed.",
    "404": "Not found (also: not yours to see).",
    "405": "Method not allowed.",
    "413": "Too large.",
    "415": "Unsupported media type.",
    "429": "Rate limited; see Retry-After.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(status, {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                })
    return result
