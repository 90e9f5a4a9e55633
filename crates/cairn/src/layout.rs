//! Which disks hold which shards: a store's [`Layout`].
//!
//! A chunk's record names the epoch it was placed by ([`cairn_meta::ChunkPlacement`]); the
//! layout turns (chunk, epoch, shard count) into one disk per shard, shard `i` on the `i`-th.
//! Two layouts exist:
//! - [`FixedLayout`]: a fixed list of disks (a one-process store's own disks, or a gateway
//!   given `--storage`), epoch 0: shard `i` of a chunk on disk `(spread + i) mod n`, rotated by
//!   the chunk id so that data and parity load spread evenly.
//! - [`RingLayout`]: the cluster map kept in the metadata, placed by `cairn-ring` (weighted,
//!   zone-aware, at most one shard per node while there are enough nodes), each node reached
//!   through a connection the layout opens on first use. Each storage pool is a ring of its
//!   own: the map's nodes of that pool (a chunk's placement names its pool), so a pool's
//!   chunks never have shards — homes or spares — on another pool's nodes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_meta_client::MetaClient;
use cairn_ring::ClusterMap;
use cairn_shard_store::ShardStore;
use cairn_types::ChunkId;

use crate::{Error, Result};

/// One disk of a layout, as a shard's home.
#[derive(Clone)]
pub struct Slot {
    /// The disk's name, stable across processes: `disk N` in a fixed layout, `NODE/N` in a
    /// ring.
    pub disk: Arc<str>,
    /// The disk, or `None` while it cannot be reached (its node down or unknown).
    pub store: Option<Arc<dyn ShardStore>>,
}

/// Where a store's shards go and are found.
#[async_trait::async_trait]
pub trait Layout: Send + Sync + 'static {
    /// The epoch new chunks are placed by now.
    async fn epoch(&self) -> Result<u64>;

    /// The disks of shards `0..n` of `chunk` placed by `epoch` in storage pool `pool` (`None`:
    /// the default pool), shard `i` on the `i`-th, all distinct. Fails if the layout has no
    /// such epoch or pool, or no disk there.
    async fn place(&self, chunk: &ChunkId, epoch: u64, pool: Option<&str>, n: usize) -> Result<Vec<Slot>>;

    /// Other disks of `pool` than the `n` homes of `chunk` placed by `epoch`, in the order a
    /// shard whose home is down should try them.
    async fn spares(&self, chunk: &ChunkId, epoch: u64, pool: Option<&str>, n: usize) -> Result<Vec<Slot>>;

    /// The disk of that name (as a [`Slot`] names it), if the layout has it.
    async fn slot(&self, disk: &str) -> Result<Slot>;

    /// Every disk of the current epoch (space reclamation, scrubbing and statistics go over
    /// them), in a stable order.
    async fn disks(&self) -> Result<Vec<Slot>>;

    /// The failure domains of `pool` taking shards at `epoch` (nodes of the pool in the
    /// cluster map that are not drained, disks of a fixed list — which has no pool but the
    /// default one): a chunk of more shards than this puts two of them in one domain, and a
    /// store writes new chunks with fewer ([`crate::class::honoured`]).
    async fn domains(&self, epoch: u64, pool: Option<&str>) -> Result<usize>;
}

/// A fixed list of disks, epoch 0 (see the module's documentation).
pub struct FixedLayout {
    slots: Vec<Slot>,
}

impl FixedLayout {
    /// The layout over `disks`, in this order (which must never change for a store's data).
    pub fn new(disks: Vec<Arc<dyn ShardStore>>) -> Self {
        let slots = disks
            .into_iter()
            .enumerate()
            .map(|(i, d)| Slot {
                disk: Arc::from(format!("disk {i}")),
                store: Some(d),
            })
            .collect();
        Self { slots }
    }

    /// How many disks.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it has no disk.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The disk of shard `index` of `chunk` among `disks` disks in a fixed layout.
fn rotated(chunk: &ChunkId, index: usize, disks: usize) -> usize {
    ((chunk.spread() % disks as u64) as usize + index) % disks
}

#[async_trait::async_trait]
impl Layout for FixedLayout {
    async fn epoch(&self) -> Result<u64> {
        Ok(0)
    }

    async fn place(&self, chunk: &ChunkId, epoch: u64, pool: Option<&str>, n: usize) -> Result<Vec<Slot>> {
        if epoch != 0 {
            return Err(Error::Storage(format!(
                "chunk {chunk} was placed by cluster map epoch {epoch}; this store has a fixed list of disks"
            )));
        }
        if let Some(pool) = pool {
            return Err(Error::Storage(format!(
                "chunk {chunk} is in storage pool {pool}; this store has a fixed list of disks and no pools"
            )));
        }
        if n > self.slots.len() {
            return Err(Error::Storage(format!(
                "{n} shards need {n} disks, the store has {}",
                self.slots.len()
            )));
        }
        Ok((0..n)
            .map(|i| self.slots[rotated(chunk, i, self.slots.len())].clone())
            .collect())
    }

