"""The bounded live run without Ray: concurrent load, exactly-once checks, the Ray router's failover
logic on fake replicas that die inside a call, and ``satedge serve --runtime``."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
import torch

from research.paths import REPO_ROOT
from research.serving.cli import main
from research.serving.live import (
    exactly_once,
    kill_schedule,
    live_requests,
    run_load,
    summarise_load,
)
from research.serving.ray_runtime import ExecutionLedger
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Limits, Request, Response

QUICK = str(REPO_ROOT / "experiments" / "serving" / "quick.yaml")


def test_concurrent_load_on_in_process_runtime_with_a_dying_replica(catalog, images):
    placement = {"encoder_0_1": ["sat-A", "sat-B"], "head_landcover": ["gs-X", "gs-Y"]}
    rt = InProcessRuntime(catalog, placement)
    rt.fail_after("encoder_0_1", "sat-A", 3)
    tasks = ("landcover", "coarse")
    reqs = live_requests(images, tasks=tasks, sources=["sat-A", "sat-B"], tiles=2, n=24)
    result = run_load(rt.handle, reqs, clients=3, progress=False)
    chain = {s for t in tasks for s in catalog.chain(t)}
    checks = exactly_once({r["request_id"]: chain for r in result.rows}, rt.executions())
    assert checks == {"not_executed": [], "executed_twice": [], "unexpected": []}
    s = summarise_load(result, checks, rt.answer_count)
    assert (s["sent"], s["answered"], s["lost"], s["duplicated"]) == (24, 24, 0, 0)
    assert 0 < s["p50_latency_s"] <= s["p95_latency_s"] <= s["max_latency_s"]
    assert s["throughput_rps"] > 0 and s["stopped_by"] == "requests"
    assert not rt._replica("encoder_0_1", "sat-A").alive
    assert 3 <= len(rt._replica("encoder_0_1", "sat-A").executed) < 24
    assert {r["served_by"].split()[0] for r in result.rows} == {"embed_rgb@local"}


def test_exactly_once_names_what_is_wrong():
    chains = {"a": {"emb", "head"}, "b": {"emb", "head"}, "c": {"emb"}, "d": {"emb"}}
    completed = {"a": {"emb": ["emb@1"], "head": ["head@1"]},
                 "b": {"emb": ["emb@1", "emb@2"], "head": ["head@1"]},
                 "c": {"emb": ["emb@1"], "head": ["head@1"]}}
    assert exactly_once(chains, completed) == {"not_executed": ["d"], "executed_twice": ["b"],
                                               "unexpected": ["c"]}


def _ok(req: Request) -> Response:
    return Response(req.request_id, req.tasks)


def test_run_load_is_bounded_and_counts_losses(images):
    def slow(req):
        time.sleep(0.01)
        return _ok(req)

    res = run_load(slow, live_requests(images, tasks=("landcover",), sources=["s"], tiles=1),
                   clients=2, duration_s=0.3, progress=False)
    assert res.stopped_by == "duration" and 4 < len(res.rows) < 200
    stop = threading.Event()
    stop.set()
    res = run_load(slow, live_requests(images, tasks=("landcover",), sources=["s"], n=5),
                   stop=stop, progress=False)
    assert res.rows == [] and res.stopped_by == "stop"

    seen: dict[str, int] = {}

    def flaky(req):
        seen[req.request_id] = seen.get(req.request_id, 0) + 1
        if req.request_id == "live-3" and seen["live-3"] == 1:
            raise ConnectionError("replica gone")
        if req.request_id == "live-5":
            return Response(req.request_id, req.tasks, error="no live replica")
        return _ok(req)

    res = run_load(flaky, live_requests(images, tasks=("landcover",), sources=["s"], n=8),
                   clients=1, progress=False)
    s = summarise_load(res, router_runs={"live-0": 1, "live-1": 2})
    assert (s["sent"], s["answered"], s["lost"], s["duplicated"]) == (8, 6, 2, 1)
    assert "ConnectionError" in {r["request_id"]: r for r in res.rows}["live-3"]["error"]
    seen.clear()
    res = run_load(flaky, live_requests(images, tasks=("landcover",), sources=["s"], n=8),
                   clients=1, retries=1, progress=False)
    s = summarise_load(res)
    assert (s["answered"], s["lost"], s["retried"]) == (7, 1, 2)


def test_kill_schedule_and_live_requests_in_a_modality(images):
    placement = {"a": ["n1"], "b": ["n1", "n2"], "c": ["n3", "n4", "n5"]}
    assert kill_schedule(placement, ["a", "b", "c"], 6) == ["b@n1", "c@n3", "b@n2", "c@n4",
                                                             "c@n5", "b@n1"]
    assert kill_schedule({"a": ["n1"]}, ["a"], 2) == ["a@n1", "a@n1"]
    reqs = list(live_requests(images, tasks=["landcover"], sources=["s"], tiles=2, n=2,
                              modality="ms13"))
    ms = reqs[1].payload
    assert ms.shape == (2, 13, 64, 64) and ms.dtype == torch.uint8
    assert torch.equal(ms[:, [3, 2, 1]], images[2:4])


def test_execution_ledger_commits_once_and_holds_one_armed_call():
    dead: set[int] = set()
    led = ExecutionLedger(alive=lambda pid: pid not in dead)

    async def go():
        assert await led.begin("enc@A", "r0", 11) == ("run", 0.0, None)
        led.arm("enc@A", 30.0)
        assert led.held_call("enc@A") is None
        assert await led.begin("enc@A", "r1", 11) == ("run", 30.0, None)
        assert await led.begin("enc@A", "r2", 11) == ("run", 0.0, None)
        assert led.held_call("enc@A") == ("r1", 11) and led.held_call("enc@A") is None
        # r0 runs in live process 11: a copy sent to B waits for its commit, then gets its result
        copy = asyncio.ensure_future(led.begin("enc@B", "r0", 12))
        await asyncio.sleep(0.1)
        assert not copy.done()
        led.commit("enc@A", "r0", "out0")
        assert await copy == ("recovered", 0.0, "out0")
        led.release("r0", "enc")
        assert await led.begin("enc@C", "r0", 13) == ("done", 0.0, None)  # late copy: nothing
        # r1's claimant (process 11) dies before committing: a copy runs it again
        dead.add(11)
        assert await led.begin("enc@B", "r1", 12) == ("run", 0.0, None)
        led.commit("enc@B", "r1", "out1")

    asyncio.run(go())
    snap = led.snapshot()
    assert snap["begun"]["r1"] == {"enc": ["enc@A", "enc@B"]} and snap["pending"] == 1
    assert snap["completed"] == {"r0": {"enc": ["enc@A"]}, "r1": {"enc": ["enc@B"]}}
    assert snap["recovered"] == {"r0": {"enc": ["enc@B"]}}


# ---------------------------------------------------------------- the Ray router, without Ray
class _Now:
    """An awaitable that is already done (an actor call answered at once)."""

    def __init__(self, value):
        self.value = value

    def __await__(self):
        return self.value
        yield  # noqa: B901 - makes __await__ a generator


class _Killed(BaseException):
    """The process of a fake replica dies here."""


class _Ledger:
    """The ledger as an actor handle (``ledger.method.remote(...)``); the next commit of a key in
    ``die_after_commit`` kills that replica right after committing (before it answers)."""

    def __init__(self):
        self.dead: set[int] = set()
        self.obj = ExecutionLedger(alive=lambda pid: pid not in self.dead)
        self.die_after_commit: set[str] = set()

    def __getattr__(self, name):
        def remote(*args):
            method = getattr(self.obj, name)
            if asyncio.iscoroutinefunction(method):
                return method(*args)
            out = method(*args)
            if name == "commit" and args[0] in self.die_after_commit:
                self.die_after_commit.discard(args[0])
                raise _Killed
            return _Now(out)

        return type("M", (), {"remote": staticmethod(remote)})()


_PIDS = itertools.count(1000)


class _Deployment:
    """A one-replica deployment handle around the real ``_ServiceReplica`` (one fake process).

    A replica paused at the fault hook (armed in the ledger) is killed there. A killed replica
    comes back as a new process after ``down_pings`` pings; meanwhile calls to it, and the call
    it was killed in, raise ``ActorDiedError``, or, with ``hang``, wait silently and run on the
    new process (as Serve may do with calls to a one-replica deployment whose replica died)."""

    def __init__(self, key, module, ledger, down_pings=2, hang=False):
        from research.serving.ray_runtime import _ServiceReplica

        self.key, self.ledger, self.down_pings, self.hang = key, ledger, down_pings, hang
        self.dead = 0
        self.replica = _ServiceReplica(module, key, ledger)
        self.replica.pid = next(_PIDS)
        self.killed: list[tuple[str, str]] = []  # (request id, "before"|"after" commit)
        self.kill_held = True
        self.ping = type("P", (), {"remote": lambda _s: self._ping()})()

    def remote(self, x, rid):
        return self._call(x, rid)

    def _die(self, rid, when):
        from ray.exceptions import ActorDiedError

        self.ledger.dead.add(self.replica.pid)
        self.dead = self.down_pings
        self.killed.append((rid, when))
        return ActorDiedError()

    async def _call(self, x, rid):
        from ray.exceptions import ActorDiedError

        await asyncio.sleep(0)
        while self.dead:
            if not self.hang:
                raise ActorDiedError()
            await asyncio.sleep(0.01)
        task = asyncio.ensure_future(self.replica(x, rid))
        while not task.done():
            await asyncio.sleep(0.001)
            if self.kill_held and self.ledger.obj.held.get(self.key, ("",))[0] == rid:
                self.ledger.obj.held_call(self.key)
                task.cancel()
                err = self._die(rid, "before")
                if not self.hang:
                    raise err
                return await self._call(x, rid)  # no error: the call waits for the restart
        try:
            return task.result()
        except _Killed:
            raise self._die(rid, "after") from None

    async def _ping(self):
        from ray.exceptions import ActorDiedError

        if self.dead:
            self.dead -= 1
            if self.dead == 0:
                self.replica.pid = next(_PIDS)  # restarted: a new process
            raise ActorDiedError()
        return 1


def _router(catalog, placement, ledger, hang=(), attempt_timeout_s=10.0):
    pytest.importorskip("ray")
    from research.serving.ray_runtime import _Router

    deps = {f"{s}@{n}": _Deployment(f"{s}@{n}", catalog.services[s], ledger,
                                    hang=f"{s}@{n}" in hang)
            for s, nodes in placement.items() for n in nodes}
    handles = {s: [(f"{s}@{n}", deps[f"{s}@{n}"]) for n in nodes] for s, nodes in placement.items()}
    meta = {"embedders": catalog.embedders, "heads": catalog.heads, "mean": catalog.mean,
            "std": catalog.std, "prefix": list(catalog.segments)}
    return _Router(handles, meta, Limits(tasks=catalog.tasks), failover_timeout_s=5.0,
                   ledger=ledger, attempt_timeout_s=attempt_timeout_s), deps


def test_router_fails_over_calls_killed_inside_replicas_exactly_once(catalog, images):
    """Replicas killed inside a call, before committing (the call runs again elsewhere) and
    after committing (its result is handed back, not recomputed): every request is answered
    once, right, and every service of every request completed exactly once."""
    placement = {"embed_rgb": ["A"], "encoder_0_1": ["A", "B"], "encoder_1_2": ["X"],
                 "head_landcover": ["X", "Y"]}
    ledger = _Ledger()
    router, deps = _router(catalog, placement, ledger)
    for key in ("encoder_0_1@A", "head_landcover@X"):
        ledger.obj.arm(key, 30.0)
    ledger.die_after_commit.update({"encoder_0_1@B", "encoder_1_2@X"})
    reqs = [Request(f"r{i}", ("landcover",), "A", payload=images[i % 6:i % 6 + 1])
            for i in range(8)]

    async def go():
        first = await asyncio.gather(*(router.handle(r) for r in reqs),
                                     router.handle(reqs[0]))  # a retry while r0 is in flight
        again = await asyncio.gather(*(router.handle(r) for r in reqs))  # retries of answered
        return first, again

    first, again = asyncio.run(go())
    assert all(a["error"] is None for a in first + again), [a["error"] for a in first + again
                                                            if a["error"]]
    assert [a["outputs"] for a in again] == [a["outputs"] for a in first[:8]]
    killed = {(k, rid, when) for k, d in deps.items() for rid, when in d.killed}
    assert {(k, w) for k, _, w in killed} == {("encoder_0_1@A", "before"),
                                              ("head_landcover@X", "before"),
                                              ("encoder_0_1@B", "after"),
                                              ("encoder_1_2@X", "after")}
    chain = {"embed_rgb", "encoder_0_1", "encoder_1_2", "head_landcover"}
    snap = ledger.obj.snapshot()
    checks = exactly_once({r.request_id: chain for r in reqs}, snap["completed"])
    assert checks == {"not_executed": [], "executed_twice": [], "unexpected": []}, checks
    assert router.answer_count() == {r.request_id: 1 for r in reqs}
    for key, rid, when in killed:
        service = key.rsplit("@", 1)[0]
        pids = [e[4] for e in snap["log"] if e[2] == rid and e[1].startswith(service + "@")
                and e[3] == "begin"]
        if when == "before":  # begun in the killed process, run once more in another one
            assert snap["begun"][rid][service][0] == key and len(pids) == len(set(pids)) == 2
            assert len(snap["completed"][rid][service]) == 1
        else:  # completed in the killed replica, handed back by the one failed over to
            assert snap["completed"][rid][service] == [key] and snap["recovered"][rid][service]
    assert snap["pending"] == 0 and router.failovers >= 4
    ref = InProcessRuntime(catalog).handle(Request("ref", ("landcover",), "x", payload=images))
    for i, a in enumerate(first[:8]):
        torch.testing.assert_close(torch.tensor(a["outputs"]["landcover"]),
                                   ref.outputs["landcover"][i % 6:i % 6 + 1], rtol=1e-5, atol=1e-5)


def test_router_waits_for_a_restart_when_every_replica_is_down(catalog, images):
    placement = {"embed_rgb": ["A"], "encoder_0_1": ["A"], "encoder_1_2": ["X"],
                 "head_landcover": ["X"]}
    ledger = _Ledger()
    router, deps = _router(catalog, placement, ledger)
    ledger.obj.arm("encoder_1_2@X", 30.0)
    ans = asyncio.run(router.handle(Request("r0", ("landcover",), "A", payload=images[:1])))
    assert ans["error"] is None and deps["encoder_1_2@X"].killed == [("r0", "before")]
    assert ledger.obj.snapshot()["begun"]["r0"]["encoder_1_2"] == ["encoder_1_2@X"] * 2
    assert ledger.obj.snapshot()["completed"]["r0"]["encoder_1_2"] == ["encoder_1_2@X"]


def test_router_sends_a_stuck_call_again_and_it_runs_once(catalog, images):
    """A call held silently by a dead deployment (no error until the restart) is sent to the
    other replica after ``attempt_timeout_s``; the stuck copy, run later, runs nothing."""
    placement = {"embed_rgb": ["A"], "encoder_0_1": ["A", "B"], "encoder_1_2": ["X"],
                 "head_landcover": ["X"]}
    ledger = _Ledger()
    router, deps = _router(catalog, placement, ledger, hang={"encoder_0_1@A"},
                           attempt_timeout_s=0.2)
    deps["encoder_0_1@A"].down_pings = 4  # restarts after 4 pings (0.2 s apart)
    ledger.obj.arm("encoder_0_1@A", 30.0)
    reqs = [Request(f"r{i}", ("landcover",), "A", payload=images[i:i + 1]) for i in range(6)]

    async def go():
        out = await asyncio.gather(*(router.handle(r) for r in reqs))
        await asyncio.sleep(2.0)  # A restarts; the stuck copies reach it now
        return out

    answers = asyncio.run(go())
    assert all(a["error"] is None for a in answers), [a["error"] for a in answers]
    snap = ledger.obj.snapshot()
    chain = {"embed_rgb", "encoder_0_1", "encoder_1_2", "head_landcover"}
    checks = exactly_once({r.request_id: chain for r in reqs}, snap["completed"])
    assert checks == {"not_executed": [], "executed_twice": [], "unexpected": []}, checks
    assert router.hedges >= 1 and deps["encoder_0_1@A"].killed
    assert any(e[3] == "late" and e[1] == "encoder_0_1@A" for e in snap["log"])


def test_router_resend_of_a_slow_call_waits_for_the_live_copy(catalog, images):
    """The first copy is slow but alive: the copy sent again waits for its commit and hands its
    result back, so the call runs once."""
    placement = {"embed_rgb": ["A"], "encoder_0_1": ["A", "B"], "encoder_1_2": ["X"],
                 "head_landcover": ["X"]}
    ledger = _Ledger()
    router, deps = _router(catalog, placement, ledger, attempt_timeout_s=0.1)
    deps["encoder_0_1@A"].kill_held = False
    ledger.obj.arm("encoder_0_1@A", 0.6)  # paused 0.6 s inside, then commits
    ans = asyncio.run(router.handle(Request("r0", ("landcover",), "A", payload=images[:1])))
    assert ans["error"] is None and router.hedges == 1
    snap = ledger.obj.snapshot()
    assert snap["begun"]["r0"]["encoder_0_1"] == ["encoder_0_1@A"]
    assert snap["completed"]["r0"]["encoder_0_1"] == ["encoder_0_1@A"]  # B's copy ran nothing


# ---------------------------------------------------------------- the CLI
def test_serve_runtime_option(capsys):
    from research.serving.cli import _parser

    assert _parser().parse_args(["--config", QUICK]).runtime == "inprocess"
    args = _parser().parse_args(["--config", QUICK, "--runtime", "ray", "--requests", "50",
                                 "--duration-s", "20", "--kills", "3"])
    assert (args.runtime, args.requests, args.duration_s, args.kills) == ("ray", 50, 20.0, 3)
    with pytest.raises(SystemExit):
        _parser().parse_args(["--config", QUICK, "--runtime", "k8s"])
    assert main(["--config", QUICK, "--runtime", "ray", "--requests", "0"]) == 2
    assert "--requests must be positive" in capsys.readouterr().err


def test_router_refuses_a_bitstream_with_an_error_answer(catalog, images):
    router, _ = _router(catalog, {"embed_rgb": ["A"], "encoder_0_1": ["A"], "encoder_1_2": ["X"],
                                  "head_landcover": ["X"]}, _Ledger())
    req = Request("b", ("landcover",), "A", bitstream=[b"x"], token_shape=catalog.token_shape())
    answer = asyncio.run(router.handle(req))
    assert answer["error"] and "image payloads" in answer["error"]


def test_live_requests_take_each_sources_modality(images):
    reqs = list(live_requests(images, tasks=["landcover"], sources=["a", "b"], tiles=1, n=4,
                              modality=["rgb", "pan"]))
    assert [(r.source, r.modality, r.payload.shape[1]) for r in reqs] == [
        ("a", "rgb", 3), ("b", "pan", 1), ("a", "rgb", 3), ("b", "pan", 1)]
    with pytest.raises(ValueError, match="one modality, or one per source"):
        list(live_requests(images, tasks=["landcover"], sources=["a"], n=1,
                           modality=["rgb", "pan"]))
