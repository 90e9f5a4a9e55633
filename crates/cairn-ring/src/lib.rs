//! Placement: which disks of the cluster hold the shards of a chunk. Pure: no I/O, no clock,
//! no randomness but the chunk id, so every process of every version that implements
//! [`PlacementVersion::V1`] answers the same for the same map.
//!
//! Owns: the cluster map as placement sees it ([`ClusterMap`]: nodes, their zone and disks,
//! each disk's weight, an epoch) and the placement function [`ClusterMap::place`].
//!
//! The function (version 1) draws one score per disk from the chunk id and the disk's identity,
//! scaled by its weight the straw2 way (`ln(u) / weight`: the scores of different disks are
//! independent, and a disk comes first in proportion to its weight), then takes disks in
//! descending score while they fit the caps, until it has `n`: at most `ceil(n / nodes)` per node
//! (one per node while there are enough nodes) and `ceil(n / zones)` per zone (spread over as
//! many zones as possible, which comes before weight: a zone gets its share of a chunk's shards
//! whatever its capacity). If the caps leave fewer than `n`, they are lifted, zone first.
//!
//! So the answer is a **set** that changes as little as it can: removing a disk removes it
//! from the sets that held it and adds one disk to each of those, changing nothing else;
//! adding a disk puts it into the sets where it now fits and takes out one disk of each —
//! while the caps stay the same. A change that moves a cap (the cluster falls below `n` nodes,
//! a zone is emptied or added, a zone has fewer nodes than its share) changes the spread rules
//! themselves and moves more. The
//! order of the answer (by score) is where a new chunk's shards go, shard `i` to the `i`-th
//! disk; after a change a shard stays where it is, so a reader finds shard `i` on whichever
//! member of the set holds it, and repair writes missing shards onto the members that hold
//! none of the chunk.
//!
//! Numbers are computed with integer mixing and IEEE-754 `+ - * /` only (the logarithm is this
//! crate's own series, not the platform's `ln`), so the answer does not depend on the libm.
//!
//! Must not depend on: anything async, the metadata, the network.

mod math;

/// The placement function a chunk's record names, so that a future change of the function
/// never moves what was placed by an older one unknowingly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlacementVersion {
    /// The function of this crate's documentation.
    V1 = 1,
}

/// A disk as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Disk {
    /// Its index on its node.
    pub index: u16,
    /// Its weight, usually its capacity in bytes; 0 takes nothing new (a draining disk).
    pub weight: u64,
}

/// A storage node as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Its stable id.
    pub id: String,
    /// Its failure domain.
    pub zone: String,
    /// Its disks.
    pub disks: Vec<Disk>,
}

/// Names one disk of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DiskAddr {
    /// The node's id.
    pub node: String,
    /// The disk's index on it.
    pub disk: u16,
}

/// Why a chunk cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooFewDisks {
    /// Shards asked for.
    pub wanted: usize,
    /// Disks with a weight above 0.
    pub disks: usize,
}

impl std::fmt::Display for TooFewDisks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} shards need {} disks, the map has {}",
            self.wanted, self.wanted, self.disks
        )
    }
}

impl std::error::Error for TooFewDisks {}

/// The cluster's nodes and disks at one epoch (the metadata keeps it and changes it only through
/// Raft, each change a new epoch).
#[derive(Clone, Debug)]
pub struct ClusterMap {
    /// The map's epoch.
    pub epoch: u64,
    nodes: Vec<Node>,
    /// Per node: its zone's index in `zones`.
    zone_of: Vec<usize>,
    zones: usize,
    /// Per node, per disk: the disk's identity key (from the node id and disk index).
    keys: Vec<Vec<u64>>,
}

impl ClusterMap {
    /// The map of `nodes` at `epoch`. Node order does not matter.
    pub fn new(epoch: u64, nodes: Vec<Node>) -> Self {
        let mut zone_names: Vec<&str> = nodes.iter().map(|n| n.zone.as_str()).collect();
        zone_names.sort_unstable();
        zone_names.dedup();
        let zone_of = nodes
            .iter()
            .map(|n| zone_names.binary_search(&n.zone.as_str()).expect("listed"))
            .collect();
        let zones = zone_names.len();
        let keys = nodes
            .iter()
            .map(|n| n.disks.iter().map(|d| math::disk_key(&n.id, d.index)).collect())
            .collect();
        Self {
            epoch,
            nodes,
            zone_of,
            zones,
            keys,
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The `n` disks of the chunk `chunk`, best first (see the crate's documentation): all
    /// distinct, weighted, spread over nodes and zones.
    pub fn place(&self, chunk: &[u8; 32], n: usize) -> Result<Vec<DiskAddr>, TooFewDisks> {
        let seed = math::chunk_seed(chunk);
        let mut scored: Vec<(f64, u64, usize, usize)> = Vec::new();
        for (ni, node) in self.nodes.iter().enumerate() {
            for (di, disk) in node.disks.iter().enumerate() {
                if disk.weight > 0 {
                    let key = self.keys[ni][di];
                    scored.push((math::straw2(seed, key, disk.weight), key, ni, di));
                }
            }
        }
        if scored.len() < n {
            return Err(TooFewDisks {
                wanted: n,
                disks: scored.len(),
            });
        }
        // Best first; ties (vanishingly rare) by key: the same order everywhere.
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut live_nodes: Vec<usize> = scored.iter().map(|d| d.2).collect();
        live_nodes.sort_unstable();
        live_nodes.dedup();
        let mut live_zones: Vec<usize> = live_nodes.iter().map(|&ni| self.zone_of[ni]).collect();
        live_zones.sort_unstable();
        live_zones.dedup();
        let node_cap = n.div_ceil(live_nodes.len());
        let zone_cap = n.div_ceil(live_zones.len());
        let mut taken = vec![false; scored.len()];
        let mut per_node = vec![0usize; self.nodes.len()];
        let mut per_zone = vec![0usize; self.zones];
        let mut chosen = Vec::with_capacity(n);
        for (node_capped, zone_capped) in [(true, true), (true, false), (false, false)] {
            for (i, &(_, _, ni, di)) in scored.iter().enumerate() {
                if chosen.len() == n {
                    break;
                }
                let zone = self.zone_of[ni];
                if taken[i] || (node_capped && per_node[ni] >= node_cap) || (zone_capped && per_zone[zone] >= zone_cap)
                {
                    continue;
                }
                taken[i] = true;
                per_node[ni] += 1;
                per_zone[zone] += 1;
                chosen.push((i, ni, di));
            }
        }
        // Best first, whatever pass took them.
        chosen.sort_unstable_by_key(|c| c.0);
        Ok(chosen
            .into_iter()
            .map(|(_, ni, di)| DiskAddr {
                node: self.nodes[ni].id.clone(),
                disk: self.nodes[ni].disks[di].index,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
