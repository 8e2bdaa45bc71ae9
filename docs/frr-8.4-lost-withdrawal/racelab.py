#!/usr/bin/env python3
"""Shared helpers for the FRR 8.4.4 'stale path after no network' race lab.

Topology (all names prefixed rc-):
  rc-router : bridge br0 192.0.2.1/24, FRR AS 64600, neighbors 192.0.2.11/.12 (AS 64512),
              soft-reconfiguration inbound, debug bgp updates + neighbor-events.
  rc-node1  : eth0 192.0.2.11/24 (veth into br0), FRR AS 64512
  rc-node2  : eth0 192.0.2.12/24 (veth into br0), FRR AS 64512
Daemons: zebra + bgpd per namespace, pathspace = namespace name.
Only PIDs from /var/run/frr/rc-*/<daemon>.pid are ever killed.
"""
import json, os, shutil, signal, subprocess, threading, time

ROUTER = 'rc-router'
NODES = {'rc-node1': '192.0.2.11', 'rc-node2': '192.0.2.12'}
ALL_NS = [ROUTER] + list(NODES)
PFX = '198.18.0.0/32'
RTR_IP = '192.0.2.1'
LOGDIR = '/tmp/race/logs'
T0 = time.monotonic()


def now():
    return time.monotonic()


def log(*a):
    print('%8.3f' % (now() - T0), *a, flush=True)


