"""``gpupool bench serve`` without Ray: bad input in one line, the JSON and the table (the runs
replaced by fakes), a run that fails reported in one line, and the gpupool run's platform part
(``gpupool_deployment``, ``batch_backlog``) against a fake SDK client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gpupool.api import ErrorBody
from gpupool.bench import serve_runs
from gpupool.bench.serve import ServeLoad
from gpupool.cli.main import app
from gpupool.client import ApiError

runner = CliRunner()
KEYS = {"p50_ms", "p99_ms", "requests", "errors", "gpu_seconds", "peak_replicas", "scale_up_s"}


def bench(*args: str) -> Any:
    return runner.invoke(app, ["bench", "serve", *args])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--only", "both"], "--only must be one of gpupool, ray_serve"),
        (["--peak-rate", "0"], "--peak-rate"),
        (["--arrivals", "bursty"], "--arrivals"),
        (["--cluster", "2xT4"], "--cluster '2xT4'"),
        (["--max-replicas", "9"], "fewer GPUs than --max-replicas"),
        (["--min-replicas", "5"], "--max-replicas must be at least --min-replicas"),
        (["--only", "ray_serve", "--batch-backlog"], "--batch-backlog"),
        (["--peak-seconds", "2000"], "at most 1800"),
        (["--plot", "/dev/null/plots"], "--plot /dev/null/plots"),
        (["--serving-guarantee", "5"], "--serving-guarantee"),
    ],
)
def test_bad_input_is_one_line_and_starts_nothing(
    args: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(serve_runs, "run_both", lambda *a, **k: started.append("run"))
    r = bench(*args)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], r.output
    assert "Traceback" not in r.output and not started


def fake_figures(p99: float, replicas: int) -> dict[str, Any]:
    return {
        "p50_ms": 1010.0,
        "p99_ms": p99,
        "requests": 420,
        "errors": 0,
        "gpu_seconds": 300.5,
        "peak_replicas": replicas,
        "scale_up_s": 12.5,
        "needed_replicas": 3,
        "phases": {"1-low": {"p99_ms": 1020.0}, "2-peak": {"p99_ms": p99}, "3-low": {"p99_ms": 1030.0}},
        "timeline": [[0.0, 1], [25.0, 3], [100.0, 1]],
        "sent_per_s": [1, 6, 1],
    }


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the runs' scratch dirs (kept on failure)
    calls: dict[str, Any] = {}

    def gpupool(load: ServeLoad, cluster: str, workdir: Path, echo: Any, *, backlog: bool = False) -> Any:
        calls["gpupool"] = {"load": load, "cluster": cluster, "backlog": backlog}
        if calls.get("refuse"):
            raise serve_runs.RunError(
                "gpupool refused the deployment: model deployments need a runner [501 not-implemented]"
            )
        return fake_figures(1500.0, 3)

    def ray_serve(load: ServeLoad, cluster: str, workdir: Path, echo: Any) -> Any:
        calls["ray_serve"] = {"load": load, "cluster": cluster}
        return fake_figures(9000.0, 4)

    monkeypatch.setattr(serve_runs, "run_gpupool", gpupool)
    monkeypatch.setattr(serve_runs, "run_ray_serve", ray_serve)
    return calls


def test_json_holds_both_runs_and_the_queues_max(fake_runs: dict[str, Any]) -> None:
    r = bench("--json", "--peak-seconds", "30", "--max-replicas", "5", "--cluster", "1xT4:8")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["queue_max_replicas"] == 5
    for name in ("gpupool", "ray_serve"):
        assert set(out[name]) >= KEYS, out[name]
    assert out["gpupool"]["p99_ms"] == 1500.0 and out["ray_serve"]["peak_replicas"] == 4
    # Both runs get the same load and cluster.
    assert fake_runs["gpupool"]["load"] == fake_runs["ray_serve"]["load"]
    assert fake_runs["gpupool"]["load"].peak_seconds == 30 and fake_runs["ray_serve"]["cluster"] == "1xT4:8"
    assert out["settings"]["max_replicas"] == 5 and out["settings"]["batch_backlog"] is False


def test_only_one_run_leaves_the_other_null(fake_runs: dict[str, Any]) -> None:
    r = bench("--json", "--only", "ray_serve")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["gpupool"] is None and set(out["ray_serve"]) >= KEYS and "gpupool" not in fake_runs


def test_the_table_shows_the_runs_side_by_side(fake_runs: dict[str, Any]) -> None:
    r = runner.invoke(app, ["bench", "serve", "--batch-backlog"], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert fake_runs["gpupool"]["backlog"] is True
    header = next(line for line in r.stdout.splitlines() if "gpupool" in line and "ray_serve" in line)
    assert header.index("gpupool") < header.index("ray_serve")
    p99 = next(line for line in r.stdout.splitlines() if line.strip("│ ").startswith("p99 latency"))
    assert "1500.0" in p99 and "9000.0" in p99
    assert "p99 of phase 2-peak" in r.stdout and "queue max 4 replicas" in " ".join(r.stdout.split())


def test_a_refused_deployment_is_one_line_for_its_run_and_the_other_still_reports(
    fake_runs: dict[str, Any],
) -> None:
    fake_runs["refuse"] = True
    r = bench("--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert "501" in out["gpupool"]["error"] and all(out["gpupool"][k] is None for k in KEYS)
    assert out["ray_serve"]["requests"] == 420
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: gpupool run: gpupool refused the deployment: model deployments need a runner "
        "[501 not-implemented]"
    ]
    assert "Traceback" not in r.output
    kept = [line for line in r.stderr.splitlines() if line.startswith("Data dirs and logs of the runs: ")]
    assert len(kept) == 1 and Path(kept[0].split(": ", 1)[1]).is_dir()  # kept for a look at the logs


def test_plot_writes_a_png(fake_runs: dict[str, Any], tmp_path: Path) -> None:
    r = bench("--json", "--plot", str(tmp_path / "plots"))
    assert r.exit_code == 0, r.output
    png = tmp_path / "plots" / "bench-serve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the platform part, faked


class FakeDeployment:
    """What ``client.deployment(name)`` answers: the fields the benchmark reads."""

    def __init__(
        self, url: str | None, placed: int, draining: int = 0, ready: int = 0, state: str = "running"
    ):
        self.url, self.state, self.ready = url, state, ready
        self.reason, self.held = "", None
        self.replicas = [type("R", (), {"state": "placed"})() for _ in range(placed)]
        self.replicas += [type("R", (), {"state": "draining"})() for _ in range(draining)]
        self.replicas += [type("R", (), {"state": "waiting"})()]


class FakeClient:
    """A gpupool SDK client that answers from a script of deployments."""

    def __init__(self, script: list[FakeDeployment], refuse: ApiError | None = None) -> None:
        self.script, self.refuse = script, refuse
        self.deployed: dict[str, Any] = {}
        self.undeployed: list[str] = []
        self.submitted: list[dict[str, Any]] = []
        self.cancelled: list[str] = []

    def deploy(self, name: str, **kw: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.deployed = {"name": name, **kw}

    def deployment(self, name: str) -> FakeDeployment:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def undeploy(self, name: str) -> None:
        self.undeployed.append(name)

    def submit(self, name: str, **kw: Any) -> Any:
        self.submitted.append({"name": name, **kw})
        return type("W", (), {"id": f"w{len(self.submitted)}"})()

    def cancel(self, wid: str) -> None:
        self.cancelled.append(wid)

    def queues(self) -> list[Any]:
        """The batch queue holds a GPU per job submitted; the serving queue one replica's."""
        batch = {"path": "root.batch", "allocated": {"gpu": len(self.submitted)}}
        serving = {"path": "root.serving", "allocated": {"gpu": 1}}
        return [type("Q", (), q)() for q in (batch, serving)]


