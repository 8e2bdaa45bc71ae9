#!/usr/bin/env python3
"""Render or lint the metallb chart offline, with Helm's own Go SDK (PyPI helm-python-sdk).

  charts/render.py render [--values FILE]... [--set-json JSON]... [--name N] [--namespace NS]
  charts/render.py lint   [--values FILE]... [--set-json JSON]...

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
    p.add_argument("command", choices=["render", "lint"])
    p.add_argument("--values", action="append")
    p.add_argument("--set-json", action="append")
    p.add_argument("--name", default="metallb")
    p.add_argument("--namespace", default="metallb-system")
    p.add_argument("--chart", default=CHART)
    args = p.parse_args()
    vals = values(args)
    if args.command == "lint":
        result = helm_python.lint(args.chart, vals)
        print(json.dumps(result, indent=2, default=str))
        msgs = result.get("messages", []) if isinstance(result, dict) else []
        errors = [m for m in msgs if str(m.get("severity", "")).lower() in ("error", "3", "4")]
        return 1 if errors or (isinstance(result, dict) and result.get("errors")) else 0
    chart = helm_python.Chart.load(args.chart)
    out = chart.render(vals, name=args.name, namespace=args.namespace)
    docs = []
    crds = os.path.join(args.chart, "crds")
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
    sys.stdout.write("---\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
