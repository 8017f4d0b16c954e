"""Start-up errors a person can act on: the operator process (cmd/main.py) refuses bad input and a
cluster that is not ready for it with ONE line on stderr, prefixed ``kuberay-operator: ``, exit status
2 (bad input) or 1 (the cluster), and no traceback. Also: --help shows every default and the feature
gates, an unknown Configuration field is a warning, and --log-file-path writes the log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from support.wait import eventually

from internal.controlplane.plane import free_port
from internal.features import DEFAULTS as FEATURE_GATES

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "cmd" / "main.py"
TIMEOUT = 60


def operator(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the operator to completion with a clean environment: no $KUBECONFIG, no ~/.kube/config."""
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "OTEL_TRACES_EXPORTER")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, str(MAIN), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**base, "HOME": str(home), **(env or {})},
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The process failed with ``code`` and exactly one stderr line holding every fragment."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:], proc.stdout[-2000:])
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("kuberay-operator: "), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def config_file(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "config.yaml", f"apiVersion: config.ray.io/v1alpha1\nkind: Configuration\n{body}")


# ---- help and flags --------------------------------------------------------------------------------


def test_help_shows_every_default_and_the_feature_gates(tmp_path: Path) -> None:
    proc = operator(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())  # argparse wraps help text
    for text in (
        "--metrics-addr METRICS_ADDR metrics server bind address (0 disables) (default: :8080)",
        "(default: :8082)",
        "--enable-leader-election [BOOL] elect a leader with a Lease (ray-operator-leader) (default: True)",
        "workers per controller (default: 1)",
        "(default: 100.0)",
        "(default: 200)",
        '--watch-namespace WATCH_NAMESPACE comma-separated namespaces to watch (all if empty) (default: "")',
        "(default: iso8601)",
        "(default: info; debug with --zap-devel)",
        "(default: error)",
    ):
        assert text in out, text
    for gate, on in FEATURE_GATES.items():
        assert f"{gate}={str(on).lower()}" in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--no-such-flag"], ["unrecognized arguments: --no-such-flag"]),
        (["--qps=fast"], ["argument --qps: invalid float value: 'fast'"]),
        (["--zap-log-level=verbose"], ['argument --zap-log-level: invalid log level "verbose"']),
        (["--zap-log-level=0"], ['invalid log level "0"']),
        (["--zap-stacktrace-level=warn"], ['argument --zap-stacktrace-level: invalid stacktrace level "warn"']),
        (["--zap-time-encoding=weekly"], ['argument --zap-time-encoding: invalid time-encoding value "weekly"']),
        (["--feature-gates=NoSuchGate=true"], ["--feature-gates: unrecognized feature gate: NoSuchGate"]),
        (
            ["--batch-scheduler=slurm"],
            ["batch scheduler configs validation failed: scheduler is not supported, name=slurm"],
        ),
        (
            ["--enable-batch-scheduler", "--batch-scheduler=yunikorn"],
            ["both feature flags enable-batch-scheduler (deprecated) and batch-scheduler are set"],
        ),
        (
            ["--batch-scheduler=volcano"],
            ["--batch-scheduler=volcano: batch schedulers are not supported by this build yet"],
        ),
        (
            ["--enable-batch-scheduler"],
            ["--enable-batch-scheduler (= volcano): batch schedulers are not supported by this build yet"],
        ),
        (
            ["--feature-gates=KubernetesWAS=true", "--batch-scheduler=kai-scheduler"],
            ["the KubernetesWAS feature gate cannot be combined with --batch-scheduler"],
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    one_line_error(operator(tmp_path, *args), 2, *fragments)


def test_bad_otel_traces_exporter_is_refused(tmp_path: Path) -> None:
    proc = operator(tmp_path, env={"OTEL_TRACES_EXPORTER": "jaeger"})
    one_line_error(proc, 2, "OTEL_TRACES_EXPORTER=jaeger: unknown trace exporter 'jaeger'", "none, otlp, console")


def test_unwritable_log_file_is_refused(tmp_path: Path) -> None:
    proc = operator(tmp_path, f"--log-file-path={tmp_path}/missing-dir/operator.log")
    one_line_error(proc, 2, f"cannot open --log-file-path {tmp_path}/missing-dir/operator.log: No such file")


# ---- the Configuration file ------------------------------------------------------------------------


def test_missing_config_file(tmp_path: Path) -> None:
    proc = operator(tmp_path, f"--config={tmp_path}/nope.yaml")
    one_line_error(proc, 2, f"cannot read --config file {tmp_path}/nope.yaml: No such file or directory")


def test_unreadable_config_file(tmp_path: Path) -> None:
    proc = operator(tmp_path, f"--config={tmp_path}")  # a directory: unreadable even for root
    one_line_error(proc, 2, f"cannot read --config file {tmp_path}: Is a directory")


def test_malformed_config_file_names_the_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'metricsAddr: ":8080"\n  probeAddr: ":8082"\n')
    one_line_error(operator(tmp_path, f"--config={path}"), 2, f"--config {path}: invalid YAML at line 4")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("reconcileConcurrency: two\n", "field reconcileConcurrency: must be of type int, got str 'two'"),
        ("logFileEncoder: xml\n", "field logFileEncoder: invalid encoder 'xml'"),
        ("headSidecarContainers:\n- name: fluentbit\n", "field headSidecarContainers[0].image: required"),
        ("defaultPodLabels: {team: true}\n", "field defaultPodLabels: 'team': keys and values must be strings"),
        ("batchScheduler: volcano\n", "batchScheduler: volcano in"),
    ],
)
def test_invalid_config_file_fields_are_refused(tmp_path: Path, body: str, fragment: str) -> None:
    path = config_file(tmp_path, body)
    one_line_error(operator(tmp_path, f"--config={path}"), 2, fragment)


