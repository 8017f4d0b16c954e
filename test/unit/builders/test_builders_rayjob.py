"""Golden-file and unit tests for the RayJob builders (controllers.ray.common.job; spec §3.4-§3.8, §3.14,
§13 Q12, §15.2, §15.6).

Every ``testdata/rayjob_cases/rayjob_<case>.input.yaml`` holds a RayJob (with the status the controller
has persisted by the time it builds objects) plus the operator environment and feature gates; the
matching ``.golden.yaml`` holds what the builders produce for it. The cases live in a subdirectory so
that the RayCluster golden test (``test_builders_golden.py``, which globs ``testdata/*.input.yaml``)
does not pick them up. ``UPDATE_GOLDEN=1`` rewrites the golden files (same helper and header as the
RayCluster golden test); review every rewritten file by hand against the spec.

Input keys (all optional except ``rayjob``):
  description, covers   documentation only
  rayjob                the RayJob (plain dict, as decoded from JSON)
  cluster               an existing RayCluster (clusterSelector mode); otherwise the constructed one is used
  env                   operator env switches (§7.3), e.g. {ENABLE_LOGIN_SHELL: "true"}
  features              feature gates, e.g. {SidecarSubmitterRestart: true}
  dashboard_address     what the controller passes to build_submitter_job (default: status.dashboardURL)

Golden keys: ``ray_cluster`` (or ``ray_cluster_error``) when the RayJob has a rayClusterSpec and no
clusterSelector; ``submitter_job`` (or ``submitter_job_error``) in K8sJobMode; ``http_request`` (or
``http_request_error``), the HTTPMode POST body, for every case.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.ray.common import job as J
from controllers.ray.utils import constants as C
from controllers.ray.utils.dashboard import RayJobRequest

HERE = Path(__file__).parent
CASE_DIR = HERE / "testdata" / "rayjob_cases"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in CASE_DIR.glob("rayjob_*.input.yaml"))
BASH = shutil.which("bash")


def _load_golden_helpers() -> Any:
    """The RayCluster golden test module (for its ``dump`` header/format and ``UPDATE`` switch)."""
    spec = importlib.util.spec_from_file_location("_rayjob_golden_helpers", HERE / "test_builders_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_GOLDEN = _load_golden_helpers()
UPDATE: bool = _GOLDEN.UPDATE


def build_all(case: dict[str, Any]) -> dict[str, Any]:
    """Every object (or builder error) the RayJob controller derives from the case's RayJob."""
    rayjob = case["rayjob"]
    env = case.get("env") or {}
    features = case.get("features")
    spec = rayjob.get("spec") or {}
    status = rayjob.get("status") or {}
    mode = J.submission_mode(rayjob)
    out: dict[str, Any] = {}

    cluster = case.get("cluster")
    if spec.get("rayClusterSpec") and not spec.get("clusterSelector"):
        name = status.get("rayClusterName", "")
        try:
            cluster = J.construct_ray_cluster_for_rayjob(rayjob, name, env=env, features=features)
            out["ray_cluster"] = cluster
        except J.SubmitterBuildError as e:
            out["ray_cluster_error"] = str(e)
    if mode == C.JobSubmissionMode.K8S_JOB_MODE and cluster is not None:
        address = case.get("dashboard_address", status.get("dashboardURL", ""))
        try:
            out["submitter_job"] = J.build_submitter_job(rayjob, cluster, address, env=env)
        except J.SubmitterBuildError as e:
            out["submitter_job_error"] = str(e)
    try:
        out["http_request"] = J.ray_job_request(rayjob).to_json()
    except ValueError as e:
        out["http_request_error"] = str(e)
    return out


def _load_case(name: str) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load((CASE_DIR / f"{name}.input.yaml").read_text())
    return case


# ---- golden files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    objects = build_all(_load_case(name))
    golden_path = CASE_DIR / f"{name}.golden.yaml"
    rendered = _GOLDEN.dump(f"rayjob_cases/{name}", objects)
    if UPDATE:
        golden_path.write_text(rendered)
        return
    assert golden_path.exists(), f"missing {golden_path.name}; run with UPDATE_GOLDEN=1 and review it"
    expected = yaml.safe_load(golden_path.read_text())
    actual = yaml.safe_load(rendered)
    assert actual == expected, f"{name}: builder output differs from {golden_path.name}"


