"""Fuzzed Ray custom resources through the real kube-apiserver, with the operator running (issue 12).

A few thousand RayCluster, RayJob and RayService objects drawn by hypothesis (used here as a seeded
generator: shaped as the types declare, malformed, and valid samples with fields changed to edge
values) are created on the plane. Each must end one of two ways a user can see: refused at admission
(the CRD schema), or taken up by the operator, which either reports a validation failure (a Warning
event ``Invalid*`` and, for a RayJob, ``ValidationFailed``) or reconciles it (a status, or, when
kube-apiserver refuses an object built from a valid spec, a ``FailedToCreate*`` Warning saying why).
Whether the operator reports a validation failure must agree with api/v1's validators. The operator
must not crash and count no reconcile panic; every object can be deleted afterwards. The draw is the
same for the same seed within a process; a failure writes its objects to test-artifacts.

    FUZZ_EXAMPLES=3000 FUZZ_SEED=0 pytest test/integration/test_fuzz_apiserver.py -s
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kuberay_operator.main import controller_setups
from support.fake_dashboard import FakeDashboard
from support.operator import running_operator
from support.spec_strategies import BASES, mutate, shaped

from api.v1 import (
    RayCluster,
    RayJob,
    RayService,
    ValidationError,
    View,
    apply_crd_defaults,
    validate_ray_cluster,
    validate_ray_job,
    validate_ray_service,
)
from controllers.ray.utils.dashboard import DashboardClientFactory, Loopback
from internal.client import ApiError, Client
from internal.client.resources import EVENTS, PODS, RAYCLUSTERS, RAYJOBS, RAYSERVICES, Resource

pytestmark = pytest.mark.t2

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3000"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))
TAKE_UP_DEADLINE = 180.0
DELETE_DEADLINE = 300.0 + 90.0  # the GCS fault-tolerance deletion timeout, and time to act on it
KINDS: dict[type[View], tuple[str, Resource, Any]] = {
    RayCluster: ("RayCluster", RAYCLUSTERS, validate_ray_cluster),
    RayJob: ("RayJob", RAYJOBS, validate_ray_job),
    RayService: ("RayService", RAYSERVICES, validate_ray_service),
}
REPO = Path(__file__).resolve().parents[2]
KIND_RES = {kind: r for kind, r, _ in KINDS.values()}
# Replica counts above this are lowered to it: the fuzz is about values the operator must survive, not
# about creating millions of pods on the plane (a valid spec asking for them would get them).
MAX_PODS_PER_GROUP = 3
_COUNTS = ("replicas", "minReplicas", "maxReplicas", "numOfHosts")


def draw_objects(n: int, fuzz_seed: int) -> list[tuple[type[View], dict[str, Any]]]:
    """``n`` objects, the same ones for the same seed: a third each shaped, malformed and mutated."""
    out: list[tuple[type[View], dict[str, Any]]] = []

    @seed(fuzz_seed)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        cls = data.draw(st.sampled_from(list(KINDS)))
        style = data.draw(st.sampled_from(["shaped", "malformed", "mutated"]))
        if style == "mutated":
            raw = copy.deepcopy(BASES[cls])
            junk = data.draw(st.booleans())
            for _ in range(data.draw(st.integers(1, 4))):
                mutate(data, cls, raw, junk)
        else:
            raw = data.draw(shaped(cls, malformed=style == "malformed"))
        out.append((cls, raw))

    collect()
    return out[:n]


def as_object(cls: type[View], raw: dict[str, Any], name: str, ns: str) -> dict[str, Any]:
    """The drawn object as a create request: our name and namespace, the drawn labels and annotations
    (the apiserver judges them), no status, replica counts capped."""
    kind = KINDS[cls][0]
    meta: dict[str, Any] = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
    metadata: dict[str, Any] = {"name": name, "namespace": ns}
    for key in ("labels", "annotations"):
        if key in meta:
            metadata[key] = meta[key]
    obj = {k: v for k, v in raw.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    _cap(obj)
    return {"apiVersion": "ray.io/v1", "kind": kind, "metadata": metadata, **obj}


def _cap(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in _COUNTS and isinstance(v, int) and not isinstance(v, bool) and v > MAX_PODS_PER_GROUP:
                value[k] = MAX_PODS_PER_GROUP
            else:
                _cap(v)
    elif isinstance(value, list):
        for v in value:
            _cap(v)


def verdict(cls: type[View], stored: dict[str, Any]) -> str | None:
    """api/v1's validation of the object as stored: the message, or None when valid."""
    try:
        KINDS[cls][2](apply_crd_defaults(cls(stored)))
    except ValidationError as e:
        return str(e)
    return None


