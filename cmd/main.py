"""kuberay-operator entry point (upstream's ``main.go``): flags → configuration → the controllers wired
into the manager → manager.run().

    kuberay-operator [flags]                   # installed command: against $KUBECONFIG / in-cluster
    python cmd/main.py [flags]                 # the same, from a source tree
    kuberay-operator --local-control-plane     # starts its own etcd, kube-apiserver, KCM, scheduler, kwok

The wheel installs this directory as the ``kuberay_operator`` package (``cmd`` would shadow the
standard library's module of that name).

Exit status: 0 after a requested stop (SIGTERM/SIGINT), 1 on a fatal error or a lost leader lease,
2 on bad flags or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if not __package__:  # run as a script from a source tree: make api/, controllers/, internal/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.config.v1alpha1 import Configuration, decode
from controllers.ray import raycluster_controller, rayjob_controller
from controllers.ray.utils import dashboard
from internal import logging as oplog
from internal import tracing
from internal.app import ControllerSetup, Options, run_operator
from internal.client import resources as res
from internal.features import FeatureGates
from internal.informer import ByObject

if TYPE_CHECKING:
    from internal.controlplane import ControlPlane

log = logging.getLogger("kuberay.main")

# Only the operator's own Jobs and Ray pods are cached, as upstream's cacheSelectors: memory must not
# grow with unrelated pods in the cluster.
JOB_SELECTOR = "app.kubernetes.io/created-by=kuberay-operator"
POD_SELECTOR = "ray.io/node-type in (head,worker,redis-cleanup)"


def cache_selectors() -> dict[Any, ByObject]:
    return {res.JOBS: ByObject(label_selector=JOB_SELECTOR), res.PODS: ByObject(label_selector=POD_SELECTOR)}


def controller_setups(dashboards: dashboard.DashboardClientFactory | None = None) -> list[ControllerSetup]:
    """Every controller of this build, in upstream's registration order. ``dashboards`` replaces the
    flag-chosen way of reaching Ray dashboards (tests, benchmarks)."""

    def rayjob(rt: Any) -> list[Any]:
        return rayjob_controller.setup(rt, None, dashboards)

    return [raycluster_controller.setup, rayjob]


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "t"):
        return True
    if v.lower() in ("false", "0", "f"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {v!r}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    d = Configuration()
    p = argparse.ArgumentParser(prog="kuberay-operator", description="The KubeRay operator, in Python.")
    flag = p.add_argument

    def boolean(name: str, default: bool, help: str) -> None:
        # Go-style booleans: --flag, --flag=true, --flag=false
        flag(name, type=_bool, nargs="?", const=True, default=default, help=help)

    flag("--metrics-addr", default=d.metricsAddr, help="metrics server bind address (0 disables)")
    flag("--health-probe-bind-address", default=d.probeAddr, help="/healthz and /readyz bind address")
    boolean("--enable-leader-election", d.enableLeaderElection, "elect a leader with a Lease (ray-operator-leader)")
    flag("--leader-election-namespace", default=d.leaderElectionNamespace, help="namespace of the leader Lease")
    flag("--reconcile-concurrency", type=int, default=d.reconcileConcurrency, help="workers per controller")
    flag("--watch-namespace", default=d.watchNamespace, help="comma-separated namespaces to watch (all if empty)")
    boolean("--forced-cluster-upgrade", False, "deprecated; has no effect")
    flag("--log-file-path", default=d.logFile, help="also write logs to this file")
    flag("--log-file-encoder", default=d.logFileEncoder, choices=("json", "console"))
    flag("--log-stdout-encoder", default=d.logStdoutEncoder, choices=("json", "console"))
    boolean("--enable-batch-scheduler", d.enableBatchScheduler, "deprecated: same as --batch-scheduler=volcano")
    flag("--batch-scheduler", default=d.batchScheduler, help="volcano, yunikorn, kai-scheduler or scheduler-plugins")
    flag("--config", default="", help="a Configuration file; when set, the other configuration flags are ignored")
    boolean("--use-kubernetes-proxy", d.useKubernetesProxy, "reach dashboards through the apiserver proxy")
    flag("--feature-gates", default="", help="Name=bool,... (see docs)")
    boolean("--enable-metrics", d.enableMetrics, "export the kuberay_* metrics")
    flag("--qps", type=float, default=d.qps, help="client-side QPS limit to the API server")
    flag("--burst", type=int, default=d.burst, help="client-side burst limit to the API server")
    flag("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="kubeconfig path (default: in-cluster)")
    flag("--zap-log-level", default="info", help="debug, info, error")
    flag("--zap-encoder", default=None, choices=("json", "console"), help="overrides --log-stdout-encoder")
    flag("--zap-devel", type=_bool, nargs="?", const=True, default=False, help="development logging (console)")
    flag("--zap-stacktrace-level", default="error", help="accepted for compatibility")
    flag("--zap-time-encoding", default="iso8601", help="accepted for compatibility")
    flag("--trace-exporter", default=None, choices=tracing.EXPORTERS, help="OpenTelemetry traces (default: none)")
    flag("--graceful-shutdown-timeout", type=float, default=30.0, help="seconds to finish in-flight reconciles")
    flag(
        "--local-control-plane",
        action="store_true",
        help="start a local etcd + kube-apiserver + KCM + scheduler + kwok on loopback and run against it",
    )
    return p.parse_args(argv)


def configuration(args: argparse.Namespace) -> Configuration:
    if args.config:
        return decode(Path(args.config).read_text())
    return Configuration(
        metricsAddr=args.metrics_addr,
        probeAddr=args.health_probe_bind_address,
        enableLeaderElection=args.enable_leader_election,
        leaderElectionNamespace=args.leader_election_namespace,
        reconcileConcurrency=args.reconcile_concurrency,
        watchNamespace=args.watch_namespace,
        logFile=args.log_file_path,
        logFileEncoder=args.log_file_encoder,
        logStdoutEncoder=args.log_stdout_encoder,
        enableBatchScheduler=args.enable_batch_scheduler,
        batchScheduler=args.batch_scheduler,
        useKubernetesProxy=args.use_kubernetes_proxy,
        enableMetrics=args.enable_metrics,
        qps=args.qps,
        burst=args.burst,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = configuration(args)
        gates = FeatureGates.parse(args.feature_gates)
        if cfg.enableBatchScheduler and cfg.batchScheduler:
            raise ValueError("do not use both --batch-scheduler and the deprecated --enable-batch-scheduler")
    except (OSError, ValueError) as e:
        print(f"kuberay-operator: {e}", file=sys.stderr)
        return 2
    # The stdout encoder flag wins even with --config, as upstream.
    encoder = args.zap_encoder or ("console" if args.zap_devel else args.log_stdout_encoder)
    oplog.configure("text" if encoder == "console" else "json", args.zap_log_level)
    if args.forced_cluster_upgrade:
        log.info("--forced-cluster-upgrade is deprecated and has no effect")
    log.info("feature gates: %s", gates)
    tracing.setup(args.trace_exporter)

    plane = None
    kubeconfig = args.kubeconfig
    if args.local_control_plane:
        plane = start_local_plane()
        kubeconfig = str(plane.kubeconfig)
    opts = Options(
        config=cfg,
        gates=gates,
        kubeconfig=kubeconfig,
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
        leader_election_namespace=cfg.leaderElectionNamespace or _pod_namespace(),
        setups=controller_setups(),
        cache_by_object=cache_selectors(),
    )
    try:
        return asyncio.run(_run(opts))
    finally:
        if plane is not None:
            log.info("stopping the local control plane")
            plane.stop()


async def _run(opts: Options) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_operator(opts, stop)
    except Exception as e:
        for err in _flatten(e):
            log.error("operator stopped: %s: %s", type(err).__name__, err, exc_info=err)
        return 1
    return 0


def _flatten(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [x for sub in e.exceptions for x in _flatten(sub)]
    return [e]


def _pod_namespace() -> str:
    try:
        return Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text().strip()
    except OSError:
        return "default"


def start_local_plane() -> ControlPlane:
    """T2 plane on loopback with the CRDs installed before the garbage collector starts."""
    from internal.controlplane import ControlPlane, build_binaries

    bin_dir = build_binaries()
    work = Path(tempfile.mkdtemp(prefix="kuberay-local-"))
    plane = ControlPlane(bin_dir=bin_dir, work_dir=work)
    plane.start()
    crds = sorted((Path(__file__).resolve().parents[1] / "config" / "crd" / "bases").glob("*.yaml"))
    if crds:
        plane.install_crds(crds)
    plane.start_sim()
    log.info("local control plane ready: export KUBECONFIG=%s (logs in %s)", plane.kubeconfig, plane.log_dir)
    return plane


if __name__ == "__main__":
    sys.exit(main())
