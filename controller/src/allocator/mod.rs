//! The pure IP allocator.
//!
//! No client, clock or socket: the reconciler feeds it parsed pools and services and writes
//! whatever it decides. All state is in ordered maps so that the same inputs give the same
//! assignments whatever order events arrived in.
//!
//! Deterministic choices where upstream depends on Go map order:
//! - automatic allocation tries pools with a `serviceAllocation` that admits the service first,
//!   ordered by priority (lower first, 0/unset last), then by pool name; then every other
//!   auto-assign pool without `serviceAllocation`, by pool name;
//! - inside a pool, CIDRs in `spec.addresses` order, each from its first address upward;
//! - [`Allocator::allocate_batch`] handles services in name order.

mod pool;
mod sharing;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

pub use pool::{is_buggy, Family, Pool, ServiceAllocation};
pub use sharing::{Protocol, SharingConflict, SharingProfile};

use pool::{bounds, from_u128, to_u128};

/// `namespace/name` of a Service.
pub type ServiceKey = String;

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// What the allocator needs to know about one LoadBalancer Service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Families of `spec.clusterIPs`, primary first (one or two entries).
    pub cluster_families: Vec<Family>,
    pub policy: FamilyPolicy,
    /// From `metallb.io/loadBalancerIPs` (or the legacy annotation, or `spec.loadBalancerIP`).
    pub requested_ips: Vec<IpAddr>,
    /// From `metallb.io/address-pool`.
    pub requested_pool: Option<String>,
    pub sharing: SharingProfile,
}

/// The addresses a service holds and the pool they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub pool: String,
    pub ips: Vec<IpAddr>,
}

/// Why a service gets no address. Each message says what the user can change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("no IPAddressPool is configured")]
    NoPools,
    #[error("the service has no cluster IP, so its IP family is unknown")]
    NoClusterIp,
    #[error("ipFamilyPolicy RequireDualStack needs two cluster IPs, the service has {0}")]
    NotEnoughClusterIps(usize),
    #[error(
        "requested IPs {0}: expected one IP, or two of different families for a dual-stack service"
    )]
    BadRequestedIps(String),
    #[error(
        "requested loadBalancer IP(s) {ips} do not match the IP family of the service ({families})"
    )]
    FamilyMismatch { ips: String, families: String },
    #[error("{0} is not allowed in config: it is in no IPAddressPool")]
    NotInAnyPool(IpAddr),
    #[error("requested IPs {0} belong to different pools")]
    DifferentPools(String),
    #[error("unknown pool {0:?} (metallb.io/address-pool)")]
    UnknownPool(String),
    #[error(
        "pool {0} not compatible for ip assignment: its serviceAllocation excludes this service"
    )]
    PoolIncompatible(String),
    #[error("IP {ip} is in pool {actual}, but the service requests pool {requested}")]
    PoolMismatch {
        ip: IpAddr,
        actual: String,
        requested: String,
    },
    #[error("no available IPs in pool {0}")]
    PoolExhausted(String),
    #[error("no available IPs: every eligible pool is exhausted")]
    NoAvailableIps,
    #[error("no eligible pool: none has autoAssign and admits this service")]
    NoEligiblePool,
    #[error(transparent)]
    Sharing(#[from] SharingConflict),
}

/// Per-pool usage, as written to `IPAddressPool.status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub assigned_ipv4: i64,
    pub assigned_ipv6: i64,
    pub available_ipv4: i64,
    pub available_ipv6: i64,
}

#[derive(Clone, Debug)]
struct Holding {
    assignment: Assignment,
    sharing: SharingProfile,
}

