"""kuberay-operator entry point (upstream's ``main.go``): flags → configuration → start-up checks → the
controllers wired into the manager → manager.run().

    kuberay-operator [flags]                   # installed command: against $KUBECONFIG / in-cluster
    python cmd/main.py [flags]                 # the same, from a source tree
    kuberay-operator --local-control-plane     # starts its own etcd, kube-apiserver, KCM, scheduler, kwok

The wheel installs this directory as the ``kuberay_operator`` package (``cmd`` would shadow the
standard library's module of that name).

Logs go to stdout (and to --log-file-path). A start-up failure is one line on stderr, prefixed
``kuberay-operator: ``. Exit status: 0 after a requested stop (SIGTERM/SIGINT); 2 on bad flags,
configuration or kubeconfig; 1 when the cluster is not ready for the operator (API server unreachable,
CRDs or RBAC missing), when ENABLE_WEBHOOKS=true finds no serving certificate, on a fatal error, or on a
lost leader lease.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if not __package__:  # run as a script from a source tree: make api/, controllers/, internal/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.config.v1alpha1 import Configuration, batch_scheduler, decode, set_defaults, validate
from controllers.ray import (
    networkpolicy_controller,
    raycluster_controller,
    raycronjob_controller,
    rayjob_controller,
    rayservice_controller,
    rbac,
)
from controllers.ray.raycluster_controller import RayClusterOptions
from controllers.ray.utils import constants as C
from controllers.ray.utils import dashboard
from internal import logging as oplog
from internal import startup, tracing
from internal.app import ControllerSetup, Options, run_operator
from internal.client import resources as res
from internal.features import DEFAULTS as FEATURE_DEFAULTS
from internal.features import FeatureGates
from internal.informer import ByObject
from internal.startup import Access, StartupError
from internal.webhook import CertificateError, WebhookServer
from pkg.webhooks import v1 as webhooks_v1

if TYPE_CHECKING:
    from internal.controlplane import ControlPlane

PROG = "kuberay-operator"
log = logging.getLogger("kuberay.main")

# Only the operator's own Jobs and Ray pods are cached, as upstream's cacheSelectors: memory must not
# grow with unrelated pods in the cluster.
JOB_SELECTOR = "app.kubernetes.io/created-by=kuberay-operator"
POD_SELECTOR = "ray.io/node-type in (head,worker,redis-cleanup)"

# The controllers of this build (names as in controllers/ray/rbac.py) and the CRDs they serve; those
# behind a feature gate (off by default) by gate.
CONTROLLERS = ("raycluster", "rayjob", "rayservice")
RAY_CRDS = ("rayclusters", "rayjobs", "rayservices")
# Gate → (controller, the ray.io CRD it serves, if any).
GATED_CONTROLLERS: dict[str, tuple[str, str | None]] = {
    "RayCronJob": ("raycronjob", "raycronjobs"),
    "RayClusterNetworkPolicy": ("networkpolicy", None),
}


def cache_selectors() -> dict[Any, ByObject]:
    return {res.JOBS: ByObject(label_selector=JOB_SELECTOR), res.PODS: ByObject(label_selector=POD_SELECTOR)}


@dataclass
class ClusterFacts:
    """What start-up learns about the cluster and the controllers are built with (never re-read)."""

    openshift: bool = False  # the API server serves one of OpenShift's groups


#: Any of these groups served means OpenShift (upstream's getClusterType).
OPENSHIFT_GROUPS = frozenset({"route.openshift.io", "security.openshift.io", "config.openshift.io"})


def controller_setups(
    dashboards: dashboard.DashboardClientFactory | None = None, facts: ClusterFacts | None = None
) -> list[ControllerSetup]:
    """Every controller of this build, in upstream's registration order. ``dashboards`` replaces the
    flag-chosen way of reaching Ray dashboards (tests, benchmarks); ``facts`` are filled by the
    start-up checks before the controllers are set up."""
    known = facts if facts is not None else ClusterFacts()

    def raycluster(rt: Any) -> list[Any]:
        # The Configuration's sidecars and pod defaults become the reconciler's options, as in main.go.
        options = RayClusterOptions.from_configuration(rt.config, rt.gates, openshift=known.openshift)
        return raycluster_controller.setup(rt, options)

    def rayjob(rt: Any) -> list[Any]:
        return rayjob_controller.setup(rt, None, dashboards)

    def rayservice(rt: Any) -> list[Any]:
        return rayservice_controller.setup(rt, None, dashboards)

    return [raycluster, rayjob, rayservice]


def gated_setups() -> list[ControllerSetup]:
    """The controllers behind feature gates, registered after the webhooks as in main.go; each logs
    whether its gate lets it start, in upstream's words."""

    def gated(gate: str, controller: str, setup: Callable[[Any], list[Any]]) -> ControllerSetup:
        def register(rt: Any) -> list[Any]:
            if not rt.gates.enabled(gate):
                log.info("%s feature gate is disabled, skipping %s controller setup", gate, controller)
                return []
            log.info("%s feature gate is enabled, starting %s controller", gate, controller)
            return setup(rt)

        return register

    return [
        gated("RayCronJob", "RayCronJob", raycronjob_controller.setup),
        gated("RayClusterNetworkPolicy", "NetworkPolicy", networkpolicy_controller.setup),
    ]