def test_the_deployment_is_made_with_the_runs_settings_and_waited_for() -> None:
    load = ServeLoad(gpus=1.0, max_replicas=4, upscale_delay=5.0, look_back=15.0)
    client = FakeClient(
        [
            FakeDeployment(None, 0),
            FakeDeployment("http://127.0.0.1:9/d/", 1),
            FakeDeployment("http://127.0.0.1:9/d/", 1, ready=1),
        ]
    )
    with serve_runs.gpupool_deployment(client, load) as (url, replicas):
        assert url == "http://127.0.0.1:9/d" and replicas() == 1
        assert client.undeployed == []
    assert client.undeployed == ["bench-serve"]
    made = client.deployed
    assert made["import_path"] == "gpupool.serving_demo:app" and made["queue"] == "root.serving"
    assert made["gpus"] == 1 and isinstance(made["gpus"], int)
    assert (made["min_replicas"], made["max_replicas"], made["target_ongoing_requests"]) == (1, 4, 2.0)
    assert (made["upscale_delay"], made["downscale_delay"], made["look_back"]) == (5.0, 15.0, 15.0)
    assert made["env"] == {"GPUPOOL_DEMO_WORK_MS": "1000"} and made["max_ongoing_requests"] == 5


def test_replicas_holding_gpus_are_counted_placed_or_draining() -> None:
    client = FakeClient([FakeDeployment("http://127.0.0.1:9/d", placed=3, draining=1, ready=2)])
    with serve_runs.gpupool_deployment(client, ServeLoad()) as (_, replicas):
        assert replicas() == 4


