"""Fuzzed Ray custom resources through the real kube-apiserver, with the operator running (issue 12).

A few thousand RayCluster, RayJob and RayService objects drawn by hypothesis (used here as a seeded
generator: shaped as the types declare, malformed, and valid samples with fields changed to edge
values) are created on the plane. Each must end one of two ways a user can see: refused at admission
(the CRD schema), or taken up by the operator, which either reports a validation failure (a Warning
event ``Invalid*`` and, for a RayJob, ``ValidationFailed``) or reconciles it (a status). Whether the
operator reports a validation failure must agree with api/v1's validators. The operator must not crash
and count no reconcile panic.

    FUZZ_EXAMPLES=3000 FUZZ_SEED=0 pytest test/integration/test_fuzz_apiserver.py -s
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import time
from collections import Counter
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
from internal.client.resources import EVENTS, RAYCLUSTERS, RAYJOBS, RAYSERVICES, Resource

pytestmark = pytest.mark.t2

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3000"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))
TAKE_UP_DEADLINE = 180.0
KINDS: dict[type[View], tuple[str, Resource, Any]] = {
    RayCluster: ("RayCluster", RAYCLUSTERS, validate_ray_cluster),
    RayJob: ("RayJob", RAYJOBS, validate_ray_job),
    RayService: ("RayService", RAYSERVICES, validate_ray_service),
}
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
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
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


async def _fuzz(control_plane: Any, kclient: Client, namespace: str, stack: contextlib.AsyncExitStack) -> None:
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

        # Every accepted object taken up: an Invalid* Warning event, or a status; none left untouched.
        pending = {k for k, (_, stored, _) in accepted.items() if not foreign(stored)}
        invalid_seen: set[tuple[str, str]] = set()

        async def taken_up() -> bool:
            events = (await kclient.list(EVENTS, namespace))["items"]
            for e in events:
                ref = e.get("regarding") or {}
                if e.get("type") == "Warning" and str(e.get("reason", "")).startswith("Invalid"):
                    invalid_seen.add((ref.get("kind", ""), ref.get("name", "")))
            statuses = set()
            for kind, res in (("RayCluster", RAYCLUSTERS), ("RayJob", RAYJOBS), ("RayService", RAYSERVICES)):
                for o in (await kclient.list(res, namespace))["items"]:
                    if o.get("status"):
                        statuses.add((kind, o["metadata"]["name"]))
            pending.difference_update(invalid_seen | statuses)
            return not pending

        deadline = time.monotonic() + TAKE_UP_DEADLINE
        while not await taken_up() and time.monotonic() < deadline:
            await asyncio.sleep(1.0)  # polling interval
        handled = time.monotonic()
        untouched = [f"{k}: {accepted[k][1].get('spec')!r:.300}" for k in sorted(pending)]
        assert not untouched, f"{len(untouched)} accepted objects never taken up: {untouched[:5]}"

        disagree = []
        for key, (_cls, stored, why) in sorted(accepted.items()):
            if foreign(stored):
                continue
            reported = key in invalid_seen
            if reported != (why is not None):
                disagree.append(f"{key}: operator reported invalid={reported}, api/v1 says {why!r}")
        panics = sum(
            s.value for m in rt.controller_metrics.panics.collect() for s in m.samples if s.name.endswith("_total")
        )
        kinds = Counter(k for k, _ in accepted)
        print(
            f"\nfuzz seed={SEED}: {len(drawn)} objects; refused at admission {sum(refused.values())} {dict(refused)};"
            f" accepted {len(accepted)} {dict(kinds)}, of which reported invalid {len(invalid_seen)};"
            f" created in {created - started:.0f} s, all taken up {handled - created:.0f} s later;"
            f" reconcile panics {panics:.0f}"
        )
        assert not disagree, disagree[:10]
        assert panics == 0

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

        deadline = time.monotonic() + 180
        while (remaining := await left()) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)  # polling interval
        assert not remaining, f"{len(remaining)} fuzzed objects not deleted in 180 s: {remaining[:8]}"
