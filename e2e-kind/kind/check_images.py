#!/usr/bin/env python3
"""Offline checks of the repository's Dockerfile against the chart and the kind scripts.

No image is built here (no container engine on the development machines): this parses the
Dockerfile (a small parser of the Dockerfile syntax it uses: line continuations, comments,
ARG/FROM ... AS, JSON-form ENTRYPOINT) and checks that

- the stages the scripts build exist (builder, controller, speaker), on Debian 13 bases;
- the builder builds exactly the workspace packages whose binaries the images ship;
- controller: only /usr/local/bin/metallb-controller, user 65534, that binary as ENTRYPOINT;
- speaker: Debian's frr, frr-pythontools, iproute2, ca-certificates; metallb-speaker and
  frr-k8s in /usr/local/bin; no ENTRYPOINT (the chart gives every container a command);
- the chart rendered with the tags build-images.sh/install.sh use (dev) runs only those two
  images, and every binary a container's command names is one that image ships (the
  controller has no command: its ENTRYPOINT);
- .dockerignore keeps target/ and .git out and keeps every workspace member in;
- kind-config.yaml is one control plane and two workers;
- the values install.sh sets exist in values.yaml.

Prints each problem (each check with -v) and a count; exit status 1 on any problem. The chart part needs PyYAML and Helm's Python SDK (as
charts/render.py); without them it is skipped, or fails when CI is set.
"""
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib

KIND_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(KIND_DIR, "..", ".."))
CI = bool(os.environ.get("CI"))

OK = []
PROBLEMS = []


VERBOSE = "-v" in sys.argv[1:]


def check(cond, what):
    (OK if cond else PROBLEMS).append(what)
    if VERBOSE or not cond:
        print(("ok:      " if cond else "PROBLEM: ") + what)
    return cond


# ---------------------------------------------------------------------------- Dockerfile

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
}


def parse_dockerfile(text):
    """[(instruction, arguments, line number)]; comments and continuations resolved."""
    out = []
    cur, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if cur and line.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not cur:
            start = n
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip(), start))
        if word.upper() not in INSTRUCTIONS:
            raise ValueError(f"line {start}: unknown instruction {word!r}")
        cur = ""
    if cur:
        raise ValueError("the Dockerfile ends inside a continued line")
    return out


def stages(instrs):
    """(global ARG defaults, {stage: {"base": image, "instrs": [...]}}, stage order)."""
    args, st, order, cur = {}, {}, [], None
    for ins, rest, n in instrs:
        if ins == "ARG" and cur is None:
            k, _, v = rest.partition("=")
            args[k] = v
        elif ins == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            if not m:
                raise ValueError(f"line {n}: FROM {rest!r}")
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda g: args.get(g[1] or g[2], "<unset>"), m[1])
            cur = m[2] or f"stage{len(order)}"
            st[cur] = {"base": base, "instrs": [], "line": n}
            order.append(cur)
        elif cur is None:
            raise ValueError(f"line {n}: {ins} before the first FROM")
        else:
            st[cur]["instrs"].append((ins, rest, n))
    return args, st, order


def of(stage, ins):
    return [rest for i, rest, _ in stage["instrs"] if i == ins]


def copied(stage, source):
    """Destination paths of `COPY --from=source SRC... DEST` (DEST/ + basename for dirs)."""
    out = []
    for rest in of(stage, "COPY"):
        words = rest.split()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        if f"--from={source}" not in flags or len(paths) < 2:
            continue
        dest = paths[-1]
        for src in paths[:-1]:
            out.append(dest + os.path.basename(src) if dest.endswith("/") else dest)
    return out


def workspace_packages():
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        ws = tomllib.load(f)
    members = ws["workspace"]["members"]
    pkgs = {}
    for m in members:
        with open(os.path.join(ROOT, m, "Cargo.toml"), "rb") as f:
            pkgs[tomllib.load(f)["package"]["name"]] = m
    return members, pkgs


