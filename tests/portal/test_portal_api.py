"""The portal's server side without a browser: history sampling and endpoint, the portal's JSON
views, page access, reports, and static assets."""

from __future__ import annotations

import html

import pytest

from service.executors import wait_until


def test_history_endpoint_records_samples(portal):
    alice = portal.token("alice", ("team-a",))
    with portal.http(alice) as http:
        r = http.post(
            "/workloads",
            json={"name": "h", "queue": "root.a", "size": "medium", "entrypoint": "sleep 30"},
        )
        assert r.status_code == 201, r.text

        def sampled_allocation():
            points = http.get("/queues/root.a/history").json()["points"]
            return [p for p in points if p["allocated"].get("gpu") == 2]

        points = wait_until(sampled_allocation, timeout=15)
        assert points[-1]["guaranteed"] == {"gpu": 8} and points[-1]["max"] == {"gpu": 16}
        body = http.get("/queues/root/history", params={"since": 0}).json()
        assert body["queue"] == "root" and body["interval"] == 0.5 and body["points"]
        assert all(a["at"] <= b["at"] for a, b in zip(body["points"], body["points"][1:], strict=False))
        future = http.get("/queues/root.a/history", params={"since": 4e9}).json()
        assert future["points"] == []
        missing = http.get("/queues/root.nope/history")
        assert missing.status_code == 404 and missing.json()["code"] == "not-found"
    with portal.http("") as anonymous:
        assert anonymous.get("/queues/root/history").status_code == 401


def test_me_and_node_occupancy(portal):
    alice = portal.token("alice", ("team-a",))
    bob = portal.token("bob", ("team-b",))
    with portal.http(alice) as http:
        me = http.get("/portal/api/me").json()
        assert me["submit_queues"] == ["root.a", "root.open"]
        assert me["admin_queues"] == [] and me["may_reload"] is False
        w = http.post(
            "/workloads",
            json={"name": "secret", "queue": "root.a", "size": "medium", "entrypoint": "sleep 30"},
        ).json()
        wait_until(lambda: http.get(f"/workloads/{w['id']}").json()["state"] == "running", timeout=15)
        pools = http.get("/portal/api/nodes").json()
    assert [p["name"] for p in pools] == ["default", "train"]
    assert all(p["gpus"] == 8 for p in pools)
    cells = [c for p in pools for n in p["nodes"] for c in n["cells"]]
    assert len(cells) == 16
    used = [c for c in cells if c["state"] == "used"]
    assert len(used) == 2 and used[0]["workload"] == w["id"] and used[0]["name"] == "secret"
    assert sum(p["free"] for p in pools) == 14 and max(p["largest_free"] for p in pools) == 4
    with portal.http(bob) as http:
        cells = [c for p in http.get("/portal/api/nodes").json() for n in p["nodes"] for c in n["cells"]]
        used = [c for c in cells if c["state"] == "used"]
        # Bob sees that the GPUs are taken, and by which queue, but not what alice runs.
        assert used[0]["queue"] == "root.a" and used[0]["name"] is None and used[0]["user"] is None
    with portal.http() as admin:
        me = admin.get("/portal/api/me").json()
        assert me["may_reload"] and "root.a" in me["admin_queues"]


def test_pages_need_a_token_and_reports_are_served(portal):
    reports = portal.data_dir / "reports"
    reports.mkdir()
    (reports / "sim-2026.html").write_text(
        "<html><head><title>Replay of the Philly trace</title></head></html>"
    )
    (reports / "notes.txt").write_text("not a report")
    with portal.http("") as anonymous:
        page = anonymous.get("/portal/workloads")
        assert page.status_code == 200 and 'id="signin-form"' in page.text
        assert 'id="signin-form"' in anonymous.get("/portal/reports/sim-2026.html").text
        assert anonymous.get("/portal/static/portal.css").headers["content-type"].startswith("text/css")
        assert anonymous.get("/portal/static/..%2Fportal.css").status_code == 404
    anonymous_cookie = portal.http("")
    anonymous_cookie.cookies.set("gpupool_token", portal.admin_token)
    with anonymous_cookie as http:
        listing = http.get("/portal/reports").text
        assert "Replay of the Philly trace" in listing and "notes.txt" not in listing
        report = http.get("/portal/reports/sim-2026.html")
        assert report.status_code == 200 and "Philly" in report.text
        assert report.headers["content-security-policy"] == "sandbox allow-scripts"
        assert http.get("/portal/reports/notes.txt").status_code == 404
        assert http.get("/portal/reports/..%2Fgpupool.db").status_code == 404
        assert 'id="queue-tree"' in http.get("/").text


@pytest.mark.parametrize(
    ("next_param", "expected"),
    [
        ("/\\evil.example/b", "/"),
        ("/\t/evil.example/b", "/"),
        ("/\n/evil.example", "/"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/portal/../\\evil.example", "/"),
        ("/portal/signin?next=//evil.example", "/"),
        ("/portal/workloads?state=running", "/portal/workloads?state=running"),
        ("/?queue=root.a", "/?queue=root.a"),
        ("/notebooks/lab/lab?reset", "/notebooks/lab/lab?reset"),
        ("/notebooks//evil.example", "/"),
        ("/notebooks/lab\\evil.example", "/"),
        ("/notebooks/../\\evil.example", "/"),
    ],
)
def test_signin_next_is_only_ever_a_portal_path(portal, next_param, expected):
    with portal.http("") as anonymous:
        page = anonymous.get("/portal/signin", params={"next": next_param})
    assert page.status_code == 200
    assert f'data-next="{html.escape(expected)}"' in page.text, page.text[:2000]
