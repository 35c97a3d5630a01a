"""The portal in a real headless Chromium against a live control plane running real processes:
sign in, submit through the form, watch the workload run and a preemption happen without a
reload, the queue chart and the node map, keyboard access, and the layout at 375 px."""

from __future__ import annotations

import re

from service.executors import wait_until

from .conftest import PHONE, shot, sign_in

# Set on window when a page loads: still there later means the page was never reloaded.
MARK = "window.__gpupoolMark = 'same-page'"
SAME_PAGE = "() => window.__gpupoolMark === 'same-page'"


def test_sign_in_submit_and_watch_it_run(portal, open_page):
    alice = portal.token("alice", ("team-a",))
    page = open_page()
    page.goto(portal.url + "/portal/submit")
    assert page.locator("#signin-form").is_visible()
    page.get_by_label("API token").fill("gp_wrong")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#signin-error:has-text('not valid')")
    shot(page, "signin-error")
    page.get_by_label("API token").fill(alice)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#submit-form")  # back where it was going
    assert page.locator("#s-queue option").all_inner_texts() == ["root.a", "root.open"]
    assert page.locator("input[name=size]").count() == 4  # the three sizes and a custom shape

    # A refused submission shows what is wrong next to the field.
    page.get_by_role("button", name="Submit").click()
    assert page.locator("#s-name").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "s-name"

    page.get_by_label("Name").fill("hello-portal")
    page.get_by_label("medium").check()
    page.get_by_label("Entrypoint").fill("echo hello from the portal; sleep 2.5; echo done")
    page.get_by_label("Priority").fill("5")
    page.get_by_label("Disruption policy").select_option("never")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_selector("#created-link")
    wid = re.search(r"\((w-\d+)\)", page.inner_text("#created-link")).group(1)
    page.evaluate(MARK)
    page.wait_for_selector("#created-state:has-text('running')")
    shot(page, "submit-created")
    page.click("#created-link")
    page.wait_for_url(f"**/portal/workloads/{wid}")
    page.evaluate(MARK)
    page.wait_for_selector("#w-state:has-text('succeeded')", timeout=20_000)
    assert page.evaluate(SAME_PAGE)
    page.wait_for_selector("#logs:has-text('done')")
    assert "hello from the portal" in page.inner_text("#logs")
    timeline = page.inner_text("#timeline")
    for state in ("pending", "admitted", "running", "succeeded"):
        assert state in timeline
    assert "never" in page.inner_text("#w-facts") and "5" in page.inner_text("#w-facts")
    assert page.locator("#cancel").is_hidden()  # finished: nothing to cancel
    assert page.locator("#events tbody tr").count() >= 4
    shot(page, "workload-succeeded")
    with portal.http(alice) as http:
        stored = http.get(f"/workloads/{wid}").json()
    assert stored["size"] == "medium" and stored["priority"] == 5
    assert stored["disruption"]["policy"] == "never" and stored["state"] == "succeeded"
    assert page.js_errors == []


