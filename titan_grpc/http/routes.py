"""The HTTP routes of a service, read from its ``google.api.http`` annotations.

Path templates follow google/api/http.proto: ``/literal/{field}/{other=a/*/b/**}:verb``.
A method without an annotation is still reachable as ``POST /<package.Service>/<Method>``
with the whole request as the body (grpc-gateway's "unbound methods" convention).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A compiled path template: its text, a regex, and the field path of each variable."""

    text: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]  # field paths, in the order of the regex groups g0, g1, …

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path -> percent-decoded value, when ``raw_path`` (still encoded) matches."""
        found = self.pattern.fullmatch(raw_path)
        if found is None:
            return None
        return {name: unquote(found[f"g{i}"]) for i, name in enumerate(self.variables)}

    def openapi_path(self) -> str:
        """The template with each variable as ``{field.path}`` (OpenAPI path syntax)."""
        return _VARIABLE.sub(lambda m: "{" + m[1] + "}", self.text)


@dataclass(frozen=True, slots=True)
class Route:
    method: MethodDescriptor
    http_method: str  # upper case: GET, POST, …
    template: PathTemplate
    body: str  # "" (no body), "*" (the whole request) or a field path
    response_body: str  # "" (the whole response) or a field path

    @property
    def full_method(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)


_VARIABLE = re.compile(r"\{([A-Za-z_][\w.]*)(?:=[^}]*)?\}")


def compile_template(text: str) -> PathTemplate:
    """``/v1/{name=shelves/*}/books:list`` -> regex over the encoded path. ValueError if bad."""
    if not text.startswith("/"):
        raise ValueError(f"path template {text!r} must start with '/'")
    body, verb = text[1:], ""
    last_slash = body.rfind("/")
    colon = body.rfind(":")
    if colon > last_slash and "}" not in body[colon:]:
        body, verb = body[:colon], body[colon + 1 :]
    variables: list[str] = []
    parts: list[str] = []
    for segment in _split_segments(body):
        match = re.fullmatch(r"\{([A-Za-z_][\w.]*)(?:=(.*))?\}", segment)
        if match is None:
            parts.append(_segments_regex(segment, text))
            continue
        group = f"g{len(variables)}"
        variables.append(match[1])
        sub = "*" if match[2] is None else match[2]
        parts.append(f"(?P<{group}>{_segments_regex(sub, text)})")
    pattern = "/" + "/".join(parts) + (":" + re.escape(verb) if verb else "")
    return PathTemplate(text, re.compile(pattern), tuple(variables))


def _split_segments(body: str) -> Iterator[str]:
    """Split on '/' outside braces, so ``{x=a/*}`` stays one piece."""
    depth, start = 0, 0
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            yield body[start:index]
            start = index + 1
    yield body[start:]


def _segments_regex(segments: str, template: str) -> str:
    pieces: list[str] = []
    for segment in segments.split("/"):
        if segment == "*":
            pieces.append("[^/]+")
        elif segment == "**":
            pieces.append(".+")
        elif segment and re.fullmatch(r"[\w.~%!$&'()+,;=@-]+", segment):
            pieces.append(re.escape(segment))
        else:
            raise ValueError(f"path template {template!r}: bad segment {segment!r}")
    return "/".join(pieces)


def routes_of(methods: Iterator[MethodDescriptor] | list[MethodDescriptor]) -> list[Route]:
    """Every binding of every method (the rule and its additional_bindings)."""
    routes: list[Route] = []
    for method in methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            fallback = f"/{method.containing_service.full_name}/{method.name}"
            routes.append(Route(method, "POST", compile_template(fallback), "*", ""))
            continue
        rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
        for binding in (rule, *rule.additional_bindings):
            routes.append(_route(method, binding))
    return routes


def _route(method: MethodDescriptor, rule: Any) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern in _VERBS:
        verb, path = pattern.upper(), getattr(rule, pattern)
    elif pattern == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        raise ValueError(f"{method.full_name}: google.api.http rule without a path")
    template = compile_template(path)
    for variable in template.variables:
        resolve_field(method.input_type, variable)  # fails start-up on a typo
    if rule.body and rule.body != "*":
        resolve_field(method.input_type, rule.body)
    if rule.response_body:
        resolve_field(method.output_type, rule.response_body)
    return Route(method, verb, template, rule.body, rule.response_body)


def resolve_field(message: Descriptor | Any, path: str) -> list[FieldDescriptor]:
    """The fields along a dotted path (proto or JSON names); KeyError naming the path if bad."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for name in path.split("."):
        field = None
        if current is not None:
            field = current.fields_by_name.get(name) or next(
                (f for f in current.fields if f.json_name == name), None
            )
        if field is None:
            raise KeyError(path)
        chain.append(field)
        current = field.message_type
    return chain