/// Allocation state: pools, and which service holds which address.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    /// Pools sorted by name; indexes into this vector identify a pool internally.
    pools: Vec<Pool>,
    by_name: HashMap<String, usize>,
    /// Per pool, per CIDR: every address below the hint is taken (or buggy), so scans start
    /// there. Lowered when an address is released. Keeps allocation amortized O(1).
    hints: Vec<Vec<u128>>,
    /// Who uses each address: keys sorted, their sharing profiles in `services`. Almost
    /// always one key, so a vector (a `BTreeMap` per address cost ~1 KiB each, the largest
    /// part of the controller's memory at 10,000 services).
    ips: BTreeMap<IpAddr, Vec<ServiceKey>>,
    services: HashMap<ServiceKey, Holding>,
}

impl Allocator {
    pub fn new(pools: Vec<Pool>) -> Self {
        let mut a = Allocator::default();
        a.set_pools(pools);
        a
    }

    pub fn pools(&self) -> impl Iterator<Item = &Pool> {
        self.pools.iter()
    }

    /// Replace the pools. Assignments whose addresses now sit in another pool move to it;
    /// assignments no longer covered by any single pool are dropped and returned, sorted, so
    /// the reconciler can reallocate them.
    pub fn set_pools(&mut self, pools: Vec<Pool>) -> Vec<ServiceKey> {
        let mut pools = pools;
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        self.by_name = pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        self.hints = pools
            .iter()
            .map(|p| p.cidrs.iter().map(|c| bounds(c).0).collect())
            .collect();
        self.pools = pools;
        let mut evicted = Vec::new();
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in keys {
            let ips = self.services[&key].assignment.ips.clone();
            match self.pool_of(&ips) {
                Ok(pool) => {
                    if let Some(h) = self.services.get_mut(&key) {
                        h.assignment.pool = pool;
                    }
                }
                Err(_) => {
                    self.unassign(&key);
                    evicted.push(key);
                }
            }
        }
        evicted.sort();
        evicted
    }

    pub fn assignment(&self, key: &str) -> Option<&Assignment> {
        self.services.get(key).map(|h| &h.assignment)
    }

    /// Number of services holding addresses.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no service holds an address.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Every current assignment, sorted by service.
    pub fn assignments(&self) -> BTreeMap<ServiceKey, Assignment> {
        self.services
            .iter()
            .map(|(k, h)| (k.clone(), h.assignment.clone()))
            .collect()
    }

    /// Release whatever the service holds.
    pub fn unassign(&mut self, key: &str) -> Option<Assignment> {
        let held = self.services.remove(key)?;
        for ip in &held.assignment.ips {
            if let Some(users) = self.ips.get_mut(ip) {
                if let Ok(i) = users.binary_search_by(|k| k.as_str().cmp(key)) {
                    users.remove(i);
                }
                if users.is_empty() {
                    self.ips.remove(ip);
                    self.lower_hints(ip);
                }
            }
        }
        Some(held.assignment)
    }

    /// Give the service exactly these addresses (requested IPs, or the ones it already holds
    /// in its status after a restart). Idempotent.
    pub fn assign(
        &mut self,
        svc: &ServiceRequest,
        ips: &[IpAddr],
    ) -> Result<Assignment, AllocError> {
        let families = service_families(svc)?;
        check_requested(ips, &families, svc.policy)?;
        let pool_name = self.pool_of(ips)?;
        let pool = &self.pools[self.by_name[&pool_name]];
        if !pool.compatible(&svc.namespace, &svc.labels) {
            return Err(AllocError::PoolIncompatible(pool_name));
        }
        if let Some(req) = &svc.requested_pool {
            if *req != pool_name {
                return Err(AllocError::PoolMismatch {
                    ip: ips[0],
                    actual: pool_name,
                    requested: req.clone(),
                });
            }
        }
        for ip in ips {
            self.check_sharing(svc, ip)?;
        }
        let assignment = Assignment {
            pool: pool_name,
            ips: ips.to_vec(),
        };
        self.record(svc, assignment.clone());
        Ok(assignment)
    }

