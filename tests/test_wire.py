"""The wire schema of POST /v1/text3d: a bounded, canonical JSON request and a raw-bytes answer.

Pinned rules: a request survives ``to_body``/``from_body`` unchanged and its body is
canonical (compact, keys sorted, UTF-8), so what the validator signs is what the miner
reads; every limit (prompt length, seed range, timeout cap, body size, JSON shape,
extra fields, bools posing as numbers) is a ``RequestError`` (HTTP 400), never another
exception; any request the validator can build fits the miner's body cap; an answer's
metadata survives ``headers()``/``from_http`` and malformed metadata or an empty body is
``MinerTransportError("malformed")`` (the miner's fault), never a crash.
"""

import json

import httpx
import pytest
from pydantic import ValidationError

from text3d import protocol
from text3d.protocol.errors import MinerFault, MinerTransportError
from text3d.protocol.limits import DEFAULT_LIMITS
from text3d.protocol.mesh_codec import MeshFormat, decode_mesh
from text3d.protocol.wire import (
    HEADER_FORMAT,
    HEADER_GENERATION_TIME,
    MAX_PROMPT_CHARS,
    MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
    MAX_SEED,
    MAX_TIMEOUT_S,
    RESPONSE_ALLOWANCE_BYTES,
    ROUTE,
    RequestError,
    TextTo3DRequest,
    TextTo3DResponse,
)
from tests.loopback import tiny_mesh_payload


def body(**fields):
    return json.dumps(fields).encode()


def test_package_exports_a_short_all_and_resolves_each_name():
    assert len(protocol.__all__) <= 10
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None
    assert protocol.TextTo3DRequest is TextTo3DRequest and protocol.ROUTE == ROUTE == "/v1/text3d"
    with pytest.raises(AttributeError):
        protocol.not_a_name  # noqa: B018


# -- the request ---------------------------------------------------------------------------


def test_request_round_trips_through_its_canonical_body():
    request = TextTo3DRequest(prompt="a red chair", seed=123, timeout_s=12.5)
    raw = request.to_body()
    assert raw == b'{"prompt":"a red chair","seed":123,"timeout_s":12.5}'
    assert TextTo3DRequest.from_body(raw) == request
    shuffled = b'{ "timeout_s": 12.5, "seed": 123, "prompt": "a red chair" }'
    assert TextTo3DRequest.from_body(shuffled) == request
    assert TextTo3DRequest.from_body(shuffled).to_body() == raw  # one body per request


def test_timeout_defaults_and_a_json_integer_is_a_number():
    assert TextTo3DRequest.from_body(body(prompt="a mug", seed=0)).timeout_s == 12.0
    parsed = TextTo3DRequest.from_body(body(prompt="a mug", seed=0, timeout_s=30))
    assert parsed.timeout_s == 30.0 and isinstance(parsed.timeout_s, float)


def test_the_longest_prompt_of_any_script_fits_the_body_cap():
    """What the validator may build, the miner must read: 512 four-byte characters are 2 KiB of UTF-8."""
    for char in ("x", "é", "椅", "\U0001FA91"):
        request = TextTo3DRequest(prompt=char * MAX_PROMPT_CHARS, seed=MAX_SEED, timeout_s=MAX_TIMEOUT_S)
        raw = request.to_body()
        assert len(raw) <= MAX_REQUEST_BYTES, (char, len(raw))
        assert TextTo3DRequest.from_body(raw) == request


def test_the_bounds_themselves_are_accepted():
    TextTo3DRequest(prompt="x" * MAX_PROMPT_CHARS, seed=0, timeout_s=MAX_TIMEOUT_S)
    TextTo3DRequest(prompt="x", seed=MAX_SEED, timeout_s=0.001)
    assert MAX_SEED == 2**32 - 1