# ---- kubeconfig and the API server -----------------------------------------------------------------


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    proc = operator(tmp_path, env={"KUBERNETES_SERVICE_HOST": ""})
    one_line_error(proc, 2, "no kubeconfig: pass --kubeconfig or set KUBECONFIG")


def test_missing_kubeconfig(tmp_path: Path) -> None:
    proc = operator(tmp_path, f"--kubeconfig={tmp_path}/kubeconfig")
    one_line_error(proc, 2, f"cannot read kubeconfig {tmp_path}/kubeconfig: No such file or directory")


def test_unreadable_kubeconfig_from_the_environment(tmp_path: Path) -> None:
    proc = operator(tmp_path, env={"KUBECONFIG": str(tmp_path)})
    one_line_error(proc, 2, f"cannot read kubeconfig {tmp_path}: Is a directory")


def test_malformed_kubeconfig(tmp_path: Path) -> None:
    path = write(tmp_path / "kubeconfig", "apiVersion: v1\nclusters: [\n")
    one_line_error(operator(tmp_path, f"--kubeconfig={path}"), 2, f"kubeconfig {path} is not valid YAML at line 3")


def kubeconfig_for(plane: Any, path: Path, *, server: str | None = None, token: str | None = None) -> Path:
    """The plane's admin kubeconfig, optionally pointed at another server or authenticating with a token."""
    cfg = yaml.safe_load(Path(plane.kubeconfig).read_text())
    if server:
        cfg["clusters"][0]["cluster"]["server"] = server
    if token:
        cfg["users"][0]["user"] = {"token": token}
    return write(path, yaml.safe_dump(cfg))


