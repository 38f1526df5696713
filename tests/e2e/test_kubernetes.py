"""deploy/kubernetes without a cluster (docs/many-machines.md#kubernetes): every overlay renders
and validates against the Kubernetes schemas (scripts/kube-check.sh), and the relay overlay's
gateway and node pods run from the image (`make image`) as scripts/kube-run.py translates them
to Docker: the init container installs the identity from the Secret, the gateway answers
/serverinfo with that identity's uniqueid, and the node joins the gateway."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import report

# The image fixture (scripts/image.sh, cached stages) lives with the compose test; importing it
# makes it this module's fixture too.
from test_container import image  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
KUBE_RUN = REPO / "scripts/kube-run.py"
RELAY = REPO / "deploy/kubernetes/overlays/relay"
PYTHON = str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else "python3"

# The ports the relay overlay's pods take on this machine: the gateway's published HTTPS,
# HTTP, link (reached on its bridge address only, but shifted with the rest) and front ports,
# and the node's stream ports on the host network.
TCP_PORTS = [47984, 47989, 47990, 48010, *range(40000, 40040)]
UDP_PORTS = [47998, 47999, 48000, *range(40000, 40040)]
MANIFEST_PORTS = set(TCP_PORTS) | set(UDP_PORTS)
PORT_KEYS = {"containerPort", "port", "targetPort", "hostPort", "endPort"}


def require_kubectl() -> None:
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed (kubectl kustomize renders the overlays; Debian 12's "
                    "kubernetes-client 1.20 is too old for kustomize components)")


def test_every_overlay_renders_and_validates():
    require_kubectl()
    env = dict(os.environ)
    if "HATI_BIN" not in env and (REPO / "target/debug/hati").exists():
        env["HATI_BIN"] = str(REPO / "target/debug/hati")
    started = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "scripts/kube-check.sh")], cwd=REPO, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, f"scripts/kube-check.sh failed:\n{result.stdout}\n{result.stderr}"
    passed = [line for line in result.stdout.splitlines() if line.startswith("kube-check: all")]
    report(f"kubernetes: {passed[-1] if passed else result.stdout.strip()} in {time.monotonic() - started:.0f} s")


def test_kube_run_refuses_what_it_cannot_translate(tmp_path):
    """A pod feature kube-run.py has no translation for is an error, never silently dropped."""
    require_kubectl()
    rendered = subprocess.run(["kubectl", "kustomize", str(RELAY)], capture_output=True, text=True, check=True).stdout
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    node = next(o for o in objects if o["kind"] == "DaemonSet")
    node["spec"]["template"]["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["true"]}}}
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = subprocess.run([PYTHON, str(KUBE_RUN), "--print", str(path)], capture_output=True, text=True)
    assert result.returncode == 1, result
    assert "lifecycle is not translated" in result.stderr, result.stderr
    # And an object kind it does not know.
    path.write_text(yaml.safe_dump_all([*objects, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                                     "metadata": {"name": "x", "namespace": "hati"}}]))
    result = subprocess.run([PYTHON, str(KUBE_RUN), "--print", str(path)], capture_output=True, text=True)
    assert result.returncode == 1 and "Ingress/x is not translated" in result.stderr, result.stderr


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def port_shift() -> int:
    """0 when the manifests' own ports are free here; else the smallest shift (a multiple of 100)
    that frees them all. HATI_KUBE_TEST_PORT_SHIFT forces one (to test the shifted path)."""
    forced = os.environ.get("HATI_KUBE_TEST_PORT_SHIFT")
    if forced:
        return int(forced)
    for shift in range(0, 10000, 100):
        if all(_free(p + shift, socket.SOCK_STREAM) for p in TCP_PORTS) and all(
            _free(p + shift, socket.SOCK_DGRAM) for p in UDP_PORTS
        ):
            return shift
    raise AssertionError("no free set of ports for the relay overlay")


def shift_ports(node: object, shift: int, key: str = "") -> object:
    """The rendered objects with every port of the manifests moved by `shift`: port fields, and
    port numbers inside strings (config.toml's http_port, node_listen and front_ports, the
    nodes' HATI_GATEWAY). The stand-in for a kustomize patch of each of those places."""
    if isinstance(node, dict):
        return {k: shift_ports(v, shift, k) for k, v in node.items()}
    if isinstance(node, list):
        return [shift_ports(v, shift, key) for v in node]
    if isinstance(node, int) and key in PORT_KEYS and node in MANIFEST_PORTS:
        return node + shift
    if isinstance(node, str):
        return re.sub(r"\b\d{5}\b", lambda m: str(int(m.group(0)) + shift) if int(m.group(0)) in MANIFEST_PORTS else m.group(0), node)
    return node


def relocate(node: object, paths: dict[str, str]) -> object:
    """The rendered objects with the given host paths (hostPath volumes, the runtime directory's
    mountPath and HATI_RUNTIME_DIR) replaced wherever a value equals one, so that the test
    leaves nothing on the machine."""
    if isinstance(node, dict):
        return {k: relocate(v, paths) for k, v in node.items()}
    if isinstance(node, list):
        return [relocate(v, paths) for v in node]
    if isinstance(node, str) and node in paths:
        return paths[node]
    return node


def make_identity(image: str, state: Path) -> str:
    """What docs/many-machines.md tells an operator to do: `hati join-token` in a throwaway
    container makes the identity in a state directory and prints the join token."""
    state.mkdir()
    result = subprocess.run(["docker", "run", "--rm", "-v", f"{state}:/var/lib/hati", image, "join-token"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"`hati join-token` in the image failed (exit {result.returncode}); it is the gateway role's CLI:\n"
        f"{result.stdout}{result.stderr}")
    token = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"hati1\.[0-9a-f]{32}\.[0-9a-f]{64}", token), token
    assert (state / "identity.json").exists()
    return token


def test_relay_overlay_runs_gateway_and_node_from_the_image(image, tmp_path):  # noqa: F811
    require_kubectl()
    version = image.split(":", 1)[1]
    state = tmp_path / "state"
    token = make_identity(image, state)
    identity = json.loads((state / "identity.json").read_text())

    # An overlay of the relay overlay, as an operator would write one: the image tag just
    # built, and the identity Secret from the state directory.
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    shutil.copy(state / "identity.json", overlay / "identity.json")
    (overlay / "join-token").write_text(token + "\n")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(RELAY, overlay)],
        "images": [{"name": "hati", "newTag": version}],
        "secretGenerator": [{"name": "hati-identity", "namespace": "hati",
                             "files": ["identity.json", "join-token"]}],
    }))
    rendered = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    shift = port_shift()
    if shift:
        objects = shift_ports(objects, shift)
        report(f"kubernetes: the relay overlay's ports moved by {shift} (busy here, or HATI_KUBE_TEST_PORT_SHIFT)")
    # The node's hostPaths, in temporary directories (short: the sockets under the runtime
    # directory must fit a sockaddr_un); the same path inside and outside, as in the manifests.
    host_dirs = {p: tempfile.mkdtemp(prefix=f"hati-kube-{Path(p).name}-", dir="/tmp")
                 for p in ("/run/hati", "/var/lib/hati-node")}
    objects = relocate(objects, host_dirs)
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects))

    project = f"hatikube{os.getpid()}"
    gateway, node = f"{project}-hati-gateway", f"{project}-hati-node"
    started = time.monotonic()
    try:
        run = subprocess.run([PYTHON, str(KUBE_RUN), "--project", project, "--publish-address", "127.0.0.1",
                              "--timeout", "120", str(path)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, f"kube-run.py failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
        report(f"kubernetes: kube-run.py started the relay overlay's gateway and node, both ready, in "
               f"{time.monotonic() - started:.1f} s")

        # The init container put the Secret's identity into the claim's volume, as hati's own.
        volume = f"{project}-pvc-hati-gateway-state"
        owned = subprocess.run(["docker", "run", "--rm", "-v", f"{volume}:/state", "--entrypoint", "stat", image,
                                "-c", "%u %a %n", "/state", "/state/identity.json"],
                               capture_output=True, text=True, check=True).stdout.split("\n")
        assert owned[0].split()[:2] == ["1000", "700"], owned
        assert owned[1].split()[:2] == ["1000", "600"], owned

        # Clients see the cluster's identity at the LoadBalancer's address.
        with urllib.request.urlopen(f"http://127.0.0.1:{47989 + shift}/serverinfo", timeout=5) as response:
            xml = response.read().decode()
        match = re.search(r"<uniqueid>([^<]*)</uniqueid>", xml)
        assert match and match.group(1) == identity["unique_id"], xml

        # The node dialled the gateway through the link Service's name and joined.
        name = subprocess.run(["docker", "exec", node, "cat", "/proc/sys/kernel/hostname"],
                              capture_output=True, text=True, check=True).stdout.strip()
        deadline = time.monotonic() + 30
        while True:
            nodes = subprocess.run(["docker", "exec", gateway, "hati", "nodes"], capture_output=True, text=True)
            if nodes.returncode == 0 and name in nodes.stdout:
                break
            if time.monotonic() > deadline:
                logs = {c: subprocess.run(["docker", "logs", "--tail", "30", c], capture_output=True, text=True)
                        for c in (gateway, node)}
                raise AssertionError(
                    f"`hati nodes` on the gateway does not list the node {name!r} after 30 s:\n"
                    f"{nodes.stdout}{nodes.stderr}\n"
                    + "\n".join(f"--- {c}:\n{r.stdout}{r.stderr}" for c, r in logs.items()))
            time.sleep(0.5)
        report(f"kubernetes: node {name} joined the gateway {time.monotonic() - started:.1f} s after kube-run.py began")
    finally:
        subprocess.run([PYTHON, str(KUBE_RUN), "--down", "--project", project], capture_output=True, text=True)
        for directory in host_dirs.values():
            shutil.rmtree(directory, ignore_errors=True)
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=hati.kube-run.project={project}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert left == [], f"kube-run.py --down left containers: {left}"
