"""A real CKAN client against Huitong: the `ckanapi` package (PyPI) lists, searches and reads
the open catalog, reads its records (datastore_search) and a download, and prints what it got as JSON for the Rust test (tests/api/ckan.rs) to check.

Usage: client.py BASE_URL OPEN_DATASET_CODE NOT_OPEN_CODE
"""

import json
import sys
import urllib.request

import ckanapi


def main():
    address, open_code, closed_code = sys.argv[1:4]
    site = ckanapi.RemoteCKAN(address, user_agent="huitong-tests")
    out = {}
    out["package_list"] = site.action.package_list()
    search = site.action.package_search(q="法人", **{"facet.field": '["organization"]'})
    out["search"] = {
        "count": search["count"],
        "names": [p["name"] for p in search["results"]],
        "organization_facet": search["facets"].get("organization"),
    }
    package = site.action.package_show(id=open_code)
    out["show"] = {
        "name": package["name"],
        "title": package["title"],
        "organization": package["organization"]["name"],
        "formats": [r["format"] for r in package["resources"]],
        "first_url": package["resources"][0]["url"],
    }
    rows = site.action.datastore_search(resource_id=open_code + "-csv", limit=3, sort="uscc desc")
    out["datastore"] = {
        "total": rows["total"],
        "fields": [f["id"] for f in rows["fields"]],
        "keys": [r["uscc"] for r in rows["records"]],
    }
    # Read the data itself, as a harvester does: the resource's download URL.
    with urllib.request.urlopen(package["resources"][0]["url"]) as response:
        lines = response.read().decode("utf-8").splitlines()
    out["download"] = {"header": lines[0], "rows": len(lines) - 1}
    out["organizations"] = [
        {"name": o["name"], "title": o["title"], "package_count": o["package_count"]}
        for o in site.action.organization_list(all_fields=True)
    ]
    try:
        site.action.package_show(id=closed_code)
        out["not_open"] = "found"
    except ckanapi.NotFound:
        out["not_open"] = "NotFound"
    try:
        site.action.package_show()
        out["missing_id"] = "found"
    except ckanapi.ValidationError:
        out["missing_id"] = "ValidationError"
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
