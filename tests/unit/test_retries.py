"""Retry policy, Retry-After and idempotency keys, with the backoff injected (no sleeping)."""

from __future__ import annotations

import http.server
import ipaddress
import ssl
import threading
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.client import RetryPolicy, ServerError, TransportError
from envpools_cli.client.errors import RateLimitError

from .conftest import Recorder

REQUEST = {
    "task_ref": {"dataset": "d", "task_id": "t"},
    "agent": {"harness": "codex"},
    "pool_id": "p",
    "task_app_id": "",
    "timeouts": {},
}


def _sequence(*responses: httpx.Response | Exception) -> object:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_get_retries_transient_statuses(recorder: Recorder, status: int) -> None:
    recorder.handler = _sequence(httpx.Response(status), httpx.Response(200, json={"ok": 1}))  # type: ignore[assignment]
    assert ep.get_rollout("r1") == {"ok": 1}
    assert len(recorder.requests) == 2
    assert recorder.sleeps == [0.5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501])
def test_permanent_statuses_are_not_retried(recorder: Recorder, status: int) -> None:
    recorder.handler = lambda r: httpx.Response(status)
    with pytest.raises(ep.APIError):
        ep.get_rollout("r1")
    assert len(recorder.requests) == 1
    assert recorder.sleeps == []


def test_backoff_is_exponential_and_capped(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(503)
    with pytest.raises(ServerError):
        ep.get_rollout("r1")
    assert len(recorder.requests) == 3, "1 try + max_retries=2"
    assert recorder.sleeps == [0.5, 1.0]


def test_policy_delay_math() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=5.0, jitter=0.5)
    assert [policy.delay(n, rand=lambda: 0.0) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(1, rand=lambda: 1.0) == 1.0, "jitter takes up to half off"
    assert policy.delay(0, retry_after=12.0) == 12.0
    assert policy.delay(0, retry_after=600.0, rand=lambda: 0.0) == 1.0, "absurd Retry-After capped"


def test_retry_after_is_honoured(recorder: Recorder) -> None:
    recorder.handler = _sequence(  # type: ignore[assignment]
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"retry-after-ms": "1500"}),
        httpx.Response(200, json={}),
    )
    ep.list_pools()
    assert recorder.sleeps == [3.0, 1.5]


