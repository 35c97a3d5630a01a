"""Root of the ``gpupool`` command: one typer app, a sub-app per command group."""

from __future__ import annotations

import typer

from gpupool.cli import bench_api as _bench_api  # noqa: F401  (registers `bench api`)
from gpupool.cli import bench_throughput as _bench_throughput  # noqa: F401  (registers `bench throughput`)
from gpupool.cli.bench_cmd import bench_app
from gpupool.cli.config_cmd import config_app
from gpupool.cli.deploy_cmd import deploy_app, deployment_app
from gpupool.cli.notebook_cmd import notebook_app, notebooks_app
from gpupool.cli.scenario_cmd import scenario_app
from gpupool.cli.service_cmd import service_app, token_app
from gpupool.cli.sim_cmd import sim_app

app = typer.Typer(
    name="gpupool",
    help="Elastic, multi-tenant GPU management for Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(config_app, name="config")
app.add_typer(scenario_app, name="scenario")
app.add_typer(bench_app, name="bench")
app.add_typer(sim_app, name="sim")
app.add_typer(service_app)  # up, submit, status, list, logs, cancel, why, queues, nodes
app.add_typer(token_app, name="token")
app.add_typer(deploy_app)  # deploy, deployments, undeploy
app.add_typer(deployment_app, name="deployment")  # deployment status
app.add_typer(notebooks_app)  # notebooks
app.add_typer(notebook_app, name="notebook")  # notebook start, open, status, stop, resume


def main() -> None:
    app()


if __name__ == "__main__":
    main()