def check_dockerfile():
    path = os.path.join(ROOT, "Dockerfile")
    with open(path) as f:
        instrs = parse_dockerfile(f.read())
    check(True, f"Dockerfile parses: {len(instrs)} instructions")
    args, st, order = stages(instrs)
    check(order == ["builder", "controller", "speaker"],
          f"stages builder, controller, speaker (found {order})")
    for name in ("builder", "controller", "speaker"):
        if name not in st:
            return
    b, c, s = st["builder"], st["controller"], st["speaker"]

    check(re.search(r"rust:[\w.]*-?trixie", b["base"]) is not None,
          f"builder from a Debian 13 Rust image ({b['base']})")
    check("debian13" in c["base"] or "trixie" in c["base"],
          f"controller from a Debian 13 runtime ({c['base']})")
    check("trixie" in s["base"], f"speaker from Debian 13 ({s['base']})")

    members, pkgs = workspace_packages()
    run = " ".join(of(b, "RUN"))
    m = re.search(r"cargo build ([^&;]*)", run)
    check(m is not None, "builder runs cargo build")
    if m:
        words = m[1].split()
        built = [words[i + 1] for i, w in enumerate(words) if w == "-p" and i + 1 < len(words)]
        for flag in ("--locked", "--bins"):
            check(flag in words, f"cargo build {flag}")
        # the images' profile: release with whole-program LTO (smaller code, less RSS)
        check(" ".join(words).find("--profile dist") >= 0, "cargo build --profile dist")
        with open(os.path.join(ROOT, "Cargo.toml")) as f:
            manifest = f.read()
        dist = re.search(r"\[profile\.dist\]([^\[]*)", manifest)
        check(dist is not None and 'inherits = "release"' in dist[1] and 'lto = "fat"' in dist[1],
              "Cargo.toml's [profile.dist] inherits release with lto = \"fat\"")
        check(sorted(built) == ["frr-k8s", "metallb-controller", "metallb-speaker"],
              f"cargo build -p metallb-controller -p metallb-speaker -p frr-k8s (found {built})")
        for p in built:
            check(p in pkgs, f"-p {p} is a workspace package ({pkgs.get(p)})")
    check("--mount=type=cache" in run and "target" in run,
          "builder caches cargo's registry and target/ (cache mounts)")
    for binary in ("metallb-controller", "metallb-speaker", "frr-k8s"):
        check(f"target/dist/{binary}" in run, f"builder copies target/dist/{binary} out")

    c_bins = copied(c, "builder")
    check(c_bins == ["/usr/local/bin/metallb-controller"],
          f"controller holds only /usr/local/bin/metallb-controller ({c_bins})")
    check(of(c, "RUN") == [], "controller: no RUN (distroless has no shell)")
    check(any(u.split(":")[0] == "65534" for u in of(c, "USER")),
          f"controller: USER 65534 ({of(c, 'USER')})")
    ep = of(c, "ENTRYPOINT")
    check(len(ep) == 1 and json.loads(ep[0]) == ["/usr/local/bin/metallb-controller"],
          f"controller: ENTRYPOINT [\"/usr/local/bin/metallb-controller\"] ({ep})")

    s_bins = copied(s, "builder")
    check(sorted(s_bins) == ["/usr/local/bin/frr-k8s", "/usr/local/bin/metallb-speaker"],
          f"speaker holds /usr/local/bin/metallb-speaker and /usr/local/bin/frr-k8s ({s_bins})")
    check(of(s, "ENTRYPOINT") == [], "speaker: no ENTRYPOINT (the chart sets commands)")
    srun = " ".join(of(s, "RUN"))
    m = re.search(r"apt-get install ([^;&]*)", srun)
    installed = m[1].split() if m else []
    for p in ("frr", "frr-pythontools", "iproute2", "ca-certificates"):
        check(p in installed, f"speaker installs Debian's {p}")
    check("--no-install-recommends" in installed, "speaker: apt-get --no-install-recommends")
    return {"controller": set(c_bins), "speaker": set(s_bins)}


# ---------------------------------------------------------------------------- .dockerignore

