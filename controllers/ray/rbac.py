"""The API permissions each controller declares it needs, and the RBAC manifests rendered from them.

This is the Python counterpart of kubebuilder's ``+kubebuilder:rbac`` markers: every controller lists
the (group, resources, verbs) it uses in a tuple of :class:`Permission` next to this module's other
declarations, and ``make manifests`` (``hack/gen_manifests.py``) renders them with :func:`render_rbac`
into ``config/rbac/``. Edit the tuples here, never the generated YAML.

Rendering follows controller-gen's normalisation so the output reads like upstream's ``role.yaml``:

1. every (group, resource) gets the union of the verbs declared for it by any controller;
2. resources of one group with the same verb set share a rule (resources sorted);
3. rules with the same resources and verbs in different groups share a rule (groups sorted), as
   controller-gen does for ``extensions`` and ``networking.k8s.io`` ingresses;
4. rules are sorted by (apiGroups, resources); verbs are sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

#: Every verb the Kubernetes authorizer knows for resource requests.
KNOWN_VERBS: Final = frozenset({"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"})

OPERATOR_NAME: Final = "kuberay-operator"
SERVICE_ACCOUNT_NAME: Final = OPERATOR_NAME
CLUSTER_ROLE_NAME: Final = OPERATOR_NAME
LEADER_ELECTION_ROLE_NAME: Final = "kuberay-operator-leader-election"
#: Placeholder namespace of the ServiceAccount subject; kustomize's namespace transformer rewrites it.
DEFAULT_NAMESPACE: Final = "default"

RBAC_API_VERSION: Final = "rbac.authorization.k8s.io/v1"
RBAC_GROUP: Final = "rbac.authorization.k8s.io"

_ALL = ("get", "list", "watch", "create", "update", "patch", "delete")
_READ = ("get", "list", "watch")
_STATUS = ("get", "update", "patch")


@dataclass(frozen=True, slots=True)
class Permission:
    """One ``+kubebuilder:rbac:groups=<group>,resources=<resources>,verbs=<verbs>`` marker.

    ``group`` is the API group (``""`` for the core group); ``resources`` may name subresources
    (``pods/status``). ``reason`` says why the grant may go unused in the test suite's audit (a feature
    gate, an optional integration, a controller not ported yet); a grant without one must be used.
    """

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.resources or any(not r or r != r.strip() for r in self.resources):
            raise ValueError(f"Permission({self.group!r}): resources must be non-empty names, got {self.resources!r}")
        if not self.verbs:
            raise ValueError(f"Permission({self.group!r}, {self.resources!r}): no verbs")
        unknown = sorted(set(self.verbs) - KNOWN_VERBS)
        if unknown:
            raise ValueError(f"Permission({self.group!r}, {self.resources!r}): unknown verbs {unknown}")


def _p(group: str, resources: str, verbs: Iterable[str], reason: str = "") -> Permission:
    """Marker-like shorthand: ``resources`` is ``;``-separated as in a kubebuilder marker."""
    return Permission(group, tuple(resources.split(";")), tuple(verbs), reason)


def _because(reason: str, permissions: Iterable[Permission]) -> tuple[Permission, ...]:
    """The same permissions, each with ``reason`` (a whole controller behind a gate, or not ported)."""
    return tuple(Permission(p.group, p.resources, p.verbs, p.reason or reason) for p in permissions)


# ---- declared needs, per controller -----------------------------------------------------------------

# Why a granted verb may go unused in the test suite's audit (test/support/rbac_audit.py). Grants are
# kept where upstream's role has them, so that replacing upstream's operator never loses a permission.
_AS_UPSTREAM = (
    "granted as upstream's role does; this operator does not use this verb (it reads from its cache or updates instead)"
)
_SERVICE_CACHE_MISS = (
    "Services are read from the cache; a GET happens only when a Service created a moment ago is not in it "
    "yet (the RayJob's head Service, a RayService Service whose create answered AlreadyExists)"
)
_FINALIZERS = (
    "owner references with blockOwnerDeletion need update on the owner's finalizers where the "
    "OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift); the test plane does not enable it"
)
_AUTOSCALER_ROLE = (
    "the autoscaler Role the operator creates grants this, and Kubernetes lets a user grant only what it holds "
    "(escalation check): exercised when that Role is created, never called directly"
)
_PROXY = (
    "--use-kubernetes-proxy: dashboards through the apiserver proxy; the test plane's pods have loopback IPs, "
    "which kube-apiserver refuses to proxy to"
)
_INGRESS_AS_UPSTREAM = (
    "granted as upstream's role does; the dashboard Ingress is read by name, created and updated, never listed, "
    "watched, patched or deleted (garbage collection removes it with its RayCluster)"
)
_INGRESS_UNUSED = "granted as upstream's role does: upstream declares it and never uses it"
_ROUTE = "headGroupSpec.enableIngress on OpenShift (a Route instead of the Ingress)"
_SERVICES_AS_UPSTREAM = _AS_UPSTREAM + "; owned Services go with their owner by garbage collection"
_LEASE_LIST = _AS_UPSTREAM + " (the lock reads its one Lease by name)"
_JOBS_USED = ("get", "list", "watch", "create", "delete")  # submitter and Redis-cleanup Jobs
_LEGACY_LOCK = (
    "upstream's leader-election Role (the legacy ConfigMap lock and core/v1 Events); "
    "this operator uses a Lease and events.k8s.io/v1"
)

#: RayCluster controller: pods and services of the cluster, the autoscaler's ServiceAccount, Role and
#: RoleBinding, the auth Secret, the GCS FT RocksDB PVC and Redis cleanup Job, Ingress or Route.
RAYCLUSTER_PERMISSIONS: Final[tuple[Permission, ...]] = (
    _p("ray.io", "rayclusters", ("get", "list", "watch", "create", "update", "delete")),
    _p("ray.io", "rayclusters", ("patch",), _AUTOSCALER_ROLE),
    _p("ray.io", "rayclusters/status", ("update",)),
    _p("ray.io", "rayclusters/status", ("get", "patch"), _AS_UPSTREAM),
    _p("ray.io", "rayclusters/finalizers", ("update",), _FINALIZERS),
    _p("", "pods", ("list", "watch", "create", "delete", "deletecollection")),
    _p("", "pods", ("get", "update"), _AS_UPSTREAM),
    _p("", "pods", ("patch",), _AUTOSCALER_ROLE),
    _p("", "pods/status", _ALL, _AS_UPSTREAM),
    _p("", "pods/resize", ("patch",), _AUTOSCALER_ROLE),
    _p("", "services", ("list", "watch", "create", "update")),
    _p("", "services", ("get",), _AS_UPSTREAM),
    _p("", "services", ("delete", "patch"), _SERVICES_AS_UPSTREAM),
    _p("", "services/status", _STATUS, _AS_UPSTREAM),
    _p("", "secrets", ("list", "watch")),
    _p(
        "",
        "secrets",
        ("get", "create"),
        "spec.authOptions token mode: the auth-token Secret (no integration test covers token auth yet)",
    ),
    _p("", "serviceaccounts", ("get", "create")),
    _p("", "serviceaccounts", ("list", "watch", "delete"), _AS_UPSTREAM),
    _p(
        "",
        "persistentvolumeclaims",
        ("get", "list", "watch", "create", "delete", "patch"),
        "gate GCSFaultToleranceEmbeddedStorage: the GCS RocksDB PVC (patch: ownerReference follows deletionPolicy)",
    ),
    _p("batch", "jobs", _JOBS_USED),
    _p("batch", "jobs", ("patch", "update"), _AS_UPSTREAM),
    _p("networking.k8s.io", "ingresses", ("get", "create", "update")),
    _p("networking.k8s.io", "ingresses", ("list", "watch", "patch", "delete"), _INGRESS_AS_UPSTREAM),
    _p("extensions", "ingresses", _ALL, _INGRESS_UNUSED + " (the extensions group no longer serves Ingresses)"),
    _p("networking.k8s.io", "ingressclasses", _READ, _INGRESS_UNUSED),
    _p("route.openshift.io", "routes", _ALL, _ROUTE),
    _p("rbac.authorization.k8s.io", "roles", ("get", "create")),
    _p("rbac.authorization.k8s.io", "roles", ("list", "watch", "update", "delete"), _AS_UPSTREAM),
    _p("rbac.authorization.k8s.io", "rolebindings", ("get", "create")),
    _p("rbac.authorization.k8s.io", "rolebindings", ("list", "watch", "delete"), _AS_UPSTREAM),
)

#: RayJob controller: its RayCluster, the submitter Job, the RayJob head service, the head pod, the
#: dashboard through the apiserver proxy (``--use-kubernetes-proxy``), and the ConfigMap that keeps the
#: driver log after the cluster is gone (this project's addition: looked up, then created once).
RAYJOB_PERMISSIONS: Final[tuple[Permission, ...]] = (
    _p("ray.io", "rayjobs", ("list", "watch", "patch", "delete")),
    _p("ray.io", "rayjobs", ("get", "create", "update"), _AS_UPSTREAM),
    _p("ray.io", "rayjobs/status", ("update", "patch")),
    _p("ray.io", "rayjobs/status", ("get",), _AS_UPSTREAM),
    _p("ray.io", "rayjobs/finalizers", ("update",), _FINALIZERS),
    _p("ray.io", "rayclusters", ("get", "list", "watch", "create", "update", "delete")),
    _p("ray.io", "rayclusters", ("patch",), _AS_UPSTREAM),
    _p("", "pods", ("list", "watch")),
    _p("", "pods", ("get",), _AS_UPSTREAM),
    _p("", "services", ("list", "watch", "create", "update")),
    _p("", "services", ("get",), _SERVICE_CACHE_MISS),
    _p("", "services", ("delete", "patch"), _SERVICES_AS_UPSTREAM),
    _p("batch", "jobs", _JOBS_USED),
    _p("batch", "jobs", ("patch", "update"), _AS_UPSTREAM),
    _p("", "pods/proxy", ("get", "update", "patch"), _PROXY),
    _p("", "services/proxy", ("get", "create", "update", "patch"), _PROXY),
    _p("", "configmaps", ("get", "create")),
)

#: RayService controller: its RayService (finalizer, status), the pending and active RayClusters, the
#: head Pods' ``ray.io/serve`` label, the head and serve Services, the serve Service's EndpointSlices,
#: dashboards and Serve proxies (optionally through the apiserver proxy), and the Gateway API objects of
#: incremental upgrades.
RAYSERVICE_PERMISSIONS: Final[tuple[Permission, ...]] = (
    _p("ray.io", "rayservices", ("list", "watch", "update")),
    _p("ray.io", "rayservices", ("get", "create", "patch", "delete"), _AS_UPSTREAM),
    _p("ray.io", "rayservices/status", ("update",)),
    _p("ray.io", "rayservices/status", ("get", "patch"), _AS_UPSTREAM),
    _p("ray.io", "rayservices/finalizers", ("update",), _FINALIZERS),
    _p("ray.io", "rayclusters", ("get", "list", "watch", "create", "update", "delete")),
    _p("ray.io", "rayclusters", ("patch",), _AS_UPSTREAM),
    _p("", "pods", ("list", "watch", "update")),
    _p("", "pods", ("get", "create", "patch", "delete"), _AS_UPSTREAM),
    _p("", "pods/status", _STATUS, _AS_UPSTREAM),
    _p("", "services", ("list", "watch", "create", "update", "delete")),
    _p("", "services", ("get",), _SERVICE_CACHE_MISS),
    _p("", "services", ("patch",), _SERVICES_AS_UPSTREAM),
    _p("", "services/status", _STATUS, _AS_UPSTREAM),
    _p("", "pods/proxy", ("get", "update", "patch"), _PROXY),
    _p("", "services/proxy", ("get", "create", "update", "patch"), _PROXY),
    _p("discovery.k8s.io", "endpointslices", ("list", "watch")),
    _p("discovery.k8s.io", "endpointslices", ("get",), _AS_UPSTREAM),
    _p("gateway.networking.k8s.io", "gateways;httproutes", ("get", "create")),
    _p("gateway.networking.k8s.io", "httproutes", ("update",)),
    _p(
        "gateway.networking.k8s.io",
        "gateways",
        ("update",),
        "repairs a Gateway whose class or listeners someone else changed (no integration test drifts one yet)",
    ),
    _p(
        "gateway.networking.k8s.io",
        "gateways;httproutes",
        ("list", "watch"),
        "granted as upstream's role does; Gateways and HTTPRoutes are read by name, never cached (their CRDs may "
        "be absent)",
    ),
    _p(
        "gateway.networking.k8s.io",
        "gateways;httproutes",
        ("delete",),
        "suspend of a NewClusterWithIncrementalUpgrade RayService (no integration test); otherwise GC deletes them",
    ),
)

#: RayCronJob controller (gate ``RayCronJob``): creates RayJobs from its template.
RAYCRONJOB_PERMISSIONS: Final[tuple[Permission, ...]] = _because(
    "gate RayCronJob (off by default)",
    (
        _p("ray.io", "raycronjobs", _ALL),
        _p("ray.io", "raycronjobs/status", _STATUS),
        _p("ray.io", "raycronjobs/finalizers", ("update",)),
        _p("ray.io", "rayjobs", _ALL),
    ),
)

#: NetworkPolicy controller (gate ``RayClusterNetworkPolicy``).
NETWORKPOLICY_PERMISSIONS: Final[tuple[Permission, ...]] = _because(
    "gate RayClusterNetworkPolicy (off by default)",
    (
        _p("ray.io", "rayclusters", _READ),
        _p("networking.k8s.io", "networkpolicies", ("get", "list", "watch", "create", "update", "delete")),
    ),
)

#: mTLS controller (gate ``RayClusterMTLS`` and cert-manager installed).
MTLS_PERMISSIONS: Final[tuple[Permission, ...]] = _because(
    "gate RayClusterMTLS with cert-manager (off by default; not ported yet)",
    (
        _p("ray.io", "rayclusters", _READ),
        _p("cert-manager.io", "certificates;issuers", ("get", "list", "watch", "create", "update", "delete")),
        _p("", "secrets", _READ),
    ),
)

#: The manager itself: leader election on a Lease (in any namespace given by
#: ``--leader-election-namespace``) and events.k8s.io/v1 Events from every controller's recorder.
OPERATOR_PERMISSIONS: Final[tuple[Permission, ...]] = (
    _p("coordination.k8s.io", "leases", ("get", "create", "update")),
    _p("coordination.k8s.io", "leases", ("list",), _LEASE_LIST),
    _p("events.k8s.io", "events", ("create", "patch")),
)

#: The namespaced Role bound in the operator's own namespace for leader election (upstream's
#: ``leader_election_role.yaml``): the Lease, the legacy ConfigMap lock, and the election events.
LEADER_ELECTION_PERMISSIONS: Final[tuple[Permission, ...]] = (
    _p("", "configmaps", ("get", "list", "watch", "create", "update", "patch", "delete"), _LEGACY_LOCK),
    _p("coordination.k8s.io", "leases", ("get", "create", "update")),
    _p("coordination.k8s.io", "leases", ("list",), _LEASE_LIST),
    _p("", "events", ("create", "patch"), _LEGACY_LOCK),
    _p("events.k8s.io", "events", ("create", "patch")),
)

#: Every controller's declared needs, by controller name (the order is irrelevant to the output).
CONTROLLER_PERMISSIONS: Final[Mapping[str, tuple[Permission, ...]]] = {
    "raycluster": RAYCLUSTER_PERMISSIONS,
    "rayjob": RAYJOB_PERMISSIONS,
    "rayservice": RAYSERVICE_PERMISSIONS,
    "raycronjob": RAYCRONJOB_PERMISSIONS,
    "networkpolicy": NETWORKPOLICY_PERMISSIONS,
    "mtls": MTLS_PERMISSIONS,
    "operator": OPERATOR_PERMISSIONS,
}


def unused_reasons() -> dict[tuple[str, str, str], str]:
    """(group, resource, verb) → why the grant may be unused. A grant that any declaration makes
    without a reason is needed by a running controller, so it gets none, whatever others say."""
    required: set[tuple[str, str, str]] = set()
    out: dict[tuple[str, str, str], str] = {}
    for perm in (*all_permissions(), *LEADER_ELECTION_PERMISSIONS):
        for resource in perm.resources:
            for verb in perm.verbs:
                key = (perm.group, resource, verb)
                if perm.reason:
                    out.setdefault(key, perm.reason)
                else:
                    required.add(key)
    return {key: why for key, why in out.items() if key not in required}


def all_permissions() -> tuple[Permission, ...]:
    """The permissions of the ClusterRole: every controller's declarations, in a fixed order."""
    return tuple(p for name in sorted(CONTROLLER_PERMISSIONS) for p in CONTROLLER_PERMISSIONS[name])