def webhook_setup(env: Mapping[str, str]) -> tuple[ControllerSetup, WebhookServer] | None:
    """The validating webhooks, registered after the controllers as in main.go, when ``ENABLE_WEBHOOKS``
    is exactly ``true`` (upstream's test: any other value leaves them off)."""
    if env.get(C.ENABLE_WEBHOOKS) != "true":
        return None
    server = WebhookServer()

    def setup(rt: Any) -> list[Any]:
        return webhooks_v1.setup(rt, server)

    return setup, server


# ---- flags -------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's multi-line usage dump; --help has the rest.
        self.exit(2, f"{PROG}: {message} (see --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Defaults that depend on something else (None) are described in the help text itself.
        if action.default is None or (isinstance(action.default, bool) and action.nargs == 0):
            return action.help
        if action.default == "":
            return f'{action.help} (default: "")'
        return super()._get_help_string(action)


def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "t"):
        return True
    if v.lower() in ("false", "0", "f"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {v!r}")


def _checked(parse: Any) -> Any:
    """An argparse type from one of internal.logging's parsers (their messages are zap's)."""

    def convert(value: str) -> str:
        try:
            parse(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value

    return convert


def _epilog() -> str:
    gates = "\n".join(f"  {name}={str(on).lower()}" for name, on in FEATURE_DEFAULTS.items())
    return f"feature gates (--feature-gates=Name=true|false,...) and their defaults:\n{gates}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    d = Configuration()
    p = _Parser(
        prog=PROG, description="The KubeRay operator, in Python.", epilog=_epilog(), formatter_class=_HelpFormatter
    )
    flag = p.add_argument

    def boolean(name: str, default: bool, help: str) -> None:
        # Go-style booleans: --flag, --flag=true, --flag=false
        flag(name, type=_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)

    flag("--metrics-addr", default=d.metricsAddr, help="metrics server bind address (0 disables)")
    flag("--health-probe-bind-address", default=d.probeAddr, help="/healthz and /readyz bind address")
    boolean("--enable-leader-election", d.enableLeaderElection, "elect a leader with a Lease (ray-operator-leader)")
    flag("--leader-election-namespace", default=d.leaderElectionNamespace, help="namespace of the leader Lease")
    flag("--reconcile-concurrency", type=int, default=d.reconcileConcurrency, help="workers per controller")
    flag("--watch-namespace", default=d.watchNamespace, help="comma-separated namespaces to watch (all if empty)")
    boolean("--forced-cluster-upgrade", False, "deprecated; has no effect")
    flag("--log-file-path", default=d.logFile, help="also write logs (info and above) to this file, rotated at 500 MB")
    flag("--log-file-encoder", default=d.logFileEncoder, choices=("json", "console"), help="encoder of the log file")
    flag("--log-stdout-encoder", default=d.logStdoutEncoder, choices=("json", "console"), help="encoder of stdout")
    boolean("--enable-batch-scheduler", d.enableBatchScheduler, "deprecated: same as --batch-scheduler=volcano")
    flag(
        "--batch-scheduler",
        default=d.batchScheduler,
        help="volcano, yunikorn, kai-scheduler or scheduler-plugins (none is ported yet: refused at start-up)",
    )
    flag("--config", default="", help="a Configuration file; when set, the other configuration flags are ignored")
    boolean("--use-kubernetes-proxy", d.useKubernetesProxy, "reach dashboards through the apiserver proxy")
    flag("--feature-gates", default="", help="Name=bool,... (the gates are listed below)")
    boolean("--enable-metrics", d.enableMetrics, "export the kuberay_* metrics")
    flag("--qps", type=float, default=d.qps, help="client-side QPS limit to the API server")
    flag("--burst", type=int, default=d.burst, help="client-side burst limit to the API server")
    flag(
        "--kubeconfig",
        default=None,
        help="kubeconfig path (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster ServiceAccount)",
    )
    flag(
        "--zap-log-level",
        type=_checked(oplog.parse_level),
        default=None,
        help="debug, info, error, or an integer verbosity > 0 (default: info; debug with --zap-devel)",
    )
    flag(
        "--zap-encoder",
        default=None,
        choices=("json", "console"),
        help="json or console; overrides --log-stdout-encoder (default: console with --zap-devel)",
    )
    boolean("--zap-devel", False, "development logging: console encoder, debug level, stack traces from warnings")
    flag(
        "--zap-stacktrace-level",
        type=_checked(oplog.parse_stacktrace_level),
        default=None,
        help="info, error or panic: the level from which log lines carry a stack trace (default: error)",
    )
    flag(
        "--zap-time-encoding",
        type=_checked(oplog.parse_time_encoding),
        default="iso8601",
        help=f"log timestamps: {', '.join(oplog.TIME_ENCODINGS)}",
    )
    flag(
        "--trace-exporter",
        default=None,
        choices=tracing.EXPORTERS,
        help="OpenTelemetry traces (default: $OTEL_TRACES_EXPORTER, else none)",
    )
    flag("--graceful-shutdown-timeout", type=float, default=30.0, help="seconds to finish in-flight reconciles")
    flag(
        "--local-control-plane",
        action="store_true",
        help="start a local etcd + kube-apiserver + KCM + scheduler + kwok on loopback and run against it",
    )
    return p.parse_args(argv)


def configuration(args: argparse.Namespace, warn: Any) -> Configuration:
    """The Configuration file when --config is given (the other flags are then ignored), else the flags."""
    if args.config:
        try:
            text = Path(args.config).read_text()
        except OSError as e:
            raise ValueError(f"cannot read --config file {args.config}: {e.strerror or e}") from None
        try:
            return decode(text, warn)
        except ValueError as e:
            raise ValueError(f"--config {args.config}: {e}") from None
    cfg = Configuration(
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
    set_defaults(cfg)
    validate(cfg)
    return cfg


def _feature_gates(spec: str) -> FeatureGates:
    try:
        return FeatureGates.parse(spec)
    except ValueError as e:
        raise ValueError(f"--feature-gates: {e}") from None


def refuse_batch_scheduler(cfg: Configuration, gates: FeatureGates, config_file: str = "") -> None:
    """Upstream's validation, then a refusal: no batch scheduler is ported, and silently running without
    the gang scheduling a user asked for would be worse than not starting."""
    try:
        name = batch_scheduler(cfg, gates.enabled("KubernetesWAS"))
    except ValueError as e:
        raise ValueError(f"batch scheduler configs validation failed: {e}") from None
    if not name:
        return
    if name == "kubernetes-was":
        chosen = "--feature-gates=KubernetesWAS=true"
    elif config_file:
        field = "enableBatchScheduler: true" if cfg.enableBatchScheduler else f"batchScheduler: {name}"
        chosen = f"{field} in {config_file}"
    elif cfg.enableBatchScheduler:
        chosen = f"--enable-batch-scheduler (= {name})"
    else:
        chosen = f"--batch-scheduler={name}"
    raise ValueError(f"{chosen}: batch schedulers are not supported by this build yet")


def log_options(args: argparse.Namespace, cfg: Configuration) -> oplog.LogOptions:
    """zap's flags over the resolved configuration's encoders: with --config, the file's
    logStdoutEncoder/logFileEncoder count (upstream v1.7.0 reads the flags there, a bug: kuberay#5309)."""
    devel = bool(args.zap_devel)
    encoder = args.zap_encoder or ("console" if devel else cfg.logStdoutEncoder)
    level = oplog.parse_level(args.zap_log_level or ("debug" if devel else "info"))
    stack = logging.WARNING if devel else logging.ERROR  # zap's development and production defaults
    if args.zap_stacktrace_level:
        stack = oplog.parse_stacktrace_level(args.zap_stacktrace_level)
    return oplog.LogOptions(
        encoder=encoder,
        level=level,
        stacktrace_level=stack,
        time_encoding=oplog.parse_time_encoding(args.zap_time_encoding),
        file_path=cfg.logFile,
        file_encoder=cfg.logFileEncoder,
    )


# ---- start-up checks ---------------------------------------------------------------------------------


def required_access(
    cfg: Configuration, leader_election_namespace: str, gates: FeatureGates | None = None
) -> tuple[list[Access], list[Access]]:
    """(needed to run at all, needed by some reconciles) from the controllers' declared permissions:
    list and watch of everything the informers cache, and the leader Lease, are fatal when missing;
    the rest is a warning. Grants declared with a reason (a gate, an optional integration) are skipped,
    except those of a gated controller whose gate is on."""
    scopes = cfg.watch_namespaces() or [""]
    enabled = [name for gate, (name, _) in GATED_CONTROLLERS.items() if gates is not None and gates.enabled(gate)]
    required: list[Access] = []
    wanted: list[Access] = []
    for name in (*CONTROLLERS, *enabled, "operator"):
        for perm in rbac.CONTROLLER_PERMISSIONS[name]:
            if perm.reason and name not in enabled:
                continue
            for resource in perm.resources:
                if (perm.group, resource) == ("coordination.k8s.io", "leases"):
                    if cfg.enableLeaderElection:
                        required += [Access(v, perm.group, resource, leader_election_namespace) for v in perm.verbs]
                    continue
                informed = "watch" in perm.verbs
                for verb in perm.verbs:
                    into = required if informed and verb in ("list", "watch") else wanted
                    into += [Access(verb, perm.group, resource, ns) for ns in scopes]
    return required, [a for a in wanted if a not in required]


async def preflight(opts: Options, facts: ClusterFacts | None = None) -> None:
    """Refuse to start, with advice, when the cluster is not ready for the operator; fill ``facts``."""
    client = await startup.connect(opts.kubeconfig)
    try:
        version = await startup.check_reachable(client)
        rayjob_controller.check_kubernetes_version(opts.gates, version)
        try:
            groups = await startup.served_groups(client)
        except StartupError as e:
            raise StartupError(f"unable to detect cluster type (OpenShift vs Kubernetes): {e}") from None
        if facts is not None:
            facts.openshift = bool(groups & OPENSHIFT_GROUPS)
        crds = [*RAY_CRDS, *(crd for gate, (_, crd) in GATED_CONTROLLERS.items() if crd and opts.gates.enabled(gate))]
        missing = await startup.missing_resources(client, "ray.io", "v1", crds)
        if missing == crds:
            raise StartupError("the ray.io CRDs are not installed: kubectl create -k config/crd")
        if missing:
            names = ", ".join(f"{m}.ray.io" for m in missing)
            raise StartupError(f"the {names} CRDs are not installed: kubectl apply --server-side -k config/crd")
        required, wanted = required_access(opts.config, opts.leader_election_namespace, opts.gates)
        lacking = await startup.denied(client, [*required, *wanted])
        who = await startup.identity(client) if lacking else ""
        fatal = [a for a in lacking if a in required]
        advice = (
            "grant the ClusterRole in config/rbac "
            "(kubectl create -k config/rbac binds it to the kuberay-operator ServiceAccount)"
        )
        if fatal:
            raise StartupError(f"{who} lacks RBAC permissions the operator needs: {startup.summarize(fatal)}; {advice}")
        if lacking:
            log.warning(
                "%s lacks RBAC permissions some reconciles need: %s; %s", who, startup.summarize(lacking), advice
            )
        log.info("start-up checks passed (Kubernetes %s at %s)", version, client.host)
    finally:
        await client.close()


# ---- main --------------------------------------------------------------------------------------------


def fail(message: object, code: int) -> int:
    """The one line a person reads on stderr (also logged, once logging is up)."""
    line = " ".join(str(message).split())
    if logging.getLogger().handlers:  # else logging's last-resort handler would print it on stderr too
        log.error("%s", line, extra={"_nostack": True})
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    warnings: list[str] = []
    try:
        cfg = configuration(args, warnings.append)
        gates = _feature_gates(args.feature_gates)
        refuse_batch_scheduler(cfg, gates, args.config)
        exporters = tracing.exporters(args.trace_exporter)
        log_opts = log_options(args, cfg)
    except ValueError as e:
        return fail(e, 2)
    try:
        oplog.configure(log_opts)
    except OSError as e:
        return fail(f"cannot open --log-file-path {cfg.logFile}: {e.strerror or e}", 2)
    for w in warnings:
        log.warning("%s", w)
    if args.forced_cluster_upgrade:
        log.info("--forced-cluster-upgrade is deprecated and has no effect")
    log.info("feature gates: %s", gates)
    tracing.setup(exporters)

    facts = ClusterFacts()
    setups = controller_setups(facts=facts)
    hooks = webhook_setup(os.environ)
    if hooks is not None:
        setups.append(hooks[0])
        try:
            hooks[1].check_certs()  # controller-runtime's manager refuses to start without them too
        except CertificateError as e:
            return fail(
                f"{C.ENABLE_WEBHOOKS}=true but the webhook server has no usable certificate: {e} "
                "(mount the Secret webhook-server-cert there, as config/overlays/webhooks does)",
                1,
            )
    setups += gated_setups()

    plane = None
    kubeconfig = args.kubeconfig
    if args.local_control_plane:
        try:
            plane = start_local_plane()
        except Exception as e:  # PlaneError, or a binary build that failed
            return fail(f"the local control plane did not start: {e}", 1)
        kubeconfig = str(plane.kubeconfig)
        # A local run serves metrics and probes on this machine only (upstream's ":8080" is every address).
        cfg.metricsAddr = _loopback(cfg.metricsAddr)
        cfg.probeAddr = _loopback(cfg.probeAddr)
        if hooks is not None:
            hooks[1].host = "127.0.0.1"
        if "local-node" in plane.processes:
            # The operator runs on the host, outside the pods' network and its names: it reaches the
            # Ray dashboards through the apiserver proxy, which reaches the pod addresses.
            cfg.useKubernetesProxy = True
    opts = Options(
        config=cfg,
        gates=gates,
        kubeconfig=kubeconfig,
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
        leader_election_namespace=cfg.leaderElectionNamespace or _pod_namespace(),
        setups=setups,
        cache_by_object=cache_selectors(),
    )
    try:
        return asyncio.run(_run(opts, facts))
    finally:
        if plane is not None:
            log.info("stopping the local control plane")
            plane.stop()


async def _run(opts: Options, facts: ClusterFacts | None = None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await preflight(opts, facts)
    except StartupError as e:
        return fail(e, e.exit_code)
    try:
        await run_operator(opts, stop)
    except Exception as e:
        errors = _flatten(e)
        for err in errors:
            log.error("operator stopped: %s: %s", type(err).__name__, err, exc_info=err)
        return fail(f"operator stopped: {type(errors[0]).__name__}: {errors[0]} (details in the log)", 1)
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


def _loopback(addr: str) -> str:
    return f"127.0.0.1{addr}" if addr.startswith(":") else addr


def start_local_plane() -> ControlPlane:
    """T2 plane on loopback with the CRDs installed before the garbage collector starts. As root, its
    node is the local node, which runs Ray pods as host processes; otherwise kwok's fake node."""
    import os

    from internal.controlplane import ControlPlane, build_binaries

    bin_dir = build_binaries()
    work = Path(tempfile.mkdtemp(prefix="kuberay-local-"))
    plane = ControlPlane(bin_dir=bin_dir, work_dir=work, pod_identities=True)
    plane.start()
    crds = sorted((Path(__file__).resolve().parents[1] / "config" / "crd" / "bases").glob("*.yaml"))
    if crds:
        plane.install_crds(crds)
    if os.geteuid() == 0:
        plane.start_sim(node="local")
    else:
        log.warning("not root: pods run on kwok's fake node (nothing runs); run as root for real Ray pods")
        plane.start_sim()
    print(
        f"\nlocal control plane ready. In another shell:\n  export KUBECONFIG={plane.kubeconfig}\n"
        "  kubectl apply -f config/samples/ray-job.sample.yaml\n  kubectl get rayjobs -w\n"
        "  python -m internal.controlplane.localnode exec <pod> -- ray status   # as root: inside a pod\n"
        f"(logs of the plane and the local node in {plane.log_dir}; Ctrl-C stops everything)\n",
        flush=True,
    )
    return plane


if __name__ == "__main__":
    sys.exit(main())
