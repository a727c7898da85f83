"""Drive a running Tollgate with the real `runcycles` Python client (from PyPI).

Run by the Rust test `sdk_clients::the_runcycles_python_package_drives_tollgate`,
which starts the engine, makes a tenant, an API key and a budget, and passes:

  TOLLGATE_URL      runtime base URL, e.g. http://127.0.0.1:41234
  CYCLES_API_KEY    the tenant's API key secret
  TOLLGATE_TENANT   a fresh tenant id (nothing spent or reserved yet); its one budget
                    is `tenant:<id>` in USD_MICROCENTS
  TOLLGATE_BUDGET   the budget's allocated amount (default 1000000)

Every step goes through the client's own calls, parses the answer with the
client's own pydantic models (they forbid unknown fields, as the spec's
`additionalProperties: false` does), checks it, and prints one line. Any
mismatch raises, so the process exits non-zero.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

import runcycles
from runcycles import (
    Action,
    Amount,
    BalanceResponse,
    CommitRequest,
    CommitResponse,
    CyclesClient,
    CyclesConfig,
    CyclesProtocolError,
    Decision,
    DecisionRequest,
    DecisionResponse,
    EventCreateRequest,
    EventCreateResponse,
    ReleaseRequest,
    ReleaseResponse,
    ReservationCreateRequest,
    ReservationCreateResponse,
    ReservationDetail,
    ReservationExtendRequest,
    ReservationExtendResponse,
    Subject,
    Unit,
    cycles,
)

USD = Unit.USD_MICROCENTS


def key() -> str:
    return f"py-{uuid.uuid4()}"


def usd(amount: int) -> Amount:
    return Amount(unit=USD, amount=amount)


def check(condition: bool, what: str, got: object) -> None:
    if not condition:
        raise AssertionError(f"{what}; got: {got!r}")


def ok(response: runcycles.CyclesResponse, status: int, what: str) -> dict:
    check(
        response.status == status,
        f"{what}: expected HTTP {status} (error: {response.error_message})",
        response.body,
    )
    check(isinstance(response.body, dict), f"{what}: expected a JSON object", response.body)
    return response.body


def step(name: str, detail: str) -> None:
    print(f"ok  {name:<18} {detail}", flush=True)


def main() -> None:
    base_url = os.environ["TOLLGATE_URL"]
    api_key = os.environ["CYCLES_API_KEY"]
    tenant = os.environ["TOLLGATE_TENANT"]
    allocated = int(os.environ.get("TOLLGATE_BUDGET", "1000000"))
    scope = f"tenant:{tenant}"
    subject = Subject(tenant=tenant)
    action = Action(kind="llm.completion", name="gpt-4o")

    journal = tempfile.TemporaryDirectory(prefix="runcycles-journal-")
    config = CyclesConfig(
        base_url=base_url,
        api_key=api_key,
        tenant=tenant,
        # Fail fast: a retry would hide a wrong answer behind a later right one.
        retry_enabled=False,
        retry_flush_timeout=0,
        journal_dir=journal.name,
    )
    print(f"runcycles {runcycles.__version__} against {base_url}", flush=True)

    with CyclesClient(config) as client:
        # reserve -> commit
        r = ok(
            client.create_reservation(
                ReservationCreateRequest(
                    idempotency_key=key(), subject=subject, action=action, estimate=usd(5000), ttl_ms=60000
                )
            ),
            200,
            "reserve",
        )
        created = ReservationCreateResponse.model_validate(r)
        check(created.decision == Decision.ALLOW, "reserve: decision", created.decision)
        check(bool(created.reservation_id), "reserve: reservation_id", created.reservation_id)
        check(scope in created.affected_scopes, "reserve: affected_scopes", created.affected_scopes)
        rid = created.reservation_id
        step("reserve", f"{rid} {created.decision.value} scopes={created.affected_scopes}")

        c = ok(client.commit_reservation(rid, CommitRequest(idempotency_key=key(), actual=usd(3200))), 200, "commit")
        committed = CommitResponse.model_validate(c)
        check(committed.charged == usd(3200), "commit: charged", committed.charged)
        check(committed.released in (None, usd(1800)), "commit: released", committed.released)
        released_amount = committed.released.amount if committed.released else None
        step("commit", f"charged={committed.charged.amount} released={released_amount}")

        detail = ReservationDetail.model_validate(ok(client.get_reservation(rid), 200, "get reservation"))
        check(detail.status.value == "COMMITTED", "get reservation: status", detail.status)
        step("get reservation", f"{rid} {detail.status.value}")

        # list: rows are checked as plain JSON. The package's ReservationSummary model
        # (0.5.3) forbids unknown fields yet lacks the spec's `finalized_at_ms` and
        # `committed`, which a COMMITTED row carries, so it cannot parse a conformant row.
        listed = ok(client.list_reservations(tenant=tenant, status="COMMITTED"), 200, "list reservations")
        rows = listed.get("reservations")
        check(isinstance(rows, list), "list reservations: reservations", listed)
        check([row.get("reservation_id") for row in rows] == [rid], "list reservations: ids", rows)
        check(rows[0].get("committed") == {"unit": "USD_MICROCENTS", "amount": 3200}, "list: committed", rows[0])
        step("list", f"{len(rows)} COMMITTED row(s)")

        # reserve -> release
        r = ok(
            client.create_reservation(
                ReservationCreateRequest(idempotency_key=key(), subject=subject, action=action, estimate=usd(7000))
            ),
            200,
            "reserve for release",
        )
        rid2 = ReservationCreateResponse.model_validate(r).reservation_id
        rel = ok(
            client.release_reservation(rid2, ReleaseRequest(idempotency_key=key(), reason="python sdk test")),
            200,
            "release",
        )
        released = ReleaseResponse.model_validate(rel)
        check(released.released == usd(7000), "release: released", released.released)
        step("release", f"{rid2} released={released.released.amount}")

        # decide: ALLOW, then DENY past the budget
        d = DecisionResponse.model_validate(
            ok(
                client.decide(DecisionRequest(idempotency_key=key(), subject=subject, action=action, estimate=usd(1000))),
                200,
                "decide",
            )
        )
        check(d.decision == Decision.ALLOW, "decide: decision", d)
        step("decide allow", d.decision.value)

        d = DecisionResponse.model_validate(
            ok(
                client.decide(
                    DecisionRequest(
                        idempotency_key=key(), subject=subject, action=action, estimate=usd(allocated * 10)
                    )
                ),
                200,
                "decide over budget",
            )
        )
        check(d.decision == Decision.DENY, "decide over budget: decision", d)
        check(d.reason_code == "BUDGET_EXCEEDED", "decide over budget: reason_code", d.reason_code)
        step("decide deny", f"{d.decision.value} {d.reason_code}")

        # extend (stays reserved; released at the end)
        r = ok(
            client.create_reservation(
                ReservationCreateRequest(
                    idempotency_key=key(), subject=subject, action=action, estimate=usd(2000), ttl_ms=30000
                )
            ),
            200,
            "reserve for extend",
        )
        held = ReservationCreateResponse.model_validate(r)
        e = ok(
            client.extend_reservation(
                held.reservation_id, ReservationExtendRequest(idempotency_key=key(), extend_by_ms=60000)
            ),
            200,
            "extend",
        )
        extended = ReservationExtendResponse.model_validate(e)
        check(extended.status.value == "ACTIVE", "extend: status", extended.status)
        check(
            extended.expires_at_ms == held.expires_at_ms + 60000,
            f"extend: expires_at_ms should be {held.expires_at_ms} + 60000",
            extended.expires_at_ms,
        )
        step("extend", f"{held.reservation_id} expires_at_ms {held.expires_at_ms} -> {extended.expires_at_ms}")

        # events: direct debit, 201
        ev = ok(
            client.create_event(
                EventCreateRequest(idempotency_key=key(), subject=subject, action=action, actual=usd(1500))
            ),
            201,
            "event",
        )
        event = EventCreateResponse.model_validate(ev)
        check(event.status.value == "APPLIED", "event: status", event.status)
        check(event.charged in (None, usd(1500)), "event: charged", event.charged)
        step("event", f"{event.event_id} {event.status.value}")

        # the @cycles decorator: reserve, run, commit with the returned actual
        @cycles(estimate=4000, actual=lambda result: result, action_kind="llm.completion",
                action_name="gpt-4o", tenant=tenant, client=client)
        def guarded() -> int:
            return 2500

        check(guarded() == 2500, "decorator: return value", None)
        step("decorator", "reserve -> run -> commit 2500")

        # balances: remaining = allocated - spent - reserved (- debt)
        b = BalanceResponse.model_validate(ok(client.get_balances(tenant=tenant), 200, "balances"))
        mine = [x for x in b.balances if x.scope == scope and x.remaining.unit == USD]
        check(len(mine) == 1, f"balances: one {scope} USD_MICROCENTS ledger", b.balances)
        bal = mine[0]
        spent = 3200 + 1500 + 2500
        reserved = 2000
        check(bal.allocated == usd(allocated), "balances: allocated", bal.allocated)
        check(bal.spent == usd(spent), "balances: spent", bal.spent)
        check(bal.reserved == usd(reserved), "balances: reserved", bal.reserved)
        check(
            bal.remaining.amount == allocated - spent - reserved,
            f"balances: remaining should be {allocated} - {spent} - {reserved}",
            bal.remaining,
        )
        step("balances", f"allocated={allocated} spent={spent} reserved={reserved} remaining={bal.remaining.amount}")

        rel = ok(
            client.release_reservation(held.reservation_id, ReleaseRequest(idempotency_key=key())),
            200,
            "release extended",
        )
        ReleaseResponse.model_validate(rel)

        # the reserve that cannot fit is a 409 BUDGET_EXCEEDED, which the decorator raises
        @cycles(estimate=allocated * 10, action_kind="llm.completion", action_name="gpt-4o",
                tenant=tenant, client=client)
        def too_big() -> int:
            raise AssertionError("must not run")

        try:
            too_big()
        except CyclesProtocolError as err:
            check(err.status == 409, "decorator over budget: status", err.status)
            check(err.error_code == "BUDGET_EXCEEDED", "decorator over budget: error_code", err.error_code)
            # err.request_id is None here: the package's ErrorResponse model (0.5.3) forbids
            # the spec's `trace_id`, so it drops the parsed body and keeps only `error`.
            step("decorator deny", f"{err.status} {err.error_code} request_id={err.request_id}")
        else:
            raise AssertionError("decorator over budget: expected CyclesProtocolError")

    journal.cleanup()
    print("python runcycles client: all steps passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - report and fail
        print(f"FAIL: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
