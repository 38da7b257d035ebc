#!/usr/bin/env python3
"""Write down the structural parts of upstream's CRDs that bindguard's CRDs must match.

    scripts/pin-upstream-crds.py KRATIX_CHECKOUT OPENCHOREO_CHECKOUT

reads the CRDs bindguard also defines from the two checkouts (config/crd/bases/) and writes one
JSON summary per CRD to tests/fixtures/upstream-crds/, with the checkout's commit. tests/crds.rs
compares bindguard's generated CRDs against these files. Needs PyYAML.
"""
import json
import pathlib
import subprocess
import sys

import yaml

KRATIX = ["promises", "promiserevisions", "resourcebindings"]
OPENCHOREO = [
    "environments", "projects", "resourcetypes", "clusterresourcetypes",
    "resources", "resourcereleases", "resourcereleasebindings",
]
# How deep under spec the property tree is written down.
DEPTH = 3


def shape(node, depth):
    out = {}
    for key in ("type", "format", "enum", "minLength", "maxLength", "minimum", "pattern",
                "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"):
        if key in node:
            out[key] = node[key]
    if "required" in node:
        out["required"] = sorted(node["required"])
    rules = node.get("x-kubernetes-validations")
    if rules:
        out["x-kubernetes-validations"] = [
            {k: r[k] for k in ("rule", "message") if k in r} for r in rules
        ]
    if depth > 0 and "properties" in node:
        out["properties"] = {k: shape(v, depth - 1) for k, v in sorted(node["properties"].items())}
    elif "properties" in node:
        out["properties"] = sorted(node["properties"])
    if depth > 0 and isinstance(node.get("items"), dict):
        out["items"] = shape(node["items"], depth - 1)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = shape(node["additionalProperties"], max(depth - 1, 0))
    return out


def summary(crd, source, commit):
    spec = crd["spec"]
    versions = []
    for v in spec["versions"]:
        schema = v.get("schema", {}).get("openAPIV3Schema", {})
        props = schema.get("properties", {})
        versions.append({
            "name": v["name"],
            "served": v.get("served", False),
            "storage": v.get("storage", False),
            "subresources": sorted(v.get("subresources", {}) or {}),
            "printerColumns": [
                {"name": c["name"], "jsonPath": c["jsonPath"]}
                for c in v.get("additionalPrinterColumns", [])
            ],
            "spec": shape(props.get("spec", {}), DEPTH),
            "status": sorted(props.get("status", {}).get("properties", {})),
        })
    names = spec["names"]
    return {
        "source": source,
        "commit": commit,
        "group": spec["group"],
        "kind": names["kind"],
        "plural": names["plural"],
        "singular": names.get("singular"),
        "scope": spec["scope"],
        "shortNames": sorted(names.get("shortNames", [])),
        "categories": sorted(names.get("categories", [])),
        "versions": versions,
    }


def pin(checkout, repo, group, plurals, out):
    commit = subprocess.check_output(["git", "-C", checkout, "rev-parse", "HEAD"], text=True).strip()
    for plural in plurals:
        path = f"config/crd/bases/{group}_{plural}.yaml"
        text = subprocess.check_output(["git", "-C", checkout, "show", f"HEAD:{path}"], text=True)
        crd = yaml.safe_load(text)
        doc = summary(crd, f"https://github.com/{repo}/blob/{commit}/{path}", commit)
        (out / f"{plural}.{group}.json").write_text(json.dumps(doc, indent=1) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/upstream-crds"
    out.mkdir(parents=True, exist_ok=True)
    pin(sys.argv[1], "syntasso/kratix", "platform.kratix.io", KRATIX, out)
    pin(sys.argv[2], "openchoreo/openchoreo", "openchoreo.dev", OPENCHOREO, out)


if __name__ == "__main__":
    main()
