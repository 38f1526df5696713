#!/usr/bin/env python3
"""Runs the pods of a Kubernetes overlay with Docker on this one machine, the way the rendered
manifests describe them, to try and test deploy/kubernetes without a cluster
(docs/many-machines.md#kubernetes).

    scripts/kube-run.py deploy/kubernetes/overlays/relay          # start, wait until ready
    scripts/kube-run.py --print deploy/kubernetes/overlays/nvidia # show the docker commands
    scripts/kube-run.py --down                                    # remove what it started

The source is a kustomize directory (rendered with `kubectl kustomize`) or a rendered YAML file
(`-` reads stdin). Each Deployment and DaemonSet becomes one pod (this machine is the one node
every selector picks): its init containers run to completion, then its container starts
detached, then the script runs the readiness probe itself until it passes. Deployments start
first, so the Services they back have an address when the DaemonSets' pods start.

What is translated (anything else in a pod spec is refused with an error, never ignored):
  hostNetwork                    --network host; otherwise Docker's bridge network
  Service names                  --add-host NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local
                                 -> the backing pod's bridge address (for a hostNetwork pod: the
                                 host's address on docker0); a Service's port must equal its
                                 targetPort
  LoadBalancer Service ports     -p ADDRESS:port:targetPort/proto on the pods they select (other
                                 containerPorts stay on the pod's own address, as in a cluster);
                                 hostPort -> -p
  command / args                 --entrypoint and arguments; $(VAR) references are expanded
  env, envFrom                   values; valueFrom secretKeyRef/configMapKeyRef read from the
                                 rendered Secret/ConfigMap objects; fieldRef metadata.name,
                                 metadata.namespace, spec.nodeName, status.hostIP
  volumes                        configMap/secret -> files (items, defaultMode) written to a
                                 directory and bind-mounted read-only; persistentVolumeClaim ->
                                 a Docker volume kept until --down; emptyDir -> a Docker volume
                                 (mode 0777, as the kubelet makes it) or --tmpfs (medium Memory);
                                 hostPath -> a bind mount, its `type` checked or created
  securityContext                runAsUser/runAsGroup -> --user, runAsNonRoot checked,
                                 capabilities -> --cap-drop/--cap-add, privileged,
                                 allowPrivilegeEscalation false -> no-new-privileges,
                                 readOnlyRootFilesystem -> --read-only, seccompProfile
                                 RuntimeDefault (Docker's default), supplementalGroups
  resources.limits               cpu -> --cpus (at most this machine's CPUs), memory -> --memory;
                                 squat.ai/<name> (the generic-device-plugin's --device config
                                 in the rendered DaemonSet) -> --device for what its paths match
                                 here; nvidia.com/gpu -> --gpus; gpu.intel.com/i915|xe ->
                                 --device /dev/dri
  readinessProbe                 run by this script: httpGet (urllib), exec (docker exec),
                                 tcpSocket
  imagePullPolicy                IfNotPresent/Never -> --pull never (nothing is pulled here)
  terminationGracePeriodSeconds  --stop-timeout; restart policy Always -> --restart unless-stopped

Allowed and not translated (a cluster's business, with no meaning on one machine): nodeSelector,
tolerations, affinity, priorityClassName, serviceAccountName, automountServiceAccountToken false,
enableServiceLinks false, dnsPolicy ClusterFirst(WithHostNet) (Service names come from
--add-host), livenessProbe and startupProbe (not run), resources.requests (scheduling), replicas
1, Deployment strategy, DaemonSet updateStrategy, NetworkPolicy (not enforced), Namespace,
ServiceAccount, runtimeClassName nvidia (with nvidia.com/gpu: --gpus does it). The
generic-device-plugin's own DaemonSet is not started: its allocations are the --device flags.

Everything started carries the label hati.kube-run.project=PROJECT (--project, default
hati-kube); --down stops those containers (SIGTERM, then SIGKILL after the grace period), and
removes them, their volumes and the files written for them."""

from __future__ import annotations

import argparse
import base64
import glob
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("kube-run: PyYAML is missing: run it with .venv/bin/python (scripts/setup.sh --test) or pip install pyyaml")

LABEL = "hati.kube-run.project"
WORKLOAD_LABEL = "hati.kube-run.workload"
WORKDIR = Path(os.environ.get("HATI_KUBE_RUN_DIR", "/tmp/hati-kube-run"))
CLUSTER_DOMAIN = "cluster.local"


class Refused(Exception):
    """A manifest feature this script cannot translate."""


# ---------------------------------------------------------------------------------------------
# Loading and indexing the rendered objects


def render(source: str) -> list[dict]:
    if source == "-":
        text = sys.stdin.read()
    elif Path(source).is_dir():
        kubectl = shutil.which("kubectl")
        if not kubectl:
            raise Refused("kubectl is missing (it renders the kustomize directory)")
        result = subprocess.run([kubectl, "kustomize", source], capture_output=True, text=True)
        if result.returncode != 0:
            raise Refused(f"kubectl kustomize {source} failed:\n{result.stderr.strip()}")
        text = result.stdout
    else:
        text = Path(source).read_text()
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass
class Cluster:
    objects: list[dict]

    def find(self, kind: str, name: str, namespace: str | None) -> dict | None:
        for obj in self.objects:
            meta = obj.get("metadata", {})
            if obj.get("kind") == kind and meta.get("name") == name and meta.get("namespace", "default") == (namespace or "default"):
                return obj
        return None

    def of_kind(self, *kinds: str) -> list[dict]:
        return [obj for obj in self.objects if obj.get("kind") in kinds]


def namespace_of(obj: dict) -> str:
    return obj.get("metadata", {}).get("namespace", "default")


def secret_data(secret: dict) -> dict[str, bytes]:
    data = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
    data.update({key: value.encode() for key, value in (secret.get("stringData") or {}).items()})
    return data


def configmap_data(configmap: dict) -> dict[str, bytes]:
    data = {key: value.encode() for key, value in (configmap.get("data") or {}).items()}
    data.update({key: base64.b64decode(value) for key, value in (configmap.get("binaryData") or {}).items()})
    return data


