#!/usr/bin/env python3
"""Writes a generated cluster state for `bindguard serve --state DIR` benchmarks.

Usage: scripts/gen-state.py N DIR

N ResourceReleaseBindings (environmentConfigs, a Ready condition) over 100 namespaces, N/10
Resources and ResourceReleases (each release snapshots its type's environmentConfigs schema),
100 ResourceTypes, 50 Promises with 5 PromiseRevisions each, 5,000 ResourceBindings. One JSON
`List` per kind and namespace. The state is for benchmarks only; never commit it.
"""
import json
import os
import sys

n, out = int(sys.argv[1]), sys.argv[2]
NAMESPACES = 100
OC = "openchoreo.dev/v1alpha1"
KX = "platform.kratix.io/v1alpha1"
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "memory": {"type": "string", "pattern": "^[0-9]+(Mi|Gi)$", "default": "256Mi"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "tier": {"type": "string", "enum": ["standard", "premium"], "default": "standard"},
    },
}


def obj(api, kind, name, ns, spec, status=None, labels=None):
    meta = {"name": name, "uid": f"{kind}-{ns}-{name}", "resourceVersion": "1"}
    if ns:
        meta["namespace"] = ns
    if labels:
        meta["labels"] = labels
    o = {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
    if status is not None:
        o["status"] = status
    return o


def write(name, items):
    with open(os.path.join(out, name), "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)


PROJECT_SPEC = {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}}
os.makedirs(out, exist_ok=True)
types = 100
resources = max(1, n // 10)
for i in range(NAMESPACES):
    ns = f"team-{i:03}"
    items = [obj(OC, "Project", "shop", ns, PROJECT_SPEC),
             obj(OC, "Environment", "development", ns, {}),
             obj(OC, "Environment", "production", ns, {"isProduction": True})]
    items += [obj(OC, "ResourceType", f"type-{t}", ns,
                  {"environmentConfigs": {"openAPIV3Schema": SCHEMA}})
              for t in range(i % types, types, NAMESPACES) or [0]]
    mine = range(i, resources, NAMESPACES)
    for r in mine:
        t = f"type-{r % types}"
        owner = {"projectName": "shop"}
        items.append(obj(OC, "Resource", f"db-{r}", ns,
                         {"owner": owner, "type": {"kind": "ResourceType", "name": t}},
                         {"latestRelease": {"name": f"db-{r}-r1", "hash": "r1"}}))
        items.append(obj(OC, "ResourceRelease", f"db-{r}-r1", ns,
                         {"owner": {"projectName": "shop", "resourceName": f"db-{r}"},
                          "resourceType": {"kind": "ResourceType", "name": t,
                                           "spec": {"environmentConfigs": {"openAPIV3Schema": SCHEMA}}}}))
    write(f"{ns}-openchoreo.json", items)
    bindings = []
    per = n // resources if resources else 0
    for r in mine:
        for b in range(per):
            env = "production" if b == 0 else "development"
            ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "all resources are ready",
                     "lastTransitionTime": "2026-11-23T00:00:00Z", "observedGeneration": 1}
            bindings.append(obj(OC, "ResourceReleaseBinding", f"db-{r}-b{b}", ns,
                                {"owner": {"projectName": "shop", "resourceName": f"db-{r}"},
                                 "environment": env if b < 2 else f"development",
                                 "resourceRelease": f"db-{r}-r1",
                                 "resourceTypeEnvironmentConfigs": {"memory": "512Mi", "replicas": 2}},
                                {"conditions": [ready]}))
    write(f"{ns}-bindings.json", bindings)

kratix = []
for p in range(50):
    kratix.append(obj("platform.kratix.io/v1alpha1", "Promise", f"promise-{p}", None,
                      {"api": {"spec": {"names": {"kind": f"Kind{p}"}}}},
                      labels={"kratix.io/promise-version": "v0.5.0"}))
    for v in range(5):
        labels = {"kratix.io/promise-name": f"promise-{p}"}
        if v == 4:
            labels["kratix.io/latest-revision"] = "true"
        kratix.append(obj(KX, "PromiseRevision", f"promise-{p}-v0.{v + 1}.0", None,
                          {"promiseRef": {"name": f"promise-{p}"}, "version": f"v0.{v + 1}.0", "promiseSpec": {}},
                          {"latest": v == 4}, labels))
write("kratix.json", kratix)
rb = [obj(KX, "ResourceBinding", f"req-{i}-binding", f"team-{i % NAMESPACES:03}",
          {"promiseRef": {"name": f"promise-{i % 50}"}, "resourceRef": {"name": f"req-{i}", "namespace": f"team-{i % NAMESPACES:03}"},
           "version": "v0.5.0"},
          labels={"kratix.io/promise-name": f"promise-{i % 50}"})
      for i in range(5000)]
write("resourcebindings.json", rb)
