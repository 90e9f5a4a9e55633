//! Batching of an upload's chunk lookups: a lookup asked while a batch is in flight waits and
//! goes with the next one, so an upload with n chunks in flight costs about one metadata round
//! trip per round of lookups instead of n (over gRPC, each round trip is a network call and a
//! linearizable read).

use std::future::Future;
use std::sync::{Arc, Mutex};

use cairn_meta_client::{ChunkState, MetaClientError};
use cairn_types::ChunkId;
use tokio::sync::oneshot;

type Answer = Result<ChunkState, MetaClientError>;

/// One upload's lookups (see the module).
#[derive(Debug, Default)]
pub(crate) struct LookupBatcher {
    state: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    ids: Vec<(ChunkId, oneshot::Sender<Answer>)>,
    in_flight: bool,
}

impl LookupBatcher {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state of chunk `id`, fetched with `fetch` (which answers one state per id, in
    /// order) in a batch with every lookup asked while the previous batch was in flight.
    pub(crate) async fn get<F, Fut>(self: &Arc<Self>, id: ChunkId, fetch: F) -> Answer
    where
        F: Fn(Vec<ChunkId>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<ChunkState>, MetaClientError>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut w = self.waiting();
            w.ids.push((id, tx));
            !std::mem::replace(&mut w.in_flight, true)
        };
        if lead {
            // The rounds run until nobody waits, off this chunk's path.
            let this = self.clone();
            tokio::spawn(async move { this.rounds(fetch).await });
        }
        rx.await
            .unwrap_or_else(|_| Err(MetaClientError::Unavailable("chunk lookup dropped".into())))
    }

    async fn rounds<F, Fut>(&self, fetch: F)
    where
        F: Fn(Vec<ChunkId>) -> Fut,
        Fut: Future<Output = Result<Vec<ChunkState>, MetaClientError>>,
    {
        loop {
            let batch = {
                let mut w = self.waiting();
                if w.ids.is_empty() {
                    w.in_flight = false;
                    return;
                }
                std::mem::take(&mut w.ids)
            };
            metrics::histogram!("cairn_chunk_lookup_batch").record(batch.len() as f64);
            let answer = fetch(batch.iter().map(|(id, _)| *id).collect()).await;
            match answer {
                Ok(states) if states.len() == batch.len() => {
                    for ((_, tx), state) in batch.into_iter().zip(states) {
                        let _ = tx.send(Ok(state));
                    }
                }
                other => {
                    let e = match other {
                        Err(e) => e,
                        Ok(states) => MetaClientError::Unavailable(format!(
                            "chunk lookup answered {} states for {} chunks",
                            states.len(),
                            batch.len()
                        )),
                    };
                    for (_, tx) in batch {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    fn absent(id: ChunkId) -> ChunkState {
        ChunkState {
            id,
            record: None,
            mark: None,
            placement: Default::default(),
        }
    }

    #[tokio::test]
    async fn lookups_asked_during_a_batch_go_together_in_the_next() {
        let batcher = Arc::new(LookupBatcher::default());
        let calls = Arc::new(Mutex::new(Vec::<Vec<ChunkId>>::new()));
        let (open, gate) = tokio::sync::watch::channel(false);
        let fetch = {
            let calls = calls.clone();
            move |ids: Vec<ChunkId>| {
                let calls = calls.clone();
                let mut gate = gate.clone();
                async move {
                    calls.lock().unwrap().push(ids.clone());
                    // The first batch is held until the test opens the gate.
                    let _ = gate.wait_for(|open| *open).await;
                    Ok(ids.into_iter().map(absent).collect())
                }
            }
        };
        let first = tokio::spawn({
            let (b, f) = (batcher.clone(), fetch.clone());
            async move { b.get(id(0), f).await }
        });
        while calls.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..=5)
            .map(|n| {
                let (b, f) = (batcher.clone(), fetch.clone());
                tokio::spawn(async move { b.get(id(n), f).await })
            })
            .collect();
        // Everyone is queued behind the held batch before it is let go.
        while batcher.waiting().ids.len() < 5 {
            tokio::task::yield_now().await;
        }
        open.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap().id, id(0));
        for (n, t) in (1..=5).zip(rest) {
            assert_eq!(t.await.unwrap().unwrap().id, id(n));
        }
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls, vec![vec![id(0)], (1..=5).map(id).collect::<Vec<_>>()]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_lookups_and_the_next_batch_runs() {
        let batcher = Arc::new(LookupBatcher::default());
        let n = Arc::new(AtomicUsize::new(0));
        let fetch = {
            let n = n.clone();
            move |ids: Vec<ChunkId>| {
                let first = n.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Err(MetaClientError::Unavailable("down".into()))
                    } else {
                        Ok(ids.into_iter().map(absent).collect())
                    }
                }
            }
        };
        let e = batcher.get(id(1), fetch.clone()).await.unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(batcher.get(id(2), fetch).await.unwrap().id, id(2));
    }
}
