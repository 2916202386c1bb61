"""The egress gateway on its own: routes, the key swap, refusals, streaming, failures."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from envpools_cli.server.sandbox.egress import (
    PROVIDERS,
    EgressGateway,
    Route,
    open_gateway,
    provider,
)
from tests.agents.provider_stub import ProviderStub

KEY = "sk-real-0123456789abcdef"


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub(command="true", expected_key=KEY) as server:
        yield server


@pytest.fixture
def gateway(stub: ProviderStub) -> Iterator[EgressGateway]:
    gw = open_gateway(
        [Route("openai", stub.url + "/v1", KEY), Route("anthropic", stub.url, KEY)],
        isolated=False,
    )
    yield gw
    gw.close()


def responses_request(gw: EgressGateway, key: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        gw.url_for("openai") + "/responses",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "m", "input": [], "stream": stream},
        timeout=10,
    )


def test_the_placeholder_is_swapped_for_the_key(gateway: EgressGateway, stub: ProviderStub) -> None:
    response = responses_request(gateway, gateway.placeholder)
    assert response.status_code == 200, response.text
    assert stub.keys_seen == {KEY}, "the provider saw the real key only"
    assert gateway.placeholder != KEY and KEY not in repr(gateway.routes)
    anthropic = httpx.post(
        gateway.url_for("anthropic") + "/v1/messages",
        headers={"x-api-key": gateway.placeholder, "anthropic-version": "2023-06-01"},
        json={"model": "m", "max_tokens": 5, "messages": []},
        timeout=10,
    )
    assert anthropic.status_code == 200 and anthropic.json()["type"] == "message"
    assert gateway.log.summary()["statuses"] == {"200": 2}


def test_streams_pass_through(gateway: EgressGateway) -> None:
    with httpx.stream(
        "POST",
        gateway.url_for("openai") + "/responses",
        headers={"Authorization": f"Bearer {gateway.placeholder}"},
        json={"model": "m", "input": [], "stream": True},
        timeout=10,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("event: ")]
    assert events[0] == "event: response.created"
    assert events[-1] == "event: response.completed"


def test_requests_without_the_placeholder_are_refused(
    gateway: EgressGateway, stub: ProviderStub
) -> None:
    assert responses_request(gateway, "sk-guess").status_code == 401
    assert responses_request(gateway, KEY).status_code == 401, "not even with the real key"
    assert stub.requests == [], "nothing reached the provider"
    elsewhere = httpx.get(
        gateway.url + "/example.com/", headers={"Authorization": gateway.placeholder}
    )
    assert elsewhere.status_code == 404
    assert "forwards to ['anthropic', 'openai']" in elsewhere.json()["error"]["message"]


def test_an_unreachable_provider_is_a_502_that_says_where() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open_gateway([Route("openai", f"http://127.0.0.1:{port}/v1", KEY)], isolated=False) as gw:
        response = responses_request(gw, gw.placeholder)
        assert response.status_code == 502
        message = response.json()["error"]["message"]
        assert f"cannot reach http://127.0.0.1:{port}" in message
        assert KEY not in message
        assert gw.log.failures and "connection failed" in gw.log.failures[0]


def test_isolated_gateways_listen_on_a_private_socket(stub: ProviderStub) -> None:
    with open_gateway([Route("openai", stub.url + "/v1", KEY)], isolated=True) as gw:
        socket_dir = gw.sandbox_mounts()[0].source
        assert (socket_dir / "gateway.sock").is_socket()
        assert gw.url == "http://127.0.0.1:41547"
        assert gw.launcher()[-1] == "/run/envpools-egress/gateway.sock"
        transport = httpx.HTTPTransport(uds=str(socket_dir / "gateway.sock"))
        with httpx.Client(transport=transport) as client:
            response = client.post(
                "http://gateway/openai/responses",
                headers={"Authorization": f"Bearer {gw.placeholder}"},
                json={"model": "m", "input": []},
            )
        assert response.status_code == 200
    assert not socket_dir.exists(), "closing removes the socket"


def test_provider_conventions() -> None:
    assert PROVIDERS["anthropic"].upstream("https://gw.example.com/v1/") == "https://gw.example.com"
    assert PROVIDERS["openai"].upstream(None) == "https://api.openai.com/v1"
    custom = provider("vllm")
    assert custom.key_names == ("VLLM_API_KEY",) and custom.base_url_name == "VLLM_BASE_URL"
    assert custom.upstream(None) is None