# ---------------------------------------------------------------------------------------------
# Quantities


def cpu_quantity(value: object) -> float:
    text = str(value)
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    return float(text)


MEMORY_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}


def memory_quantity(value: object) -> int:
    text = str(value)
    match = re.fullmatch(r"([0-9.]+)(e[0-9]+|[A-Za-z]*)", text)
    if not match:
        raise Refused(f"memory quantity {text!r} is not understood")
    number, suffix = match.groups()
    if suffix.startswith("e"):
        return int(float(number) * 10 ** int(suffix[1:]))
    if suffix and suffix not in MEMORY_SUFFIXES:
        raise Refused(f"memory quantity {text!r} is not understood")
    return int(float(number) * MEMORY_SUFFIXES.get(suffix, 1))


# ---------------------------------------------------------------------------------------------
# Checking keys: what is translated, what is allowed without translation, the rest refused


POD_TRANSLATED = {
    "containers", "initContainers", "volumes", "hostNetwork", "securityContext", "restartPolicy",
    "terminationGracePeriodSeconds", "runtimeClassName", "hostPID", "hostIPC",
}
POD_ALLOWED = {
    "nodeSelector": "one machine stands for every node",
    "tolerations": "one machine stands for every node",
    "affinity": "one machine stands for every node",
    "priorityClassName": "nothing to preempt here",
    "serviceAccountName": "no API server here",
    "serviceAccount": "no API server here",
    "automountServiceAccountToken": "no API server here (must be false)",
    "enableServiceLinks": "no Service environment variables (must be false)",
    "dnsPolicy": "Service names come from --add-host",
    "schedulerName": "one machine",
}
CONTAINER_TRANSLATED = {
    "name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "ports", "resources",
    "securityContext", "volumeMounts", "readinessProbe", "workingDir",
}
CONTAINER_ALLOWED = {
    "livenessProbe": "not run: a restart on failure is the cluster's business",
    "startupProbe": "not run",
    "terminationMessagePath": "no meaning here",
    "terminationMessagePolicy": "no meaning here",
}
SECURITY_TRANSLATED = {
    "runAsUser", "runAsGroup", "runAsNonRoot", "capabilities", "privileged", "allowPrivilegeEscalation",
    "readOnlyRootFilesystem", "seccompProfile", "supplementalGroups",
}


def check_keys(where: str, spec: dict, translated: set[str], allowed: dict[str, str], skipped: list[str], prefix: str = "") -> None:
    for key in spec:
        if key in translated:
            continue
        if key in allowed:
            skipped.append(prefix + key)
            continue
        raise Refused(f"{where}.{key} is not translated by kube-run.py (see its --help for what is)")


# ---------------------------------------------------------------------------------------------
# The translation of one pod


@dataclass
class Mount:
    args: list[str]
    # Files to write before starting (path -> (content, mode)), volumes to create.
    files: dict[Path, tuple[bytes, int]] = field(default_factory=dict)
    volumes: dict[str, int | None] = field(default_factory=dict)  # name -> mode for its root
    dirs: list[Path] = field(default_factory=list)


@dataclass
class Step:
    """One `docker run` (an init container runs to completion, a container is detached)."""

    container: str
    init: bool
    argv: list[str]
    env: dict[str, str]  # values given to the docker client (secret values stay out of argv)
    secret_env: set[str]
    probe: dict | None
    pod_name: str
    host_network: bool


@dataclass
class Pod:
    kind: str
    name: str
    namespace: str
    labels: dict
    steps: list[Step]
    files: dict[Path, tuple[bytes, int]]
    volumes: dict[str, int | None]
    dirs: list[Path]
    host_network: bool
    ports: dict[str, int]  # named container ports of the main container
    notes: list[str]


