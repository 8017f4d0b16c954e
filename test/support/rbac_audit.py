"""The operator's identity in tests, and what kube-apiserver's audit log says it did.

Tests run the KubeRay controllers as the ServiceAccount the project ships (``config/rbac/``, applied as
generated, bound in ``OPERATOR_NAMESPACE``), with a token from the TokenRequest API: never as admin.
The session plane records that user's requests at Metadata level; :class:`AuditLog` reads them as they
come, so a test fails on any 403 the operator got, and the session can list every (verb, group,
resource) the operator used against what the generated roles grant.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

REPO = Path(__file__).resolve().parents[2]
RBAC_DIR = REPO / "config" / "rbac"
OPERATOR_NAMESPACE = "kuberay-system"
SERVICE_ACCOUNT = "kuberay-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
# The generated manifests a user installs (config/rbac/kustomization.yaml's resources).
RBAC_FILES = (
    "service_account.yaml",
    "role.yaml",
    "role_binding.yaml",
    "leader_election_role.yaml",
    "leader_election_role_binding.yaml",
)
TOKEN_SECONDS = 24 * 3600

Grant = tuple[str, str, str]  # (API group, resource[/subresource], verb)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _collection(obj: Mapping[str, Any], namespace: str) -> str:
    group_version, kind = obj["apiVersion"], obj["kind"]
    plural = {"ServiceAccount": "serviceaccounts"}.get(kind) or kind.lower() + "s"
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    if kind.startswith("Cluster"):
        return f"{prefix}/{plural}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def request_token(plane: Any, namespace: str, service_account: str) -> str:
    """A token for the ServiceAccount from the TokenRequest API, valid for a day."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": TOKEN_SECONDS},
    }
    r = plane.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token", body)
    assert r.status == 201, f"TokenRequest for {namespace}/{service_account}: HTTP {r.status} {r.body[:300]!r}"
    return str(r.json()["status"]["token"])


def install_operator_identity(plane: Any, work_dir: Path, namespace: str = OPERATOR_NAMESPACE) -> Path:
    """Apply the generated RBAC for the operator's ServiceAccount in ``namespace`` (as kustomize's
    namespace transformer would) and write a kubeconfig that authenticates with its token."""
    r = plane.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    assert r.status in (201, 409), r.body
    for name in RBAC_FILES:
        for doc in _docs(RBAC_DIR / name):
            obj = copy.deepcopy(doc)
            if not obj["kind"].startswith("Cluster"):
                obj["metadata"]["namespace"] = namespace
            for subject in obj.get("subjects") or ():
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = namespace
            r = plane.request("POST", _collection(obj, namespace), obj)
            assert r.status in (201, 409), f"{name}: HTTP {r.status} {r.body[:300]!r}"
    token = request_token(plane, namespace, SERVICE_ACCOUNT)
    admin = yaml.safe_load(Path(plane.kubeconfig).read_text())
    cluster = admin["clusters"][0]
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": cluster["name"], "user": SERVICE_ACCOUNT}}],
        "current-context": "operator",
    }
    path = work_dir / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


def granted() -> dict[Grant, str]:
    """Every (group, resource, verb) the generated ClusterRole and leader-election Role grant, with the
    role that grants it."""
    out: dict[Grant, str] = {}
    for name in ("role.yaml", "leader_election_role.yaml"):
        for doc in _docs(RBAC_DIR / name):
            for rule in doc.get("rules") or ():
                for g in rule.get("apiGroups") or ():
                    for res in rule.get("resources") or ():
                        for verb in rule.get("verbs") or ():
                            out.setdefault((g, res, verb), f"{doc['kind']} {doc['metadata']['name']}")
    return out


@dataclass
class AuditLog:
    """Reads the audit log incrementally; keeps what ``user`` used and the 403s it got."""

    path: Path
    user: str = OPERATOR_USER
    uses: dict[Grant, int] = field(default_factory=dict)
    non_resource: dict[str, int] = field(default_factory=dict)
    _offset: int = 0
    _seen: set[str] = field(default_factory=set)
    _forbidden: list[str] = field(default_factory=list)

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        for line in data[:end].splitlines():
            if line:
                self._record(orjson.loads(line))

    def _record(self, ev: Mapping[str, Any]) -> None:
        if (ev.get("user") or {}).get("username") != self.user:
            return
        audit_id = ev.get("auditID", "")
        if audit_id in self._seen:  # a watch logs ResponseStarted and ResponseComplete
            return
        self._seen.add(audit_id)
        ref, verb = ev.get("objectRef"), ev.get("verb", "")
        code = (ev.get("responseStatus") or {}).get("code")
        if ref is None:
            what = f"{verb} {ev.get('requestURI', '')}"
            self.non_resource[what] = self.non_resource.get(what, 0) + 1
        else:
            resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            key = (ref.get("apiGroup", ""), resource, verb)
            self.uses[key] = self.uses.get(key, 0) + 1
            what = f"{verb} {ref.get('apiGroup') or 'core'}/{resource} {ref.get('namespace', '')}/{ref.get('name', '')}"
        # Only the authorizer's refusals count: admission also answers 403 (e.g. new objects in a
        # namespace being deleted), and that is not a missing permission.
        if code == 403 and (ev.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid":
            self._forbidden.append(f"403 Forbidden for {self.user}: {what} ({ev.get('requestURI', '')})")

    def take_forbidden(self) -> list[str]:
        self.poll()
        out, self._forbidden = self._forbidden, []
        return out

    def used(self, grant: Grant) -> bool:
        group, resource, verb = grant
        return any((g, r, v) == grant or (g == group and r == resource and verb == "*") for (g, r, v) in self.uses)


def unused_grants(log: AuditLog, grants: Iterable[Grant]) -> list[Grant]:
    return sorted(g for g in grants if not log.used(g))


def summary(log: AuditLog, grants: Mapping[Grant, str], reasons: Mapping[Grant, str]) -> str:
    """A human-readable table: every grant, used (with the count) or not (with its declared reason)."""
    lines = [f"RBAC audit for {log.user}", ""]
    used = unused = 0
    for grant in sorted(grants):
        g, r, v = grant
        count = log.uses.get(grant, 0)
        if count:
            used += 1
            lines.append(f"used     {v:16} {g or 'core'}/{r}  ({count} requests)")
        else:
            unused += 1
            lines.append(f"UNUSED   {v:16} {g or 'core'}/{r}  -- {reasons.get(grant) or 'NO REASON DECLARED'}")
    extra = sorted(k for k in log.uses if k not in grants)
    for g, r, v in extra:
        # Self-reviews are allowed to every authenticated user (ClusterRole system:basic-user).
        why = "allowed to every authenticated user" if r.startswith("selfsubject") else "NOT GRANTED"
        lines.append(f"{why}: {v} {g or 'core'}/{r} ({log.uses[(g, r, v)]} requests)")
    lines += ["", f"{used} of {len(grants)} granted (group, resource, verb) used; {unused} unused"]
    lines += [f"non-resource: {k} ({n})" for k, n in sorted(log.non_resource.items())]
    return "\n".join(lines) + "\n"
