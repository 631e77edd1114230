"""The web app's accounts on a small real workspace (a CSV ingested into DuckDB, served in-process): every
account listed, searched and paged, with its stage, persona and owner; ids that hold `/`, end in `.json`
or `.html`, or lie outside Latin-1 open and export like any other."""

from __future__ import annotations

import csv
import datetime as dt
import json
from urllib.parse import quote

import pytest

from journeymap.server.keys import create_key
from journeymap.workspace import Workspace
from conftest import serve_in_process

DEFINITION = {
    "name": "Odd ids",
    "analysis": {"level": "account"},
    "stages": [
        {"id": "signup", "name": "Signed up", "entry": "signup_completed", "owner": "Growth team"},
        {"id": "active", "name": "Active", "entry": "report_created", "owner": "Customer success"},
    ],
    "personas": [
        {"id": "big", "name": "Big company", "traits": {"employees": {"gte": 1000}}},
        {"id": "small", "name": "Small company", "traits": {"employees": {"gte": 1}}},
    ],
}
ODD = ["acme/emea", "report.json", "page.html", "logo.png", "deck.pdf", "東京-株式会社", "Ωmega ☃"]
"""Real account ids a CRM can hold: a `/`, a name ending in one of the app's export suffixes, non-Latin-1 text."""
PLAIN = [f"acct_{i:02d}" for i in range(60)]
T0 = dt.datetime(2024, 3, 1, 9)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("odd-ids")
    rows = []
    for i, account in enumerate(ODD + PLAIN):
        person = f"p{i}"
        traits = {"name": f"Company {account}", "employees": 5000 if i % 2 else 20}
        if account == "acme/emea":
            traits["Owner"] = "Dana Diaz"  # the CRM's owner as an account trait (any case)
        rows.append([person, "company_synced", T0 + dt.timedelta(hours=i), account, "", "group", json.dumps(traits)])
        props = json.dumps({"owner": "Sam Sales"}) if account == "report.json" else ""  # the CRM's owner as a property
        rows.append([person, "signup_completed", T0 + dt.timedelta(days=1, hours=i), account, props, "track", ""])
        if i % 3 == 0:
            rows.append([person, "report_created", T0 + dt.timedelta(days=3, hours=i), account, "", "track", ""])
    path = base / "events.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "account_id", "properties", "type", "traits", "message_id"])
        for n, r in enumerate(rows):
            w.writerow([r[0], r[1], r[2].isoformat() + "Z", r[3], r[4], r[5], r[6], f"m{n}"])
    ws = Workspace.init(base / "ws")
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION), encoding="utf-8")
    (report,) = ws.ingest([str(path)])
    assert report.accepted == len(rows)
    _, token = create_key(ws.con, "read", "web accounts")
    stored = {r[0] for r in ws.con.execute("SELECT account_id FROM accounts").fetchall()}
    ws.close()
    assert set(ODD) <= stored  # the odd ids really are in the store
    with serve_in_process(ws.path) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.cookies.set("jm_read", token)
        yield client


def href(account: str) -> str:
    """The account page's path as the app links it (every character escaped, the dot too)."""
    return "/app/accounts/" + quote(account, safe="").replace(".", "%2E")


# -- issue 16 item 11: any id opens and exports ----------------------------------------------------


@pytest.mark.parametrize("account", ODD)
def test_odd_account_ids_open_and_export(app, account):
    page = app.get(href(account))
    assert page.status_code == 200, page.text[-500:]
    assert f"Company {account}" in page.text
    twin = app.get(href(account) + ".json")
    assert twin.status_code == 200 and twin.json()["account_id"] == account
    export = app.get(href(account) + ".html")
    assert export.status_code == 200 and "<!doctype html>" in export.text and f"Company {account}" in export.text
    # The header is Latin-1: the real name rides as UTF-8 in filename*, an ASCII stand-in in filename.
    disposition = export.headers["content-disposition"]
    assert f"filename*=UTF-8''{quote(f'account-{account}.html', safe='')}" in disposition
    assert disposition.encode("ascii")
    # The page's own export links point at this account, escaped as the app escapes it.
    for fmt in ("json", "html", "png", "pdf"):
        assert f'href="{href(account)}.{fmt}"' in page.text


def test_the_list_links_odd_ids_to_their_pages(app):
    listing = app.get("/app/accounts", params={"per_page": 500}).text
    for account in ODD:
        assert f'href="{href(account)}"' in listing
        assert app.get(href(account)).status_code == 200


