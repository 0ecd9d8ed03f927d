"""Token authentication by HMAC challenge-response, sans-IO.

The agent's HELLO carries a fresh random `nonce` when it wants a token. The client
answers with an AUTH frame `{"tenant": NAME or "", "nonce": CLIENT_NONCE, "proof": P}`
where P = HMAC-SHA256(token, CONTEXT || "client" || agent nonce || client nonce ||
tenant). The token itself never crosses the wire, and a recorded answer is useless on
another connection (the agent's nonce differs). The agent checks P against its token
for that tenant (or, with no tenant named, against each of its tokens) in constant time,
then answers AUTH `{"ok": true, "tenant": NAME, "proof": Q}` with Q = HMAC-SHA256(token,
CONTEXT || "agent" || client nonce || agent nonce || tenant), which lets the client know
the agent holds the token too; or it closes with GOAWAY UNAUTHENTICATED.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any

CONTEXT = b"pyvaccel-auth-v1\0"
NONCE_SIZE = 32


def new_nonce() -> bytes:
    """A fresh random challenge."""
    return os.urandom(NONCE_SIZE)


def _mac(token: bytes, *parts: bytes) -> bytes:
    return hmac.new(token, CONTEXT + b"\0".join(parts), hashlib.sha256).digest()


def client_proof(token: bytes, agent_nonce: bytes, client_nonce: bytes, tenant: str) -> bytes:
    """What a client holding `token` answers to `agent_nonce`."""
    return _mac(token, b"client", agent_nonce, client_nonce, tenant.encode())


def agent_proof(token: bytes, agent_nonce: bytes, client_nonce: bytes, tenant: str) -> bytes:
    """What the agent answers back, proving it holds the token too."""
    return _mac(token, b"agent", client_nonce, agent_nonce, tenant.encode())


def split_token(spec: str) -> tuple[str, bytes]:
    """VACCEL_RPC_TOKEN: `tenant:token`, or a bare token (the agent finds its tenant)."""
    tenant, sep, token = spec.strip().partition(":")
    if not sep:
        return "", tenant.encode()
    return tenant, token.encode()


def answer(spec: str, agent_nonce: bytes) -> dict[str, Any]:
    """The client's AUTH fields for token `spec` and the agent's challenge."""
    tenant, token = split_token(spec)
    nonce = new_nonce()
    return {
        "tenant": tenant,
        "nonce": nonce,
        "proof": client_proof(token, agent_nonce, nonce, tenant),
    }


class AuthFailure(Exception):
    """Why an AUTH answer was refused (said to the client and logged)."""


def verify(
    tokens: Mapping[str, bytes], fields: Mapping[str, Any], agent_nonce: bytes
) -> tuple[str, dict[str, Any]]:
    """The tenant a client proved, and the agent's reply; AuthFailure otherwise."""
    tenant, nonce, proof = fields.get("tenant"), fields.get("nonce"), fields.get("proof")
    if not isinstance(tenant, str) or not isinstance(nonce, bytes) or not isinstance(proof, bytes):
        raise AuthFailure("the AUTH answer must hold tenant (str), nonce and proof (bytes)")
    if len(nonce) != NONCE_SIZE or len(proof) != hashlib.sha256().digest_size:
        raise AuthFailure("the AUTH answer's nonce or proof has the wrong size")
    candidates = [(tenant, tokens[tenant])] if tenant in tokens else []
    if not tenant:
        candidates = list(tokens.items())
    matched = None
    for name, token in candidates:  # every candidate is checked: no early exit to time
        if hmac.compare_digest(client_proof(token, agent_nonce, nonce, tenant), proof):
            matched = (name, token)
    if matched is None:
        raise AuthFailure(
            f"the agent refused the token of tenant {tenant!r}"
            if tenant
            else "the agent refused the token"
        )
    name, token = matched
    return name, {
        "ok": True,
        "tenant": name,
        "proof": agent_proof(token, agent_nonce, nonce, tenant),
    }


def check_reply(
    spec: str, fields: Mapping[str, Any], agent_nonce: bytes, sent: Mapping[str, Any]
) -> str:
    """The tenant the agent accepted us as; AuthFailure if its reply does not prove the token."""
    _, token = split_token(spec)
    proof = fields.get("proof")
    tenant = str(sent.get("tenant", ""))
    expected = agent_proof(token, agent_nonce, sent["nonce"], tenant)
    if fields.get("ok") is not True or not isinstance(proof, bytes):
        raise AuthFailure(str(fields.get("message", "the agent refused the token")))
    if not hmac.compare_digest(expected, proof):
        raise AuthFailure("the agent's reply does not prove it holds our token")
    return str(fields.get("tenant", tenant))


def load_tokens(text: str, origin: str) -> dict[str, bytes]:
    """A token file: `tenant:token` lines (# comments and blank lines ignored)."""
    tokens: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tenant, sep, token = line.partition(":")
        if not sep or not tenant or not token:
            raise ValueError(f"{origin}:{number}: expected tenant:token")
        tokens[tenant.strip()] = token.strip().encode()
    return tokens
