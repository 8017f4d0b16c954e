"""The RayJob controller on the simulated cluster, with a fake Ray dashboard on loopback used to script
job lifecycles and inject faults. Every state transition a user sees: New → Initializing → Running →
Complete/Failed, retries, suspend/resume, deadlines, deletion policies, clusterSelector, each
submission mode, and healthy jobs progressing while other heads are black-holed."""

from __future__ import annotations

import calendar
import contextlib
import copy
import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml
from support.fake_dashboard import FakeDashboard
from support.rayjob_operator import operator_with_fake
from support.wait import events_for, eventually, wait_events

from internal import logging as oplog
from internal.client import Client, NotFound
from internal.client.resources import CONFIGMAPS, JOBS, PODS, RAYCLUSTERS, RAYJOBS, SERVICES

pytestmark = pytest.mark.t2

RAYJOB = yaml.safe_load(
    """
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: job
spec:
  entrypoint: python -c "print('hello')"
  submissionMode: HTTPMode
  rayClusterSpec:
    rayVersion: '2.52.0'
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.52.0
            resources: {limits: {cpu: "1", memory: 2Gi}}
    workerGroupSpecs:
    - groupName: w
      replicas: 1
      minReplicas: 0
      maxReplicas: 2
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-worker
            image: rayproject/ray:2.52.0
            resources: {limits: {cpu: "1", memory: 1Gi}}
"""
)


def rayjob(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    j = copy.deepcopy(RAYJOB)
    j["metadata"] = {"name": name, "namespace": ns}
    j["spec"].update(spec)
    return j


async def job_status(c: Client, ns: str, name: str) -> dict[str, Any]:
    return (await c.get(RAYJOBS, name, ns)).get("status") or {}


async def wait_state(c: Client, ns: str, name: str, state: str, timeout: float = 90) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        st = await job_status(c, ns, name)
        return st if st.get("jobDeploymentStatus") == state else None

    return await eventually(reached, timeout, f"RayJob {name} to reach {state}")


@contextlib.contextmanager
def json_log() -> Iterator[io.StringIO]:
    """The operator's JSON log lines while the block runs (the formatter cmd/ installs)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(oplog.JSONFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def log_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


async def test_http_mode_runs_to_complete(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    with json_log() as out:
        await _http_mode_runs_to_complete(sim_cluster, kclient, namespace)
    # Upstream's log keys and its info line on each state change, so log queries written for it work.
    # Only this namespace's: the operator watches all, and an earlier test's RayJob "job" may still be
    # in a namespace being deleted.
    job_ref = {"name": "job", "namespace": namespace}
    changes = [line for line in log_lines(out) if line["msg"] == "updateRayJobStatus" and line["RayJob"] == job_ref]
    assert changes[-1]["new JobDeploymentStatus"] == "Complete"
    last = changes[-1]
    assert last["logger"] == "controllers.RayJob" and last["level"] == "info"
    assert last["RayJob"] == {"name": "job", "namespace": namespace} and last["old JobDeploymentStatus"] == "Running"
    assert last["controller"] == "rayjob" and last["controllerGroup"] == "ray.io"
    assert last["controllerKind"] == "RayJob" and len(last["reconcileID"]) == 36
    states = {line.get("JobDeploymentStatus") for line in log_lines(out) if line["msg"] == "RayJob"}
    assert {"", "Initializing", "Running"} <= states
    [created] = [
        line
        for line in log_lines(out)
        if line["msg"] == "RayCluster not found, creating RayCluster!" and line["RayJob"] == job_ref
    ]
    assert created["RayCluster"]["namespace"] == namespace and created["RayCluster"]["name"].startswith("job-")
    # The RayCluster controller's too: its logger, the cluster under its kind, the pod it created.
    cluster_ref = {"name": created["RayCluster"]["name"], "namespace": namespace}
    mine = [
        line
        for line in log_lines(out)
        if line.get("RayCluster") == cluster_ref and line.get("controller") == "raycluster"
    ]
    head = next(line for line in mine if line["msg"] == "Created head Pod for RayCluster")
    assert head["logger"] == "controllers.RayCluster" and head["Pod"].startswith(cluster_ref["name"])
    assert any(line["msg"] == "updateRayClusterStatus" and line["new status"] for line in mine)


async def _http_mode_runs_to_complete(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        fake.default.set_default_script("RUNNING")
        await kclient.create(RAYJOBS, rayjob("job", namespace))
        st = await wait_state(kclient, namespace, "job", "Running")
        jid, cname = st["jobId"], st["rayClusterName"]
        assert jid.startswith("job-") and cname.startswith("job-") and st["startTime"]
        assert st["dashboardURL"] == f"{cname}-head-svc.{namespace}.svc.cluster.local:8265"

        cluster = await kclient.get(RAYCLUSTERS, cname, namespace)
        labels = cluster["metadata"]["labels"]
        assert labels["ray.io/originated-from-crd"] == "RayJob" and labels["ray.io/originated-from-cr-name"] == "job"
        assert labels["ray.io/job-submission-mode"] == "HTTPMode"
        assert cluster["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
        await kclient.get(SERVICES, "job-head-svc", namespace)

        await eventually(lambda: jid in fake.cluster(cname).jobs, 30, "the operator to submit the job over HTTP")
        submitted = fake.cluster(cname).jobs[jid]
        assert submitted.request["entrypoint"] == RAYJOB["spec"]["entrypoint"]
        fake.cluster(cname).finish(jid, "SUCCEEDED", message="Job finished successfully.")
        st = await wait_state(kclient, namespace, "job", "Complete")
        assert st["jobStatus"] == "SUCCEEDED" and st["succeeded"] == 1 and st["failed"] == 0
        assert st["endTime"] and st["message"] == "Job finished successfully."
        assert fake.cluster(cname).calls["submit"] == 1  # exactly once
        # Written as upstream writes it: Complete has no reason, and nothing empty where Go omits it.
        assert "reason" not in st and not _empty_leaves(st), _empty_leaves(st)


def _empty_leaves(value: Any, path: str = "status") -> list[str]:
    """Paths of "" and [] values: what Go's omitempty would have left out."""
    if value in ("", []):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _empty_leaves(v, f"{path}.{k}")]
    return []