def test_rate_limit_error_after_retries(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(
        429,
        headers={"Retry-After": "1"},
        json={"error": {"code": "queue_full", "message": "pool queue is full"}},
    )
    with pytest.raises(RateLimitError) as info:
        ep.get_queue_status()
    assert info.value.code == "queue_full"
    assert info.value.retry_after == 1.0


def test_create_retries_with_the_same_idempotency_key(recorder: Recorder) -> None:
    recorder.handler = _sequence(  # type: ignore[assignment]
        httpx.ReadError("connection reset"),
        httpx.Response(502),
        httpx.Response(201, json={"rollout_id": "r1", "status": "queued"}),
    )
    assert ep.create_rollout(request=REQUEST)["rollout_id"] == "r1"
    keys = {r.headers["idempotency-key"] for r in recorder.requests}
    assert len(recorder.requests) == 3
    assert len(keys) == 1, "one key for the logical create, reused on each retry"
    bodies = {r.content for r in recorder.requests}
    assert len(bodies) == 1


def test_batch_retries_with_the_same_key(recorder: Recorder) -> None:
    recorder.handler = _sequence(httpx.Response(500), httpx.Response(200, json={}))  # type: ignore[assignment]
    ep.create_rollouts_batch(requests=[REQUEST], idempotency_key="mine")
    assert [r.headers["idempotency-key"] for r in recorder.requests] == ["mine", "mine"]


def test_non_idempotent_post_is_not_retried_after_it_was_sent(recorder: Recorder) -> None:
    recorder.handler = _sequence(httpx.Response(503), httpx.Response(200, json={}))  # type: ignore[assignment]
    with pytest.raises(ServerError):
        ep.store_credential(credential_name="n", credential_type="GITHUB_PAT", credential_value="v")
    assert len(recorder.requests) == 1


def test_connect_errors_are_retried_for_any_method(recorder: Recorder) -> None:
    recorder.handler = _sequence(  # type: ignore[assignment]
        httpx.ConnectError("refused"), httpx.Response(200, json={"credential_id": "c"})
    )
    result = ep.store_credential(
        credential_name="n", credential_type="GITHUB_PAT", credential_value="v"
    )
    assert result == {"credential_id": "c"}
    assert len(recorder.requests) == 2


def test_network_failure_becomes_transport_error(recorder: Recorder) -> None:
    recorder.handler = _sequence(*[httpx.ConnectError("refused")] * 3)  # type: ignore[assignment]
    with pytest.raises(TransportError) as info:
        ep.get_rollout("r1")
    assert isinstance(info.value, httpx.TransportError)
    assert "refused" in str(info.value)
    assert "sk-test-123" not in str(info.value)
    assert len(recorder.requests) == 3


def test_cancel_is_retried_as_idempotent(recorder: Recorder) -> None:
    recorder.handler = _sequence(httpx.Response(504), httpx.Response(200, json={}))  # type: ignore[assignment]
    ep.cancel_rollout("r1")
    assert len(recorder.requests) == 2


# --- a create whose outcome is unknown ---------------------------------------------------------


def test_a_create_lost_after_sending_is_retried_until_its_budget_then_unknown(
    recorder: Recorder,
) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset after the request was sent")

    recorder.handler = lost
    with pytest.raises(ep.OutcomeUnknownError) as info:
        ep.create_rollout(request=REQUEST, idempotency_key="k-1")
    error = info.value
    assert error.idempotency_key == "k-1" and "k-1" in str(error)
    assert isinstance(error, TransportError), "still a transient failure (exit 7)"
    keys = {r.headers["idempotency-key"] for r in recorder.requests}
    assert keys == {"k-1"}
    # past max_retries (2), within the 30 s budget for learning the outcome
    assert len(recorder.requests) > 3
    assert 25.0 <= recorder.now <= 30.0 + 8.0, recorder.sleeps


def test_gateway_errors_on_a_create_are_an_unknown_outcome(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(502)
    with pytest.raises(ep.OutcomeUnknownError):
        ep.create_rollout(request=REQUEST)
    assert len({r.headers["idempotency-key"] for r in recorder.requests}) == 1


def test_a_create_never_sent_is_a_plain_transport_error(recorder: Recorder) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    recorder.handler = refused
    with pytest.raises(TransportError) as info:
        ep.create_rollout(request=REQUEST)
    assert not isinstance(info.value, ep.OutcomeUnknownError), "nothing can have been created"
    assert len(recorder.requests) == 3


def test_the_answer_after_a_lost_response_is_the_outcome(recorder: Recorder) -> None:
    recorder.handler = _sequence(  # type: ignore[assignment]
        httpx.ReadError("reset"),
        httpx.Response(502),
        httpx.ReadError("reset"),
        httpx.Response(201, json={"rollout_id": "r1", "status": "queued"}),
    )
    assert ep.create_rollout(request=REQUEST)["rollout_id"] == "r1"
    recorder.handler = _sequence(  # type: ignore[assignment]
        httpx.ReadError("reset"),
        httpx.Response(409, json={"error": {"code": "idempotency_conflict", "message": "x"}}),
    )
    with pytest.raises(ep.ConflictError):
        ep.create_rollout(request=REQUEST)


def test_a_get_is_not_kept_retrying_past_max_retries(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(502)
    with pytest.raises(ServerError):
        ep.get_rollout("r1")
    assert len(recorder.requests) == 3


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_plain_http_needs_no_tls_and_https_still_verifies(tmp_path: Path) -> None:
    """The default transport builds its TLS side (the CA bundle, ~30 ms) at the first https
    request only; that side verifies certificates as httpx always does."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    cert_file, key_file = _self_signed(tmp_path)
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    for server in (plain, tls):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    session = ep.HTTPSession(retry=RetryPolicy(max_retries=0))
    try:
        answer = session.request("GET", f"http://127.0.0.1:{plain.server_port}/", api_key="k")
        assert answer.json() == {"ok": True}
        transport = session.client._transport
        assert transport._tls is None  # type: ignore[attr-defined]
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            session.request("GET", f"https://127.0.0.1:{tls.server_port}/", api_key="k")
        assert transport._tls is not None  # type: ignore[attr-defined]
    finally:
        session.close()
        plain.shutdown()
        tls.shutdown()
