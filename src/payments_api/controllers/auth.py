"""Tokens: credentials in, a bearer token out."""

from __future__ import annotations

from payments_api.schemas.users import TokenEnvelope, TokenRequest
from payments_api.services.registry import Services


async def issue_token(services: Services, body: TokenRequest) -> TokenEnvelope:
    issued = await services.auth.issue_token(body.email, body.password)
    return TokenEnvelope(access_token=issued.access_token, expires_in=issued.expires_in)