def test_unreachable_api_server_names_the_url(control_plane: Any, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    path = kubeconfig_for(control_plane, tmp_path / "kubeconfig", server=server)
    proc = operator(tmp_path, f"--kubeconfig={path}")
    one_line_error(proc, 1, f"cannot reach the Kubernetes API server at {server}: connection refused")


def test_rejected_credentials(control_plane: Any, tmp_path: Path) -> None:
    path = kubeconfig_for(control_plane, tmp_path / "kubeconfig", token="not-a-token")
    proc = operator(tmp_path, f"--kubeconfig={path}")
    one_line_error(proc, 1, "rejected the credentials (401 Unauthorized)", control_plane.server)


def test_missing_crds(private_plane: Any, tmp_path: Path) -> None:
    proc = operator(tmp_path, f"--kubeconfig={private_plane.kubeconfig}")
    line = one_line_error(proc, 1)
    assert line == "kuberay-operator: the ray.io CRDs are not installed: kubectl create -k config/crd"


def test_a_gated_controller_needs_its_crd(private_plane: Any, tmp_path: Path) -> None:
    crds = sorted(p for p in (REPO / "config" / "crd" / "bases").glob("*.yaml") if "raycronjobs" not in p.name)
    private_plane.install_crds(crds)
    gate = "--feature-gates=RayCronJob=true"
    proc = operator(tmp_path, f"--kubeconfig={private_plane.kubeconfig}", gate)
    line = one_line_error(proc, 1)
    assert line == (
        "kuberay-operator: the raycronjobs.ray.io CRDs are not installed: kubectl apply --server-side -k config/crd"
    )


def test_missing_rbac_names_the_identity_and_the_permission(control_plane: Any, namespace: str, tmp_path: Path) -> None:
    sa = f"no-rbac-{uuid.uuid4().hex[:6]}"
    r = control_plane.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": sa}})
    assert r.status == 201, r.body
    r = control_plane.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    assert r.status == 201, r.body
    path = kubeconfig_for(control_plane, tmp_path / "kubeconfig", token=r.json()["status"]["token"])
    proc = operator(tmp_path, f"--kubeconfig={path}")
    one_line_error(
        proc,
        1,
        f'"system:serviceaccount:{namespace}:{sa}" lacks RBAC permissions the operator needs:',
        "list rayclusters.ray.io cluster-wide",
        "config/rbac",
    )


# ---- a good start --------------------------------------------------------------------------------


async def test_unknown_config_field_is_a_warning_and_the_log_file_is_written(
    control_plane: Any, tmp_path: Path
) -> None:
    log_file = tmp_path / "operator.log"
    path = config_file(
        tmp_path,
        f"metricsAddr: 127.0.0.1:{free_port()}\nprobeAddr: 127.0.0.1:{free_port()}\nenableLeaderElection: false\n"
        f"reconcileConcurency: 4\nlogFile: {log_file}\nlogFileEncoder: json\nlogStdoutEncoder: console\n",
    )
    base = {k: v for k, v in os.environ.items() if k != "OTEL_TRACES_EXPORTER"}
    out_file, err_file = tmp_path / "stdout", tmp_path / "stderr"
    with out_file.open("wb") as out, err_file.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(MAIN),
            f"--config={path}",
            f"--kubeconfig={control_plane.kubeconfig}",
            stdout=out,
            stderr=err,
            env=base,
        )
    try:

        def started() -> list[dict[str, Any]] | None:
            data = log_file.read_bytes() if log_file.exists() else b""
            lines = [orjson.loads(x) for x in data[: data.rfind(b"\n") + 1].splitlines()]  # whole lines only
            return lines if any("start-up checks passed" in x["msg"] for x in lines) else None

        entries = await eventually(started, TIMEOUT, "the operator to pass its start-up checks")
        warning = next(x for x in entries if "reconcileConcurency" in x["msg"])
        assert warning["level"] == "warning"
        assert warning["msg"] == "unknown field 'reconcileConcurency' in the configuration file is ignored"
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
    assert code == 0, err_file.read_text()[-2000:]
    assert err_file.read_text() == ""
    stdout = out_file.read_text()
    assert "\tWARNING\tkuberay.main\tunknown field 'reconcileConcurency'" in stdout  # the console encoder
    assert "start-up checks passed" in stdout


def test_webhooks_without_a_certificate_are_refused(tmp_path: Path) -> None:
    """ENABLE_WEBHOOKS=true needs tls.crt and tls.key where the webhook server reads them (under TMPDIR,
    as controller-runtime): without them the operator says so and where, before touching the cluster."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = operator(tmp_path, env={"ENABLE_WEBHOOKS": "true", "TMPDIR": str(tmp)})
    one_line_error(
        proc,
        1,
        "ENABLE_WEBHOOKS=true but the webhook server has no usable certificate:",
        f"{tmp}/k8s-webhook-server/serving-certs/tls.crt does not exist",
        "webhook-server-cert",
    )
    # any other value leaves the webhooks off, as upstream's exact test: the next failure is the missing kubeconfig
    proc = operator(tmp_path, env={"ENABLE_WEBHOOKS": "True", "TMPDIR": str(tmp)})
    assert proc.returncode == 2 and "webhook" not in proc.stderr, proc.stderr