async def test_k8s_job_mode_submitter_and_completion(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("kjob", namespace, submissionMode="K8sJobMode"))
        st = await wait_state(kclient, namespace, "kjob", "Running")
        sub = await eventually(lambda: _get_or_none(kclient, JOBS, "kjob", namespace), 30, "the submitter Job")
        labels = sub["metadata"]["labels"]
        assert labels["app.kubernetes.io/created-by"] == "kuberay-operator"
        container = sub["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RAY_DASHBOARD_ADDRESS"] == st["dashboardURL"] and env["RAY_JOB_SUBMISSION_ID"] == st["jobId"]
        assert "ray job submit" in " ".join(container.get("args", [])) and sub["spec"]["backoffLimit"] == 2
        created = await wait_events(kclient, namespace, "kjob", "CreatedRayJobSubmitter")
        assert created and created[0]["action"] == "Create"
        assert created[0]["note"] == f"Created Kubernetes Job {namespace}/kjob"
        # Nothing really submits under kwok: play the part of the submitter on the fake head.
        fake.cluster(st["rayClusterName"]).add_job(st["jobId"], status="SUCCEEDED")
        st = await wait_state(kclient, namespace, "kjob", "Complete")
        assert st["jobStatus"] == "SUCCEEDED"


async def _get_or_none(c: Client, r: Any, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return await c.get(r, name, ns)
    except NotFound:
        return None


async def test_app_failure_retries_with_a_new_cluster_then_fails(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("retry", namespace, backoffLimit=1))
        first = await wait_state(kclient, namespace, "retry", "Running")
        await eventually(lambda: first["jobId"] in fake.cluster(first["rayClusterName"]).jobs, 30, "submission")
        fake.cluster(first["rayClusterName"]).finish(first["jobId"], "FAILED", message="boom")

        async def second_attempt() -> dict[str, Any] | None:
            st = await job_status(kclient, namespace, "retry")
            ok = st.get("jobDeploymentStatus") == "Running" and st.get("jobId") not in (None, first["jobId"])
            return st if ok else None

        second = await eventually(second_attempt, 90, "a retry with a new job id")
        assert second["rayClusterName"] != first["rayClusterName"] and second["failed"] == 1
        await eventually(lambda: second["jobId"] in fake.cluster(second["rayClusterName"]).jobs, 30, "resubmission")
        fake.cluster(second["rayClusterName"]).finish(second["jobId"], "FAILED")
        st = await wait_state(kclient, namespace, "retry", "Failed")
        assert st["reason"] == "AppFailed" and st["failed"] == 2 and st["jobStatus"] == "FAILED"


async def test_shutdown_after_finish_deletes_cluster_and_keeps_the_driver_log(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("sd", namespace, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=0))
        st = await wait_state(kclient, namespace, "sd", "Running")
        cname, jid = st["rayClusterName"], st["jobId"]
        await eventually(lambda: jid in fake.cluster(cname).jobs, 30, "submission")
        fake.cluster(cname).jobs[jid].log_text = "hello from the driver\n"
        fake.cluster(cname).finish(jid, "SUCCEEDED")
        await wait_state(kclient, namespace, "sd", "Complete")

        async def cluster_gone() -> bool:
            return await _get_or_none(kclient, RAYCLUSTERS, cname, namespace) is None

        await eventually(cluster_gone, 60, "the RayCluster deleted after the job finished")
        cm = await kclient.get(CONFIGMAPS, "sd-driver-log", namespace)
        assert cm["data"]["driver.log"] == "hello from the driver\n"
        assert cm["metadata"]["ownerReferences"][0]["name"] == "sd"
        final = await job_status(kclient, namespace, "sd")
        assert final.get("driverLogConfigMap") == "sd-driver-log", final
        for reason in ("CreatedRayCluster", "DeletedRayCluster", "SavedDriverLog"):
            await wait_events(kclient, namespace, "sd", reason)
        events = await events_for(kclient, namespace, "sd")
        # Upstream's reasons, actions and notes, from the events.k8s.io recorder named rayjob-controller.
        seen = {(e["reason"], e["action"], e["note"], e["type"], e["reportingController"]) for e in events}
        for reason, action, note in (
            ("CreatedRayCluster", "Create", f"Created RayCluster {namespace}/{cname}"),
            ("CreatedService", "Create", f"Created the service {namespace}/sd-head-svc"),
            ("DeletedRayCluster", "Delete", f"Deleted cluster {namespace}/{cname}"),
        ):
            assert (reason, action, note, "Normal", "rayjob-controller") in seen, (reason, seen)
        assert await _get_or_none(kclient, RAYJOBS, "sd", namespace) is not None  # the RayJob stays


async def test_deletion_rules_delete_workers_then_cluster(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    rules = {
        "deletionRules": [
            {"policy": "DeleteWorkers", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}},
            {"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 4}},
        ]
    }
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("rules", namespace, deletionStrategy=rules))
        st = await wait_state(kclient, namespace, "rules", "Running")
        cname, jid = st["rayClusterName"], st["jobId"]
        await eventually(lambda: jid in fake.cluster(cname).jobs, 30, "submission")
        fake.cluster(cname).finish(jid, "SUCCEEDED")
        await wait_state(kclient, namespace, "rules", "Complete")

        async def workers_suspended() -> bool:
            c = await _get_or_none(kclient, RAYCLUSTERS, cname, namespace)
            return c is not None and all(g.get("suspend") for g in c["spec"]["workerGroupSpecs"])

        await eventually(workers_suspended, 30, "DeleteWorkers to suspend the worker groups first")

        async def cluster_gone() -> bool:
            return await _get_or_none(kclient, RAYCLUSTERS, cname, namespace) is None

        await eventually(cluster_gone, 60, "DeleteCluster after its TTL")


async def test_suspended_job_creates_nothing_until_resumed(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("kueue", namespace, suspend=True, shutdownAfterJobFinishes=True))
        await wait_state(kclient, namespace, "kueue", "Suspended")
        assert not (await kclient.list(RAYCLUSTERS, namespace))["items"]
        await kclient.patch(RAYJOBS, "kueue", {"spec": {"suspend": False}}, namespace)
        st = await wait_state(kclient, namespace, "kueue", "Running")
        await eventually(lambda: st["jobId"] in fake.cluster(st["rayClusterName"]).jobs, 30, "submission")
        fake.cluster(st["rayClusterName"]).finish(st["jobId"])
        await wait_state(kclient, namespace, "kueue", "Complete")


async def test_cluster_selector_uses_an_existing_cluster_and_never_deletes_it(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        cluster = {
            "apiVersion": "ray.io/v1",
            "kind": "RayCluster",
            "metadata": {"name": "shared", "namespace": namespace},
            "spec": RAYJOB["spec"]["rayClusterSpec"],
        }
        await kclient.create(RAYCLUSTERS, cluster)
        j = rayjob("sel", namespace, clusterSelector={"ray.io/cluster": "shared"}, shutdownAfterJobFinishes=True)
        del j["spec"]["rayClusterSpec"]
        await kclient.create(RAYJOBS, j)
        st = await wait_state(kclient, namespace, "sel", "Running")
        assert st["rayClusterName"] == "shared"
        await eventually(lambda: st["jobId"] in fake.cluster("shared").jobs, 30, "submission")
        fake.cluster("shared").finish(st["jobId"])
        await wait_state(kclient, namespace, "sel", "Complete")
        assert await _get_or_none(kclient, RAYCLUSTERS, "shared", namespace) is not None
        assert await _get_or_none(kclient, SERVICES, "sel-head-svc", namespace) is None


async def test_active_deadline_fails_the_job(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, _fake):
        await kclient.create(RAYJOBS, rayjob("late", namespace, activeDeadlineSeconds=3))
        st = await wait_state(kclient, namespace, "late", "Failed", 60)
        assert st["reason"] == "DeadlineExceeded"
        assert "activeDeadlineSeconds" in st["message"]


async def test_invalid_rayjob_is_validation_failed_with_a_warning(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster):
        j = rayjob("bad", namespace, shutdownAfterJobFinishes=False, ttlSecondsAfterFinished=10)
        await kclient.create(RAYJOBS, j)
        st = await wait_state(kclient, namespace, "bad", "ValidationFailed", 30)
        assert st["reason"] == "ValidationFailed" and "ttlsecondsafterfinished" in st["message"].lower()
        warned = await wait_events(kclient, namespace, "bad", "InvalidRayJobSpec")
        assert warned and all(e["type"] == "Warning" for e in warned)
        assert not (await kclient.list(RAYCLUSTERS, namespace))["items"]  # nothing was created


async def test_interactive_mode_waits_for_a_job_id(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("inter", namespace, submissionMode="InteractiveMode"))
        st = await wait_state(kclient, namespace, "inter", "Waiting")
        assert not st.get("jobId")
        fake.cluster(st["rayClusterName"]).add_job("my-own-id", status="RUNNING")
        await kclient.patch(RAYJOBS, "inter", {"spec": {"jobId": "my-own-id"}}, namespace)
        st = await wait_state(kclient, namespace, "inter", "Running")
        assert st["jobId"] == "my-own-id"
        fake.cluster(st["rayClusterName"]).finish("my-own-id")
        await wait_state(kclient, namespace, "inter", "Complete")
        assert fake.cluster(st["rayClusterName"]).calls["submit"] == 0  # the user submits, never the operator


async def test_sidecar_mode_puts_the_submitter_in_the_head_pod(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster):
        await kclient.create(RAYJOBS, rayjob("side", namespace, submissionMode="SidecarMode"))
        st = await wait_state(kclient, namespace, "side", "Running")

        async def head() -> dict[str, Any] | None:
            sel = f"ray.io/cluster={st['rayClusterName']},ray.io/node-type=head"
            items = (await kclient.list(PODS, namespace, label_selector=sel))["items"]
            return items[0] if items else None

        pod = await eventually(head, 30, "the head pod")
        names = [c["name"] for c in pod["spec"]["containers"]]
        assert "ray-job-submitter" in names and pod["spec"]["restartPolicy"] == "Never"
        assert await _get_or_none(kclient, JOBS, "side", namespace) is None  # no submitter Job in this mode


async def test_a_ray_job_that_ended_while_the_operator_was_away_is_reported_as_ray_says(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Found by the chaos tier: the operator was cut off when the Ray job succeeded and its submitter
    Job completed, and came back more than 30 s later. Upstream fails such a RayJob at once (submitter
    finished, Ray job not seen terminal in 30 s); here Ray is asked first and the RayJob is Complete."""
    async with FakeDashboard() as fake:
        async with operator_with_fake(sim_cluster, fake=fake):
            await kclient.create(RAYJOBS, rayjob("away", namespace, submissionMode="K8sJobMode"))
            st = await wait_state(kclient, namespace, "away", "Running")
            fake.cluster(st["rayClusterName"]).add_job(st["jobId"], status="RUNNING")

            async def seen_running() -> bool:
                return (await job_status(kclient, namespace, "away")).get("jobStatus") == "RUNNING"

            await eventually(seen_running, 60, "the operator to see the Ray job RUNNING")
        # The operator is gone; Ray finishes the job and the submitter Job completes (kwok).
        fake.cluster(st["rayClusterName"]).finish(st["jobId"])

        async def submitter_done_long_ago() -> bool:
            job = await _get_or_none(kclient, JOBS, "away", namespace)
            done = [c for c in ((job or {}).get("status") or {}).get("conditions") or () if c["type"] == "Complete"]
            return (
                bool(done)
                and time.time() - calendar.timegm(time.strptime(done[0]["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ"))
                > 32
            )

        await eventually(submitter_done_long_ago, 120, "the submitter Job to have completed over 30 s ago")
        async with operator_with_fake(sim_cluster, fake=fake):
            st = await wait_state(kclient, namespace, "away", "Complete")
        assert st["jobStatus"] == "SUCCEEDED" and not st.get("reason")


async def test_a_submitter_template_without_containers_is_an_event_not_a_crash(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    """Found by the fuzz tier: upstream indexes container 0 of the template and panics; here the user gets
    a Warning event saying why, the reconcile is retried (no panic counted), and nothing else is made."""
    async with operator_with_fake(sim_cluster) as (rt, _fake):
        j = rayjob("empty", namespace, submissionMode="K8sJobMode", submitterPodTemplate={"spec": {"containers": []}})
        await kclient.create(RAYJOBS, j)
        warned = await wait_events(kclient, namespace, "empty", "FailedToCreateRayJobSubmitter", 90)
        assert "the submitter pod template has no containers" in warned[0]["note"]
        assert await _get_or_none(kclient, JOBS, "empty", namespace) is None
        panics = rt.registry.get_sample_value("controller_runtime_reconcile_panics_total", {"controller": "rayjob"})
        assert not panics


async def test_status_checks_failing_past_the_timeout_fail_the_job(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    env = {"RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS": "3"}
    async with operator_with_fake(sim_cluster, env) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("dead", namespace))
        st = await wait_state(kclient, namespace, "dead", "Running")
        await eventually(lambda: st["jobId"] in fake.cluster(st["rayClusterName"]).jobs, 30, "submission")
        fake.cluster(st["rayClusterName"]).hang()  # the head stops answering
        st = await wait_state(kclient, namespace, "dead", "Failed", 60)
        assert st["reason"] == "JobStatusCheckTimeoutExceeded"
        fake.cluster(st["rayClusterName"]).heal()


async def test_duplicate_submission_id_counts_as_submitted(sim_cluster: Any, kclient: Client, namespace: str) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        j = rayjob("dup", namespace, jobId="fixed-id")
        await kclient.create(RAYJOBS, j)
        st = await wait_state(kclient, namespace, "dup", "Running")
        fc = fake.cluster(st["rayClusterName"])
        await eventually(lambda: "fixed-id" in fc.jobs, 30, "submission")
        fc.forget_job("fixed-id")
        # The head "forgot" the job: the next GET is 404 and the resubmission answers duplicate-id 500.
        fc.fail_next(
            "submit", 500, "Job with submission_id fixed-id already exists. Please use a different submission_id."
        )
        await eventually(lambda: fc.calls["submit"] >= 2, 30, "the resubmission attempt")
        fc.add_job("fixed-id", status="SUCCEEDED")
        st = await wait_state(kclient, namespace, "dup", "Complete")
        assert st["jobStatus"] == "SUCCEEDED"


async def test_black_holed_dashboards_do_not_delay_healthy_jobs(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    total, dead = 100, 10
    async with operator_with_fake(sim_cluster, concurrency=10) as (_rt, fake):
        for i in range(total):
            j = rayjob(f"j{i:03d}", namespace)
            j["spec"]["rayClusterSpec"] = copy.deepcopy(j["spec"]["rayClusterSpec"])
            j["spec"]["rayClusterSpec"]["workerGroupSpecs"] = []
            await kclient.create(RAYJOBS, j)

        async def all_running() -> dict[str, dict[str, Any]] | None:
            items = (await kclient.list(RAYJOBS, namespace))["items"]
            st = {i["metadata"]["name"]: i.get("status") or {} for i in items}
            return st if sum(s.get("jobDeploymentStatus") == "Running" for s in st.values()) == total else None

        statuses = await eventually(all_running, 240, "all RayJobs Running")
        names = sorted(statuses)
        for n in names[:dead]:
            fake.cluster(statuses[n]["rayClusterName"]).hang()
        healthy = names[dead:]
        await eventually(
            lambda: all(statuses[n]["jobId"] in fake.cluster(statuses[n]["rayClusterName"]).jobs for n in healthy),
            120,
            "every healthy job submitted",
        )
        for n in healthy:
            fake.cluster(statuses[n]["rayClusterName"]).finish(statuses[n]["jobId"])

        async def healthy_complete() -> bool:
            items = (await kclient.list(RAYJOBS, namespace))["items"]
            done = {
                i["metadata"]["name"] for i in items if (i.get("status") or {}).get("jobDeploymentStatus") == "Complete"
            }
            return set(healthy) <= done

        await eventually(healthy_complete, 120, "every healthy RayJob Complete while 10 heads hang")
        for n in names[:dead]:
            st = await job_status(kclient, namespace, n)
            assert st["jobDeploymentStatus"] == "Running"
            fake.cluster(statuses[n]["rayClusterName"]).heal()


async def test_pre_running_deadline_fails_a_job_that_never_starts(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster):
        # InteractiveMode waits for a job id that never comes: the pre-running deadline ends it.
        j = rayjob("slow", namespace, submissionMode="InteractiveMode", preRunningDeadlineSeconds=3)
        await kclient.create(RAYJOBS, j)
        st = await wait_state(kclient, namespace, "slow", "Failed", 60)
        assert st["reason"] == "PreRunningDeadlineExceeded"


async def test_legacy_on_failure_policy_deletes_the_cluster_and_delete_self_removes_the_rayjob(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    legacy = {"onSuccess": {"policy": "DeleteNone"}, "onFailure": {"policy": "DeleteCluster"}}
    self_rules = {"deletionRules": [{"policy": "DeleteSelf", "condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 0}}]}
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("legacy", namespace, deletionStrategy=legacy))
        await kclient.create(RAYJOBS, rayjob("selfdel", namespace, deletionStrategy=self_rules))
        legacy_st = await wait_state(kclient, namespace, "legacy", "Running")
        self_st = await wait_state(kclient, namespace, "selfdel", "Running")
        for st in (legacy_st, self_st):
            await eventually(lambda st=st: st["jobId"] in fake.cluster(st["rayClusterName"]).jobs, 30, "submission")
        fake.cluster(legacy_st["rayClusterName"]).finish(legacy_st["jobId"], "FAILED")
        fake.cluster(self_st["rayClusterName"]).finish(self_st["jobId"], "SUCCEEDED")

        async def legacy_cluster_gone() -> bool:
            return await _get_or_none(kclient, RAYCLUSTERS, legacy_st["rayClusterName"], namespace) is None

        await eventually(legacy_cluster_gone, 60, "onFailure DeleteCluster")
        assert (await job_status(kclient, namespace, "legacy"))["jobDeploymentStatus"] == "Failed"

        async def rayjob_gone() -> bool:
            return await _get_or_none(kclient, RAYJOBS, "selfdel", namespace) is None

        await eventually(rayjob_gone, 60, "DeleteSelf to delete the RayJob (its finalizer released)")


async def test_submitter_finished_without_a_terminal_ray_job_fails_after_the_grace(
    sim_cluster: Any, kclient: Client, namespace: str
) -> None:
    async with operator_with_fake(sim_cluster) as (_rt, fake):
        await kclient.create(RAYJOBS, rayjob("stuck", namespace, submissionMode="K8sJobMode"))
        st = await wait_state(kclient, namespace, "stuck", "Running")
        # The Ray job stays RUNNING while the submitter Job completes (kwok): 30 s later it is Failed.
        fake.cluster(st["rayClusterName"]).add_job(st["jobId"], status="RUNNING")
        st = await wait_state(kclient, namespace, "stuck", "Failed", 120)
        assert st["reason"] == "JobDeploymentStatusTransitionGracePeriodExceeded"
        assert "did not reach terminal state within 30s" in st["message"] and st["jobStatus"] == "FAILED"