def test_a_refused_deploy_is_a_one_line_run_error() -> None:
    body = ErrorBody(code="not-implemented", message="model deployments need a runner\n(see docs)")
    client = FakeClient([], refuse=ApiError(501, body))
    with pytest.raises(serve_runs.RunError) as caught, serve_runs.gpupool_deployment(client, ServeLoad()):
        pass
    assert str(caught.value) == (
        "gpupool refused the deployment: model deployments need a runner (see docs) [501 not-implemented]"
    )
    assert client.undeployed == []  # nothing was made


def test_a_deployment_that_fails_while_starting_says_why() -> None:
    client = FakeClient([FakeDeployment(None, 0, state="failed")])
    client.script[0].reason = "replica r0: ModuleNotFoundError"
    deploying = serve_runs.gpupool_deployment(client, ServeLoad())
    with pytest.raises(serve_runs.RunError) as caught, deploying:
        pass
    assert str(caught.value) == "the deployment ended failed: replica r0: ModuleNotFoundError"


def test_a_deployment_that_never_answers_says_what_holds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_runs, "START_TIMEOUT", 0.6)
    client = FakeClient([FakeDeployment(None, 0, state="pending")])
    client.script[0].held = "1 of 4 replicas wait: queue root.serving is at its max"
    with pytest.raises(serve_runs.RunError) as caught, serve_runs.gpupool_deployment(client, ServeLoad()):
        pass
    assert str(caught.value) == (
        "the deployment did not answer within 0.6 s (1 of 4 replicas wait: queue root.serving is at its max)"
    )
    assert client.undeployed == ["bench-serve"]


def test_the_batch_backlog_is_submitted_to_the_batch_queue_and_cancelled_after() -> None:
    client = FakeClient([])
    with serve_runs.batch_backlog(client, jobs=3, seconds=100.5, total_gpus=4) as ids:
        assert ids == ["w1", "w2", "w3"] and client.cancelled == []
    assert client.cancelled == ["w1", "w2", "w3"]
    assert {s["queue"] for s in client.submitted} == {"root.batch"}
    assert client.submitted[0]["entrypoint"] == "sleep 101" and client.submitted[0]["grace"] == 1.0


def test_the_queue_configuration_is_valid_and_caps_the_deployment_at_its_max() -> None:
    from gpupool.configfile import load_config_text

    # By default the deployment's queue is guaranteed what the peak needs (3 replicas).
    text = serve_runs.queues_yaml(ServeLoad(max_replicas=4, gpus=0.5), total_gpus=8)
    serving, batch = load_config_text(text).partitions[0].root.queues
    assert (serving.name, serving.guaranteed, serving.max) == ("serving", {"gpu": 1500}, {"gpu": 2000})
    assert (batch.name, batch.guaranteed, batch.max) == ("batch", None, {"gpu": 8000})
    text = serve_runs.queues_yaml(ServeLoad(max_replicas=4, serving_guarantee=1), total_gpus=8)
    serving, _ = load_config_text(text).partitions[0].root.queues
    assert (serving.guaranteed, serving.max) == ({"gpu": 1000}, {"gpu": 4000})
