#!/bin/bash
# Runs every experiment of REPORT.md in sequence (each run.py call sets up and tears down its lab).
set -u
cd /tmp/race
R="python3 /tmp/race/run.py"
ST="--router-stall 3900:400"          # amplifier: router bgpd SIGSTOPped 400 ms around session setup
# 1. plain sweep (no amplifier)
[ "${SKIP_SWEEP:-0}" = 1 ] || $R --tag sweep --delays 0,10,30,100,300,500,900,950,1000,1050,1100,2000 --runs 3
# 1b. amplified sweep
[ "${SKIP_STALL:-0}" = 1 ] || $R --tag stall $ST --delays 0,300,500,600,700,800,900,1000,1200,2000 --runs 2
# 1c. trigger variants (a)-(d), D=800 inside the amplified window
$R --tag v-netonly  $ST --variant netonly --delays 800 --runs 2
$R --tag v-plonly   $ST --variant plonly  --delays 800 --runs 2
$R --tag v-plfirst  $ST --variant plfirst --delays 800 --runs 2
$R --tag v-netbase  $ST --net-in-base     --delays 800 --runs 2
# 3. repairs
$R --tag rep1 $ST --delays 800 --runs 2 --repair --repairs softout,soft,readd,hard
$R --tag rep2 $ST --delays 800 --runs 1 --repair --repairs hard
$R --tag rep3 $ST --variant netonly --delays 800 --runs 1 --repair --repairs softout,readd,hard
# mitigation candidates, same amplified window
$R --tag m-coal0b $ST --node-extra ' coalesce-time 0' --delays 600,700,800,900 --runs 2
# 5. session start time (no amplifier), D=3000 so there is no race
$R --tag q5-base   --watch-route --delays 3000 --runs 2
$R --tag q5-tconn  --watch-route --delays 3000 --runs 2 --nb-extra ' neighbor 192.0.2.1 timers connect 1'
$R --tag q5-rmd1   --watch-route --delays 3000 --runs 2 --node-global 'bgp route-map delay-timer 1'
$R --tag q5-prepol  --watch-route --delays 3000 --runs 2 --pre-policy            # policy 2 s old (boot rmap timer still running)
$R --tag q5-prepol6 --watch-route --delays 3000 --runs 2 --pre-policy --settle 6
$R --tag q5-coal0b  --watch-route --delays 3000 --runs 2 --node-extra ' coalesce-time 0'
$R --tag q5-stdin  --watch-route --delays 3000 --runs 2 --first-stdin
# combination suggested for the product (node-side): short route-map delay + no coalesce timer
$R --tag q5-combo --watch-route --delays 3000 --runs 1 --node-global 'bgp route-map delay-timer 1' --node-extra ' coalesce-time 0'
$R --tag m-combo --node-global 'bgp route-map delay-timer 1' --node-extra ' coalesce-time 0' --delays 800,850,900,950 --runs 1