@pytest.mark.parametrize(
    "fields, where",
    [
        ({"prompt": "", "seed": 1}, "prompt"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1), "seed": 1}, "prompt"),
        ({"prompt": 7, "seed": 1}, "prompt"),
        ({"seed": 1}, "prompt"),
        ({"prompt": "a chair", "seed": -1}, "seed"),
        ({"prompt": "a chair", "seed": MAX_SEED + 1}, "seed"),
        ({"prompt": "a chair", "seed": 10**400}, "seed"),
        ({"prompt": "a chair", "seed": 1.5}, "seed"),
        ({"prompt": "a chair", "seed": "7"}, "seed"),
        ({"prompt": "a chair", "seed": True}, "seed"),
        ({"prompt": "a chair", "seed": 1, "timeout_s": True}, "timeout_s"),
        ({"prompt": "a chair", "seed": 1, "timeout_s": MAX_TIMEOUT_S + 0.1}, "timeout_s"),
        ({"prompt": "a chair", "seed": 1, "timeout_s": 10**400}, "timeout_s"),
        ({"prompt": "a chair", "seed": 1, "timeout_s": 0}, "timeout_s"),
        ({"prompt": "a chair", "seed": 1, "timeout_s": -3.0}, "timeout_s"),
        ({"prompt": "a chair", "seed": 1, "timeout_s": "12"}, "timeout_s"),
        ({"prompt": "a chair", "seed": 1, "mesh_b64": "AAAA"}, "mesh_b64"),
    ],
)
def test_a_field_out_of_bounds_is_a_request_error_naming_it(fields, where):
    with pytest.raises(RequestError, match=f"^request field {where}"):
        TextTo3DRequest.from_body(body(**fields))


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "not UTF-8 JSON"),
        (b"prompt=a+chair&seed=1", "not UTF-8 JSON"),
        (b'{"prompt": "a chair", "seed": 1', "not UTF-8 JSON"),
        (b'{"prompt": "\xff\xfe", "seed": 1}', "not UTF-8 JSON"),
        (b'{"prompt": "a chair", "seed": 1, "timeout_s": NaN}', "timeout_s"),
        (b'{"prompt": "a chair", "seed": 1, "timeout_s": Infinity}', "timeout_s"),
        (b'{"prompt": "\\ud800", "seed": 1}', "prompt"),  # a lone surrogate is no text
        (b'["a chair", 1]', "must be a JSON object"),
        (b'"a chair"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"[" * 4000, "nests too deeply"),
        (b'{"":' * 1000, "nests too deeply"),
    ],
)
def test_a_body_that_does_not_parse_is_a_request_error(raw, reason):
    assert len(raw) <= MAX_REQUEST_BYTES
    with pytest.raises(RequestError, match=reason):
        TextTo3DRequest.from_body(raw)


def test_a_body_over_the_cap_is_refused_before_parsing():
    padded = b'{"prompt":"a chair","seed":1}' + b" " * MAX_REQUEST_BYTES
    with pytest.raises(RequestError, match=f"the limit is {MAX_REQUEST_BYTES}"):
        TextTo3DRequest.from_body(padded)
    fits = b'{"prompt":"a chair","seed":1}'.ljust(MAX_REQUEST_BYTES)
    assert TextTo3DRequest.from_body(fits).prompt == "a chair"


def test_request_errors_are_value_errors_and_not_miner_faults():
    assert issubclass(RequestError, ValueError)
    assert not issubclass(RequestError, MinerFault)  # a bad request is the caller's fault


def test_requests_are_frozen_and_validated_when_built():
    request = TextTo3DRequest(prompt="a chair", seed=1)
    with pytest.raises(ValidationError):
        request.seed = 2
    with pytest.raises(ValidationError):
        TextTo3DRequest(prompt="a chair", seed=1, timeout_s=float("nan"))


# -- the answer ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(MeshFormat))
def test_response_headers_round_trip(fmt):
    payload = tiny_mesh_payload(fmt)
    sent = TextTo3DResponse(payload=payload, format=fmt, generation_time_s=3.21)
    headers = sent.headers()
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers[HEADER_FORMAT] == fmt.value and headers[HEADER_GENERATION_TIME] == "3.2100"
    as_received = httpx.Headers({k.lower(): v for k, v in headers.items()})  # HTTP/1.1 lowercases
    received = TextTo3DResponse.from_http(as_received, payload)
    assert received == sent
    assert len(decode_mesh(received.payload).faces) == 320


def test_header_names_are_case_insensitive_and_the_format_is_trimmed():
    received = TextTo3DResponse.from_http({"x-TEXT3D-format": " DRACO ", "X-Text3d-Generation-Time-S": "0"}, b"x")
    assert received.format is MeshFormat.DRACO and received.generation_time_s == 0.0
    assert TextTo3DResponse.from_http({HEADER_FORMAT: "ply"}, b"x").generation_time_s == 0.0  # no timing sent


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({}, "X-Text3d-Format is ''"),
        ({HEADER_FORMAT: "obj"}, "expected one of draco, ply, glb"),
        ({HEADER_FORMAT: "o" * 10_000}, "expected one of"),
        ({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "fast"}, "is not a number"),
        ({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "nan"}, "finite number"),
        ({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "inf"}, "finite number"),
        ({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "1e400"}, "finite number"),
        ({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "-0.5"}, "finite number"),
        ({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "3.2 s"}, "X-Text3d-Generation-Time-S is not a number"),
    ],
)
def test_malformed_answer_headers_are_a_malformed_transport_error(headers, reason):
    with pytest.raises(MinerTransportError, match=reason) as caught:
        TextTo3DResponse.from_http(headers, b"DRACO")
    assert caught.value.status == "malformed"
    assert len(str(caught.value)) < 200  # a hostile header is never echoed whole into a report


def test_an_empty_answer_body_is_refused():
    with pytest.raises(MinerTransportError, match="no mesh bytes") as caught:
        TextTo3DResponse.from_http({HEADER_FORMAT: "draco", HEADER_GENERATION_TIME: "1.0"}, b"")
    assert caught.value.status == "malformed"


def test_the_answer_cap_is_the_codec_cap_plus_a_small_allowance():
    assert MAX_RESPONSE_BYTES == DEFAULT_LIMITS.max_payload_bytes + RESPONSE_ALLOWANCE_BYTES
    assert RESPONSE_ALLOWANCE_BYTES <= 1024 * 1024