    /// PreferDualStack on a dual-stack Service holding one family: add a free address of the
    /// other family from the same pool (upstream's "additional IP", step 6 of
    /// `convergeBalancer`), e.g. after the pool gained that family. `Ok(None)`: nothing to
    /// add (not such a service, requested IPs, or the pool has no range of that family);
    /// `Err`: the pool has the family but no usable address for this service.
    pub fn add_missing_family(
        &mut self,
        svc: &ServiceRequest,
    ) -> Result<Option<Assignment>, AllocError> {
        if svc.policy != FamilyPolicy::PreferDualStack
            || svc.cluster_families.len() < 2
            || !svc.requested_ips.is_empty()
        {
            return Ok(None);
        }
        let Some(held) = self.services.get(&svc.key) else {
            return Ok(None);
        };
        let [have] = held.assignment.ips[..] else {
            return Ok(None);
        };
        let pool_name = held.assignment.pool.clone();
        let Some(&idx) = self.by_name.get(&pool_name) else {
            return Ok(None);
        };
        let missing = Family::of(&have).other();
        if self.pools[idx].capacity(missing) == 0 {
            return Ok(None);
        }
        let Some(new) = self.free_of_family(idx, missing, svc) else {
            return Err(AllocError::PoolExhausted(pool_name));
        };
        let ips = if Family::of(&have) == svc.cluster_families[0] {
            vec![have, new]
        } else {
            vec![new, have]
        };
        Ok(Some(self.record(
            svc,
            Assignment {
                pool: pool_name,
                ips,
            },
        )))
    }

    /// Allocate for a service that holds nothing yet (or re-confirm what it holds): requested
    /// IPs first, then the requested pool, then automatic choice.
    pub fn allocate(&mut self, svc: &ServiceRequest) -> Result<Assignment, AllocError> {
        if !svc.requested_ips.is_empty() {
            return self.assign(svc, &svc.requested_ips.clone());
        }
        if let Some(held) = self.services.get(&svc.key) {
            // Still valid for the request? Keep it (no churn).
            let ips = held.assignment.ips.clone();
            if let Ok(a) = self.assign(svc, &ips) {
                return Ok(a);
            }
            self.unassign(&svc.key);
        }
        if self.pools.is_empty() {
            return Err(AllocError::NoPools);
        }
        let alternatives = family_alternatives(svc)?;
        if let Some(name) = &svc.requested_pool {
            let idx = *self
                .by_name
                .get(name)
                .ok_or_else(|| AllocError::UnknownPool(name.clone()))?;
            if !self.pools[idx].compatible(&svc.namespace, &svc.labels) {
                return Err(AllocError::PoolIncompatible(name.clone()));
            }
            let name = name.clone();
            for alt in &alternatives {
                if let Some(ips) = self.free_in_pool(idx, alt, svc) {
                    return Ok(self.record(svc, Assignment { pool: name, ips }));
                }
            }
            return Err(AllocError::PoolExhausted(name));
        }
        let groups = self.candidate_pools(svc);
        if groups.iter().all(|g| g.is_empty()) {
            return Err(AllocError::NoEligiblePool);
        }
        for group in &groups {
            for alt in &alternatives {
                for &idx in group {
                    if let Some(ips) = self.free_in_pool(idx, alt, svc) {
                        let pool = self.pools[idx].name.clone();
                        return Ok(self.record(svc, Assignment { pool, ips }));
                    }
                }
            }
        }
        Err(AllocError::NoAvailableIps)
    }

    /// Allocate for many services in name order, so the outcome does not depend on the order
    /// they were handed in.
    pub fn allocate_batch(
        &mut self,
        services: &[ServiceRequest],
    ) -> BTreeMap<ServiceKey, Result<Assignment, AllocError>> {
        let mut sorted: Vec<&ServiceRequest> = services.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        sorted
            .into_iter()
            .map(|s| (s.key.clone(), self.allocate(s)))
            .collect()
    }