# ---- rendering ---------------------------------------------------------------------------------------


def effective_verbs(permissions: Iterable[Permission]) -> dict[tuple[str, str], frozenset[str]]:
    """(group, resource) → the union of the verbs declared for it."""
    out: dict[tuple[str, str], set[str]] = {}
    for perm in permissions:
        for resource in perm.resources:
            out.setdefault((perm.group, resource), set()).update(perm.verbs)
    return {key: frozenset(verbs) for key, verbs in out.items()}


def rules_for(permissions: Iterable[Permission]) -> list[dict[str, Any]]:
    """Normalised, deterministically ordered PolicyRules for ``permissions`` (see the module doc)."""
    by_group_verbs: dict[tuple[str, frozenset[str]], set[str]] = {}
    for (group, resource), verbs in effective_verbs(permissions).items():
        by_group_verbs.setdefault((group, verbs), set()).add(resource)
    by_resources_verbs: dict[tuple[tuple[str, ...], frozenset[str]], set[str]] = {}
    for (group, verbs), resources in by_group_verbs.items():
        by_resources_verbs.setdefault((tuple(sorted(resources)), verbs), set()).add(group)
    rules = [
        {"apiGroups": sorted(groups), "resources": list(resources), "verbs": sorted(verbs)}
        for (resources, verbs), groups in by_resources_verbs.items()
    ]
    rules.sort(key=lambda r: (r["apiGroups"], r["resources"], r["verbs"]))
    return rules