def test_every_input_has_a_golden_file() -> None:
    assert len(CASES) >= 10, CASES
    if UPDATE:
        return
    assert not [n for n in CASES if not (CASE_DIR / f"{n}.golden.yaml").exists()]
    orphans = [p.name for p in CASE_DIR.glob("*.golden.yaml") if p.name.removesuffix(".golden.yaml") not in CASES]
    assert not orphans, f"golden files without input: {orphans}"


def test_rayjob_cases_are_invisible_to_the_raycluster_golden_test() -> None:
    assert not list((HERE / "testdata").glob("rayjob_*.input.yaml"))


def test_builders_do_not_mutate_their_input() -> None:
    for name in CASES:
        case = _load_case(name)
        before = yaml.safe_dump(case)
        build_all(case)
        assert yaml.safe_dump(case) == before, name


# ---- structural invariants over every case -------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_submitter_job_invariants(name: str) -> None:
    case = _load_case(name)
    job = build_all(case).get("submitter_job")
    if job is None:
        pytest.skip("no submitter Job in this case")
    rayjob = case["rayjob"]
    meta = rayjob["metadata"]
    want_labels = {
        "ray.io/originated-from-cr-name": meta["name"],
        "ray.io/originated-from-crd": "RayJob",
        "app.kubernetes.io/created-by": "kuberay-operator",  # Q12: the informer cache filters on it
    }
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == meta["name"]
    assert job["metadata"]["labels"] == want_labels
    assert want_labels.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    i = len(names) - 1 - names[::-1].index("PYTHONUNBUFFERED")
    assert names[i : i + 3] == ["PYTHONUNBUFFERED", "RAY_DASHBOARD_ADDRESS", "RAY_JOB_SUBMISSION_ID"]
    assert env[i + 2].get("value", "") == rayjob["status"].get("jobId", "")


@pytest.mark.parametrize("name", CASES)
def test_cluster_invariants(name: str) -> None:
    case = _load_case(name)
    cluster = build_all(case).get("ray_cluster")
    if cluster is None:
        pytest.skip("no RayCluster built in this case")
    rayjob = case["rayjob"]
    meta = rayjob["metadata"]
    mode = J.submission_mode(rayjob)
    labels = cluster["metadata"]["labels"]
    assert labels["ray.io/originated-from-cr-name"] == meta["name"]
    assert labels["ray.io/originated-from-crd"] == "RayJob"
    assert labels["ray.io/job-submission-mode"] == mode
    assert cluster["metadata"]["name"] == rayjob["status"]["rayClusterName"]
    assert cluster["metadata"]["ownerReferences"][0]["controller"] is True
    head_spec = cluster["spec"]["headGroupSpec"]["template"]["spec"]
    user_head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    if mode == C.JobSubmissionMode.SIDECAR_MODE:
        assert cluster["metadata"]["annotations"]["ray.io/disable-provisioned-head-restart"] == "true"
        assert head_spec["restartPolicy"] == "Never"
        assert head_spec["containers"][:-1] == user_head["containers"]
        assert head_spec["containers"][-1]["name"] == "ray-job-submitter"
    else:
        assert cluster["spec"] == rayjob["spec"]["rayClusterSpec"]
        assert "ray.io/disable-provisioned-head-restart" not in cluster["metadata"].get("annotations", {})


# ---- the generated shell script ------------------------------------------------------------------------


def _scripts() -> list[tuple[str, str]]:
    """(id, script) for every generated submit script in the golden cases."""
    found: list[tuple[str, str]] = []
    for name in CASES:
        objects = build_all(_load_case(name))
        pods = []
        if "submitter_job" in objects:
            pods.append(objects["submitter_job"]["spec"]["template"]["spec"])
        if "ray_cluster" in objects:
            pods.append(objects["ray_cluster"]["spec"]["headGroupSpec"]["template"]["spec"])
        for pod in pods:
            for c in pod["containers"]:
                if c.get("command", [None])[0] == "/bin/bash" and c.get("args"):
                    found.append((f"{name}:{c['name']}", c["args"][0]))
    return found


SCRIPTS = _scripts()
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def test_every_submitter_mode_case_has_a_script() -> None:
    ids = {i.split(":")[0] for i, _ in SCRIPTS}
    assert {"rayjob_minimal", "rayjob_sidecar_mode", "rayjob_sidecar_submitter_restart"} <= ids