def check_dockerignore():
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        pats = [l.strip().rstrip("/") for l in f if l.strip() and not l.startswith("#")]

    def ignored(p):
        return any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", ""))
                   for pat in pats)

    check(ignored("target") and ignored(".git"), ".dockerignore: target/ and .git/ out")
    members, _ = workspace_packages()
    kept = [p for p in ["Cargo.toml", "Cargo.lock", *members] if not ignored(p)]
    check(len(kept) == len(members) + 2,
          f".dockerignore keeps Cargo.toml, Cargo.lock and the members {members}")


# ---------------------------------------------------------------------------- chart

def render(values):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "charts", "render.py"), "render",
         "--set-json", json.dumps(values)],
        check=True, capture_output=True, text=True).stdout
    import yaml
    return [d for d in yaml.safe_load_all(out) if d]


def check_chart(image_bins):
    try:
        import yaml  # noqa: F401
        import helm_python  # noqa: F401
    except ImportError as e:
        msg = f"chart checks need PyYAML and helm-python-sdk ({e})"
        if CI:
            check(False, msg)
        else:
            print("SKIPPED: " + msg)
        return
    images = {"ghcr.io/metallb-rs/controller:dev": "controller",
              "ghcr.io/metallb-rs/speaker:dev": "speaker"}
    dev = {"controller": {"image": {"tag": "dev"}}, "speaker": {"image": {"tag": "dev"}}}
    for label, extra in (("all-in-one", {}), ("separate frr-k8s", {"frrk8s": {"enabled": True}}),
                         ("frr-k8s namespace of install.sh", {"frrk8s": {"namespace": "frr-k8s-system"}})):
        objs = render({**dev, **extra})
        containers = []
        for o in objs:
            if o["kind"] in ("Deployment", "DaemonSet"):
                spec = o["spec"]["template"]["spec"]
                for ct in spec.get("initContainers", []) + spec["containers"]:
                    containers.append((o["metadata"]["name"], ct))
        check(len(containers) > 0, f"chart ({label}) renders containers")
        for owner, ct in containers:
            where = f"{owner}/{ct['name']}"
            img = images.get(ct["image"])
            if not check(img is not None, f"chart ({label}) {where}: image {ct['image']} is built"):
                continue
            cmd = ct.get("command")
            if img == "controller":
                check(cmd is None, f"chart ({label}) {where}: no command (ENTRYPOINT runs)")
                continue
            check(cmd is not None, f"chart ({label}) {where}: explicit command (no ENTRYPOINT)")
            if not cmd:
                continue
            text = " ".join(cmd)
            for binary in re.findall(r"/usr/local/bin/[\w.-]+", text):
                check(binary in image_bins[img], f"chart ({label}) {where}: {binary} is in the {img} image")
            if "/usr/lib/frr/" in text or "vtysh" in text:
                # frrinit.sh, frrcommon.sh and /usr/bin/vtysh come from Debian's frr package,
                # which the speaker stage installs (checked above).
                check(img == "speaker", f"chart ({label}) {where}: FRR from the speaker image")


# ---------------------------------------------------------------------------- kind files

def check_kind_files():
    try:
        import yaml
    except ImportError:
        print("SKIPPED: kind-config.yaml check needs PyYAML")
        return
    with open(os.path.join(KIND_DIR, "kind-config.yaml")) as f:
        cfg = yaml.safe_load(f)
    roles = sorted(n["role"] for n in cfg.get("nodes", []))
    check(cfg.get("kind") == "Cluster" and roles == ["control-plane", "worker", "worker"],
          f"kind-config.yaml: one control plane, two workers ({roles})")
    with open(os.path.join(ROOT, "charts", "metallb", "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(KIND_DIR, "install.sh")) as f:
        sets = re.findall(r"--set ([\w.]+)=", f.read())
    for key in sets:
        v = values
        for part in key.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        check(v is not None, f"install.sh --set {key}: in values.yaml")


def main():
    try:
        bins = check_dockerfile()
    except ValueError as e:
        check(False, f"Dockerfile: {e}")
        bins = None
    check_dockerignore()
    if bins:
        check_chart(bins)
    check_kind_files()
    print(f"image/chart checks: {len(OK)} ok, {len(PROBLEMS)} problems")
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())