    /// Usage counts of one pool: distinct addresses in use (a shared address counts once).
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        let pool = &self.pools[*self.by_name.get(name)?];
        let mut st = PoolStats::default();
        for ip in self.ips.keys().filter(|ip| pool.contains(ip)) {
            match Family::of(ip) {
                Family::V4 => st.assigned_ipv4 += 1,
                Family::V6 => st.assigned_ipv6 += 1,
            }
        }
        st.available_ipv4 = pool.capacity(Family::V4).saturating_sub(st.assigned_ipv4);
        st.available_ipv6 = pool.capacity(Family::V6).saturating_sub(st.assigned_ipv6);
        Some(st)
    }

    /// Services currently using `ip`, sorted.
    pub fn users_of(&self, ip: &IpAddr) -> Vec<ServiceKey> {
        self.ips.get(ip).cloned().unwrap_or_default()
    }

    // ---- internals ----

    fn record(&mut self, svc: &ServiceRequest, assignment: Assignment) -> Assignment {
        if let Some(old) = self.services.get(&svc.key) {
            if old.assignment == assignment && old.sharing == svc.sharing {
                return assignment;
            }
            self.unassign(&svc.key);
        }
        for ip in &assignment.ips {
            let users = self.ips.entry(*ip).or_default();
            if let Err(i) = users.binary_search(&svc.key) {
                users.insert(i, svc.key.clone());
            }
        }
        self.services.insert(
            svc.key.clone(),
            Holding {
                assignment: assignment.clone(),
                sharing: svc.sharing.clone(),
            },
        );
        assignment
    }

    /// The single pool that contains every address.
    fn pool_of(&self, ips: &[IpAddr]) -> Result<String, AllocError> {
        let mut found: Option<&str> = None;
        for ip in ips {
            let p = self
                .pools
                .iter()
                .find(|p| p.contains(ip))
                .ok_or(AllocError::NotInAnyPool(*ip))?;
            match found {
                None => found = Some(&p.name),
                Some(f) if f == p.name => {}
                Some(_) => return Err(AllocError::DifferentPools(join_ips(ips))),
            }
        }
        found
            .map(String::from)
            .ok_or_else(|| AllocError::BadRequestedIps(String::new()))
    }

    fn check_sharing(&self, svc: &ServiceRequest, ip: &IpAddr) -> Result<(), SharingConflict> {
        if let Some(users) = self.ips.get(ip) {
            for other in users.iter().filter(|k| **k != svc.key) {
                if let Some(held) = self.services.get(other) {
                    sharing::check(&ip.to_string(), &svc.sharing, other, &held.sharing)?;
                }
            }
        }
        Ok(())
    }

    fn candidate_pools(&self, svc: &ServiceRequest) -> [Vec<usize>; 2] {
        let mut pinned: Vec<usize> = (0..self.pools.len())
            .filter(|&i| {
                let p = &self.pools[i];
                p.auto_assign && p.allocation.is_some() && p.compatible(&svc.namespace, &svc.labels)
            })
            .collect();
        // Pools are sorted by name; a stable sort keeps name order among equal priorities.
        pinned.sort_by_key(|&i| {
            let prio = self.pools[i]
                .allocation
                .as_ref()
                .map(|a| a.priority)
                .unwrap_or(0);
            (prio <= 0, prio)
        });
        let open = (0..self.pools.len())
            .filter(|&i| self.pools[i].auto_assign && self.pools[i].allocation.is_none())
            .collect();
        [pinned, open]
    }

    /// One free address per wanted family in one pool, or nothing.
    fn free_in_pool(
        &mut self,
        pool: usize,
        families: &[Family],
        svc: &ServiceRequest,
    ) -> Option<Vec<IpAddr>> {
        let mut ips = Vec::with_capacity(families.len());
        for f in families {
            ips.push(self.free_of_family(pool, *f, svc)?);
        }
        Some(ips)
    }

    fn free_of_family(
        &mut self,
        pool_idx: usize,
        f: Family,
        svc: &ServiceRequest,
    ) -> Option<IpAddr> {
        let shares = svc
            .sharing
            .sharing_key
            .as_deref()
            .is_some_and(|k| !k.is_empty());
        let pool = &self.pools[pool_idx];
        for (idx, cidr) in pool.cidrs.iter().enumerate() {
            if Family::of(&cidr.network()) != f {
                continue;
            }
            let (start, end) = bounds(cidr);
            let mut v = self.hints[pool_idx][idx].max(start);
            let mut first_free = None;
            loop {
                let ip = from_u128(f, v);
                let usable = !(pool.avoid_buggy_ips && is_buggy(&ip));
                if usable && !self.ips.contains_key(&ip) {
                    first_free = Some(v);
                    break;
                }
                if v >= end {
                    break;
                }
                v += 1;
            }
            let mut found = first_free.map(|v| from_u128(f, v));
            // A compatible shared address below the first free one wins, as in upstream's
            // first-fit scan that treats compatible shared addresses as free.
            if shares && first_free != Some(start) {
                let limit = from_u128(f, first_free.map(|x| x - 1).unwrap_or(end));
                let lo = from_u128(f, start);
                if let Some(ip) = self.ips.range(lo..=limit).map(|(ip, _)| *ip).find(|ip| {
                    !(pool.avoid_buggy_ips && is_buggy(ip)) && self.check_sharing(svc, ip).is_ok()
                }) {
                    found = Some(ip);
                }
            }
            self.hints[pool_idx][idx] = first_free.unwrap_or(end);
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn lower_hints(&mut self, ip: &IpAddr) {
        let v = to_u128(ip);
        for (pool, hints) in self.pools.iter().zip(self.hints.iter_mut()) {
            for (cidr, h) in pool.cidrs.iter().zip(hints.iter_mut()) {
                if cidr.contains(ip) {
                    *h = (*h).min(v);
                }
            }
        }
    }
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn service_families(svc: &ServiceRequest) -> Result<Vec<Family>, AllocError> {
    if svc.cluster_families.is_empty() {
        return Err(AllocError::NoClusterIp);
    }
    Ok(svc.cluster_families.clone())
}

/// Which family combinations to try, best first.
fn family_alternatives(svc: &ServiceRequest) -> Result<Vec<Vec<Family>>, AllocError> {
    let fams = service_families(svc)?;
    let primary = fams[0];
    Ok(match svc.policy {
        FamilyPolicy::SingleStack => vec![vec![primary]],
        FamilyPolicy::RequireDualStack => {
            if fams.len() < 2 {
                return Err(AllocError::NotEnoughClusterIps(fams.len()));
            }
            vec![vec![primary, primary.other()]]
        }
        FamilyPolicy::PreferDualStack => {
            if fams.len() < 2 {
                vec![vec![primary]]
            } else {
                vec![
                    vec![primary, primary.other()],
                    vec![primary],
                    vec![primary.other()],
                ]
            }
        }
    })
}

fn check_requested(
    ips: &[IpAddr],
    families: &[Family],
    policy: FamilyPolicy,
) -> Result<(), AllocError> {
    let bad = || AllocError::BadRequestedIps(join_ips(ips));
    match ips {
        [] => return Err(bad()),
        [a, b] if Family::of(a) == Family::of(b) => return Err(bad()),
        [_, _] | [_] => {}
        _ => return Err(bad()),
    }
    let mismatch = || AllocError::FamilyMismatch {
        ips: join_ips(ips),
        families: families
            .iter()
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
            .join(","),
    };
    if ips.iter().any(|ip| !families.contains(&Family::of(ip))) {
        return Err(mismatch());
    }
    if policy == FamilyPolicy::RequireDualStack && ips.len() != 2 {
        return Err(mismatch());
    }
    if policy == FamilyPolicy::SingleStack && ips.len() != 1 {
        return Err(mismatch());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