class Translator:
    def __init__(self, cluster: Cluster, project: str, publish_address: str, printing: bool):
        self.cluster = cluster
        self.project = project
        self.publish_address = publish_address
        self.printing = printing
        self.workdir = WORKDIR / project
        self.hosts: dict[str, str] = {}  # Service name -> address, filled as pods start
        self.missing: list[str] = []  # with --print: objects the manifests name but do not hold
        self.device_plugins = self._device_plugins()

    # -- device plugins ----------------------------------------------------------------------

    def _device_plugins(self) -> dict[str, list[dict]]:
        """squat.ai/<name> (or the plugin's --domain) -> its device spec, from every rendered
        generic-device-plugin container's arguments."""
        resources: dict[str, list[dict]] = {}
        for workload in self.cluster.of_kind("DaemonSet"):
            for container in workload["spec"]["template"]["spec"].get("containers", []):
                if not is_device_plugin(container):
                    continue
                args = list(container.get("args") or []) + list(container.get("command") or [])[1:]
                domain = "squat.ai"
                specs = []
                i = 0
                while i < len(args):
                    arg = args[i]
                    value = None
                    if arg in ("--device", "--domain") and i + 1 < len(args):
                        value = args[i + 1]
                        i += 1
                    elif arg.startswith("--device=") or arg.startswith("--domain="):
                        arg, value = arg.split("=", 1)
                    if arg == "--domain":
                        domain = value
                    elif arg == "--device":
                        spec = yaml.safe_load(value)
                        if isinstance(spec, str):  # the older form: name,path,path
                            name, *paths = spec.split(",")
                            spec = {"name": name, "groups": [{"paths": [{"path": p}]} for p in paths]}
                        specs.append(spec)
                    i += 1
                for spec in specs:
                    resources[f"{domain}/{spec['name']}"] = spec.get("groups") or []
        return resources

    def squat_devices(self, resource: str, count: int, notes: list[str]) -> list[str]:
        groups = self.device_plugins[resource]
        allocatable: list[list[str]] = []
        for group in groups:
            if group.get("usb"):
                raise Refused(f"{resource}: USB device groups are not translated")
            matched = []
            for path in group.get("paths") or []:
                if path.get("type", "Device") != "Device":
                    raise Refused(f"{resource}: paths of type {path.get('type')} are not translated")
                found = sorted(glob.glob(path["path"]))
                if not found and path.get("optional"):
                    continue
                matched.append((path, found))
            if any(not found for _, found in matched):
                continue
            length = min((len(found) * int(path.get("limit", 1)) for path, found in matched), default=0)
            for index in range(length):
                devices = []
                for path, found in matched:
                    host = found[index % len(found)]
                    inside = path.get("mountPath") or host
                    if inside.endswith("/"):
                        inside += os.path.basename(host)
                    devices.append(f"{host}:{inside}:{permissions(path.get('permissions', 'mrw'))}")
                allocatable.append(devices)
        if len(allocatable) < count:
            patterns = ", ".join(p["path"] for g in groups for p in g.get("paths") or [] if not p.get("optional"))
            message = (f"{resource}: {count} wanted, this machine has {len(allocatable)} "
                       f"(the plugin matches {patterns}; in a cluster the pod would stay Pending)")
            if not self.printing:
                raise Refused(message)
            notes.append(message + "; printed with the patterns")
            return [f"{p['path']}:{p.get('mountPath') or p['path']}:{permissions(p.get('permissions', 'mrw'))}"
                    for g in groups[:1] for p in g.get("paths") or []]
        return [device for devices in allocatable[:count] for device in devices]

    # -- volumes -------------------------------------------------------------------------------

    def volume_name(self, pod: str, volume: str) -> str:
        return f"{self.project}-{pod}-{volume}"

    def mounts(self, pod_name: str, namespace: str, volumes: dict[str, dict], container: dict,
               notes: list[str], where: str) -> Mount:
        mount = Mount(args=[])
        for vm in container.get("volumeMounts") or []:
            for key in vm:
                if key not in ("name", "mountPath", "readOnly", "subPath"):
                    raise Refused(f"{where}.volumeMounts[{vm.get('name')}].{key} is not translated")
            volume = volumes.get(vm["name"])
            if volume is None:
                raise Refused(f"{where}: volumeMount {vm['name']} names no volume")
            target = vm["mountPath"]
            read_only = bool(vm.get("readOnly"))
            sub_path = vm.get("subPath")
            kinds = [k for k in volume if k != "name"]
            if len(kinds) != 1:
                raise Refused(f"volume {vm['name']}: one source expected, found {kinds}")
            kind = kinds[0]
            source = volume[kind] or {}
            if kind in ("configMap", "secret"):
                base = self.workdir / pod_name / "volumes" / vm["name"]
                files = self.projected_files(kind, source, namespace, vm["name"])
                for relative, (content, mode) in files.items():
                    mount.files[base / relative] = (content, mode)
                mount.dirs.append(base)
                host = base / sub_path if sub_path else base
                if sub_path and base / sub_path not in mount.files:
                    raise Refused(f"volume {vm['name']}: subPath {sub_path} is not one of its files")
                mount.args += ["-v", f"{host}:{target}:ro"]
            elif kind == "persistentVolumeClaim":
                claim = source["claimName"]
                if self.cluster.find("PersistentVolumeClaim", claim, namespace) is None:
                    raise Refused(f"volume {vm['name']}: PersistentVolumeClaim {claim} is not in the rendered objects")
                if sub_path:
                    raise Refused(f"volume {vm['name']}: subPath into a claim is not translated")
                name = f"{self.project}-pvc-{claim}"
                mount.volumes[name] = None  # a fresh claim: root-owned, as most provisioners make it
                ro = ",readonly" if read_only or source.get("readOnly") else ""
                mount.args += ["--mount", f"type=volume,src={name},dst={target},volume-nocopy{ro}"]
            elif kind == "emptyDir":
                if sub_path:
                    raise Refused(f"volume {vm['name']}: subPath into an emptyDir is not translated")
                if source.get("medium") == "Memory":
                    size = f",size={memory_quantity(source['sizeLimit'])}" if source.get("sizeLimit") else ""
                    mount.args += ["--mount", f"type=tmpfs,dst={target},tmpfs-mode=1777{size}"]
                else:
                    if source.get("sizeLimit"):
                        notes.append(f"volume {vm['name']}: sizeLimit not enforced")
                    name = self.volume_name(pod_name, vm["name"])
                    mount.volumes[name] = 0o777
                    ro = ",readonly" if read_only else ""
                    mount.args += ["--mount", f"type=volume,src={name},dst={target},volume-nocopy{ro}"]
            elif kind == "hostPath":
                path = source["path"]
                kind_of = source.get("type", "")
                if not self.printing:
                    check_host_path(path, kind_of)
                host = os.path.join(path, sub_path) if sub_path else path
                mount.args += ["-v", f"{host}:{target}{':ro' if read_only else ''}"]
            else:
                raise Refused(f"volume {vm['name']}: {kind} volumes are not translated")
        return mount

    def projected_files(self, kind: str, source: dict, namespace: str, volume: str) -> dict[str, tuple[bytes, int]]:
        allowed = {"configMap": {"name", "items", "defaultMode", "optional"},
                   "secret": {"secretName", "items", "defaultMode", "optional"}}[kind]
        for key in source:
            if key not in allowed:
                raise Refused(f"volume {volume}: {kind}.{key} is not translated")
        name = source.get("name") or source.get("secretName")
        obj = self.cluster.find("ConfigMap" if kind == "configMap" else "Secret", name, namespace)
        if obj is None:
            if source.get("optional"):
                return {}
            if self.printing:
                self.missing.append(f"{'ConfigMap' if kind == 'configMap' else 'Secret'} {name} is not in the rendered "
                                    f"objects: a real run needs it (e.g. a secretGenerator in your overlay)")
                return {}
            raise Refused(f"volume {volume}: {'ConfigMap' if kind == 'configMap' else 'Secret'} {name} is not in the "
                          f"rendered objects (create it in your overlay, e.g. with a secretGenerator)")
        data = configmap_data(obj) if kind == "configMap" else secret_data(obj)
        default_mode = source.get("defaultMode", 0o644)
        if source.get("items"):
            files = {}
            for item in source["items"]:
                if item["key"] not in data:
                    raise Refused(f"volume {volume}: {name} has no key {item['key']}")
                files[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
            return files
        return {key: (value, default_mode) for key, value in data.items()}

    # -- environment ---------------------------------------------------------------------------

    def environment(self, container: dict, pod_name: str, namespace: str, where: str) -> tuple[dict[str, str], set[str]]:
        env: dict[str, str] = {}
        secret: set[str] = set()
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source or "secretRef" in source:
                is_secret = "secretRef" in source
                ref = source["secretRef" if is_secret else "configMapRef"]
                obj = self.cluster.find("Secret" if is_secret else "ConfigMap", ref["name"], namespace)
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise Refused(f"{where}.envFrom: {ref['name']} is not in the rendered objects")
                data = secret_data(obj) if is_secret else configmap_data(obj)
                for key, value in data.items():
                    env[prefix + key] = value.decode()
                    if is_secret:
                        secret.add(prefix + key)
            else:
                raise Refused(f"{where}.envFrom: only configMapRef and secretRef are translated")
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = expand(str(item["value"]), env)
                secret.discard(name)
                continue
            ref = item.get("valueFrom") or {}
            if "secretKeyRef" in ref or "configMapKeyRef" in ref:
                is_secret = "secretKeyRef" in ref
                key_ref = ref["secretKeyRef" if is_secret else "configMapKeyRef"]
                kind = "Secret" if is_secret else "ConfigMap"
                obj = self.cluster.find(kind, key_ref["name"], namespace)
                data = None if obj is None else (secret_data(obj) if is_secret else configmap_data(obj))
                if data is None or key_ref["key"] not in data:
                    if key_ref.get("optional"):
                        continue
                    if self.printing:
                        self.missing.append(f"{kind} {key_ref['name']} is not in the rendered objects: a real run "
                                            f"needs it (e.g. a secretGenerator in your overlay)")
                        env[name] = "<missing>"
                        secret.add(name)
                        continue
                    raise Refused(f"{where}.env {name}: {kind} {key_ref['name']} with key {key_ref['key']} is not in "
                                  f"the rendered objects (create it in your overlay, e.g. with a secretGenerator)")
                env[name] = data[key_ref["key"]].decode()
                if is_secret:
                    secret.add(name)
            elif "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                values = {
                    "metadata.name": pod_name,
                    "metadata.namespace": namespace,
                    "spec.nodeName": socket.gethostname(),
                    "status.hostIP": host_address(),
                }
                if path not in values:
                    raise Refused(f"{where}.env {name}: fieldRef {path} is not translated")
                env[name] = values[path]
            else:
                raise Refused(f"{where}.env {name}: valueFrom {list(ref)} is not translated")
        return env, secret

    # -- resources -----------------------------------------------------------------------------

    def resources(self, container: dict, pod_spec: dict, notes: list[str], where: str) -> list[str]:
        resources = container.get("resources") or {}
        for key in resources:
            if key not in ("limits", "requests"):
                raise Refused(f"{where}.resources.{key} is not translated")
        args: list[str] = []
        cpus = os.cpu_count() or 1
        requests = resources.get("requests") or {}
        if "cpu" in requests and cpu_quantity(requests["cpu"]) > cpus:
            notes.append(f"{where}: requests {requests['cpu']} CPUs, this machine has {cpus} (a cluster would not schedule it here)")
        gpus = 0
        for key, value in (resources.get("limits") or {}).items():
            if key == "cpu":
                limit = cpu_quantity(value)
                if limit > cpus:
                    notes.append(f"{where}: CPU limit {value} is above this machine's {cpus} CPUs: --cpus {cpus}")
                    limit = cpus
                args += ["--cpus", f"{limit:g}"]
            elif key == "memory":
                args += ["--memory", str(memory_quantity(value))]
            elif key == "ephemeral-storage":
                notes.append(f"{where}: ephemeral-storage limit not enforced")
            elif key in self.device_plugins:
                for device in self.squat_devices(key, int(value), notes):
                    args += ["--device", device]
            elif key == "nvidia.com/gpu":
                gpus = int(value)
                args += ["--gpus", str(gpus)]
            elif key in ("gpu.intel.com/i915", "gpu.intel.com/xe"):
                if not self.printing and not os.path.isdir("/dev/dri"):
                    raise Refused(f"{key}: this machine has no /dev/dri (in a cluster the pod would stay Pending)")
                args += ["--device", "/dev/dri:/dev/dri:rwm"]
            else:
                raise Refused(f"{where}.resources.limits.{key} is not translated")
        runtime = pod_spec.get("runtimeClassName")
        if runtime is not None:
            if runtime != "nvidia" or not gpus:
                raise Refused(f"runtimeClassName {runtime} is not translated (only nvidia, with nvidia.com/gpu)")
            notes.append("runtimeClassName nvidia: --gpus asks Docker's NVIDIA hook instead")
        return args

    # -- security ------------------------------------------------------------------------------

    def security(self, pod_security: dict, container: dict, where: str) -> list[str]:
        for key in pod_security:
            if key not in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "supplementalGroups"):
                raise Refused(f"{where}: pod securityContext.{key} is not translated")
        own = container.get("securityContext") or {}
        for key in own:
            if key not in SECURITY_TRANSLATED - {"supplementalGroups"}:
                raise Refused(f"{where}.securityContext.{key} is not translated")
        merged = {**pod_security, **own}
        args: list[str] = []
        user, group = merged.get("runAsUser"), merged.get("runAsGroup")
        if group is not None and user is None:
            raise Refused(f"{where}: runAsGroup without runAsUser is not translated")
        if merged.get("runAsNonRoot") and (user is None or user == 0):
            raise Refused(f"{where}: runAsNonRoot with user {user} (the image runs as root): the kubelet would refuse to start it")
        if user is not None:
            args += ["--user", f"{user}:{group}" if group is not None else str(user)]
        for gid in merged.get("supplementalGroups") or []:
            args += ["--group-add", str(gid)]
        seccomp = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
        if seccomp == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        elif seccomp != "RuntimeDefault":
            raise Refused(f"{where}: seccompProfile {seccomp} is not translated")
        capabilities = own.get("capabilities") or {}
        for key in capabilities:
            if key not in ("add", "drop"):
                raise Refused(f"{where}.securityContext.capabilities.{key} is not translated")
        for cap in capabilities.get("drop") or []:
            args += ["--cap-drop", cap]
        for cap in capabilities.get("add") or []:
            args += ["--cap-add", cap]
        if own.get("privileged"):
            args.append("--privileged")
        if own.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if own.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        return args

    # -- ports ---------------------------------------------------------------------------------

    def published(self, workload: dict, container: dict, host_network: bool, where: str) -> list[str]:
        ports = container.get("ports") or []
        named = {p["name"]: p["containerPort"] for p in ports if p.get("name")}
        declared = {(p["containerPort"], p.get("protocol", "TCP")) for p in ports}
        for port in ports:
            for key in port:
                if key not in ("name", "containerPort", "protocol", "hostPort"):
                    raise Refused(f"{where}.ports.{key} is not translated")
            if port.get("protocol", "TCP") == "SCTP":
                raise Refused(f"{where}: SCTP ports are not translated")
            if host_network and port.get("hostPort", port["containerPort"]) != port["containerPort"]:
                raise Refused(f"{where}: hostPort differs from containerPort on the host network")
        if host_network:
            return []
        mappings: list[tuple[int, int, str]] = []
        for port in ports:
            if "hostPort" in port:
                mappings.append((port["hostPort"], port["containerPort"], port.get("protocol", "TCP")))
        labels = workload["spec"]["template"]["metadata"].get("labels") or {}
        for service in self.cluster.of_kind("Service"):
            spec = service.get("spec") or {}
            if spec.get("type") not in ("LoadBalancer", "NodePort") or namespace_of(service) != namespace_of(workload):
                continue
            selector = spec.get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port["port"])
                if isinstance(target, str):
                    if target not in named:
                        raise Refused(f"Service {service['metadata']['name']}: targetPort {target} names no port of {where}")
                    target = named[target]
                proto = port.get("protocol", "TCP")
                if (target, proto) not in declared:
                    raise Refused(f"Service {service['metadata']['name']}: port {target}/{proto} is not a containerPort of {where}")
                outside = port["port"] if spec["type"] == "LoadBalancer" else port.get("nodePort")
                if outside is None:
                    raise Refused(f"NodePort Service {service['metadata']['name']}: set nodePort to run it here")
                mappings.append((outside, target, proto))
        args = []
        for first_out, last_out, first_in, proto in port_ranges(mappings):
            outside = f"{first_out}" if first_out == last_out else f"{first_out}-{last_out}"
            inside = f"{first_in}" if first_out == last_out else f"{first_in}-{first_in + last_out - first_out}"
            args += ["-p", f"{self.publish_address}:{outside}:{inside}/{proto.lower()}"]
        return args

    # -- the pod -------------------------------------------------------------------------------

    def pod(self, workload: dict) -> Pod:
        kind = workload["kind"]
        name = workload["metadata"]["name"]
        namespace = namespace_of(workload)
        spec = workload.get("spec") or {}
        notes: list[str] = []
        skipped: list[str] = []
        where = f"{kind}/{name}"
        if kind == "Deployment":
            if spec.get("replicas", 1) != 1:
                raise Refused(f"{where}: replicas {spec['replicas']}: one machine runs one pod of each workload")
            allowed = {"replicas", "selector", "template", "strategy", "revisionHistoryLimit", "minReadySeconds", "progressDeadlineSeconds"}
        else:
            allowed = {"selector", "template", "updateStrategy", "revisionHistoryLimit", "minReadySeconds"}
        for key in spec:
            if key not in allowed:
                raise Refused(f"{where}.spec.{key} is not translated")
        template = spec["template"]
        pod_spec = template.get("spec") or {}
        check_keys(f"{where}.spec.template.spec", pod_spec, POD_TRANSLATED, POD_ALLOWED, skipped)
        if pod_spec.get("automountServiceAccountToken", True) is not False:
            raise Refused(f"{where}: automountServiceAccountToken must be false (there is no API server token here)")
        if pod_spec.get("enableServiceLinks", True) is not False:
            raise Refused(f"{where}: enableServiceLinks must be false (Service environment variables are not translated)")
        dns = pod_spec.get("dnsPolicy", "ClusterFirst")
        host_network = bool(pod_spec.get("hostNetwork"))
        if dns not in ("ClusterFirst", "ClusterFirstWithHostNet", "Default"):
            raise Refused(f"{where}: dnsPolicy {dns} is not translated")
        if pod_spec.get("restartPolicy", "Always") != "Always":
            raise Refused(f"{where}: restartPolicy {pod_spec['restartPolicy']} is not translated")
        containers = pod_spec.get("containers") or []
        if len(containers) != 1:
            raise Refused(f"{where}: {len(containers)} containers: only pods with one container (and init containers) are translated")
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
        pod_name = f"{name}"
        base = ["docker", "run", "--label", f"{LABEL}={self.project}", "--label", f"{WORKLOAD_LABEL}={kind}/{name}"]
        if host_network:
            base += ["--network", "host"]
        else:
            base += ["--hostname", pod_name]
        if pod_spec.get("hostPID"):
            base += ["--pid", "host"]
        if pod_spec.get("hostIPC"):
            base += ["--ipc", "host"]
        for host, address in sorted(self.hosts.items()):
            base += ["--add-host", f"{host}:{address}"]
        steps: list[Step] = []
        files: dict[Path, tuple[bytes, int]] = {}
        created: dict[str, int | None] = {}
        dirs: list[Path] = []
        named_ports: dict[str, int] = {}
        for index, container in enumerate(list(pod_spec.get("initContainers") or []) + containers):
            init = index < len(pod_spec.get("initContainers") or [])
            cwhere = f"{where} {'initContainer' if init else 'container'} {container['name']}"
            if init:
                check_keys(cwhere, container, CONTAINER_TRANSLATED - {"readinessProbe", "ports"}, {}, skipped)
            else:
                check_keys(cwhere, container, CONTAINER_TRANSLATED, CONTAINER_ALLOWED, skipped, f"{container['name']}.")
                named_ports = {p["name"]: p["containerPort"] for p in container.get("ports") or [] if p.get("name")}
            docker_name = f"{self.project}-{name}" + (f"-init-{container['name']}" if init else "")
            argv = list(base) + ["--name", docker_name]
            argv += ["-d", "--restart", "unless-stopped"] if not init else []
            if not init and "terminationGracePeriodSeconds" in pod_spec:
                argv += ["--stop-timeout", str(pod_spec["terminationGracePeriodSeconds"])]
            policy = container.get("imagePullPolicy", "IfNotPresent")
            if policy not in ("IfNotPresent", "Never"):
                raise Refused(f"{cwhere}: imagePullPolicy {policy}: nothing is pulled here (IfNotPresent or Never)")
            argv += ["--pull", "never"]
            argv += self.security(pod_spec.get("securityContext") or {}, container, cwhere)
            argv += self.resources(container, pod_spec, notes, cwhere)
            mount = self.mounts(pod_name, namespace, volumes, container, notes, cwhere)
            argv += mount.args
            files.update(mount.files)
            created.update(mount.volumes)
            dirs += mount.dirs
            if not init:
                argv += self.published(workload, container, host_network, cwhere)
            env, secret = self.environment(container, pod_name, namespace, cwhere)
            for key, value in env.items():
                # The value travels in the docker client's environment (secrets stay out of its
                # argv), except for names the client itself reads.
                argv += ["-e", f"{key}={value}" if key.startswith("DOCKER_") else key]
            if container.get("workingDir"):
                argv += ["-w", container["workingDir"]]
            command = [expand(str(c), env) for c in container.get("command") or []]
            args = [expand(str(a), env) for a in container.get("args") or []]
            if command:
                argv += ["--entrypoint", command[0]]
            argv.append(container["image"])
            argv += command[1:] + args
            probe = None if init else container.get("readinessProbe")
            if probe:
                for key in probe:
                    if key not in ("httpGet", "exec", "tcpSocket", "initialDelaySeconds", "periodSeconds",
                                   "timeoutSeconds", "successThreshold", "failureThreshold"):
                        raise Refused(f"{cwhere}.readinessProbe.{key} is not translated")
            steps.append(Step(docker_name, init, argv, env, secret, probe, pod_name, host_network))
        if skipped:
            notes.insert(0, "allowed, not translated (cluster-only or not run): " + ", ".join(skipped))
        notes += sorted(set(self.missing))
        self.missing.clear()
        return Pod(kind, name, namespace, template["metadata"].get("labels") or {}, steps, files, created, dirs,
                   host_network, named_ports, notes)

    # -- Services -> addresses -------------------------------------------------------------------

    def add_service_hosts(self, pod: Pod, address: str) -> None:
        """Names of the Services that select `pod`, pointing at `address`."""
        for service in self.cluster.of_kind("Service"):
            spec = service.get("spec") or {}
            selector = spec.get("selector") or {}
            if namespace_of(service) != pod.namespace or not selector or any(pod.labels.get(k) != v for k, v in selector.items()):
                continue
            name = service["metadata"]["name"]
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port["port"])
                if isinstance(target, str):
                    target = pod.ports.get(target, target)
                if target != port["port"]:
                    raise Refused(f"Service {name}: port {port['port']} -> targetPort {target}: kube-run.py points the "
                                  f"Service's name at the pod, so the two must be equal")
            ns = pod.namespace
            for host in (name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"):
                self.hosts[host] = address


# ---------------------------------------------------------------------------------------------
# Helpers


def is_device_plugin(container: dict) -> bool:
    return "generic-device-plugin" in container.get("image", "")


def permissions(value: str) -> str:
    return "".join(c for c in "rwm" if c in value)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, others stay."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, text)


def port_ranges(mappings: list[tuple[int, int, str]]) -> list[tuple[int, int, int, str]]:
    """Consecutive (outside, inside) pairs of one protocol merged into ranges."""
    result: list[tuple[int, int, int, str]] = []
    for proto in ("TCP", "UDP"):
        pairs = sorted({(o, i) for o, i, p in mappings if p == proto})
        for outside, inside in pairs:
            if result and result[-1][3] == proto and outside == result[-1][1] + 1 and inside - outside == result[-1][2] - result[-1][0]:
                first_out, _, first_in, _ = result[-1]
                result[-1] = (first_out, outside, first_in, proto)
            else:
                result.append((outside, outside, inside, proto))
    return result


def check_host_path(path: str, kind: str) -> None:
    tests = {
        "Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
        "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK,
    }
    if kind == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif kind == "FileOrCreate":
        Path(path).touch(mode=0o644, exist_ok=True)
    elif kind in tests:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise Refused(f"hostPath {path} (type {kind}) does not exist on this machine") from None
        if not tests[kind](mode):
            raise Refused(f"hostPath {path} is not a {kind}")
    elif kind != "":
        raise Refused(f"hostPath type {kind} is not translated")


def host_address() -> str:
    """This machine's address as Docker's bridge containers reach it (docker0)."""
    result = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True)
    match = re.search(r"inet (\d+\.\d+\.\d+\.\d+)", result.stdout)
    if match:
        return match.group(1)
    inspect = docker("network", "inspect", "bridge", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", check=False)
    subnet = inspect.stdout.strip()
    if subnet:
        return str(next(ipaddress.ip_network(subnet).hosts()))
    return "127.0.0.1"


def docker(*args: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise Refused(f"docker {' '.join(args[:3])} … failed: {result.stderr.strip()}")
    return result


def container_address(name: str) -> str:
    return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name).stdout.strip()


def shown(step: Step) -> str:
    """The command line as printed: secret values never appear, other env values do."""
    env_parts = []
    for key, value in step.env.items():
        env_parts.append(f"{key}=<secret>" if key in step.secret_env else f"{key}={shlex.quote(value) if value else repr('')}")
    prefix = ("env " + " ".join(env_parts) + " ") if env_parts else ""
    return prefix + shlex.join(step.argv)


# ---------------------------------------------------------------------------------------------
# Probes


def run_probe(probe: dict, step: Step, ports: dict[str, int]) -> tuple[bool, str]:
    timeout = probe.get("timeoutSeconds", 1)
    address = "127.0.0.1" if step.host_network else container_address(step.container)

    def port_of(value: object) -> int:
        if isinstance(value, str) and not value.isdigit():
            if value not in ports:
                raise Refused(f"readinessProbe port {value} names no containerPort")
            return ports[value]
        return int(value)

    if "httpGet" in probe:
        get = probe["httpGet"]
        scheme = get.get("scheme", "HTTP").lower()
        url = f"{scheme}://{get.get('host', address)}:{port_of(get['port'])}{get.get('path', '/')}"
        request = urllib.request.Request(url, headers={h["name"]: h["value"] for h in get.get("httpHeaders") or []})
        try:
            import ssl

            context = ssl._create_unverified_context() if scheme == "https" else None  # the kubelet skips verification too
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                return 200 <= response.status < 400, f"GET {url}: {response.status}"
        except urllib.error.HTTPError as error:
            return 200 <= error.code < 400, f"GET {url}: {error.code}"
        except OSError as error:
            return False, f"GET {url}: {error}"
    if "exec" in probe:
        command = probe["exec"]["command"]
        try:
            result = subprocess.run(["docker", "exec", step.container, *command], capture_output=True, text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return False, f"exec {shlex.join(command)}: timed out"
        return result.returncode == 0, f"exec {shlex.join(command)}: exit {result.returncode} {result.stderr.strip()[-300:]}"
    if "tcpSocket" in probe:
        port = port_of(probe["tcpSocket"]["port"])
        try:
            with socket.create_connection((probe["tcpSocket"].get("host", address), port), timeout=timeout):
                return True, f"tcp {address}:{port}: open"
        except OSError as error:
            return False, f"tcp {address}:{port}: {error}"
    raise Refused(f"readinessProbe {list(probe)} is not translated")


def wait_ready(step: Step, ports: dict[str, int], deadline: float) -> None:
    probe = step.probe
    if not probe:
        return
    time.sleep(min(probe.get("initialDelaySeconds", 0), max(0.0, deadline - time.monotonic())))
    period = min(probe.get("periodSeconds", 10), 1)
    needed = probe.get("successThreshold", 1)
    successes = 0
    last = ""
    while True:
        ok, last = run_probe(probe, step, ports)
        successes = successes + 1 if ok else 0
        if successes >= needed:
            print(f"kube-run: {step.container} is ready ({last})", file=sys.stderr)
            return
        if time.monotonic() > deadline:
            state = docker("inspect", "-f", "{{.State.Status}} restarts={{.RestartCount}} exit={{.State.ExitCode}}", step.container, check=False)
            logs = docker("logs", "--tail", "40", step.container, check=False)
            raise Refused(f"{step.container} did not become ready: {last}\nstate: {state.stdout.strip()}\n"
                          f"last log lines:\n{(logs.stdout + logs.stderr).strip()}")
        time.sleep(period)


# ---------------------------------------------------------------------------------------------
# Lint: the repository's own conventions on top of the schema check


def front_range(config_text: str) -> tuple[int, int] | None:
    config = tomllib.loads(config_text)
    value = (config.get("gateway") or {}).get("front_ports")
    if value is None:
        return None
    first, last = (int(x) for x in value.split("-"))
    return first, last


def lint(cluster: Cluster) -> list[str]:
    problems = []
    configs = {}
    for configmap in cluster.of_kind("ConfigMap"):
        for key, value in (configmap.get("data") or {}).items():
            if key.endswith(".toml"):
                try:
                    configs[configmap["metadata"]["name"]] = tomllib.loads(value)
                except tomllib.TOMLDecodeError as error:
                    problems.append(f"ConfigMap {configmap['metadata']['name']} {key}: not TOML: {error}")
                    continue
                hati = os.environ.get("HATI_BIN")
                if hati and os.access(hati, os.X_OK):
                    with tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="kube-run-lint-") as check_file:
                        check_file.write(value)
                        check_file.flush()
                        result = subprocess.run([hati, "config", "check", check_file.name], capture_output=True, text=True)
                    if result.returncode != 0:
                        problems.append(f"ConfigMap {configmap['metadata']['name']} {key}: `hati config check` says: "
                                        f"{(result.stdout + result.stderr).strip()}")
    for workload in cluster.of_kind("Deployment", "DaemonSet"):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            resources = container.get("resources") or {}
            if not resources.get("requests") or not resources.get("limits"):
                problems.append(f"{where} {container['name']}: resources need requests and limits")
            if container["image"].split(":")[0] == "hati":
                if container.get("imagePullPolicy") != "IfNotPresent":
                    problems.append(f"{where} {container['name']}: imagePullPolicy must be IfNotPresent (no published image)")
        for container in pod.get("containers", []):
            if container["image"].split(":")[0] == "hati":
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        problems.append(f"{where} {container['name']}: no {probe}")
    # The relay's LoadBalancer must list every front port of the config, TCP and UDP.
    for service in cluster.of_kind("Service"):
        if (service.get("spec") or {}).get("type") != "LoadBalancer":
            continue
        listed = {(p["port"], p.get("protocol", "TCP")) for p in service["spec"].get("ports") or []}
        for name, config in configs.items():
            value = (config.get("gateway") or {}).get("front_ports")
            if not value:
                continue
            first, last = (int(x) for x in value.split("-"))
            wanted = {(port, proto) for port in range(first, last + 1) for proto in ("TCP", "UDP")}
            missing = wanted - listed
            extra = {(port, proto) for port, proto in listed if port not in (47984, 47989) and (port, proto) not in wanted}
            if missing or extra:
                problems.append(
                    f"Service {service['metadata']['name']} and ConfigMap {name} disagree on the front ports "
                    f"({value}): {len(missing)} missing, {len(extra)} extra; run "
                    f"deploy/kubernetes/components/relay/front-ports.py {value}")
    return problems


# ---------------------------------------------------------------------------------------------
# Commands


def workloads_in_order(cluster: Cluster) -> tuple[list[dict], list[str]]:
    notes = []
    ordered = []
    for kind in ("Deployment", "DaemonSet"):
        for workload in cluster.of_kind(kind):
            containers = workload["spec"]["template"]["spec"].get("containers") or []
            if kind == "DaemonSet" and containers and all(is_device_plugin(c) for c in containers):
                notes.append(f"DaemonSet/{workload['metadata']['name']}: the generic-device-plugin is not started; "
                             f"its devices are --device flags of the pods that request them")
                continue
            ordered.append(workload)
    known = {"Deployment", "DaemonSet", "Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service",
             "PersistentVolumeClaim", "NetworkPolicy"}
    for obj in cluster.objects:
        if obj.get("kind") not in known:
            raise Refused(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')} is not translated")
        if obj.get("kind") == "NetworkPolicy":
            notes.append(f"NetworkPolicy/{obj['metadata']['name']}: not enforced here")
    return ordered, notes


def write_files(pod: Pod) -> None:
    for directory in pod.dirs:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True, mode=0o755)
    for path, (content, mode) in pod.files.items():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(content)
        os.chmod(path, mode)


def create_volumes(project: str, volumes: dict[str, int | None]) -> None:
    for name, mode in volumes.items():
        if docker("volume", "inspect", name, check=False).returncode != 0:
            docker("volume", "create", "--label", f"{LABEL}={project}", name)
            if mode is not None:
                mountpoint = docker("volume", "inspect", "-f", "{{.Mountpoint}}", name).stdout.strip()
                os.chmod(mountpoint, mode)


def start(source: str, project: str, publish_address: str, timeout: float, printing: bool) -> int:
    cluster = Cluster(render(source))
    translator = Translator(cluster, project, publish_address, printing)
    ordered, notes = workloads_in_order(cluster)
    if not ordered:
        raise Refused("no Deployment or DaemonSet to run")
    if not printing:
        existing = docker("ps", "-aq", "--filter", f"label={LABEL}={project}").stdout.split()
        if existing:
            raise Refused(f"project {project} already has containers: scripts/kube-run.py --down --project {project} first")
        images = {c["image"] for w in ordered for c in w["spec"]["template"]["spec"].get("containers", []) +
                  w["spec"]["template"]["spec"].get("initContainers", [])}
        for image in sorted(images):
            if docker("image", "inspect", image, check=False).returncode != 0:
                raise Refused(f"image {image} is not in this machine's Docker (nothing is pulled here): "
                              f"build it (`make image` makes hati:latest) or docker load it")
    deadline = time.monotonic() + timeout
    for note in notes:
        print(f"# note: {note}")
    for workload in ordered:
        pod = translator.pod(workload)
        print(f"# {pod.kind}/{pod.name} ({'host network' if pod.host_network else 'bridge network'})")
        for note in pod.notes:
            print(f"# note: {note}")
        for name in pod.volumes:
            print(shlex.join(["docker", "volume", "create", "--label", f"{LABEL}={project}", name]))
        for path in sorted(pod.files):
            print(f"# file {path} (mode {pod.files[path][1]:04o}, {len(pod.files[path][0])} bytes)")
        if not printing:
            write_files(pod)
            create_volumes(project, pod.volumes)
        for step in pod.steps:
            print(shown(step))
            if step.probe:
                print(f"# readiness: {json.dumps({k: v for k, v in step.probe.items()})}")
            if printing:
                continue
            env = dict(os.environ)
            env.update(step.env)
            if step.init:
                result = subprocess.run(step.argv, capture_output=True, text=True, env=env, timeout=max(10, deadline - time.monotonic()))
                logs = docker("logs", step.container, check=False)
                docker("rm", "-f", step.container, check=False)
                if result.returncode != 0:
                    raise Refused(f"init container {step.container} failed (exit {result.returncode}):\n"
                                  f"{(result.stderr + logs.stdout + logs.stderr).strip()[-3000:]}")
                continue
            result = subprocess.run(step.argv, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise Refused(f"docker run for {step.container} failed: {result.stderr.strip()}")
            wait_ready(step, pod.ports, deadline)
            address = host_address() if step.host_network else container_address(step.container)
            translator.add_service_hosts(pod, address)
        if printing:
            translator.add_service_hosts(pod, "<address of " + pod.name + ">")
    return 0


def down(project: str) -> int:
    containers = docker("ps", "-aq", "--filter", f"label={LABEL}={project}").stdout.split()
    if containers:
        # As a pod's deletion: SIGTERM, then SIGKILL after its grace period (--stop-timeout).
        docker("stop", *containers, check=False, timeout=600)
        docker("rm", "-f", *containers)
    volumes = docker("volume", "ls", "-q", "--filter", f"label={LABEL}={project}").stdout.split()
    if volumes:
        docker("volume", "rm", "-f", *volumes)
    shutil.rmtree(WORKDIR / project, ignore_errors=True)
    try:
        WORKDIR.rmdir()  # when no other project has files there
    except OSError:
        pass
    print(f"kube-run: removed {len(containers)} containers and {len(volumes)} volumes of project {project}", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", help="kustomize directory, rendered YAML file, or - for stdin")
    parser.add_argument("--print", action="store_true", dest="printing", help="print the docker commands, start nothing")
    parser.add_argument("--down", action="store_true", help="remove the project's containers, volumes and files")
    parser.add_argument("--lint", action="store_true", help="check the repository's conventions (scripts/kube-check.sh)")
    parser.add_argument("--project", default="hati-kube", help="label and name prefix of what is started (default hati-kube)")
    parser.add_argument("--publish-address", default="0.0.0.0", help="host address LoadBalancer ports are published on")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for all pods to become ready (default 120)")
    options = parser.parse_args()
    try:
        if options.down:
            return down(options.project)
        if not options.source:
            parser.error("a kustomize directory or rendered YAML file is needed")
        if options.lint:
            problems = lint(Cluster(render(options.source)))
            for problem in problems:
                print(f"kube-run: lint: {problem}", file=sys.stderr)
            return 1 if problems else 0
        return start(options.source, options.project, options.publish_address, options.timeout, options.printing)
    except Refused as error:
        print(f"kube-run: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
