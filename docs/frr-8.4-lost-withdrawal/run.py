#!/usr/bin/env python3
"""Reproducer: 'no network' shortly after a new eBGP session comes up leaves a stale path
on the external router (FRR 8.4.4).

Per trial: fresh FRR (zebra+bgpd) on rc-node1/rc-node2 with a base config without neighbor,
one `vtysh -f` first batch (prefix-list + route-maps + neighbor + network) to both nodes,
poll the router's `show bgp ipv4 unicast summary json` (~10 ms sleep + ~25 ms per vtysh call),
D ms after a node's session is Established on the router send the deletion batch to that
node, then 8.5 s after the last deletion check whether the router still has a path for
198.18.0.0/32 from that node.

Example:
  python3 /tmp/race/run.py --tag sweep --delays 0,10,30,100,300,500,1000,2000 --runs 4
  python3 /tmp/race/run.py --tag varA --variant netonly --delays 1000 --runs 5
  python3 /tmp/race/run.py --tag rep --delays 1000 --runs 6 --repair
"""
import argparse, json, os, subprocess, sys, threading, time, atexit, signal
sys.path.insert(0, '/tmp/race')
from racelab import *

ap = argparse.ArgumentParser()
ap.add_argument('--tag', required=True)
ap.add_argument('--delays', default='0,10,30,100,300,500,1000,2000', help='ms after Established')
ap.add_argument('--abs-delays', default='', help='ms after the FIRST batch instead (comma list)')
ap.add_argument('--runs', type=int, default=4)
ap.add_argument('--variant', default='full', choices=list(DELETE_VARIANTS))
ap.add_argument('--net-in-base', action='store_true', help='(d) network in the base config before the neighbor exists')
ap.add_argument('--settle', type=float, default=2.0, help='s between node start and first batch')
ap.add_argument('--no-debug', action='store_true', help='no debug bgp on the nodes')
ap.add_argument('--node-extra', default='', help='extra lines under router bgp in the node base config (use \\n)')
ap.add_argument('--node-global', default='', help='extra global lines in the node base config, e.g. "bgp route-map delay-timer 1"')
ap.add_argument('--nb-extra', default='', help='extra lines in the first batch under router bgp (use \\n)')
ap.add_argument('--check-after', type=float, default=8.5)
ap.add_argument('--repair', action='store_true', help='on stale, try the repairs in order')
ap.add_argument('--repairs', default='softout,soft,readd,hard')
ap.add_argument('--nodes', type=int, default=2)
ap.add_argument('--netem', type=int, default=0, help='one-way delay (ms) added on both ends of every node link (tc netem)')
ap.add_argument('--pre-policy', action='store_true', help='prefix-list + route-maps already in the base config (first batch = neighbor + network only)')
ap.add_argument('--router-stall', default='', help='AT_MS:LEN_MS - SIGSTOP the router bgpd LEN ms, AT ms after the first batch (emulates a busy router -> later Established)')
ap.add_argument('--first-stdin', action='store_true', help='send the first batch on vtysh stdin (configure terminal ...) instead of vtysh -f')
ap.add_argument('--watch-route', action='store_true', help='also poll when the router first has the path')
args = ap.parse_args()

RES = '/tmp/race/results-%s.jsonl' % args.tag


def _sig(*_):
    sys.exit(1)


signal.signal(signal.SIGTERM, _sig)
signal.signal(signal.SIGINT, _sig)
atexit.register(cleanup)

nodes = dict(list(NODES.items())[:args.nodes])
node_extra = args.node_extra.replace('\\n', '\n')
if node_extra and not node_extra.endswith('\n'):
    node_extra += '\n'
nb_extra = args.nb_extra.replace('\\n', '\n')
if nb_extra and not nb_extra.endswith('\n'):
    nb_extra += '\n'


def diag(ns, path):
    cmds_node = ['show bgp ipv4 unicast neighbors %s advertised-routes json' % RTR_IP,
                 'show bgp ipv4 unicast %s json' % PFX,
                 'show bgp ipv4 unicast update-groups',
                 'show bgp ipv4 unicast update-groups advertised-routes',
                 'show bgp ipv4 unicast neighbors %s' % RTR_IP,
                 'show bgp ipv4 unicast summary',
                 'show running-config']
    with open(path, 'w') as f:
        for c in cmds_node:
            f.write('### %s: %s\n%s\n' % (ns, c, vty(ns, c)))
        for c in ['show bgp ipv4 unicast %s json' % PFX,
                  'show bgp ipv4 unicast neighbors %s received-routes' % nodes[ns],
                  'show bgp ipv4 unicast neighbors %s routes' % nodes[ns]]:
            f.write('### %s: %s\n%s\n' % (ROUTER, c, vty(ROUTER, c)))


