"""Ray Serve runtime on localhost: same answers as in-process; 20 replicas killed while they are
inside a request lose nothing and run nothing twice.

Slow (Ray starts a controller, an HTTP proxy and one process per replica, and Serve restarts
every killed replica: a few minutes on 2 cores); run with ``pytest -m slow tests/serving``.
"""

from __future__ import annotations

import threading

import pytest
import torch

from research.serving.live import exactly_once, kill_schedule, live_requests, run_load
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request

pytestmark = pytest.mark.slow

PLACEMENT = {"embed_rgb": ["sat-A"], "encoder_0_1": ["sat-A", "sat-B"],
             "encoder_1_2": ["gs-X", "gs-Y"], "head_landcover": ["gs-X"], "head_coarse": ["gs-X"],
             "head_retrieval": ["gs-X"]}
KILLS = 20


@pytest.fixture(scope="module")
def ray_runtime(catalog):
    pytest.importorskip("ray.serve")
    from research.serving.ray_runtime import RayServeRuntime

    rt = RayServeRuntime(catalog, PLACEMENT, port=8765, modalities=["rgb"]).start()
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


def test_ray_no_lost_or_duplicated_request_across_20_kills_under_load(ray_runtime, catalog,
                                                                      images):
    """4 clients send requests (each once: no client retry) while 20 replica processes are
    SIGKILLed, each while a request is inside it (it has computed, not yet answered). Every
    request is answered once, with the right answer, and every service of every request ran to
    completion exactly once (the replicas' own records); each killed request was begun on the
    killed replica and completed once elsewhere (or on its restart)."""
    chain = {"embed_rgb", "encoder_0_1", "encoder_1_2", "head_landcover"}
    targets = kill_schedule(PLACEMENT, ray_runtime.services, KILLS)
    assert {t.rsplit("@", 1)[0] for t in targets} == {"encoder_0_1", "encoder_1_2"}
    stop, kills = threading.Event(), []

    def killer() -> None:
        try:
            for key in targets:
                k = ray_runtime.kill_during_request(key, timeout_s=600)  # restarts are slow on a busy machine
                if k is None:
                    return
                kills.append(k)
        finally:
            stop.set()  # the clients stop sending; requests in flight still finish

    answers: dict[str, list] = {}
    lock = threading.Lock()

    def send(req: Request):
        resp = ray_runtime.post(req)
        with lock:
            answers.setdefault(req.request_id, []).append(resp)
        return resp

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = run_load(send, live_requests(images, tasks=("landcover",), sources=["sat-A"],
                                          tiles=1, n=20_000, prefix="kill"),
                      clients=4, duration_s=900, stop=stop, progress=False)
    thread.join(timeout=60)

    assert len(kills) == KILLS, f"only {len(kills)} kills landed inside a request"
    assert len({k["pid"] for k in kills}) == KILLS  # a new process each time
    rows = {r["request_id"]: r for r in result.rows}
    assert len(rows) == len(result.rows) > KILLS
    lost = [r for r in result.rows if not r["ok"]]
    assert not lost, f"{len(lost)} requests lost, e.g. {lost[:3]}"
    assert all(r["attempts"] == 1 for r in result.rows)  # the router failed over, not the client
    assert set(answers) == set(rows) and all(len(a) == 1 for a in answers.values())
    ref = InProcessRuntime(catalog).handle(Request("ref", ("landcover",), "x", payload=images))
    for rid, (resp,) in answers.items():
        i = int(rid.rsplit("-", 1)[1]) % len(images)
        torch.testing.assert_close(resp.outputs["landcover"], ref.outputs["landcover"][i:i + 1],
                                   rtol=1e-5, atol=1e-5)

    execs = ray_runtime.executions()
    checks = exactly_once({rid: chain for rid in rows}, execs["completed"])
    assert checks == {"not_executed": [], "executed_twice": [], "unexpected": []}, checks
    runs = ray_runtime.answer_counts()
    assert {rid: runs.get(rid) for rid in rows} == dict.fromkeys(rows, 1)
    for k in kills:
        rid, service = k["request_id"], k["replica"].rsplit("@", 1)[0]
        assert rid in rows, k
        begun = execs["begun"][rid][service]
        assert k["replica"] in begun and len(begun) >= 2, (k, begun)
        assert len(execs["completed"][rid][service]) == 1, (k, execs["completed"][rid])
    stats = ray_runtime.router_stats()
    assert stats["failovers"] + stats["hedges"] >= KILLS
    recovered = sum(len(v) for by in execs["recovered"].values() for v in by.values())
    print(f"{len(rows)} requests, {KILLS} kills, {stats['failovers']} calls failed over, "
          f"{stats['hedges']} stuck calls sent again, {recovered} committed results handed "
          f"back, {result.wall_s:.0f} s")

    # a client retrying answered requests gets the same answers and runs nothing again
    again = list(rows)[:5]
    for rid in again:
        i = int(rid.rsplit("-", 1)[1]) % len(images)
        resp = ray_runtime.post(Request(rid, ("landcover",), "sat-A", payload=images[i:i + 1]))
        torch.testing.assert_close(resp.outputs["landcover"], answers[rid][0].outputs["landcover"])
    after = ray_runtime.executions()["completed"]
    assert {rid: after[rid] for rid in again} == {rid: execs["completed"][rid] for rid in again}
    assert all(ray_runtime.answer_counts()[rid] == 1 for rid in again)
