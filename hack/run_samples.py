"""Run sample RayJobs end to end on the local node, one after another, and report what a user sees.

    sudo .venv/bin/python hack/run_samples.py [config/samples/ray-job.X.yaml ...]

Starts what `make run` starts (control plane, local node, operator), applies each sample in a namespace
of its own, waits for the RayJob's outcome (or, for InteractiveMode, submits the job from inside the
head container as a user would with `ray job submit`), watches what the deletion policy leaves over a
short window, prints one line per sample, then deletes the namespace and waits until its pods are gone.
A manual tool (root, minutes per sample), not a test; its figures go to docs/local-node.md.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "config" / "samples"
# RayJob samples whose entrypoints need nothing from the internet or a GPU.
DEFAULT = [
    "ray-job.sample.yaml",
    "ray-job.http-mode.yaml",
    "ray-job.resources.yaml",
    "ray-job.shutdown.yaml",
    "ray-job.sidecar-mode.yaml",
    "ray-job.deletion-rules.yaml",
    "ray-job.deletion-rules.staged.yaml",
    "ray-job.deletion-rules.delete-self-on-failure.yaml",
    "ray-job.deletion-strategy-legacy.yaml",
    "ray-job.backoff-limit.yaml",
    "ray-job.use-existing-raycluster.yaml",
    "ray-job.use-existing-raycluster.labels.yaml",
    "ray-job.interactive-mode.yaml",
]
TERMINAL = ("Complete", "Failed")
KUBECTL_TIMEOUT = 60


def kubectl(kubeconfig: str, *args: str, check: bool = True) -> str:
    out = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT,
        check=False,
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def get_json(kubeconfig: str, ns: str, *what: str) -> dict[str, Any]:
    out = kubectl(kubeconfig, "-n", ns, "get", *what, "-o", "json", "--ignore-not-found", check=False)
    return json.loads(out) if out.strip() else {}


def start_plane() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "cmd" / "main.py"), "--local-control-plane"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                raise SystemExit(f"the local control plane exited with {proc.returncode}") from None
            continue
        if "export KUBECONFIG=" in line:
            return proc, line.split("=", 1)[1].strip()
    raise SystemExit("the local control plane did not become ready in 300 s")


def head_pod(kubeconfig: str, ns: str) -> str | None:
    pods = get_json(kubeconfig, ns, "pods", "-l", "ray.io/node-type=head").get("items") or []
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    return running[0]["metadata"]["name"] if running else None


def interactive_submit(kubeconfig: str, ns: str, job_id: str) -> None:
    head = head_pod(kubeconfig, ns)
    if head is None:
        return
    cmd = [sys.executable, "-m", "internal.controlplane.localnode", "exec", f"--kubeconfig={kubeconfig}"]
    cmd += ["-n", ns, "-c", "ray-head", head, "--", "ray", "job", "submit", "--address=http://127.0.0.1:8265"]
    cmd += [f"--submission-id={job_id}", "--no-wait", "--", "python", "-c", "print('interactive job ran')"]
    subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def run_sample(kubeconfig: str, path: Path, timeout: float, watch: float) -> str:
    ns = "s-" + path.stem.removeprefix("ray-job.").replace(".", "-")[:50]
    kubectl(kubeconfig, "create", "namespace", ns)
    t0 = time.monotonic()
    kubectl(kubeconfig, "-n", ns, "apply", "-f", str(path))
    name = next(
        d["metadata"]["name"]
        for d in json.loads(kubectl(kubeconfig, "-n", ns, "get", "rayjobs", "-o", "json"))["items"]
    )
    submitted, st = False, {}
    while time.monotonic() - t0 < timeout:
        job = get_json(kubeconfig, ns, "rayjob", name)
        if not job:
            st = {"jobDeploymentStatus": "(RayJob deleted)"}
            break
        st = job.get("status") or {}
        if st.get("jobDeploymentStatus") in TERMINAL:
            break
        # InteractiveMode: the user submits with an id of their choosing, then sets spec.jobId to it.
        interactive = job["spec"].get("submissionMode") == "InteractiveMode"
        if interactive and st.get("jobDeploymentStatus") == "Waiting" and not submitted and head_pod(kubeconfig, ns):
            job_id = f"{name}-by-hand"
            interactive_submit(kubeconfig, ns, job_id)
            kubectl(
                kubeconfig,
                "-n",
                ns,
                "patch",
                "rayjob",
                name,
                "--type=merge",
                "-p",
                json.dumps({"spec": {"jobId": job_id}}),
            )
            submitted = True
        time.sleep(2)  # a manual tool polling kubectl, not a test
    took = time.monotonic() - t0
    outcome = "/".join(str(st.get(k, "")) for k in ("jobDeploymentStatus", "jobStatus", "reason"))
    # What the deletion policy leaves: sampled over a window after the outcome.
    end = time.monotonic() + watch
    left = ""
    while time.monotonic() < end:
        pods = get_json(kubeconfig, ns, "pods").get("items") or []
        kinds = sorted((p["metadata"].get("labels") or {}).get("ray.io/node-type", "submitter") for p in pods)
        left = (
            f"rayjob={'yes' if get_json(kubeconfig, ns, 'rayjob', name) else 'gone'} "
            f"rayclusters={len(get_json(kubeconfig, ns, 'rayclusters').get('items') or [])} "
            f"pods={','.join(kinds) or '-'}"
        )
        time.sleep(5)
    msg = str(st.get("message", ""))[:100].replace("\n", " ")
    kubectl(kubeconfig, "delete", "namespace", ns, "--wait=true", "--timeout=300s", check=False)
    return f"{path.name}: {outcome} in {took:.0f} s; after {watch:.0f} s: {left}; {msg}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="*", help="sample files (default: every RayJob sample that runs offline)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per sample to reach an outcome")
    p.add_argument("--watch", type=float, default=30, help="seconds to watch what the deletion policy leaves")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("run_samples: the local node needs root", file=sys.stderr)
        return 1
    paths = [Path(s) for s in args.samples] or [SAMPLES / s for s in DEFAULT]
    proc, kubeconfig = start_plane()
    try:
        for path in paths:
            print(run_sample(kubeconfig, path, args.timeout, args.watch), flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
