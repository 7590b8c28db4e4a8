"""Seed a running payments-api for the benchmark, through its public API only.

Creates a user, gets the user's token and the bootstrap admin's token, creates a merchant (as
the admin) and N completed payments (as the user), then reads one payment back so it is in the
read cache. Prints one JSON line: {token, userId, merchantId, paymentId, paymentIds}.

    python bench/seed.py --base-url http://127.0.0.1:PORT \
        --admin-email admin@example.com --admin-password '...' [--payments 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import httpx

USER_PASSWORD = "bench-password-123"  # noqa: S105 - a throwaway user of a throwaway instance
PAYMENT_AMOUNT = 1000  # ends in 000: the sandbox gateway approves it


def _expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        sys.exit(f"seed: {what} answered {response.status_code}, not {status}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def _token(client: httpx.Client, email: str, password: str) -> str:
    body = _expect(
        client.post("/api/v1/auth/token", json={"email": email, "password": password}),
        200,
        f"token for {email}",
    )
    token: str = body["accessToken"]
    return token


def seed(base_url: str, admin_email: str, admin_password: str, payments: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:12]
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        email = f"bench-{run}@example.com"
        user = _expect(
            client.post(
                "/api/v1/users",
                json={"email": email, "password": USER_PASSWORD, "name": "Bench User"},
            ),
            201,
            "create user",
        )["user"]
        token = _token(client, email, USER_PASSWORD)
        admin = {"Authorization": f"Bearer {_token(client, admin_email, admin_password)}"}
        merchant = _expect(
            client.post(
                "/api/v1/merchants",
                json={"name": f"Bench Cafe {run}", "category": "food"},
                headers=admin,
            ),
            201,
            "create merchant",
        )["merchant"]

        auth = {"Authorization": f"Bearer {token}"}
        ids: list[str] = []
        for index in range(payments):
            payment = _expect(
                client.post(
                    "/api/v1/payments",
                    json={
                        "amount": PAYMENT_AMOUNT,
                        "merchantId": merchant["merchantId"],
                        "paymentMethod": "card",
                        "productName": f"Americano #{index}",
                    },
                    headers={**auth, "Idempotency-Key": f"seed-{run}-{index}"},
                ),
                201,
                f"payment {index}",
            )["payment"]
            if payment["status"] != "completed":
                sys.exit(f"seed: payment {index} is {payment['status']}, not completed")
            ids.append(payment["paymentId"])

        # The read the benchmark repeats, once: it must succeed and leave the entry cached.
        payment_id = ids[-1]
        _expect(client.get(f"/api/v1/payments/{payment_id}", headers=auth), 200, "read payment")
    return {
        "token": token,
        "userId": user["userId"],
        "merchantId": merchant["merchantId"],
        "paymentId": payment_id,
        "paymentIds": ids,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--payments", type=int, default=50)
    args = parser.parse_args()
    started = time.monotonic()
    result = seed(args.base_url, args.admin_email, args.admin_password, args.payments)
    print(
        f"seed: {len(result['paymentIds'])} payments in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