def expand_rules(rules: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], frozenset[str]]:
    """The inverse view of rendered rules: (group, resource) → verbs granted (for checks and tests)."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in out.items()}


def _meta(name: str) -> dict[str, Any]:
    # Namespaced objects carry no namespace: the kustomization that includes them sets it.
    return {"name": name}


def _subject() -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT_NAME, "namespace": DEFAULT_NAMESPACE}


def _binding(kind: str, name: str, role_kind: str, role_name: str) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": kind,
        "metadata": _meta(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role_name},
        "subjects": [_subject()],
    }


def render_rbac() -> dict[str, list[dict[str, Any]]]:
    """The generated RBAC manifests: file name relative to ``config/rbac/`` → its objects.

    Pure and deterministic: the same declarations always give equal output, in the same key order.
    """
    rules = rules_for(all_permissions())
    return {
        "role.yaml": [
            {
                "apiVersion": RBAC_API_VERSION,
                "kind": "ClusterRole",
                "metadata": _meta(CLUSTER_ROLE_NAME),
                "rules": rules,
            }
        ],
        "role_binding.yaml": [_binding("ClusterRoleBinding", CLUSTER_ROLE_NAME, "ClusterRole", CLUSTER_ROLE_NAME)],
        "leader_election_role.yaml": [
            {
                "apiVersion": RBAC_API_VERSION,
                "kind": "Role",
                "metadata": _meta(LEADER_ELECTION_ROLE_NAME),
                "rules": rules_for(LEADER_ELECTION_PERMISSIONS),
            }
        ],
        "leader_election_role_binding.yaml": [
            _binding("RoleBinding", LEADER_ELECTION_ROLE_NAME, "Role", LEADER_ELECTION_ROLE_NAME)
        ],
        "service_account.yaml": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(SERVICE_ACCOUNT_NAME)}
        ],
        # Single-namespace installs: the same rules in a Role bound in the operator's namespace. A Role
        # cannot grant cluster-scoped resources (ingressclasses), so those rules are inert there.
        "namespaced/role.yaml": [
            {
                "apiVersion": RBAC_API_VERSION,
                "kind": "Role",
                "metadata": _meta(CLUSTER_ROLE_NAME),
                "rules": rules_for(all_permissions()),
            }
        ],
        "namespaced/role_binding.yaml": [_binding("RoleBinding", CLUSTER_ROLE_NAME, "Role", CLUSTER_ROLE_NAME)],
    }


def render_chart_rules() -> dict[str, list[dict[str, Any]]]:
    """The rules the Helm chart (helm-chart/kuberay-operator) binds, as files under its ``files/``: the
    operator's (its ClusterRole, or a Role per watched namespace) and the leader election Role's."""
    return {
        "files/rules.yaml": [{"rules": rules_for(all_permissions())}],
        "files/leader-election-rules.yaml": [{"rules": rules_for(LEADER_ELECTION_PERMISSIONS)}],
    }