def conf_node(ns, lines):
    # a small config change through vtysh -f (same path as the product)
    return vty_file(ns, lines, tag='repair')


REPAIRS = {
    'softout': lambda ns: vty(ns, 'clear bgp ipv4 unicast %s soft out' % RTR_IP),
    'soft': lambda ns: vty(ns, 'clear bgp ipv4 unicast %s soft' % RTR_IP),
    'readd': None,  # special
    'hard': lambda ns: vty(ns, 'clear bgp %s' % RTR_IP),
}


def repair(ns, ip, rec):
    seq = []
    for r in args.repairs.split(','):
        t = now()
        if r in ('readd300', 'readd0'):
            add = 'router bgp 64512\n address-family ipv4 unicast\n  network %s\n exit-address-family\nexit\n' % PFX
            if r == 'readd300':
                conf_node(ns, add)
                time.sleep(0.3)
                conf_node(ns, NO_NET)
            else:
                conf_node(ns, add + NO_NET)
            mid = None
            time.sleep(3)
        elif r == 'readd':
            conf_node(ns, 'router bgp 64512\n address-family ipv4 unicast\n  network %s\n exit-address-family\nexit\n' % PFX)
            time.sleep(2)
            mid = ip in router_paths()
            conf_node(ns, NO_NET)
            time.sleep(3)
        elif r == 'readd-pl':
            conf_node(ns, 'ip prefix-list %s-allowed-ipv4 seq 1 permit %s\nrouter bgp 64512\n address-family ipv4 unicast\n  network %s\n exit-address-family\nexit\n' % (RTR_IP, PFX, PFX))
            time.sleep(2)
            mid = ip in router_paths()
            conf_node(ns, NO_NET + NO_PL_LAST)
            time.sleep(3)
        else:
            REPAIRS[r](ns)
            mid = None
            time.sleep(3)
        # wait for the session to be Established again (hard clear)
        for _ in range(300):
            if router_summary().get(ip) == 'Established':
                break
            time.sleep(0.1)
        fixed = ip not in router_paths()
        seq.append({'repair': r, 'fixed': fixed, 'present_mid': mid, 'secs': round(now() - t, 2),
                    'node_adv': node_adv(ns)})
        log('   repair', ns, r, 'fixed' if fixed else 'STILL STALE', 'node adv', node_adv(ns))
        if fixed:
            break
    rec['repairs'] = seq


