"""Ray Serve runtime on localhost: same answers as in-process; a killed replica loses nothing.

Slow (Ray starts a controller, an HTTP proxy and one process per replica: about a minute on 2
cores); run with ``pytest -m slow tests/serving``.
"""

from __future__ import annotations

import pytest
import torch

from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request

pytestmark = pytest.mark.slow

PLACEMENT = {"embed_rgb": ["sat-A"], "encoder_0_1": ["sat-A", "sat-B"],
             "encoder_1_2": ["gs-X"], "head_landcover": ["gs-X"], "head_coarse": ["gs-X"],
             "head_retrieval": ["gs-X"]}


@pytest.fixture(scope="module")
def ray_runtime(catalog):
    pytest.importorskip("ray.serve")
    from research.serving.ray_runtime import RayServeRuntime

    rt = RayServeRuntime(catalog, PLACEMENT, port=8765).start()
    yield rt
    rt.shutdown()


def test_ray_answers_equal_in_process(ray_runtime, catalog, images):
    local = InProcessRuntime(catalog, PLACEMENT)
    tasks = ("landcover", "coarse", "retrieval")
    req = Request("eq0", tasks, "sat-A", payload=images)
    got = ray_runtime.post(req)
    ref = local.handle(req)
    assert got.ok, got.error
    for t in tasks:
        torch.testing.assert_close(got.outputs[t], ref.outputs[t], rtol=1e-5, atol=1e-5)
    assert got.served_by[0] == "embed_rgb@sat-A"
    bad = ray_runtime.post(Request("bad", ("nope",), "sat-A", payload=images))
    assert not bad.ok and "unknown task" in bad.error


def test_ray_replica_killed_mid_workload(ray_runtime, images):
    reqs = [Request(f"k{i}", ("landcover",), "sat-A", payload=images[i % 6:i % 6 + 1])
            for i in range(8)]
    answers = {}
    for i, r in enumerate(reqs):
        if i == 3:
            ray_runtime.kill("encoder_0_1", "sat-A")
        resp = ray_runtime.handle(r)
        if not resp.ok:  # the client retries once; the router deduplicates
            resp = ray_runtime.handle(r)
        answers.setdefault(r.request_id, []).append(resp)
    assert all(len(v) == 1 and v[0].ok for v in answers.values()), answers
    again = ray_runtime.handle(reqs[0])  # a retry of an answered request: same answer
    torch.testing.assert_close(again.outputs["landcover"], answers["k0"][0].outputs["landcover"])
    counts = ray_runtime.answer_counts()
    assert {r.request_id: counts.get(r.request_id) for r in reqs} == {r.request_id: 1
                                                                       for r in reqs}