def test_a_typed_suffix_is_the_twin_else_part_of_the_id(app):
    # /app/accounts/acct_01.json is the JSON twin of acct_01 ...
    assert app.get("/app/accounts/acct_01.json").json()["account_id"] == "acct_01"
    # ... and /app/accounts/report.json, with no account "report", is the page of the account "report.json".
    typed = app.get("/app/accounts/report.json")
    assert typed.status_code == 200 and "Company report.json" in typed.text
    # An unescaped slash reaches the account too.
    assert app.get("/app/accounts/acme/emea.json").json()["account_id"] == "acme/emea"
    missing = app.get(href("no such") + ".json")
    assert missing.status_code == 404 and "no such" in missing.text


# -- issue 12 §5: the account page says where it is and who owns it ------------------------------------


def test_account_page_shows_stage_persona_and_owner(app):
    crm = app.get(href("acme/emea") + ".json").json()  # index 0: small, signed up and active (0 % 3 == 0)
    assert (crm["stage"], crm["stage_name"], crm["persona"], crm["persona_name"]) == ("active", "Active", "small", "Small company")
    assert (crm["owner"], crm["owner_from"], crm["stage_owner"]) == ("Dana Diaz", "crm", "Customer success")
    prop = app.get(href("report.json") + ".json").json()  # index 1: big, signed up only
    assert (prop["stage"], prop["persona_name"], prop["owner"], prop["owner_from"]) == ("signup", "Big company", "Sam Sales", "crm")
    none = app.get("/app/accounts/acct_01.json").json()  # no CRM owner: the stage's owner in journeymap.yml
    assert (none["owner"], none["owner_from"]) == ("Growth team", "stage")
    page = app.get(href("acme/emea")).text
    for shown in ("Current stage", "Active", "Small company", "Dana Diaz", "from the CRM"):
        assert shown in page


# -- issue 12 §5: the list: every account, search, paging, persona and owner ----------------------------


def test_accounts_list_has_every_account_search_and_paging(app):
    everyone = app.get("/app/accounts.json", params={"per_page": 500}).json()
    assert everyone["total"] == everyone["matched"] == len(ODD) + len(PLAIN)  # no account pays: all listed anyway
    assert everyone["paying"] == 0
    assert {a["account_id"] for a in everyone["accounts"]} == set(ODD) | set(PLAIN)
    row = next(a for a in everyone["accounts"] if a["account_id"] == "acme/emea")
    assert (row["persona_name"], row["owner"], row["stage_name"]) == ("Small company", "Dana Diaz", "Active")

    first = app.get("/app/accounts.json", params={"per_page": 25}).json()
    third = app.get("/app/accounts.json", params={"per_page": 25, "page": 3}).json()
    assert (first["pages"], len(first["accounts"]), len(third["accounts"])) == (3, 25, len(ODD) + len(PLAIN) - 50)
    ids = [a["account_id"] for p in (1, 2, 3)
           for a in app.get("/app/accounts.json", params={"per_page": 25, "page": p}).json()["accounts"]]
    assert sorted(ids) == sorted(ODD + PLAIN)  # the pages together are every account once

    by_name = app.get("/app/accounts.json", params={"q": "COMPANY 東京"}).json()
    assert [a["account_id"] for a in by_name["accounts"]] == ["東京-株式会社"] and by_name["matched"] == 1
    by_id = app.get("/app/accounts.json", params={"q": "acct_1"}).json()
    assert {a["account_id"] for a in by_id["accounts"]} == {f"acct_{i}" for i in range(10, 20)}

    page = app.get("/app/accounts", params={"q": "acct_", "per_page": 25, "page": 2}).text
    assert "60 of 67 accounts" in page and "page 2 of 3" in page
    assert 'rel="next"' in page and 'rel="prev"' in page and "<th data-sort=\"text\">Persona</th>" in page
    assert "Owner</th>" in page and "Growth team" in page

    bad = app.get("/app/accounts.json", params={"page": "0"})
    assert bad.status_code == 422 and "--page" in bad.json()["detail"]
    past = app.get("/app/accounts.json", params={"page": "9"})
    assert past.status_code == 422 and "past the last page" in past.json()["detail"]
    sort = app.get("/app/accounts.json", params={"sort": "helth"})
    assert sort.status_code == 422 and "did you mean 'health'" in sort.json()["detail"]
    by_owner = app.get("/app/accounts.json", params={"sort": "owner", "per_page": 500}).json()["accounts"]
    assert [a["owner"] for a in by_owner] == sorted(a["owner"] for a in by_owner)