@needs_bash
@pytest.mark.parametrize(("case_id", "script"), SCRIPTS, ids=[i for i, _ in SCRIPTS])
def test_generated_script_is_valid_bash(case_id: str, script: str) -> None:
    assert BASH is not None
    result = subprocess.run([BASH, "-n", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{case_id}: {result.stderr}"


# Stubs for the commands the script runs: ``python`` (the GCS health probe) succeeds at once; ``ray``
# records its argv NUL-separated (records separated by \x01) and answers ``ray job status`` with
# $STATUS_RC, so both branches of the resubmission guard can be driven.
_STUBS = r"""
python() { return 0; }
ray() {
  { printf '%s\0' "$@"; printf '\001'; } >> "$RAY_LOG"
  if [ "$2" = status ]; then return "$STATUS_RC"; fi
  return 0
}
"""


def _run_script(script: str, tmp_path: Path, status_rc: int) -> list[list[str]]:
    assert BASH is not None
    log = tmp_path / f"ray-{status_rc}.log"
    log.write_bytes(b"")
    result = subprocess.run(
        [BASH, "-ce", "--", _STUBS + script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RAY_LOG": str(log), "STATUS_RC": str(status_rc)},
    )
    assert result.returncode == 0, result.stderr
    calls = []
    for record in log.read_bytes().split(b"\x01")[:-1]:
        calls.append([a.decode() for a in record.split(b"\0")[:-1]])
    return calls


RUNTIME_ENV_YAML = (
    "pip:\n  - requests==2.26.0\n"
    "env_vars:\n"
    "  QUOTED: 'say \"hi\" \\ bye'\n"
    '  NEWLINE: "a\\nb\\tc"\n'
    '  UNICODE: "caf\u00e9 \u2603"\n'
    '  HTML: "<b>&</b>"\n'
    "working_dir: s3://bucket/code.zip\n"
)


def _k8s_rayjob(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": "exec", "namespace": "default", "uid": "exec-uid"},
        "spec": {
            "entrypoint": "python main.py --name 'two words'",
            "rayClusterSpec": {
                "rayVersion": "2.46.0",
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.46.0"}]}},
                },
            },
            **spec,
        },
        "status": {"jobId": "exec-abcde", "rayClusterName": "exec-fghjk"},
    }


@needs_bash
def test_k8s_script_submits_once_then_follows_logs(tmp_path: Path) -> None:
    rayjob = _k8s_rayjob(
        runtimeEnvYAML=RUNTIME_ENV_YAML,
        metadata={"owner": 'o"b', "tag": "<x>"},
        entrypointNumCpus=1,
        entrypointNumGpus=0.5,
        entrypointResources='{"custom": 1, "quote\\"d": 2}',
    )
    addr = "http://exec-fghjk-head-svc.default.svc.cluster.local:8265"
    script = J.join_command(J.get_k8s_job_command(rayjob, addr.removeprefix("http://")))

    status, submit, logs = _run_script(script, tmp_path, status_rc=1)
    assert status == ["job", "status", "--address", addr, "exec-abcde"]
    assert logs == ["job", "logs", "--address", addr, "--follow", "exec-abcde"]
    assert submit[:5] == ["job", "submit", "--address", addr, "--no-wait"]
    flags = dict(zip(submit[5 : submit.index("--") : 2], submit[6 : submit.index("--") : 2], strict=True))
    assert json.loads(flags["--runtime-env-json"]) == {
        "env_vars": {
            "HTML": "<b>&</b>",
            "NEWLINE": "a\nb\tc",
            "QUOTED": 'say "hi" \\ bye',
            "UNICODE": "caf\u00e9 \u2603",
        },
        "pip": ["requests==2.26.0"],
        "working_dir": "s3://bucket/code.zip",
    }
    assert json.loads(flags["--metadata-json"]) == {"owner": 'o"b', "tag": "<x>"}
    assert flags["--submission-id"] == "exec-abcde"
    assert flags["--entrypoint-num-cpus"] == "1.000000"
    assert flags["--entrypoint-num-gpus"] == "0.500000"
    assert json.loads(flags["--entrypoint-resources"]) == {"custom": 1, 'quote"d': 2}
    assert submit[submit.index("--") + 1 :] == ["python", "main.py", "--name", "two words"]

    # A retried submitter pod: the job already exists, so it only follows the logs (kuberay#2154).
    assert _run_script(script, tmp_path, status_rc=0) == [status, logs]


@needs_bash
def test_sidecar_script_submits_and_waits_without_guard(tmp_path: Path) -> None:
    rayjob = _k8s_rayjob(submissionMode="SidecarMode", runtimeEnvYAML=RUNTIME_ENV_YAML)
    script = J.join_command(J.build_job_submit_command(rayjob, "SidecarMode"))
    (submit,) = _run_script(script, tmp_path, status_rc=1)
    assert submit[:5] == ["job", "submit", "--address", "http://127.0.0.1:8265", "--runtime-env-json"]
    assert "--no-wait" not in submit
    assert json.loads(submit[5])["env_vars"]["QUOTED"] == 'say "hi" \\ bye'

    guarded = J.join_command(
        J.build_job_submit_command(rayjob, "SidecarMode", features={"SidecarSubmitterRestart": True})
    )
    status, submit, logs = _run_script(guarded, tmp_path, status_rc=1)
    assert status[:2] == ["job", "status"] and logs[:2] == ["job", "logs"]
    assert "--no-wait" in submit


# Any runtime env whose strings avoid what breaks upstream's quoting too survives Go JSON + strconv.Quote
# + bash and reaches `ray job submit` unchanged. Excluded, as upstream: $ and ` (bash expands them inside
# double quotes), DEL (strconv.Quote writes \x7f, not a JSON escape) and non-printable runes above U+FFFF
# (\UXXXXXXXX, not a JSON escape either); so the alphabet is the BMP without those three characters.
_SHELL_SAFE_TEXT = st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs",), blacklist_characters="$`\x7f"),
    max_size=12,
)
_RUNTIME_ENVS = st.dictionaries(
    _SHELL_SAFE_TEXT,
    st.one_of(_SHELL_SAFE_TEXT, st.integers(-(2**40), 2**40), st.booleans(), st.lists(_SHELL_SAFE_TEXT, max_size=3)),
    max_size=4,
)


@needs_bash
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runtime_env=_RUNTIME_ENVS, metadata=st.dictionaries(_SHELL_SAFE_TEXT, _SHELL_SAFE_TEXT, max_size=3))
def test_runtime_env_and_metadata_survive_the_shell(
    tmp_path: Path, runtime_env: dict[str, Any], metadata: dict[str, str]
) -> None:
    source = json.dumps(runtime_env)  # JSON is YAML; every string is quoted, so no scalar re-typing
    rayjob = _k8s_rayjob(runtimeEnvYAML=source, metadata=metadata)
    script = J.join_command(J.get_k8s_job_command(rayjob, "h:1"))
    _, submit, _ = _run_script(script, tmp_path, status_rc=1)
    flags = submit[: submit.index("--")]
    if source.strip() and runtime_env:
        assert json.loads(flags[flags.index("--runtime-env-json") + 1]) == runtime_env
    if metadata:
        assert json.loads(flags[flags.index("--metadata-json") + 1]) == metadata


# ---- the submit command, token by token ----------------------------------------------------------------


def test_k8s_command_tokens_match_upstream_layout() -> None:
    rayjob = _k8s_rayjob()
    tokens = J.get_k8s_job_command(rayjob, "svc.ns.svc.cluster.local:8265")
    addr = "http://svc.ns.svc.cluster.local:8265"
    health = (
        "python -c \"import urllib.request; r=urllib.request.urlopen('"
        + addr
        + "/api/gcs_healthz', timeout=10); exit(0 if b'success' in r.read() else 1)\""
    )
    assert tokens == [
        "until", health, ">/dev/null", "2>&1", ";",
        "do", "echo", f'"Waiting for Ray Dashboard GCS to become healthy at {addr} ..."', ";", "sleep", "2", ";",
        "done", ";",
        "if", "!", "ray", "job", "status", "--address", addr, "exec-abcde", ">/dev/null", "2>&1", ";", "then",
        "ray", "job", "submit", "--address", addr, "--no-wait", "--submission-id", "exec-abcde",
        "--", "python main.py --name 'two words'", ";",
        "fi", ";", "ray", "job", "logs", "--address", addr, "--follow", "exec-abcde",
    ]  # fmt: skip


def test_sidecar_command_uses_loopback_and_localhost_health() -> None:
    rayjob = _k8s_rayjob(submissionMode="SidecarMode")
    containers = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    containers[0]["ports"] = [{"name": "dashboard", "containerPort": 9999}]
    tokens = J.build_job_submit_command(rayjob, "SidecarMode")
    assert "http://localhost:9999/api/gcs_healthz" in tokens[1]
    assert tokens[-3:] == ["--", "python main.py --name 'two words'", ";"]
    assert tokens[tokens.index("submit") + 1 : tokens.index("submit") + 3] == ["--address", "http://127.0.0.1:9999"]
    assert "if" not in tokens and "logs" not in tokens


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("h:8265", "http://h:8265"),
        ("http://h:8265", "http://h:8265"),
        ("https://h:8265", "http://https://h:8265"),  # upstream only checks for the "http://" prefix
    ],
)
def test_dashboard_address_gets_http_prefix(address: str, expected: str) -> None:
    tokens = J.get_k8s_job_command(_k8s_rayjob(), address)
    assert tokens[tokens.index("submit") + 2] == expected


def test_dashboard_address_falls_back_to_status() -> None:
    rayjob = _k8s_rayjob()
    rayjob["status"]["dashboardURL"] = "from-status:8265"
    tokens = J.get_k8s_job_command(rayjob, "")
    assert tokens[tokens.index("submit") + 2] == "http://from-status:8265"


@pytest.mark.parametrize("mode", ["HTTPMode", "InteractiveMode", "Bogus"])
def test_modes_without_a_submit_command(mode: str) -> None:
    with pytest.raises(J.SubmitterBuildError, match=f"unsupported submission mode for job submit command: {mode}"):
        J.build_job_submit_command(_k8s_rayjob(), mode)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1.000000"),
        (0.5, "0.500000"),
        (0.1, "0.100000"),
        (2.0000005, "2.000000"),  # float32(2.0000005) = 2.00000047...; float64 would give 2.000001
        (1e-7, "0.000000"),
        (12345.678, "12345.677734"),  # the float32 value printed exactly, like Go's %f
    ],
)
def test_entrypoint_num_cpus_is_go_percent_f_of_float32(value: float, text: str) -> None:
    tokens = J.get_k8s_job_command(_k8s_rayjob(entrypointNumCpus=value), "h:1")
    assert tokens[tokens.index("--entrypoint-num-cpus") + 1] == text


@pytest.mark.parametrize("value", [0, -1, 0.0, None, True, "2"])
def test_entrypoint_num_gpus_only_when_positive(value: Any) -> None:
    assert "--entrypoint-num-gpus" not in J.get_k8s_job_command(_k8s_rayjob(entrypointNumGpus=value), "h:1")


def test_entrypoint_is_trimmed_with_go_whitespace() -> None:
    tokens = J.get_k8s_job_command(_k8s_rayjob(entrypoint="\u00a0 \t python x.py\n\u3000"), "h:1")
    assert tokens[tokens.index("--") + 1] == "python x.py"
    tokens = J.get_k8s_job_command(_k8s_rayjob(entrypoint="\x1cpython x.py"), "h:1")
    assert tokens[tokens.index("--") + 1] == "\x1cpython x.py"  # not a Go space


def test_login_shell_changes_only_the_container_command() -> None:
    rayjob = _k8s_rayjob()
    plain = J.build_submitter_command(rayjob, "K8sJobMode", dashboard_address="h:1")
    login = J.build_submitter_command(rayjob, "K8sJobMode", dashboard_address="h:1", env={"ENABLE_LOGIN_SHELL": "true"})
    assert plain[0] == ["/bin/bash", "-ce", "--"]
    assert login[0] == ["/bin/bash", "-cel", "--"]
    assert plain[1] == login[1] == [J.join_command(J.get_k8s_job_command(rayjob, "h:1"))]


# ---- metadata and its rayVersion gate -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ray_version", "error"),
    [
        ("", None),
        ("2.6.0", None),
        ("2.46.0", None),
        ("v2.7", None),
        ("3", None),
        ("2.6.0+build.1", None),
        ("2.5.9", "the Ray version must be at least 2.6.0 to use the metadata field"),
        ("2.7.0-rc1", "the Ray version must be at least 2.6.0 to use the metadata field"),
        ("latest", "failed to parse Ray version: latest: Invalid Semantic Version"),
        ("2.9.0-py311", "the Ray version must be at least 2.6.0 to use the metadata field"),
    ],
)
def test_metadata_ray_version_gate(ray_version: str, error: str | None) -> None:
    rayjob = _k8s_rayjob(metadata={"b": "2", "a": "<1>"})
    rayjob["spec"]["rayClusterSpec"]["rayVersion"] = ray_version
    if error is None:
        assert J.get_metadata_json_for_submit_command(rayjob) == '{"a":"\\u003c1\\u003e","b":"2"}'
        tokens = J.get_k8s_job_command(rayjob, "h:1")
        assert tokens[tokens.index("--metadata-json") + 1] == '"{\\"a\\":\\"\\\\u003c1\\\\u003e\\",\\"b\\":\\"2\\"}"'
    else:
        with pytest.raises(J.SubmitterBuildError, match=error.replace("+", r"\+")):
            J.get_k8s_job_command(rayjob, "h:1")


def test_metadata_without_cluster_spec_is_not_gated() -> None:
    rayjob = _k8s_rayjob(metadata={"a": "1"}, clusterSelector={"ray.io/cluster": "c"})
    del rayjob["spec"]["rayClusterSpec"]
    assert J.get_metadata_json_for_submit_command(rayjob) == '{"a":"1"}'


def test_empty_metadata_adds_no_flag() -> None:
    assert "--metadata-json" not in J.get_k8s_job_command(_k8s_rayjob(metadata={}), "h:1")


# ---- Go strconv.Quote ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("", '""'),
        ("abc", '"abc"'),
        ('{"a":1}', '"{\\"a\\":1}"'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\tnl\ncr\r", '"tab\\tnl\\ncr\\r"'),
        ("\a\b\f\v", '"\\a\\b\\f\\v"'),
        ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
        ("caf\u00e9 \u2603 \U0001f600", '"caf\u00e9 \u2603 \U0001f600"'),  # printable runes kept
        ("nbsp\u00a0shy\u00ad", '"nbsp\\u00a0shy\\u00ad"'),
        ("\u2028", '"\\u2028"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("$HOME `x`", '"$HOME `x`"'),
    ],
)
def test_go_quote(raw: str, quoted: str) -> None:
    assert J.go_quote(raw) == quoted


# ---- runtimeEnvYAML -> JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("pip: [a, b]\nenv_vars: {B: '1', A: x}\n", '{"env_vars":{"A":"x","B":"1"},"pip":["a","b"]}'),
        ("z: 1\na: 2\nm: {x: 1, b: 2}\n", '{"a":2,"m":{"b":2,"x":1},"z":1}'),  # keys sorted (Go maps)
        ("v: 1.5\n", '{"v":1.5}'),
        ("v: 1.0\n", '{"v":1}'),  # float64 1 marshals as 1
        ("v: 2e-5\n", '{"v":0.00002}'),  # a float for go-yaml (a string for PyYAML)
        ("v: 1e21\n", '{"v":1e+21}'),
        ("v: 1e-7\n", '{"v":1e-7}'),
        ("v: .5\n", '{"v":0.5}'),
        ("v: +12\n", '{"v":12}'),
        ("v: -0x1F\n", '{"v":-31}'),
        ("v: 0o17\n", '{"v":15}'),
        ("v: 010\n", '{"v":8}'),  # Go base-0 parsing: leading zero = octal
        ("v: 08\n", '{"v":8}'),  # not octal, so a float
        ("v: 0b101\n", '{"v":5}'),
        ("v: 1_000\n", '{"v":1000}'),
        ("v: 18446744073709551615\n", '{"v":18446744073709551615}'),  # uint64
        ("v: 1:30\n", '{"v":"1:30"}'),  # no sexagesimal in go-yaml
        ("v: 2024-01-01\n", '{"v":"2024-01-01"}'),  # timestamps stay strings
        ("v: 2024-01-01T10:00:00Z\n", '{"v":"2024-01-01T10:00:00Z"}'),
        (
            "a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: n\ng: 'yes'\n",
            '{"a":true,"b":false,"c":true,"d":false,"e":true,"f":false,"g":"yes"}',
        ),
        ("a: ~\nb: null\nc:\n", '{"a":null,"b":null,"c":null}'),
        ("1: one\ntrue: t\ny: why\n1.5: f\n", '{"1":"one","1.5":"f","true":"why"}'),  # y is true too: last wins
        ("1000000.0: big\n", '{"1e+06":"big"}'),  # float keys: FormatFloat(f, 'g', -1, 32)
        ("h: '<a href=\"x\">&</a>'\n", '{"h":"\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e"}'),
        ('u: "caf\u00e9 \\u2028"\n', '{"u":"caf\u00e9 \\u2028"}'),
        ("base: &b {x: 1}\nderived:\n  <<: *b\n  w: 2\n", '{"base":{"x":1},"derived":{"w":2,"x":1}}'),
        ("v: !!str 123\nw: !!float 1\n", '{"v":"123","w":1}'),
        ("- a\n- 1\n", '["a",1]'),  # not an object: converted anyway, rejected later by Ray
        ("plain\n", '"plain"'),
        ("  \n", "null"),
        ("a: 1\n---\nb: 2\n", '{"a":1}'),  # only the first document
    ],
)
def test_runtime_env_yaml_to_json(source: str, expected: str) -> None:
    assert J.runtime_env_yaml_to_json(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a: [1, 2\n", "failed to convert runtimeEnvYAML to JSON: while parsing a flow sequence"),
        ("a: b: c\n", "failed to convert runtimeEnvYAML to JSON: mapping values are not allowed here"),
        ("v: .inf\n", "json: unsupported value: inf"),
        ("v: .nan\n", "json: unsupported value: nan"),
        ("v: !!int abc\n", "cannot decode 'abc' as int"),
        ("? [a, b]\n: c\n", "found unhashable key"),
        ("~: x\n", "unsupported map key of type: NoneType"),
    ],
)
def test_runtime_env_yaml_errors(source: str, message: str) -> None:
    with pytest.raises(J.RuntimeEnvYAMLError, match=message.replace("[", r"\[")):
        J.runtime_env_yaml_to_json(source)


def test_runtime_env_errors_surface_from_the_builders() -> None:
    rayjob = _k8s_rayjob(runtimeEnvYAML="pip: [unclosed\n")
    with pytest.raises(J.SubmitterBuildError, match="runtimeEnvYAML"):
        J.get_k8s_job_command(rayjob, "h:1")
    with pytest.raises(J.RuntimeEnvYAMLError):
        J.ray_job_request(rayjob)


def test_parse_runtime_env_yaml_for_http_mode() -> None:
    assert J.parse_runtime_env_yaml("") is None
    assert J.parse_runtime_env_yaml("~\n") is None
    assert J.parse_runtime_env_yaml("env_vars: {T: 12:30}\nk: 1\nn: 0\n") == {
        "env_vars": {"T": "12:30"},
        "k": 1,
        "false": 0,
    }
    with pytest.raises(J.RuntimeEnvYAMLError, match="cannot unmarshal array into Go value of type map"):
        J.parse_runtime_env_yaml("- a\n")
    with pytest.raises(J.RuntimeEnvYAMLError, match="cannot unmarshal string"):
        J.parse_runtime_env_yaml("text\n")


# ---- HTTPMode request body -----------------------------------------------------------------------------


def test_ray_job_request_reuses_dashboard_request() -> None:
    rayjob = _k8s_rayjob(
        submissionMode="HTTPMode",
        runtimeEnvYAML="env_vars: {D: 2024-01-01}\n",
        metadata={"k": "v"},
        entrypointNumGpus=1,
        entrypointResources='{"r": 2}',
    )
    request = J.ray_job_request(rayjob)
    assert isinstance(request, RayJobRequest)
    assert request.to_json() == {
        "runtime_env": {"env_vars": {"D": "2024-01-01"}},
        "metadata": {"k": "v"},
        "entrypoint_resources": {"r": 2.0},
        "entrypoint": "python main.py --name 'two words'",
        "submission_id": "exec-abcde",
        "entrypoint_num_gpus": 1.0,
    }
    with pytest.raises(ValueError, match="entrypointResources"):
        J.ray_job_request(_k8s_rayjob(entrypointResources="{nope"))


# ---- submitter Job and cluster details -----------------------------------------------------------------


def _cluster_for(rayjob: dict[str, Any]) -> dict[str, Any]:
    return J.construct_ray_cluster_for_rayjob(rayjob, rayjob["status"]["rayClusterName"])


def test_submitter_backoff_limit_default_and_override() -> None:
    rayjob = _k8s_rayjob()
    assert J.build_submitter_job(rayjob, _cluster_for(rayjob), "h:1")["spec"]["backoffLimit"] == 2
    rayjob["spec"]["submitterConfig"] = {}
    assert J.build_submitter_job(rayjob, _cluster_for(rayjob), "h:1")["spec"]["backoffLimit"] == 2
    rayjob["spec"]["submitterConfig"] = {"backoffLimit": 0}
    assert J.build_submitter_job(rayjob, _cluster_for(rayjob), "h:1")["spec"]["backoffLimit"] == 0


def test_default_submitter_container() -> None:
    rayjob = _k8s_rayjob()
    job = J.build_submitter_job(rayjob, _cluster_for(rayjob), "h:1")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["name"] == "ray-job-submitter"
    assert container["image"] == "rayproject/ray:2.46.0"
    assert container["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "200Mi"},
    }
    assert container["env"] == [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "RAY_DASHBOARD_ADDRESS", "value": "h:1"},
        {"name": "RAY_JOB_SUBMISSION_ID", "value": "exec-abcde"},
    ]


def test_submitter_takes_only_the_heads_image_as_upstream() -> None:
    """Upstream's default submitter copies the head image and nothing else of the head's pod: a private
    registry's pull secret or pull policy on the head does not reach the submitter pod (or sidecar)."""
    rayjob = _k8s_rayjob()
    head_pod = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    head_pod["imagePullSecrets"] = [{"name": "registry-creds"}]
    head_pod["containers"][0]["imagePullPolicy"] = "Always"
    pod = J.build_submitter_job(rayjob, _cluster_for(rayjob), "h:1")["spec"]["template"]["spec"]
    assert set(pod) == {"containers", "restartPolicy"}
    assert set(pod["containers"][0]) == {"name", "image", "resources", "command", "args", "env"}
    sidecar = J.build_sidecar_submitter_container(rayjob, _cluster_for(rayjob))
    assert "imagePullPolicy" not in sidecar


def test_submitter_template_without_containers_is_an_error() -> None:
    rayjob = _k8s_rayjob(submitterPodTemplate={"spec": {"containers": []}})
    with pytest.raises(J.SubmitterBuildError, match="no containers"):
        J.build_submitter_job(rayjob, _cluster_for(rayjob), "h:1")
    bare = _k8s_rayjob()
    bare["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"] = []
    with pytest.raises(J.SubmitterBuildError, match="head group template has no containers"):
        J.build_submitter_job(bare, _cluster_for(bare), "h:1")


def test_cluster_requires_a_cluster_spec() -> None:
    rayjob = _k8s_rayjob(clusterSelector={"ray.io/cluster": "c"})
    del rayjob["spec"]["rayClusterSpec"]
    with pytest.raises(J.SubmitterBuildError, match="no rayClusterSpec"):
        J.construct_ray_cluster_for_rayjob(rayjob, "c")


def test_sidecar_without_env_defaults_to_plain_shell() -> None:
    rayjob = _k8s_rayjob(submissionMode="SidecarMode")
    cluster = J.construct_ray_cluster_for_rayjob(rayjob, "exec-fghjk")
    sidecar = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][-1]
    assert sidecar["command"] == ["/bin/bash", "-ce", "--"]
    assert "restartPolicy" not in sidecar
    assert sidecar == J.build_sidecar_submitter_container(rayjob, cluster)


def test_configure_sidecar_mode_is_pure() -> None:
    spec = {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "ray-head"}]}}}}
    out = J.configure_sidecar_mode(spec, {"name": "ray-job-submitter"})
    assert out["headGroupSpec"]["template"]["spec"] == {
        "containers": [{"name": "ray-head"}, {"name": "ray-job-submitter"}],
        "restartPolicy": "Never",
    }
    assert spec == {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "ray-head"}]}}}}
    assert J.configure_sidecar_mode({})["headGroupSpec"]["template"]["spec"] == {"restartPolicy": "Never"}


def test_submission_mode_default() -> None:
    assert J.submission_mode({}) == "K8sJobMode"
    assert J.submission_mode({"spec": {"submissionMode": ""}}) == "K8sJobMode"
    assert J.submission_mode({"spec": {"submissionMode": "HTTPMode"}}) == "HTTPMode"


# The RayCluster golden test has hand-written inputs for the clusters the seed RayJobs create; the
# cluster built here from the same RayJob must be exactly that input (spec and labels).
SEED_CLUSTER_INPUTS = {
    "rayjob_seed_001_sample_ray_job": "seed_001_rayjob_sample",
    "rayjob_seed_003_rayjob_sample": "seed_003_rayjob_sample",
    "rayjob_seed_003_simple_job": "seed_003_simple_job",
    "rayjob_seed_003_gpu_training_job": "seed_003_gpu_training_job",
}


@pytest.mark.parametrize(("rayjob_case", "cluster_case"), sorted(SEED_CLUSTER_INPUTS.items()))
def test_seed_clusters_match_the_raycluster_golden_inputs(rayjob_case: str, cluster_case: str) -> None:
    assert rayjob_case in CASES
    expected = yaml.safe_load((HERE / "testdata" / f"{cluster_case}.input.yaml").read_text())["cluster"]
    rayjob = _load_case(rayjob_case)["rayjob"]
    built = J.construct_ray_cluster_for_rayjob(rayjob, expected["metadata"]["name"])
    assert built["spec"] == expected["spec"]
    assert built["metadata"]["labels"] == expected["metadata"]["labels"]
