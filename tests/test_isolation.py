from __future__ import annotations

from conftest import Api


async def test_another_tenants_resources_answer_404_and_do_not_leak(api: Api, other_api: Api) -> None:
    funding, theirs = await other_api.funded_account(1_000)
    their_payment = (await other_api.get("/v1/payments")).json()["data"][0]
    _, mine = await api.funded_account(1_000)

    for path in (f"/v1/accounts/{theirs['id']}", f"/v1/accounts/{theirs['id']}/entries",
                 f"/v1/payments/{their_payment['id']}"):
        r = await api.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "resource_missing"

    r = await api.pay(theirs["id"], mine["id"], 10)
    assert r.status_code == 404 and r.json()["error"]["param"] == "source"
    r = await api.pay(mine["id"], theirs["id"], 10)
    assert r.status_code == 404 and r.json()["error"]["param"] == "destination"

    my_ids = {a["id"] for a in (await api.get("/v1/accounts", limit=100)).json()["data"]}
    assert theirs["id"] not in my_ids and funding["id"] not in my_ids
    assert their_payment["id"] not in {p["id"] for p in (await api.get("/v1/payments", limit=100)).json()["data"]}
    r = await api.get("/v1/payments", starting_after=their_payment["id"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"

    assert await other_api.balance(theirs["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    assert await api.balance(mine["id"]) == {"posted": 1_000, "pending": 0, "available": 1_000}
    # Fee schedules are per tenant too.
    await other_api.put("/v1/fee-schedule", {"rules": [{"currency": "USD", "percent_bps": 100}]})
    assert (await api.get("/v1/fee-schedule")).json() == {"rules": []}
