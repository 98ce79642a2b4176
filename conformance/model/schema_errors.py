"""Turn jsonschema validation errors into one-line, located ConfigErrors."""

from __future__ import annotations

import json
import re
from functools import cache

import jsonschema

from .errors import ConfigError, did_you_mean
from .paths import schemas_dir
from .yamlfile import YamlDoc


@cache
def load_schema(name: str) -> dict:
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))


def validate(doc: YamlDoc, schema_name: str) -> None:
    """Raise the first (shallowest, then earliest) schema violation as a ConfigError."""
    schema = load_schema(schema_name)
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc.data))
    if not errors:
        return
    errors.sort(key=lambda e: (doc.line(tuple(e.absolute_path)) or 0, len(e.absolute_path)))
    raise _to_config_error(doc, errors[0])


def _to_config_error(doc: YamlDoc, error: jsonschema.ValidationError) -> ConfigError:
    path = tuple(error.absolute_path)
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        if extras:
            key = extras[0]
            return doc.error(path + (key,), f'unknown key "{key}"{did_you_mean(key, allowed)}'
                                            f" (allowed: {', '.join(allowed)})")
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else error.message
        return doc.error(path, f'missing required key "{name}"')
    if v == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return doc.error(path, f"expected {_article(expected)}, got {_describe(error.instance)}")
    if v == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return doc.error(path, f'"{error.instance}" is not one of: {choices}'
                               f"{did_you_mean(error.instance, map(str, error.validator_value))}")
    if v == "pattern":
        return doc.error(path, f'"{error.instance}" is not valid here'
                               f"{_pattern_hint(error.schema.get('description', ''))}")
    if v == "oneOf" and path and path[-1] == "basis":
        return doc.error(path, 'expected "source", {derived: "the arithmetic"} or {assumed: "the reason"}, '
                               f"got {_describe(error.instance)}")
    if v == "oneOf":
        return doc.error(path, f"expected a string or a list of strings, got {_describe(error.instance)}")
    if v in ("minItems", "minLength"):
        return doc.error(path, "must not be empty")
    return doc.error(path, error.message)


def _article(kind: str) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "number": "a number",
             "integer": "an integer", "boolean": "true or false", "null": "nothing"}
    return names.get(kind, kind)


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return f'the string "{value}"'


def _pattern_hint(description: str) -> str:
    return f" ({description})" if description else ""
