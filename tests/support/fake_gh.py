"""The GitHub CLI faked for the workflows' comment step: the shipped workflows' test and the templates'
test run that step offline."""

# A stand-in for `gh api` over one pull request's comments, kept in a JSON file: GET lists them (the
# workflow's --jq filter is applied as the jq it is: the ids of comments whose body holds the marker),
# POST adds one, PATCH replaces one's body.
FAKE_GH = r"""#!/usr/bin/env python3
import json, os, re, sys
store = os.environ["FAKE_GH_STORE"]
comments = json.load(open(store)) if os.path.exists(store) else []
args = sys.argv[2:]
method = args[args.index("--method") + 1] if "--method" in args else "GET"
path = next(a for a in args if a.startswith("repos/"))
if method == "GET":
    marker = re.search(r'contains\("(.*)"\)', args[args.index("--jq") + 1]).group(1)
    print("\n".join(str(c["id"]) for c in comments if marker in c["body"]))
else:
    body = open(args[args.index("-F") + 1].split("=@", 1)[1]).read()
    if method == "POST":
        comments.append({"id": len(comments) + 1, "body": body})
    else:
        next(c for c in comments if str(c["id"]) == path.rsplit("/", 1)[1])["body"] = body
    json.dump(comments, open(store, "w"))
"""
