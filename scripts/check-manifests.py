#!/usr/bin/env python3
"""Checks the deployment objects: the plain manifests (packaging/kubernetes) and the Helm chart
(packaging/helm/bulwark) validate against the Kubernetes schemas (kubernetes-validate, PyPI), and the
chart rendered with its default values is the plain manifests.

helm cannot be installed on the build machines, so the chart is rendered here by a small renderer
of the template subset the chart uses ({{ .Values.x }}, {{ .Release.Namespace }}, | quote,
| toJson, toYaml X | nindent N, if/end); any other template action is an error, so the chart
cannot silently use what this check does not understand. Usage: scripts/check-manifests.py
[KUBERNETES_VERSION]"""
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
chart = root / "packaging/helm/bulwark"
plain = root / "packaging/kubernetes"
version = sys.argv[1] if len(sys.argv) > 1 else "1.30.0"


def lookup(values, path, release):
    if path == ".Release.Namespace":
        return release
    if not path.startswith(".Values."):
        raise SystemExit(f"unsupported reference {path}")
    v = values
    for part in path[len(".Values."):].split("."):
        if not isinstance(v, dict) or part not in v:
            raise SystemExit(f"{path} is not in values.yaml")
        v = v[part]
    return v


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def render(text, values, release="bulwark"):
    out, stack = [], [True]
    pos = 0
    for m in re.finditer(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", text, re.S):
        chunk = text[pos:m.start()]
        if m.group(1) == "-":
            chunk = chunk.rstrip()
        if all(stack):
            out.append(chunk)
        pos = m.end()
        action = m.group(2)
        if action.startswith("if "):
            stack.append(bool(lookup(values, action[3:].strip(), release)))
        elif action == "end":
            stack.pop()
        elif all(stack):
            parts = [p.strip() for p in action.split("|")]
            head = parts[0]
            if head.startswith("toYaml "):
                v = lookup(values, head[7:].strip(), release)
                n = re.fullmatch(r"nindent (\d+)", parts[1] if len(parts) > 1 else "")
                if not n:
                    raise SystemExit(f"toYaml needs | nindent N: {action}")
                body = yaml.safe_dump(v, default_flow_style=False, sort_keys=False).rstrip("\n")
                out.append("\n" + "\n".join(" " * int(n.group(1)) + l for l in body.split("\n")))
                continue
            v = lookup(values, head, release)
            for f in parts[1:]:
                if f == "quote":
                    v = json.dumps(scalar(v))
                elif f == "toJson":
                    v = json.dumps(v)
                else:
                    raise SystemExit(f"unsupported template function {f}")
            out.append(scalar(v))
        if m.group(3) == "-":
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip())
    out.append(text[pos:])
    if stack != [True]:
        raise SystemExit("unbalanced if/end")
    return "".join(out)


def documents(texts):
    docs = []
    for t in texts:
        docs += [d for d in yaml.safe_load_all(t) if d]
    for d in docs:
        # a ConfigMap's node config compares as what it means, not as its text (comments)
        if d["kind"] == "ConfigMap":
            d["data"] = {k: yaml.safe_load(v) for k, v in d["data"].items()}
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def validate(files):
    r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version, *map(str, files)],
                       capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        print(r.stderr.strip())
        raise SystemExit("kubernetes-validate failed")


def set_value(values, assignment):
    path, value = assignment.split("=", 1)
    keys = path.split(".")
    for k in keys[:-1]:
        values = values[k]
    values[keys[-1]] = value


def rendered(sets=()):
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for s in sets:
        set_value(values, s)
    yaml.safe_load((chart / "Chart.yaml").read_text())
    return [render(p.read_text(), values) for p in sorted((chart / "templates").glob("*.yaml"))]


validate(sorted(plain.glob("*.yaml")))
with tempfile.TemporaryDirectory() as tmp:
    texts = rendered()
    for i, t in enumerate(texts):
        (pathlib.Path(tmp) / f"{i}.yaml").write_text(t)
    validate(sorted(pathlib.Path(tmp).glob("*.yaml")))
chart_objects = documents(texts)
plain_objects = documents(p.read_text() for p in sorted(plain.glob("*.yaml")) if p.name != "namespace.yaml")
if chart_objects.keys() != plain_objects.keys():
    raise SystemExit(f"chart objects {sorted(chart_objects)} differ from the manifests' {sorted(plain_objects)}")
for key, obj in plain_objects.items():
    if chart_objects[key] != obj:
        raise SystemExit(f"{key}: the chart with default values differs from packaging/kubernetes")
# vArmor's --set lines reach the node config
cm = documents(rendered([
    "auditEventMetadata.clusterID=c-1", "auditEventMetadata.clusterName=prod", "auditEventMetadata.region=eu-1",
    "crds.install=",
]))
if ("CustomResourceDefinition", "varmorpolicies.crd.varmor.org") in cm:
    raise SystemExit("crds.install=false still installs the CRDs")
node = cm[("ConfigMap", "bulwark-config")]["data"]["bulwark.yaml"]
if node["auditEventMetadata"] != {"clusterID": "c-1", "clusterName": "prod", "region": "eu-1"}:
    raise SystemExit(f"auditEventMetadata not set: {node['auditEventMetadata']}")
print(f"chart: {len(chart_objects)} objects rendered, equal to packaging/kubernetes; --set auditEventMetadata.* reaches the node config")