def sh(cmd, check=True, capture=True, timeout=60):
    r = subprocess.run(cmd, shell=True, text=True, capture_output=capture, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError('%s -> rc %d: %s %s' % (cmd, r.returncode, r.stdout, r.stderr))
    return r.stdout if capture else ''


def vty(ns, *cmds, daemon=None, timeout=30):
    args = ['vtysh', '-N', ns]
    if daemon:
        args += ['-d', daemon]
    for c in cmds:
        args += ['-c', c]
    r = subprocess.run(args, text=True, capture_output=True, timeout=timeout)
    return r.stdout


def vty_json(ns, cmd, daemon='bgpd'):
    out = vty(ns, cmd, daemon=daemon)
    try:
        return json.loads(out)
    except Exception:
        return None


def vty_file(ns, text, tag='batch'):
    path = '/tmp/race/logs/%s-%s-%d.txt' % (ns, tag, os.getpid())
    with open(path, 'w') as f:
        f.write(text)
    t = now()
    r = subprocess.run(['vtysh', '-N', ns, '-f', path], text=True, capture_output=True, timeout=60)
    return t, now(), r.returncode, (r.stdout + r.stderr).strip()


# ---------------------------------------------------------------- topology / daemons

def topo_up():
    for ns in ALL_NS:
        sh('ip netns add %s' % ns)
        sh('ip -n %s link set lo up' % ns)
        sh('ip netns exec %s sysctl -qw net.ipv4.ip_forward=1' % ns)
    sh('ip -n %s link add br0 type bridge' % ROUTER)
    sh('ip -n %s link set br0 type bridge stp_state 0 forward_delay 0' % ROUTER)
    sh('ip -n %s link set br0 up' % ROUTER)
    sh('ip -n %s addr add %s/24 dev br0' % (ROUTER, RTR_IP))
    for i, (ns, ip) in enumerate(NODES.items(), 1):
        sh('ip link add eth0 netns %s type veth peer name p-n%d netns %s' % (ns, i, ROUTER))
        sh('ip -n %s link set p-n%d master br0 up' % (ROUTER, i))
        sh('ip -n %s addr add %s/24 dev eth0' % (ns, ip))
        sh('ip -n %s link set eth0 up' % ns)
    # wait for carrier / DAD-free IPv4 reachability
    for ns, ip in NODES.items():
        for _ in range(50):
            if subprocess.run('ip netns exec %s ping -c1 -W1 %s' % (ns, RTR_IP), shell=True,
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def frr_prepare(ns, conf):
    os.makedirs('/etc/frr/' + ns, exist_ok=True)
    os.makedirs('/var/run/frr/' + ns, exist_ok=True)
    sh('chown frr:frr /etc/frr/%s /var/run/frr/%s && chmod 0750 /etc/frr/%s && chmod 0755 /var/run/frr/%s'
       % (ns, ns, ns, ns))
    with open('/etc/frr/%s/vtysh.conf' % ns, 'w') as f:
        f.write('service integrated-vtysh-config\n')
    with open('/etc/frr/%s/frr.conf' % ns, 'w') as f:
        f.write(conf)
    sh('chown frr:frr /etc/frr/%s/frr.conf && chmod 0640 /etc/frr/%s/frr.conf' % (ns, ns))


def frr_start(ns, conf, daemons=('zebra', 'bgpd')):
    frr_prepare(ns, conf)
    for d in daemons:
        opts = '-A 127.0.0.1 --limit-fds 1024'
        if d == 'zebra':
            opts += ' -s 90000000'
        sh('ip netns exec %s /usr/lib/frr/%s -d -N %s %s' % (ns, d, ns, opts))
    sh('vtysh -N %s -b' % ns, check=False)


def frr_pids(ns):
    pids = {}
    for d in ('staticd', 'bfdd', 'bgpd', 'zebra'):
        try:
            with open('/var/run/frr/%s/%s.pid' % (ns, d)) as f:
                pids[d] = int(f.read().strip())
        except Exception:
            pass
    return pids


def frr_stop(ns):
    pids = frr_pids(ns)
    alive = []
    for d, pid in pids.items():
        # only kill if that pid really is the FRR daemon of this pathspace
        try:
            cmd = open('/proc/%d/cmdline' % pid).read().replace('\0', ' ')
        except Exception:
            continue
        if ('/usr/lib/frr/%s' % d) in cmd and ('-N %s ' % ns) in cmd + ' ':
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)   # in case a test stalled it (--router-stall)
            alive.append(pid)
    for pid in alive:
        for _ in range(50):
            if not os.path.exists('/proc/%d' % pid):
                break
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def cleanup():
    for ns in ALL_NS:
        try:
            frr_stop(ns)
        except Exception as e:
            print('stop', ns, e)
    for ns in ALL_NS:
        subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
        shutil.rmtree('/etc/frr/' + ns, ignore_errors=True)
        shutil.rmtree('/var/run/frr/' + ns, ignore_errors=True)


# ---------------------------------------------------------------- configs

def router_conf(logfile, extra=''):
    nb = ''.join(' neighbor %s remote-as 64512\n' % ip for ip in NODES.values())
    af = ''.join('  neighbor %s activate\n  neighbor %s soft-reconfiguration inbound\n' % (ip, ip)
                 for ip in NODES.values())
    return f"""frr defaults traditional
log file {logfile} debugging
log timestamp precision 3
debug bgp updates
debug bgp neighbor-events
router bgp 64600
 bgp router-id {RTR_IP}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
{nb}{extra} address-family ipv4 unicast
{af}  maximum-paths 16
 exit-address-family
exit
"""


def node_base_conf(logfile, with_network=False, debug=True, extra=''):
    dbg = 'debug bgp updates\ndebug bgp neighbor-events\n' if debug else ''
    af = ''
    if with_network:
        af = ' address-family ipv4 unicast\n  network %s\n exit-address-family\n' % PFX
    return f"""frr defaults traditional
log file {logfile} debugging
log timestamp precision 3
{dbg}router bgp 64512
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 no bgp network import-check
 bgp graceful-restart preserve-fw-state
{extra}{af}exit
"""


def first_batch(network=True, nb_extra=''):
    net = '  network %s\n' % PFX if network else ''
    return f"""ip prefix-list {RTR_IP}-allowed-ipv4 seq 1 permit {PFX}
route-map {RTR_IP}-out permit 1
 match ip address prefix-list {RTR_IP}-allowed-ipv4
exit
route-map {RTR_IP}-out deny 2
exit
route-map {RTR_IP}-in deny 1
exit
router bgp 64512
 neighbor {RTR_IP} remote-as 64600
{nb_extra} address-family ipv4 unicast
{net}  neighbor {RTR_IP} activate
  neighbor {RTR_IP} route-map {RTR_IP}-in in
  neighbor {RTR_IP} route-map {RTR_IP}-out out
 exit-address-family
exit
"""


NO_NET = f"""router bgp 64512
 address-family ipv4 unicast
  no network {PFX}
 exit-address-family
exit
"""
NO_PL_LAST = f"no ip prefix-list {RTR_IP}-allowed-ipv4\n"
NO_PL_SEQ = f"no ip prefix-list {RTR_IP}-allowed-ipv4 seq 1 permit {PFX}\n"

DELETE_VARIANTS = {
    'full': NO_NET + NO_PL_LAST,          # product: no network, then drop the (last) prefix-list
    'fullseq': NO_NET + NO_PL_SEQ,        # product with the seq form (not-last entry)
    'netonly': NO_NET,                    # (a)
    'plonly': NO_PL_LAST,                 # (b)
    'plfirst': NO_PL_LAST + NO_NET,       # (c)
}


# ---------------------------------------------------------------- state queries

def router_summary():
    j = vty_json(ROUTER, 'show bgp ipv4 unicast summary json')
    out = {}
    if j and 'peers' in j:
        for ip, p in j['peers'].items():
            out[ip] = p.get('state')
    return out


def router_paths():
    """set of peer IPs the router has a path for PFX from"""
    j = vty_json(ROUTER, 'show bgp ipv4 unicast %s json' % PFX)
    peers = set()
    if j and 'paths' in j:
        for p in j['paths']:
            pid = p.get('peer', {}).get('peerId')
            if pid:
                peers.add(pid)
    return peers


def node_adv(ns):
    j = vty_json(ns, 'show bgp ipv4 unicast neighbors %s advertised-routes json' % RTR_IP)
    if not j:
        return None
    return sorted((j.get('advertisedRoutes') or {}).keys())