    async fn spares(&self, chunk: &ChunkId, epoch: u64, pool: Option<&str>, n: usize) -> Result<Vec<Slot>> {
        let len = self.slots.len();
        let all = self.place(chunk, epoch, pool, len).await?;
        Ok(all.into_iter().skip(n).collect())
    }

    async fn slot(&self, disk: &str) -> Result<Slot> {
        self.slots
            .iter()
            .find(|s| &*s.disk == disk)
            .cloned()
            .ok_or_else(|| Error::Storage(format!("this store has no {disk}")))
    }

    async fn disks(&self) -> Result<Vec<Slot>> {
        Ok(self.slots.clone())
    }

    async fn domains(&self, _epoch: u64, pool: Option<&str>) -> Result<usize> {
        Ok(if pool.is_none() { self.slots.len() } else { 0 })
    }
}

/// A storage node reached: its id and one shard store per disk.
pub type Connected = (String, Vec<Arc<dyn ShardStore>>);

/// Opens a connection to the storage node at an address (`cairn_shard_client::connect` in a
/// gateway), answering the node's id and disks.
pub type Connector = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Connected>> + Send>> + Send + Sync>;

/// How often the current epoch and the nodes' addresses are read again.
const MAP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a node that could not be reached is not tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The cluster map in the metadata (see the module's documentation).
pub struct RingLayout {
    meta: Arc<dyn MetaClient>,
    connect: Connector,
    state: Mutex<RingState>,
    /// One request at a time reads the current epoch again; others use the last one.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct RingState {
    /// Every epoch read so far (they never change).
    records: HashMap<u64, Arc<cairn_meta::ClusterMapRecord>>,
    /// The ring of each (epoch, pool) placed by so far.
    rings: HashMap<(u64, Option<String>), Arc<ClusterMap>>,
    /// The current epoch and when it was read.
    current: Option<(u64, Instant)>,
    /// Node id -> address, from the nodes' reports.
    addrs: HashMap<String, String>,
    nodes: HashMap<String, NodeConn>,
}

enum NodeConn {
    Up {
        addr: String,
        disks: Vec<Arc<dyn ShardStore>>,
    },
    Down {
        until: Instant,
    },
}

impl RingLayout {
    /// The layout of the cluster map in `meta`, reaching nodes through `connect`.
    pub fn new(meta: Arc<dyn MetaClient>, connect: Connector) -> Self {
        Self {
            meta,
            connect,
            state: Mutex::new(RingState::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the current map and the nodes' addresses again.
    async fn refresh(&self) -> Result<u64> {
        let map = self
            .meta
            .cluster_map(None)
            .await?
            .ok_or_else(|| Error::Unavailable("no storage node has registered with the metadata yet".into()))?;
        let nodes = self.meta.storage_nodes().await?;
        let epoch = map.epoch;
        let mut s = self.state();
        s.records.insert(epoch, Arc::new(map));
        s.current = Some((epoch, Instant::now()));
        for n in nodes {
            if let Some(NodeConn::Up { addr, .. }) = s.nodes.get(&n.id) {
                if *addr != n.addr {
                    s.nodes.remove(&n.id);
                }
            }
            s.addrs.insert(n.id, n.addr);
        }
        Ok(epoch)
    }

    /// The cluster map of `epoch`, read once.
    async fn record_at(&self, epoch: u64) -> Result<Arc<cairn_meta::ClusterMapRecord>> {
        if let Some(m) = self.state().records.get(&epoch) {
            return Ok(m.clone());
        }
        let map = self
            .meta
            .cluster_map(Some(epoch))
            .await?
            .ok_or_else(|| Error::Storage(format!("the metadata has no cluster map of epoch {epoch}")))?;
        let map = Arc::new(map);
        self.state().records.insert(epoch, map.clone());
        Ok(map)
    }

    /// The ring of `pool` at `epoch`: the map's nodes of that pool.
    async fn map_at(&self, epoch: u64, pool: Option<&str>) -> Result<Arc<ClusterMap>> {
        let key = (epoch, pool.map(str::to_string));
        if let Some(m) = self.state().rings.get(&key) {
            return Ok(m.clone());
        }
        let ring = Arc::new(ring_map(&*self.record_at(epoch).await?, pool));
        self.state().rings.insert(key, ring.clone());
        Ok(ring)
    }

    /// The disks of node `id`, connecting to it if needed; `None` while it cannot be reached.
    async fn node(&self, id: &str) -> Option<Vec<Arc<dyn ShardStore>>> {
        let addr = {
            let s = self.state();
            match s.nodes.get(id) {
                Some(NodeConn::Up { disks, .. }) => return Some(disks.clone()),
                Some(NodeConn::Down { until }) if Instant::now() < *until => return None,
                _ => s.addrs.get(id).cloned(),
            }
        };
        let addr = match addr {
            Some(a) => a,
            None => {
                self.refresh().await.ok()?;
                self.state().addrs.get(id).cloned()?
            }
        };
        match (self.connect)(addr.clone()).await {
            Ok((node_id, disks)) if node_id == id => {
                self.state().nodes.insert(
                    id.to_string(),
                    NodeConn::Up {
                        addr,
                        disks: disks.clone(),
                    },
                );
                Some(disks)
            }
            outcome => {
                match outcome {
                    Ok((other, _)) => {
                        tracing::warn!(node = id, %addr, other, "another storage node answers at this node's address")
                    }
                    Err(e) => tracing::warn!(node = id, %addr, error = %e, "storage node unreachable"),
                }
                self.state().nodes.insert(
                    id.to_string(),
                    NodeConn::Down {
                        until: Instant::now() + RETRY_AFTER,
                    },
                );
                None
            }
        }
    }

    /// The slots of `addrs`, connecting to their nodes (all at once) as needed.
    async fn slots(&self, addrs: Vec<cairn_ring::DiskAddr>) -> Vec<Slot> {
        // The nodes' addresses are read again at most once a second (with the epoch), so a
        // node that came back at another address is reached there by reads and repair too,
        // not only once a write has read the map again.
        if let Err(e) = self.epoch().await {
            tracing::debug!(error = %e, "storage node addresses not read again");
        }
        let mut ids: Vec<&str> = addrs.iter().map(|a| a.node.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let nodes: HashMap<&str, Option<Vec<Arc<dyn ShardStore>>>> =
            futures::future::join_all(ids.into_iter().map(|id| async move { (id, self.node(id).await) }))
                .await
                .into_iter()
                .collect();
        addrs
            .iter()
            .map(|a| Slot {
                disk: Arc::from(format!("{}/{}", a.node, a.disk)),
                store: nodes
                    .get(a.node.as_str())
                    .and_then(|d| d.as_ref()?.get(usize::from(a.disk)).cloned()),
            })
            .collect()
    }
}

/// The `n` homes of `chunk` in `map`, the ring of `pool`. With fewer disks able to take shards
/// than `n` (a small cluster, or nodes draining), the disks there are take the shards in turn
/// — shard `i` on the `(i mod d)`-th — so writes go on with less spread rather than stop.
fn homes(map: &ClusterMap, chunk: &ChunkId, pool: Option<&str>, n: usize) -> Result<Vec<cairn_ring::DiskAddr>> {
    let unplaceable = |e: cairn_ring::TooFewDisks| {
        Error::Unavailable(format!(
            "cluster map epoch {}, storage pool {}: {e}",
            map.epoch,
            pool.unwrap_or(cairn_meta::DEFAULT_POOL)
        ))
    };
    match map.place(chunk.as_bytes(), n) {
        Ok(a) => Ok(a),
        Err(cairn_ring::TooFewDisks { disks, .. }) if disks > 0 => {
            let some = map.place(chunk.as_bytes(), disks).map_err(unplaceable)?;
            Ok((0..n).map(|i| some[i % disks].clone()).collect())
        }
        Err(e) => Err(unplaceable(e)),
    }
}

/// The ring of `pool` in `map` as placement sees it: the nodes of that pool, a draining
/// node's disks weighing nothing.
fn ring_map(map: &cairn_meta::ClusterMapRecord, pool: Option<&str>) -> ClusterMap {
    let nodes = map
        .nodes
        .iter()
        .filter(|n| n.pool.as_deref() == pool)
        .map(|n| cairn_ring::Node {
            id: n.id.clone(),
            zone: n.zone.clone(),
            disks: n
                .weights
                .iter()
                .enumerate()
                .map(|(i, w)| cairn_ring::Disk {
                    index: i as u16,
                    weight: if n.draining { 0 } else { *w },
                })
                .collect(),
        })
        .collect();
    ClusterMap::new(map.epoch, nodes)
}

#[async_trait::async_trait]
impl Layout for RingLayout {
    async fn epoch(&self) -> Result<u64> {
        let cached = self.state().current;
        match cached {
            Some((epoch, at)) if at.elapsed() < MAP_CHECK_EVERY => Ok(epoch),
            Some((epoch, _)) => {
                // One request reads it again; meanwhile (and if that fails) the last epoch
                // read stays good to place by: every epoch stays valid for its chunks.
                match self.refreshing.try_lock() {
                    Ok(_guard) => match self.refresh().await {
                        Ok(e) => Ok(e),
                        Err(e) => {
                            tracing::warn!(error = %e, "cluster map unreadable; placing by epoch {epoch}");
                            Ok(epoch)
                        }
                    },
                    Err(_) => Ok(epoch),
                }
            }
            None => {
                let _guard = self.refreshing.lock().await;
                let current = self.state().current;
                match current {
                    Some((epoch, _)) => Ok(epoch),
                    None => self.refresh().await,
                }
            }
        }
    }

    async fn place(&self, chunk: &ChunkId, epoch: u64, pool: Option<&str>, n: usize) -> Result<Vec<Slot>> {
        if epoch == 0 {
            return Err(Error::Storage(format!(
                "chunk {chunk} is on a fixed list of disks, not placed by the cluster map"
            )));
        }
        let map = self.map_at(epoch, pool).await?;
        Ok(self.slots(homes(&map, chunk, pool, n)?).await)
    }

    async fn spares(&self, chunk: &ChunkId, epoch: u64, pool: Option<&str>, n: usize) -> Result<Vec<Slot>> {
        let map = self.map_at(epoch, pool).await?;
        let weighted = map
            .nodes()
            .iter()
            .flat_map(|n| n.disks.iter())
            .filter(|d| d.weight > 0)
            .count();
        let all = homes(&map, chunk, pool, weighted)?;
        let taken = homes(&map, chunk, pool, n)?;
        let spares = all.into_iter().filter(|a| !taken.contains(a)).collect();
        Ok(self.slots(spares).await)
    }

    async fn slot(&self, disk: &str) -> Result<Slot> {
        let addr = disk
            .rsplit_once('/')
            .and_then(|(node, d)| {
                Some(cairn_ring::DiskAddr {
                    node: node.to_string(),
                    disk: d.parse().ok()?,
                })
            })
            .ok_or_else(|| Error::Storage(format!("malformed disk name {disk:?}")))?;
        Ok(self.slots(vec![addr]).await.remove(0))
    }

    async fn domains(&self, epoch: u64, pool: Option<&str>) -> Result<usize> {
        let map = self.map_at(epoch, pool).await?;
        Ok(map
            .nodes()
            .iter()
            .filter(|node| node.disks.iter().any(|d| d.weight > 0))
            .count())
    }

    async fn disks(&self) -> Result<Vec<Slot>> {
        let epoch = self.epoch().await?;
        let map = self.record_at(epoch).await?;
        let addrs = map
            .nodes
            .iter()
            .flat_map(|n| {
                (0..n.weights.len()).map(|d| cairn_ring::DiskAddr {
                    node: n.id.clone(),
                    disk: d as u16,
                })
            })
            .collect();
        Ok(self.slots(addrs).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pool_is_a_ring_of_its_own_nodes() {
        let node = |id: &str, pool: Option<&str>, draining| cairn_meta::MapNode {
            id: id.into(),
            zone: format!("z-{id}"),
            weights: vec![4, 4],
            draining,
            pool: pool.map(str::to_string),
        };
        let map = cairn_meta::ClusterMapRecord {
            epoch: 3,
            nodes: vec![
                node("a", None, false),
                node("b", None, true),
                node("c", Some("ssd"), false),
                node("d", Some("ssd"), false),
            ],
        };
        let ids = |pool| {
            ring_map(&map, pool)
                .nodes()
                .iter()
                .map(|n| n.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(None), ["a", "b"]);
        assert_eq!(ids(Some("ssd")), ["c", "d"]);
        assert!(ids(Some("hdd")).is_empty());
        // A draining node stays in its pool's ring, weighing nothing.
        assert!(ring_map(&map, None).nodes()[1].disks.iter().all(|d| d.weight == 0));
        // Every home of a pool's chunk is on that pool's nodes; a pool without nodes places
        // nothing (503, not another pool's disks).
        let ssd = ring_map(&map, Some("ssd"));
        for n in 0u8..40 {
            let id = ChunkId([n; 32]);
            let homes = super::homes(&ssd, &id, Some("ssd"), 3).unwrap();
            assert!(homes.iter().all(|h| h.node == "c" || h.node == "d"), "{homes:?}");
        }
        let none = ring_map(&map, Some("hdd"));
        assert!(matches!(
            super::homes(&none, &ChunkId([1; 32]), Some("hdd"), 2),
            Err(Error::Unavailable(_))
        ));
    }

    #[test]
    fn shards_of_a_chunk_land_on_distinct_disks() {
        for n in 0u8..50 {
            let id = ChunkId([n.wrapping_mul(37); 32]);
            let mut seen: Vec<usize> = (0..6).map(|i| rotated(&id, i, 6)).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 6);
        }
    }
}
