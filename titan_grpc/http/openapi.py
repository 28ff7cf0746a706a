"""An OpenAPI 3.0 document for the HTTP routes, generated from the service descriptor.

Schemas follow the proto3 JSON mapping: lowerCamelCase names, 64-bit integers as strings,
enums by name, Timestamp as RFC 3339 date-time, Duration as "1.5s".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor

from titan_grpc.http.binding import STRING_LIKE_MESSAGES
from titan_grpc.http.routes import Route

_T = FieldDescriptor
_INT32 = (_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32)
_UINT32 = (_T.TYPE_UINT32, _T.TYPE_FIXED32)
_INT64 = (_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64)
_SCALARS: dict[int, dict[str, Any]] = {
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte"},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    **{kind: {"type": "integer", "format": "int32"} for kind in _INT32},
    **{kind: {"type": "integer", "format": "int64", "minimum": 0} for kind in _UINT32},
    **{kind: {"type": "string", "format": "int64"} for kind in _INT64},  # proto3 JSON
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.500s"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
}
STATUS_SCHEMA = "google.rpc.Status"


def openapi_document(service: ServiceDescriptor, routes: Sequence[Route]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, schemas)
        paths.setdefault(route.template.openapi_path(), {})[route.http_method.lower()] = operation
    schemas[STATUS_SCHEMA] = {
        "type": "object",
        "description": "The error: the google.rpc.Status a gRPC client would receive.",
        "properties": {
            "code": {"type": "integer", "format": "int32"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": service.full_name,
            "version": service.file.package,
            "description": "Generated from the google.api.http annotations of "
            f"{service.file.name}; the same service is served over gRPC.",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    method = route.method
    operation: dict[str, Any] = {
        "operationId": method.name,
        "tags": [method.containing_service.name],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.template.variables
    ]
    if route.body != "*":
        bound = {*route.template.variables, route.body}
        parameters += _query_parameters(method.input_type, "", bound, schemas)
    if parameters:
        operation["parameters"] = parameters
    if route.body:
        body_type = _schema_ref(method.input_type, schemas)
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body_type}},
        }
    response = _schema_ref(method.output_type, schemas)
    if route.server_streaming:
        content = {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "Server-Sent Events; each data line is one "
                    f"{method.output_type.full_name} as JSON.",
                }
            }
        }
    else:
        content = {"application/json": {"schema": response}}
    operation["responses"] = {
        "200": {"description": "OK", "content": content},
        "default": {
            "description": "An error (google.rpc.Status).",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{STATUS_SCHEMA}"}}
            },
        },
    }
    return operation


def _query_parameters(
    message: Descriptor, prefix: str, bound: set[str], schemas: dict[str, Any], depth: int = 0
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for field in message.fields:
        name = prefix + field.name
        if name in bound:
            continue
        kind = field.message_type
        if kind is not None and kind.full_name not in STRING_LIKE_MESSAGES:
            if not field.is_repeated and depth < 3 and not kind.GetOptions().map_entry:
                parameters += _query_parameters(kind, name + ".", bound, schemas, depth + 1)
            continue
        schema = _field_schema(field, schemas)
        parameter: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
        if field.is_repeated:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _schema_ref(message: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if message.full_name in _WELL_KNOWN:
        return _WELL_KNOWN[message.full_name]
    if message.full_name in STRING_LIKE_MESSAGES:
        return {"type": "string"}
    if message.full_name not in schemas:
        schemas[message.full_name] = {}  # placeholder: recursive types stop here
        properties = {f.json_name: _field_schema(f, schemas) for f in message.fields}
        schemas[message.full_name] = {"type": "object", "properties": properties}
    return {"$ref": f"#/components/schemas/{message.full_name}"}


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _field_schema(value, schemas)}
    if field.enum_type is not None:
        single: dict[str, Any] = {
            "type": "string",
            "enum": [value.name for value in field.enum_type.values],
        }
    elif field.message_type is not None:
        single = _schema_ref(field.message_type, schemas)
    else:
        single = dict(_SCALARS.get(field.type, {"type": "string"}))
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single