def foreign(stored: dict[str, Any]) -> bool:
    """Managed by another controller (spec.managedBy): the operator leaves it alone, by design."""
    managed_by = (stored.get("spec") or {}).get("managedBy")
    return bool(managed_by) and managed_by != "ray.io/kuberay-operator"


@pytest.mark.timeout(1200)
async def test_fuzzed_specs_are_refused_or_reported_and_never_crash_the_operator(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    # T2: pods of the valid ones run (kwok), Jobs complete (e.g. the GCS fault-tolerance Redis cleanup
    # a deleted cluster waits for), so the fuzzed specs travel every phase up to deletion.
    async with contextlib.AsyncExitStack() as stack:
        await _fuzz(sim_cluster, kclient, namespace, stack)


class Panics(logging.Handler):
    """The reconcile panics the controllers log (outcome "panic", with the object and traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "outcome", None) == "panic":
            where = getattr(record, "name", "")
            what = {k: v for k, v in record.__dict__.items() if k in ("controller", "namespace", "name", "error")}
            tb = "".join(traceback.format_exception(*record.exc_info))[-1500:] if record.exc_info else ""
            self.seen.append(f"{where} {what}\n{tb}")


async def _fuzz(control_plane: Any, kclient: Client, namespace: str, stack: contextlib.AsyncExitStack) -> None:
    panics_log = Panics()
    logging.getLogger("kuberay.controller").addHandler(panics_log)
    stack.callback(logging.getLogger("kuberay.controller").removeHandler, panics_log)
    drawn = draw_objects(EXAMPLES, SEED)
    started = time.monotonic()
    # Ray heads on loopback (a fake each, as Ray answers), for the RayJobs that reach their dashboard.
    fake = await stack.enter_async_context(FakeDashboard())
    heads = DashboardClientFactory(Loopback(lambda cluster: fake.cluster(cluster["metadata"]["name"]).base_url))
    stack.push_async_callback(heads.close)
    async with running_operator(control_plane, controller_setups(heads), concurrency=4) as rt:
        accepted: dict[tuple[str, str], tuple[type[View], dict[str, Any], str | None]] = {}
        refused: Counter[str] = Counter()
        sem = asyncio.Semaphore(16)

        async def create(i: int, cls: type[View], raw: dict[str, Any]) -> None:
            kind, res, _ = KINDS[cls]
            obj = as_object(cls, raw, f"fz-{kind.lower()}-{i}", namespace)
            async with sem:
                try:
                    stored = await kclient.create(res, obj, namespace)
                except ApiError as e:
                    assert e.status in (400, 422), f"{kind} fz-{i}: {e.status} {e}"
                    refused[f"{kind} {e.status}"] += 1
                    return
            accepted[(kind, stored["metadata"]["name"])] = (cls, stored, verdict(cls, stored))

        async with asyncio.TaskGroup() as tg:
            for i, (cls, raw) in enumerate(drawn):
                tg.create_task(create(i, cls, raw))
        created = time.monotonic()

        # Every accepted object taken up as api/v1's validators say it should be: an invalid one with an
        # Invalid* Warning event (written in the background, after its status), a valid one with a status.
        pending = {k for k, (_, stored, _) in accepted.items() if not foreign(stored)}
        invalid_seen: set[tuple[str, str]] = set()
        failed_seen: set[tuple[str, str]] = set()  # a valid spec whose objects kube-apiserver refused

        async def taken_up() -> bool:
            events = (await kclient.list(EVENTS, namespace))["items"]
            for e in events:
                ref = e.get("regarding") or {}
                key = (ref.get("kind", ""), ref.get("name", ""))
                if e.get("type") == "Warning" and str(e.get("reason", "")).startswith("Invalid"):
                    invalid_seen.add(key)
                elif e.get("type") == "Warning" and str(e.get("reason", "")).startswith("FailedToCreate"):
                    failed_seen.add(key)
            statuses = set()
            for kind, res in (("RayCluster", RAYCLUSTERS), ("RayJob", RAYJOBS), ("RayService", RAYSERVICES)):
                for o in (await kclient.list(res, namespace))["items"]:
                    if o.get("status"):
                        statuses.add((kind, o["metadata"]["name"]))
            for key in list(pending):
                invalid = accepted[key][2] is not None
                # A valid spec may still make objects kube-apiserver refuses (e.g. headServiceAnnotations
                # with keys no annotation may have): upstream then writes no status, a Warning says why.
                if (invalid and key in invalid_seen) or (not invalid and (key in statuses or key in failed_seen)):
                    pending.discard(key)
            return not pending

        deadline = time.monotonic() + TAKE_UP_DEADLINE
        while not await taken_up() and time.monotonic() < deadline:
            await asyncio.sleep(1.0)  # polling interval
        handled = time.monotonic()
        disagree = []
        for key in sorted(pending):
            _cls, stored, why = accepted[key]
            now = await kclient.get(KIND_RES[key[0]], key[1], namespace)
            disagree.append(
                f"{key}: api/v1 says {why!r}, operator: Invalid event {key in invalid_seen},"
                f" status {now.get('status')!r:.300}; spec {json.dumps(stored.get('spec'))}"
            )
        # And no valid one reported invalid.
        disagree += [f"{k}: valid, yet an Invalid event" for k in invalid_seen if k in accepted and not accepted[k][2]]
        panics = sum(
            s.value for m in rt.controller_metrics.panics.collect() for s in m.samples if s.name.endswith("_total")
        )
        kinds = Counter(k for k, _ in accepted)
        dropped = {
            s.labels.get("reason"): s.value
            for m in rt.registry.collect()
            if m.name == "event_recorder_dropped_events"
            for s in m.samples
            if s.name.endswith("_total") and s.value
        }
        print(
            f"\nfuzz seed={SEED}: {len(drawn)} objects; refused at admission {sum(refused.values())} {dict(refused)};"
            f" accepted {len(accepted)} {dict(kinds)}, of which reported invalid {len(invalid_seen)};"
            f" created in {created - started:.0f} s, all taken up {handled - created:.0f} s later;"
            f" valid but refused objects (FailedToCreate*) {len(failed_seen)}; reconcile panics {panics:.0f};"
            f" events dropped {dropped or 0}"
        )
        if disagree or panics:
            out = REPO / "test-artifacts" / f"fuzz-seed-{SEED}.txt"
            out.parent.mkdir(exist_ok=True)
            out.write_text("\n\n".join(panics_log.seen + disagree) + "\n")
            print(f"details in {out}")
        assert panics == 0, panics_log.seen[:3]
        assert not disagree, disagree[:10]

        # Deleting them all works too (finalizers removed by the operator).
        for res in (RAYSERVICES, RAYJOBS, RAYCLUSTERS):
            await kclient.delete_collection(res, namespace, label_selector="")  # all of them

        async def left() -> list[str]:
            out = []
            for r in (RAYSERVICES, RAYJOBS, RAYCLUSTERS):
                for o in (await kclient.list(r, namespace))["items"]:
                    st = o.get("status") or {}
                    why = st.get("jobDeploymentStatus") or st.get("state") or st.get("conditions", [{}])[-1:]
                    out.append(f"{r.kind}/{o['metadata']['name']} {o['metadata'].get('finalizers')} {why}")
            return out

        # A GCS fault-tolerant cluster waits for its Redis cleanup Job, which a fuzzed head template can
        # keep from being created or from running: the operator then gives up after
        # ray.io/gcs-ft-deletion-timeout (300 s by default) with a ForceDeletedStuckCluster Warning.
        deadline = time.monotonic() + DELETE_DEADLINE
        while (remaining := await left()) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)  # polling interval
        if remaining:
            pods = (await kclient.list(PODS, namespace))["items"]
            events = (await kclient.list(EVENTS, namespace))["items"]
            details = []
            for line in remaining:
                kind, name = line.split(" ", 1)[0].split("/")
                key = (kind, name)
                mine = [
                    {k: p["metadata"].get(k) for k in ("name", "deletionTimestamp", "finalizers")}
                    | {"phase": (p.get("status") or {}).get("phase"), "node": p["spec"].get("nodeName")}
                    for p in pods
                    if (p["metadata"].get("labels") or {}).get("ray.io/cluster") == name
                ]
                notes = [f"{e['reason']}: {e.get('note', '')[:300]}" for e in events if e["regarding"]["name"] == name]
                stored_json = json.dumps(accepted[key][1]) if key in accepted else "?"
                details.append(f"{line}\npods {mine}\nevents {notes}\nstored {stored_json}")
            out = REPO / "test-artifacts" / f"fuzz-seed-{SEED}-undeleted.txt"
            out.parent.mkdir(exist_ok=True)
            out.write_text("\n\n".join(details) + "\n")
            print(f"details in {out}")
        assert not remaining, f"{len(remaining)} fuzzed objects not deleted in {DELETE_DEADLINE:.0f} s: {remaining[:8]}"
        events = (await kclient.list(EVENTS, namespace))["items"]
        forced = [e for e in events if e["reason"] == "ForceDeletedStuckCluster"]
        print(f"all deleted {time.monotonic() - handled:.0f} s later; force-deleted stuck clusters: {len(forced)}")