def trial(tno, mode, dms):
    tag = 't%s-%03d' % (args.tag, tno)
    # fresh router per trial: the nodes use 'bgp graceful-restart preserve-fw-state', so a node
    # bgpd that is stopped sends no NOTIFICATION and the router (GR helper) would keep its paths
    frr_start(ROUTER, router_conf('%s/%s-router.log' % (LOGDIR, tag)))
    for ns in nodes:
        conf = node_base_conf('%s/%s-%s.log' % (LOGDIR, tag, ns), with_network=args.net_in_base,
                              debug=not args.no_debug, extra=node_extra)
        if args.node_global:
            conf = conf.replace('router bgp 64512\n', args.node_global.replace('\\n', '\n') + '\nrouter bgp 64512\n', 1)
        if args.pre_policy:
            fb = first_batch()
            conf += fb[:fb.index('router bgp')]
        frr_start(ns, conf)
    time.sleep(args.settle)
    batch = first_batch(nb_extra=nb_extra)
    if args.pre_policy:
        batch = batch[batch.index('router bgp'):]
    recs = {ns: {'trial': tag, 'node': ns, 'mode': mode, 'D_ms': dms, 'variant': args.variant,
                 'net_in_base': args.net_in_base, 'node_extra': node_extra, 'nb_extra': nb_extra}
            for ns in nodes}
    t0 = now()
    for r in recs.values():
        r['t0_wall'] = time.time()
    thr = []
    if args.router_stall:
        at, ln = (int(x) for x in args.router_stall.split(':'))
        rpid = frr_pids(ROUTER)['bgpd']

        def stall():
            os.kill(rpid, signal.SIGSTOP)
            time.sleep(ln / 1000.0)
            os.kill(rpid, signal.SIGCONT)
        threading.Timer(at / 1000.0, stall).start()
    for ns in nodes:
        def f(ns=ns):
            if args.first_stdin:
                a = now()
                p = subprocess.run(['vtysh', '-N', ns], input='configure terminal\n' + batch + 'end\n',
                                   text=True, capture_output=True)
                b, rc, out = now(), p.returncode, (p.stderr or '').strip()
            else:
                a, b, rc, out = vty_file(ns, batch, tag='first')
            recs[ns].update(first_apply_s=round(b - a, 3), first_rc=rc, first_out=out)
        th = threading.Thread(target=f)
        th.start()
        thr.append(th)
    for th in thr:
        th.join()
    delthreads = []

    def do_delete(ns):
        a, b, rc, out = vty_file(ns, DELETE_VARIANTS[args.variant], tag='del')
        recs[ns].update(del_start=round(a - t0, 3), del_end=round(b - t0, 3), del_rc=rc, del_out=out)

    pending = dict(nodes)
    if mode == 'abs':
        for ns in nodes:
            th = threading.Timer(dms / 1000.0, do_delete, args=(ns,))
            th.start()
            delthreads.append(th)
    seen = dict(nodes) if args.watch_route else {}
    while (pending or seen) and now() - t0 < 40:
        if seen and not pending:
            p = router_paths()
            for ns, ip in list(seen.items()):
                if ip in p:
                    recs[ns]['route_seen'] = round(now() - t0, 3)
                    del seen[ns]
            time.sleep(0.01)
            continue
        s = router_summary()
        if seen:
            p = router_paths()
            for ns, ip in list(seen.items()):
                if ip in p:
                    recs[ns]['route_seen'] = round(now() - t0, 3)
                    del seen[ns]
        for ns, ip in list(pending.items()):
            if s.get(ip) == 'Established':
                recs[ns]['est'] = round(now() - t0, 3)
                if mode == 'est':
                    th = threading.Timer(dms / 1000.0, do_delete, args=(ns,))
                    th.start()
                    delthreads.append(th)
                del pending[ns]
        time.sleep(0.01)
    for th in delthreads:
        th.join()
    last = max(r.get('del_end', 0) for r in recs.values())
    time.sleep(max(0, t0 + last + args.check_after - now()))
    paths = router_paths()
    for ns, ip in nodes.items():
        r = recs[ns]
        r['stale'] = ip in paths
        r['node_adv'] = node_adv(ns)
        r['node_has_pfx'] = bool(vty_json(ns, 'show bgp ipv4 unicast %s json' % PFX))
        sj = vty_json(ns, 'show bgp ipv4 unicast summary json') or {}
        r['node_pfxSnt'] = sj.get('peers', {}).get(RTR_IP, {}).get('pfxSnt')
        if r['stale']:
            diag(ns, '%s/%s-%s-diag.txt' % (LOGDIR, tag, ns))
    for ns, ip in nodes.items():
        if recs[ns]['stale'] and args.repair:
            repair(ns, ip, recs[ns])
    with open(RES, 'a') as f:
        for r in recs.values():
            f.write(json.dumps(r) + '\n')
            log('%s %s D=%s est=%s route=%s del=%s stale=%s adv=%s pfxSnt=%s' % (tag, r['node'], dms, r.get('est'), r.get('route_seen'),
                r.get('del_start'), r['stale'], r['node_adv'], r.get('node_pfxSnt')))
    for ns in list(nodes) + [ROUTER]:
        frr_stop(ns)
        shutil.rmtree('/etc/frr/' + ns, ignore_errors=True)


cleanup()
topo_up()
if args.netem:
    for i, ns in enumerate(nodes, 1):
        sh('ip netns exec %s tc qdisc add dev eth0 root netem delay %dms' % (ns, args.netem))
        sh('ip netns exec %s tc qdisc add dev p-n%d root netem delay %dms' % (ROUTER, i, args.netem))
plan = []
for r in range(args.runs):
    if args.abs_delays:
        plan += [('abs', int(d)) for d in args.abs_delays.split(',')]
    else:
        plan += [('est', int(d)) for d in args.delays.split(',')]
for i, (mode, d) in enumerate(plan):
    trial(i, mode, d)

# summary
rows = [json.loads(l) for l in open(RES)]
agg = {}
for r in rows:
    k = (r['mode'], r['D_ms'])
    a = agg.setdefault(k, [0, 0])
    a[0] += r['stale']
    a[1] += 1
print('summary (%s, variant=%s):' % (args.tag, args.variant))
for k in sorted(agg):
    print('  %s D=%5d ms: stale %d/%d' % (k[0], k[1], agg[k][0], agg[k][1]))
