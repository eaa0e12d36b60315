"""A standard-library stand-in for the cloudevents package's CloudEvent (cloudevents.core.v1),
provided by Skiff's Python function runner because PyPI may not be reachable. Same constructor
(attributes, data) and getters."""
import datetime
import json
import uuid

REQUIRED = ("id", "source", "type", "specversion")
ATTRIBUTES = ("id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject", "time")


class CloudEvent:
    """A CloudEvent v1.0: attributes (id, source, type, ... and extensions) and data."""

    def __init__(self, attributes, data=None):
        attrs = dict(attributes)
        attrs.setdefault("specversion", "1.0")
        attrs.setdefault("id", str(uuid.uuid4()))
        attrs.setdefault("time", datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z"))
        for name in REQUIRED:
            if not attrs.get(name):
                raise ValueError(f"CloudEvent attribute {name!r} is required")
        self._attributes = attrs
        self._data = data

    def get_attributes(self):
        return dict(self._attributes)

    def get_data(self):
        return self._data

    def get_id(self):
        return self._attributes.get("id")

    def get_source(self):
        return self._attributes.get("source")

    def get_type(self):
        return self._attributes.get("type")

    def get_specversion(self):
        return self._attributes.get("specversion")

    def get_subject(self):
        return self._attributes.get("subject")

    def get_time(self):
        return self._attributes.get("time")

    def get_datacontenttype(self):
        return self._attributes.get("datacontenttype")

    def get_dataschema(self):
        return self._attributes.get("dataschema")

    def get_extension(self, name):
        return self._attributes.get(name)

    def __repr__(self):
        return f"CloudEvent({self._attributes!r}, {self._data!r})"


def _decode_data(content_type, body):
    if not body:
        return None
    if content_type and "json" in content_type:
        try:
            return json.loads(body)
        except ValueError:
            pass
    if content_type and (content_type.startswith("text/") or "json" in content_type or "xml" in content_type):
        return body.decode("utf-8", "replace")
    return body


def from_http(headers, body):
    """Decodes a binary- or structured-mode HTTP message; headers is a dict with lowercase
    names. Raises ValueError when it is not a valid CloudEvent."""
    content_type = headers.get("content-type", "")
    if content_type.startswith("application/cloudevents+json"):
        try:
            doc = json.loads(body or b"{}")
        except ValueError as e:
            raise ValueError(f"structured CloudEvent is not JSON: {e}") from e
        if not isinstance(doc, dict):
            raise ValueError("structured CloudEvent is not a JSON object")
        data = doc.pop("data", None)
        if "data_base64" in doc:
            import base64
            data = base64.b64decode(doc.pop("data_base64"))
        return CloudEvent(_require(doc), data)
    attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
    if not attrs.get("specversion"):
        raise ValueError("not a CloudEvent: no ce-specversion header and content-type is not application/cloudevents+json")
    if content_type:
        attrs["datacontenttype"] = content_type
    return CloudEvent(_require(attrs), _decode_data(content_type, body))


def _require(attrs):
    for name in REQUIRED:
        if not attrs.get(name):
            raise ValueError(f"CloudEvent attribute {name!r} is missing")
    return attrs


def _encode_data(event):
    data = event.get_data()
    ct = event.get_attributes().get("datacontenttype") or "application/json"
    if data is None:
        return ct, b""
    if isinstance(data, (bytes, bytearray)):
        return ct, bytes(data)
    if isinstance(data, str) and "json" not in ct:
        return ct, data.encode()
    return ct, json.dumps(data).encode()


def to_structured(event):
    """(headers, body) of the event in structured mode."""
    doc = {k: v for k, v in event.get_attributes().items() if v is not None}
    data = event.get_data()
    if isinstance(data, (bytes, bytearray)):
        import base64
        doc["data_base64"] = base64.b64encode(bytes(data)).decode()
    elif data is not None:
        doc["data"] = data
    return [(b"content-type", b"application/cloudevents+json")], json.dumps(doc).encode()


def to_binary(event):
    """(headers, body) of the event in binary mode."""
    ct, body = _encode_data(event)
    headers = [(b"content-type", ct.encode())]
    for k, v in event.get_attributes().items():
        if k != "datacontenttype" and v is not None:
            headers.append((("ce-" + k).encode(), str(v).encode()))
    return headers, body
