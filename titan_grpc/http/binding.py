"""HTTP request -> request message, message -> JSON: the proto3 JSON mapping
(google.protobuf.json_format) plus the path and query binding rules of google/api/http.proto.

Path variables and query parameters name fields by dotted path (proto or JSON names);
a repeated field takes the parameter repeated (``?exchanges=binance&exchanges=kucoin``),
an enum its value name (``?side=SIDE_BUY``) or number, a Timestamp/Duration/wrapper its JSON
string. With ``body: "*"`` every field not in the path comes from the JSON body and query
parameters are refused; an unknown field anywhere is refused, naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from titan_grpc.errors import excerpt
from titan_grpc.http.routes import Route, resolve_field

# Message types whose JSON form is one string, so they can sit in a path or a query.
STRING_LIKE_MESSAGES = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        *(
            f"google.protobuf.{name}Value"
            for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String")
        ),
    }
)

_TYPE_NAMES = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_")
}


class BadInput(Exception):
    """A request the transcoder cannot bind; becomes INVALID_ARGUMENT naming ``field``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def request_from_http(
    route: Route,
    path_values: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
) -> Message:
    request = message_factory.GetMessageClass(route.method.input_type)()
    if route.body:
        document = _json_object(body)
        target = request if route.body == "*" else _submessage(request, route.body)
        prefix = "" if route.body == "*" else route.body
        _check_document(document, target.DESCRIPTOR, prefix)
        try:
            json_format.ParseDict(document, target)
        except json_format.ParseError as error:  # anything the field checks let through
            raise BadInput(prefix or "body", str(error).splitlines()[0]) from None
    bound: dict[str, Any] = {}
    path_fields: set[str] = set()
    for path, text in path_values.items():
        chain = resolve_field(route.method.input_type, path)
        path_fields.add(_canonical(chain))
        _put(bound, chain, text, path)
    for key, text in query:
        if route.body == "*":
            raise BadInput(
                key, "query parameters are not accepted on this route; send fields in the body"
            )
        try:
            chain = resolve_field(route.method.input_type, key)
        except KeyError:
            raise BadInput(key, "no such field") from None
        canonical = _canonical(chain)
        if canonical in path_fields:
            raise BadInput(key, "already given in the path")
        if route.body and (canonical + ".").startswith(route.body + "."):
            raise BadInput(key, f"belongs in the body ({route.body})")
        _put(bound, chain, text, key)
    if bound:
        from_url = message_factory.GetMessageClass(route.method.input_type)()
        json_format.ParseDict(bound, from_url)  # each value was checked by _put
        request.MergeFrom(from_url)  # the path wins over the body
    return request


def message_to_json(message: Message, response_body: str = "") -> Any:
    """The proto3 JSON of ``message`` (every field, set or not), or of one field of it."""
    if not response_body:
        return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    *parents, leaf = resolve_field(message.DESCRIPTOR, response_body)
    for parent in parents:
        message = getattr(message, parent.name)
    if leaf.message_type is not None and not leaf.is_repeated:
        return message_to_json(getattr(message, leaf.name))
    whole = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return whole.get(leaf.json_name)


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadInput("body", f"not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise BadInput("body", "expected a JSON object")
    return document


def _check_document(document: dict[str, Any], message: Any, prefix: str) -> None:
    """Refuse an unknown field or a value that does not fit, naming it as the caller wrote it
    (``intent.side``); json_format's own errors name the message type, not the field."""
    for key, value in document.items():
        name = f"{prefix}.{key}" if prefix else key
        field = message.fields_by_name.get(key) or next(
            (f for f in message.fields if f.json_name == key), None
        )
        if field is None:
            raise BadInput(name, "no such field")
        kind = field.message_type
        nested = kind is not None and not kind.GetOptions().map_entry
        if (
            nested
            and kind.full_name not in STRING_LIKE_MESSAGES
            and not kind.full_name.startswith("google.protobuf.")
        ):
            items = value if field.is_repeated and isinstance(value, list) else [value]
            for index, item in enumerate(items):
                where = f"{name}[{index}]" if field.is_repeated else name
                if isinstance(item, dict):
                    _check_document(item, kind, where)
                elif item is not None:
                    raise BadInput(where, "expected a JSON object")
            continue
        container = message_factory.GetMessageClass(message)()
        try:
            json_format.ParseDict({key: value}, container)
        except json_format.ParseError:
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            expected = _type_name(field) + (" list" if field.is_repeated else "")
            raise BadInput(name, f"{shown} is not a valid {expected}") from None


def _submessage(request: Message, path: str) -> Message:
    target = request
    for field in resolve_field(request.DESCRIPTOR, path):
        target = getattr(target, field.name)
    return target


def _canonical(chain: list[FieldDescriptor]) -> str:
    return ".".join(field.name for field in chain)


def _put(bound: dict[str, Any], chain: list[FieldDescriptor], text: str, name: str) -> None:
    """Check one URL value against its field and add it to the dict ParseDict will read."""
    *parents, leaf = chain
    for parent in parents:
        if _is_repeated(parent):
            raise BadInput(name, f"{parent.name} is repeated; it cannot be set from the URL")
    if leaf.message_type is not None and (
        leaf.message_type.GetOptions().map_entry
        or leaf.message_type.full_name not in STRING_LIKE_MESSAGES
    ):
        raise BadInput(name, "a message field; name one of its fields (e.g. field.subfield)")
    value: Any = text
    if leaf.type == FieldDescriptor.TYPE_BOOL:
        value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower(), text)
    assert leaf.containing_type is not None
    container = message_factory.GetMessageClass(leaf.containing_type)()
    try:
        json_format.ParseDict({leaf.name: [value] if _is_repeated(leaf) else value}, container)
    except json_format.ParseError:
        raise BadInput(name, f"{excerpt(text)} is not a valid {_type_name(leaf)}") from None
    node = bound
    for parent in parents:
        node = node.setdefault(parent.name, {})
    if _is_repeated(leaf):
        node.setdefault(leaf.name, []).append(value)
    elif leaf.name in node:
        raise BadInput(name, "given more than once")
    else:
        node[leaf.name] = value


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _type_name(field: FieldDescriptor) -> str:
    if field.enum_type is not None:
        names = [v.name for v in field.enum_type.values]
        return f"{field.enum_type.name} ({', '.join(names)})"
    if field.message_type is not None:
        return field.message_type.full_name
    return _TYPE_NAMES.get(field.type, "value")
