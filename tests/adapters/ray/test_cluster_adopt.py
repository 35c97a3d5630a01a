"""A second ``LocalRayCluster.start`` on the data dir of a running cluster adopts it: same GCS
address, same processes, no second cluster (what a restarted ``gpupool up`` does after a crash;
``tests/reliability`` does it across a real ``kill -9``)."""

from __future__ import annotations

import atexit

from conftest import SPEC

from gpupool.adapters.ray import procs
from gpupool.adapters.ray.cluster import LocalRayCluster


def test_a_second_start_on_the_data_dir_adopts_the_running_cluster(cluster: LocalRayCluster):
    before = procs.read_record(cluster.record_path)
    assert before is not None and before["address"] == cluster.address
    assert procs.alive(before["nodes"]["head"]["pid"], before["nodes"]["head"]["start"])
    assert LocalRayCluster.recorded_spec(cluster.data_dir) == cluster.spec

    again = LocalRayCluster(SPEC, cluster.data_dir)
    try:
        assert again.start() == cluster.address
    finally:
        atexit.unregister(again.stop)  # the session's cluster fixture stops it
    assert again.adopted and again.recovery.startswith("adopted the running Ray cluster")
    assert sorted(n.name for n in again.nodes()) == sorted(n.name for n in cluster.nodes())
    after = procs.read_record(cluster.record_path)
    assert after is not None
    assert after["nodes"] == before["nodes"] and after["watchdog"] == before["watchdog"]  # nothing new
    assert after["owner"]["pid"] == before["owner"]["pid"]  # this process, again
