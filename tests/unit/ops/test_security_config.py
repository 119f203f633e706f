"""`STACK_SECURITY=sasl_ssl`: the broker and Connect configs the stack renders, and the secrets it
makes (nothing is started: `ops/stack.sh render`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.unit.ops.test_service_config import _stack


def _secured(service: str, tmp_path: Path) -> dict[str, str]:
    return _stack(service, tmp_path, STACK_SECURITY="sasl_ssl")


def test_the_secured_broker_has_sasl_ssl_mutual_tls_for_the_quorum_and_denies_by_default(
    tmp_path: Path,
) -> None:
    props = _secured("kafka", tmp_path)
    security = tmp_path / "stack" / "security"
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "User:worker" not in props["super.users"] and "User:device" not in props["super.users"]
    password = (security / "admin.password").read_text()
    assert f'password="{password}"' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    # secrets: readable by their owner only, the certificate valid for the address clients use
    assert security.stat().st_mode & 0o077 == 0
    for secret in [
        *security.glob("*.password"),
        security / "broker.p12",
        tmp_path / "stack" / "conf" / "kafka-server.properties",
    ]:
        assert secret.stat().st_mode & 0o077 == 0, secret
    text = subprocess.run(
        ["openssl", "x509", "-in", str(security / "broker.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    verify = ["openssl", "verify", "-CAfile", str(security / "ca.pem"), str(security / "broker.pem")]
    assert subprocess.run(verify, capture_output=True, check=False).returncode == 0


def test_connect_and_its_connectors_clients_use_sasl_ssl_as_the_connect_user(tmp_path: Path) -> None:
    props = _secured("connect", tmp_path)
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_SSL"
        password = (tmp_path / "stack" / "security" / "connect.password").read_text()
        assert f'username="connect" password="{password}";' in props[f"{prefix}sasl.jaas.config"]
        assert props[f"{prefix}ssl.truststore.location"] == str(tmp_path / "stack" / "security" / "ca.pem")
    assert (tmp_path / "stack" / "conf" / "connect-distributed.properties").stat().st_mode & 0o077 == 0