def test_preemption_appears_live_with_chart_and_node_map(portal, open_page):
    alice = portal.token("alice", ("team-a",))
    bob = portal.token("bob", ("team-b",))
    hogs = []
    with portal.http(alice) as http:
        for i in range(4):
            r = http.post(
                "/workloads",
                json={
                    "name": f"hog-{i}",
                    "queue": "root.a",
                    "size": "large",
                    "entrypoint": "sleep 120",
                    "disruption": {"policy": "checkpoint", "grace": 1},
                },
            )
            hogs.append(r.json()["id"])
        wait_until(
            lambda: all(http.get(f"/workloads/{h}").json()["state"] == "running" for h in hogs), timeout=20
        )

    watcher = open_page()
    sign_in(watcher, portal.url, alice, "/portal/workloads?queue=root.a")
    watcher.wait_for_selector("#workloads tbody tr[data-state=running]")
    assert watcher.locator("#workloads tbody tr").count() == 4
    watcher.evaluate(MARK)

    # Bob submits through the form into his queue, whose guarantee alice's workloads now hold.
    page = open_page()
    sign_in(page, portal.url, bob, "/portal/submit")
    assert page.locator("#s-queue option").all_inner_texts() == ["root.b", "root.open"]
    page.get_by_label("Name").fill("fair-share")
    page.get_by_label("large").check()
    page.get_by_label("Entrypoint").fill("sleep 120")
    page.get_by_role("button", name="Submit").click()
    page.wait_for_selector("#created-link")
    page.click("#created-link")
    page.wait_for_selector("#why li")
    shot(page, "workload-waiting-why")

    # Alice's list shows one of hers preempted, live.
    watcher.wait_for_selector(
        "#workloads tbody tr[data-state=preempting], #workloads tbody tr[data-state=preempted]",
        timeout=20_000,
    )
    assert watcher.evaluate(SAME_PAGE)
    shot(watcher, "workloads-preemption")
    page.wait_for_selector("#w-state:has-text('running')", timeout=20_000)
    shot(page, "workload-running-after-preemption")
    page.goto(f"{portal.url}/portal/workloads/{hogs[0]}")  # alice's: not bob's to see
    page.wait_for_selector("#w-error:has-text('no workload')")
    assert page.locator("#cancel").is_hidden()

    victim = watcher.locator(
        "#workloads tbody tr[data-state=preempting] a, #workloads tbody tr[data-state=preempted] a"
    ).first
    victim.click()
    watcher.wait_for_selector("#timeline li.st-preempted", timeout=20_000)
    assert "preempt" in watcher.inner_text("#timeline").lower()
    watcher.wait_for_selector("#why li")
    shot(watcher, "workload-preempted-timeline")

    # The queue chart has data points, and the node map one cell per GPU.
    watcher.goto(portal.url + "/?queue=root.a")
    watcher.wait_for_function(
        "() => document.querySelectorAll('#chart svg circle.pt').length >= 3", timeout=15_000
    )
    assert watcher.get_attribute("#chart svg path.line-alloc", "d").count("H") >= 2
    assert watcher.locator("#chart svg path.line-guar").get_attribute("d")
    assert watcher.locator("#queue-tree .q").count() == 4
    shot(watcher, "queues-chart")
    watcher.goto(portal.url + "/portal/nodes")
    watcher.wait_for_selector(".cell")
    assert watcher.locator(".cell").count() == 16
    assert watcher.locator(".cell-used").count() == 16
    assert watcher.locator(".pool h2").all_inner_texts() == ["Pool default", "Pool train"]
    shot(watcher, "nodes-full")
    watcher.get_by_label("workload").check()
    shot(watcher, "nodes-by-workload")
    with portal.http() as admin:
        for w in [*hogs, *[r["id"] for r in admin.get("/workloads", params={"user": "bob"}).json()]]:
            admin.post(f"/workloads/{w}/cancel")
    watcher.wait_for_function(
        "() => document.querySelectorAll('.cells .cell-free').length === 16", timeout=20_000
    )
    shot(watcher, "nodes-free")
    assert watcher.js_errors == [] and page.js_errors == []


