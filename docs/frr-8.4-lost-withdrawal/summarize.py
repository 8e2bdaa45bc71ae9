#!/usr/bin/env python3
"""Summaries over results-*.jsonl: stale rate per tag/D, detection-rule check, repairs, Q5 timings."""
import glob, json, statistics, sys
rows = {}
for f in sorted(glob.glob('/tmp/race/results-*.jsonl')):
    tag = f.split('results-')[1][:-6]
    if tag.startswith('p-'):
        continue  # not from this investigation (another session's run_product.py)
    rows[tag] = [json.loads(l) for l in open(f)]
print('## stale rate per tag and D (samples = trials x 2 nodes)')
for tag, rs in rows.items():
    agg = {}
    for r in rs:
        a = agg.setdefault(r['D_ms'], [0, 0]); a[0] += r['stale']; a[1] += 1
    print('%-12s %-8s %s' % (tag, rs[0]['variant'], '  '.join('D=%d:%d/%d' % (d, a[0], a[1]) for d, a in sorted(agg.items()))))
print('\n## detection: stale vs node advertised-routes / pfxSnt / node RIB')
tab = {}
for rs in rows.values():
    for r in rs:
        if 'repairs' in r:
            pass
        k = (r['stale'], bool(r['node_adv']), r.get('node_pfxSnt'), r['node_has_pfx'])
        tab[k] = tab.get(k, 0) + 1
for k, n in sorted(tab.items(), key=str):
    print('stale=%-5s adv_nonempty=%-5s pfxSnt=%s node_rib_has_pfx=%-5s : %d samples' % (k + (n,)))
print('\n## repairs')
for tag, rs in rows.items():
    for r in rs:
        if r.get('repairs'):
            print(tag, r['trial'], r['node'], r['variant'], ' -> '.join('%s:%s%s' % (x['repair'], 'FIXED' if x['fixed'] else 'stale',
                  '' if x['present_mid'] is None else '(router had path after re-add: %s)' % x['present_mid']) for x in r['repairs']))
print('\n## Q5: session Established / route at router, s after the first batch (router view)')
for tag, rs in rows.items():
    if not tag.startswith('q5'):
        continue
    est = [r['est'] for r in rs if 'est' in r]
    rt = [r['route_seen'] for r in rs if 'route_seen' in r]
    print('%-12s est %s (median %.2f)  route %s (median %.2f)' % (tag, est, statistics.median(est), rt, statistics.median(rt) if rt else -1))
