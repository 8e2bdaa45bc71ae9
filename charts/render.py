#!/usr/bin/env python3
"""Render or lint the metallb chart offline, with Helm's own Go SDK (PyPI helm-python-sdk).

  charts/render.py render [--values FILE]... [--set-json JSON]... [--name N] [--namespace NS]
  charts/render.py lint   [--values FILE]... [--set-json JSON]...
  charts/render.py manifests [--check]

`manifests` writes the plain manifests in config/manifests/ (for users without Helm) from
the chart, or with --check fails when they are not what the chart renders now.

`render` prints the manifests (CRDs first, as `helm install` applies them) as one YAML
stream. The tests (e2e-kind/tests/chart.rs) and the plain manifests in config/manifests/ use
it; `pip install helm-python-sdk` provides the module.
"""
import argparse
import json
import os
import sys

import helm_python
import yaml

# Helm's install order (pkg/release/util/kind_sorter.go); other kinds go last.
ORDER = """Namespace NetworkPolicy ResourceQuota LimitRange PodSecurityPolicy PodDisruptionBudget
ServiceAccount Secret SecretList ConfigMap StorageClass PersistentVolume PersistentVolumeClaim
CustomResourceDefinition ClusterRole ClusterRoleList ClusterRoleBinding ClusterRoleBindingList
Role RoleList RoleBinding RoleBindingList Service DaemonSet Pod ReplicationController
ReplicaSet Deployment HorizontalPodAutoscaler StatefulSet Job CronJob IngressClass Ingress
APIService""".split()

CHART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metallb")
MANIFESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "manifests")

# config/manifests/<file>: (namespace, values, what it installs)
PLAIN = {
    "metallb-frr.yaml": ("metallb-system", {},
        "MetalLB with BGP: the controller and the all-in-one speaker (speaker, frr-k8s, FRR)"),
    "metallb-frr-k8s.yaml": ("metallb-system", {"frrk8s": {"enabled": True}},
        "MetalLB with BGP through a separately deployed frr-k8s (same namespace)"),
    "frr-k8s.yaml": ("frr-k8s-system",
        {"controller": {"enabled": False}, "speaker": {"enabled": False},
         "frrk8s": {"enabled": True}},
        "frr-k8s alone (no MetalLB)"),
}


def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a


def values(args):
    vals = {}
    for f in args.values or []:
        with open(f) as fh:
            merge(vals, yaml.safe_load(fh) or {})
    for j in args.set_json or []:
        merge(vals, json.loads(j))
    return vals


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["render", "lint", "manifests"])
    p.add_argument("--check", action="store_true")
    p.add_argument("--values", action="append")
    p.add_argument("--set-json", action="append")
    p.add_argument("--name", default="metallb")
    p.add_argument("--namespace", default="metallb-system")
    p.add_argument("--chart", default=CHART)
    args = p.parse_args()
    vals = values(args)
    if args.command == "manifests":
        return manifests(args.chart, args.check)
    if args.command == "lint":
        result = helm_python.lint(args.chart, vals)
        print(json.dumps(result, indent=2, default=str))
        msgs = result.get("messages", []) if isinstance(result, dict) else []
        errors = [m for m in msgs if str(m.get("severity", "")).lower() in ("error", "3", "4")]
        return 1 if errors or (isinstance(result, dict) and result.get("errors")) else 0
    sys.stdout.write(render(args.chart, vals, args.name, args.namespace))
    return 0


def manifests(chart, check):
    stale = []
    for name, (ns, vals, what) in PLAIN.items():
        head = (f"# {what}.\n# Generated from charts/metallb by `charts/render.py manifests`: do not edit.\n"
                f"# kubectl apply --server-side -f {name}\n")
        ns_doc = yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                                sort_keys=False)
        text = head + ns_doc + "---\n" + render(chart, vals, "metallb", ns)
        path = os.path.join(MANIFESTS, name)
        if check:
            try:
                with open(path) as fh:
                    if fh.read() != text:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
        else:
            os.makedirs(MANIFESTS, exist_ok=True)
            with open(path, "w") as fh:
                fh.write(text)
    if stale:
        print("out of date (run charts/render.py manifests): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


def render(chart_dir, vals, name, namespace):
    chart = helm_python.Chart.load(chart_dir)
    out = chart.render(vals, name=name, namespace=namespace)
    docs = []
    crds = os.path.join(chart_dir, "crds")
    for f in sorted(os.listdir(crds)):
        with open(os.path.join(crds, f)) as fh:
            docs.extend((f"crds/{f}", d) for d in yaml.safe_load_all(fh) if d)
    for path in sorted(out):
        if path.endswith("NOTES.txt"):
            continue
        for d in yaml.safe_load_all(out[path]):
            if d:
                docs.append((path.split("/", 1)[1], d))
    rank = {k: i for i, k in enumerate(ORDER)}
    docs.sort(key=lambda pd: rank.get(pd[1].get("kind"), len(ORDER)))
    text = []
    for path, d in docs:
        text.append(f"# Source: {path}\n" + yaml.safe_dump(d, sort_keys=False, width=100))
    return "---\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