def test_keyboard_reaches_every_control_and_every_control_has_a_label(portal, open_page):
    alice = portal.token("alice", ("team-a",))
    with portal.http(alice) as http:
        wid = http.post(
            "/workloads", json={"name": "kb", "queue": "root.a", "size": "small", "entrypoint": "sleep 60"}
        ).json()["id"]
    page = open_page()
    sign_in(page, portal.url, alice, "/portal/submit")
    page.wait_for_selector("#submit-form")
    reached = []
    for _ in range(32):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " return e.id || e.getAttribute('href') || (e.name + ':' + e.value); }"
            )
        )
    for control in (
        "/portal/workloads",
        "/portal/nodes",
        "signout",
        "s-name",
        "s-queue",
        "size:small",
        "s-gpus",
        "s-members",
        "s-gpu-type",
        "s-entry",
        "s-priority",
        "s-policy",
        "s-grace",
        "submit-button",
    ):
        assert control in reached, (control, reached)
    assert reached[0] == "#main"  # the skip link comes first
    # Arrow keys move between sizes; Enter on the form submits it.
    page.focus("input[name=size][value=small]")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.value") == "medium"
    page.fill("#s-name", "by-keyboard")
    page.fill("#s-entry", "sleep 30")
    page.focus("#s-name")
    page.keyboard.press("Enter")
    page.wait_for_selector("#created-link")

    unlabelled = """() => [...document.querySelectorAll('input, select, textarea, button, [tabindex]')]
        .filter((e) => !e.hidden && e.type !== 'hidden')
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                       && !e.getAttribute('aria-labelledby') && !e.textContent.trim() && e.id !== 'main')
        .map((e) => e.outerHTML.slice(0, 80))"""
    for path in (
        "/",
        "/portal/workloads",
        f"/portal/workloads/{wid}",
        "/portal/nodes",
        "/portal/submit",
        "/portal/reports",
    ):
        page.goto(portal.url + path)
        page.wait_for_selector("#live-status:has-text('updated')" if path != "/portal/reports" else "h1")
        assert page.evaluate(unlabelled) == [], path
    # A live refresh that changes the list keeps the keyboard focus where it was.
    with portal.http(alice) as http:
        other = http.post(
            "/workloads", json={"name": "kb2", "queue": "root.a", "size": "small", "entrypoint": "sleep 60"}
        ).json()["id"]
        page.goto(portal.url + "/portal/workloads")
        page.focus(f"#wl-{wid}")
        http.post(f"/workloads/{other}/cancel")
    page.wait_for_selector(f"tr[data-id={other}][data-state=cancelled]")
    assert page.evaluate("document.activeElement.id") == f"wl-{wid}"
    # The cancel button is offered to the owner, and works from the keyboard.
    page.goto(f"{portal.url}/portal/workloads/{wid}")
    page.wait_for_selector("#w-state:has-text('running')")
    page.once("dialog", lambda d: d.accept())
    page.focus("#cancel")
    page.keyboard.press("Enter")
    page.wait_for_selector("#w-state:has-text('cancelled')")
    assert page.js_errors == []


def test_phone_width_has_no_horizontal_overflow(portal, open_page):
    alice = portal.token("alice", ("team-a",))
    with portal.http(alice) as http:
        wid = http.post(
            "/workloads",
            json={
                "name": "a-rather-long-workload-name-for-a-phone",
                "queue": "root.a",
                "size": "medium",
                "entrypoint": "echo " + "x" * 200 + "; sleep 60",
            },
        ).json()["id"]
    (portal.data_dir / "reports").mkdir()
    (portal.data_dir / "reports" / "bench.html").write_text("<title>Packing benchmark</title><p>ok</p>")
    page = open_page(PHONE)
    page.goto(portal.url + "/")
    shot(page, "phone-signin")
    sign_in(page, portal.url, alice)
    pages = {
        "queues": "/?queue=root.a",
        "workloads": "/portal/workloads",
        "workload": f"/portal/workloads/{wid}",
        "nodes": "/portal/nodes",
        "submit": "/portal/submit",
        "reports": "/portal/reports",
    }
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    for name, path in pages.items():
        page.goto(portal.url + path)
        if name != "reports":
            page.wait_for_selector("#live-status:has-text('updated')")
        assert page.evaluate(overflow) <= 0, name
        shot(page, f"phone-{name}")
    page.set_viewport_size({"width": 1280, "height": 900})
    for name, path in pages.items():
        page.goto(portal.url + path)
        if name != "reports":
            page.wait_for_selector("#live-status:has-text('updated')")
        assert page.evaluate(overflow) <= 0, name
        shot(page, f"desktop-{name}")
    assert page.js_errors == []
