//! The collector protocol against writers, interleaved at every step: whatever the order of a
//! writer's steps (look at the chunk, write its shards, commit) and a collection pass's steps
//! (begin, claim, delete the shards, drop, end, purge), no chunk with a reference is ever
//! without its shards. Every interleaving of the actors is enumerated, from every state the
//! chunk can start in.

use super::tests::{bucket, obj, run, scheme};
use crate::kv::MemKv;
use crate::query;
use crate::records::{GcMark, WriteFence};
use crate::{Command, MetaError, Response};
use cairn_types::ChunkId;

const X: ChunkId = ChunkId([7; 32]);

/// Where the chunk starts.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Referenced by object `src`.
    Live,
    /// Its last reference dropped.
    Unreferenced,
    /// Never stored.
    Absent,
    /// Deleted by an earlier pass, its mark kept.
    Gone,
    /// Shards written by a crashed upload, no record.
    Orphan,
}

#[derive(Clone, Debug)]
struct World {
    kv: MemKv,
    /// Whether X's shards are on disk.
    shards: bool,
    writers: Vec<Writer>,
    collector: Collector,
    /// Whether the `src` object's delete has run.
    deleted: bool,
    /// The data path's in-process registry of chunks in use by uploads: consulted by the
    /// collector after each claim (as `Store` does), or ignored (a collector in another process).
    registry: bool,
}

#[derive(Clone, Debug, Default)]
struct Writer {
    pc: usize,
    fence: WriteFence,
    writes: bool,
    /// Between its look at the chunk and the end of its commit: in the registry.
    registered: bool,
    committed: Option<bool>,
}

#[derive(Clone, Debug, Default)]
struct Collector {
    pc: usize,
    pass: u64,
    claimed: bool,
}

fn apply_ok(kv: &mut MemKv, cmd: Command) -> Response {
    run(kv, &cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn setup(start: Start, registry: bool, writers: usize) -> World {
    let mut kv = MemKv::default();
    bucket(&mut kv, "b1");
    let mut shards = false;
    match start {
        Start::Live | Start::Unreferenced => {
            super::tests::put(&mut kv, "src", &[7], &[7]).unwrap();
            shards = true;
        }
        Start::Orphan => shards = true,
        Start::Absent | Start::Gone => {}
    }
    if matches!(start, Start::Unreferenced | Start::Gone) {
        if matches!(start, Start::Gone) {
            super::tests::put(&mut kv, "src", &[7], &[7]).unwrap();
        }
        apply_ok(
            &mut kv,
            Command::DeleteObjects {
                bucket: "b1".into(),
                keys: vec!["src".into()],
            },
        );
    }
    if matches!(start, Start::Gone) {
        let Response::Pass(p) = apply_ok(&mut kv, Command::GcBegin) else {
            panic!()
        };
        apply_ok(&mut kv, Command::GcClaim { pass: p, ids: vec![X] });
        apply_ok(&mut kv, Command::GcDrop { pass: p, ids: vec![X] });
        apply_ok(&mut kv, Command::GcEnd { pass: p });
        assert_eq!(query::gc_mark(&kv, &X).unwrap(), Some(GcMark::Gone { pass: p }));
    }
    World {
        kv,
        shards,
        writers: vec![Writer::default(); writers],
        collector: Collector::default(),
        deleted: !matches!(start, Start::Live),
        registry,
    }
}

const WRITER_STEPS: usize = 3;
const COLLECTOR_STEPS: usize = 6;

impl World {
    fn mark(&self) -> Option<GcMark> {
        query::gc_mark(&self.kv, &X).unwrap()
    }

    /// Whether writer `w` can take its next step (the data path waits while X is being
    /// deleted before it looks at it).
    fn writer_ready(&self, w: usize) -> bool {
        let wr = &self.writers[w];
        wr.pc < WRITER_STEPS && !(wr.pc == 0 && matches!(self.mark(), Some(GcMark::Deleting { .. })))
    }

    fn writer_step(&mut self, w: usize) {
        let pc = self.writers[w].pc;
        self.writers[w].pc += 1;
        match pc {
            0 => {
                let info = query::gc_info(&self.kv).unwrap();
                let live = query::chunk(&self.kv, &X).unwrap().is_some_and(|r| r.refcount > 0);
                let wr = &mut self.writers[w];
                wr.registered = true;
                wr.fence.passes_done = info.done;
                wr.writes = !live;
                if let Some(GcMark::Gone { pass }) = query::gc_mark(&self.kv, &X).unwrap() {
                    wr.fence.seen_gone.push((X, pass));
                }
            }
            1 => {
                if self.writers[w].writes {
                    self.shards = true;
                }
            }
            _ => {
                let wr = &self.writers[w];
                let cmd = Command::Fenced {
                    fence: wr.fence.clone(),
                    command: Box::new(Command::PutObject {
                        bucket: "b1".into(),
                        key: format!("w{w}"),
                        object: Box::new(obj(&[7], &format!("w{w}"))),
                        written: if wr.writes { vec![X] } else { vec![] },
                        scheme: scheme(),
                        if_none_match: false,
                        if_match: None,
                    }),
                };
                let r = run(&mut self.kv, &cmd);
                assert!(
                    matches!(r, Ok(_) | Err(MetaError::ChunksGone(_))),
                    "unexpected answer {r:?}"
                );
                let wr = &mut self.writers[w];
                wr.committed = Some(r.is_ok());
                wr.registered = false;
            }
        }
    }

    fn collector_step(&mut self) {
        let c = &mut self.collector;
        let pc = c.pc;
        c.pc += 1;
        match pc {
            0 => {
                let Response::Pass(p) = apply_ok(&mut self.kv, Command::GcBegin) else {
                    panic!()
                };
                self.collector.pass = p;
            }
            1 => {
                let pass = self.collector.pass;
                let Response::Chunks(claimed) = apply_ok(&mut self.kv, Command::GcClaim { pass, ids: vec![X] }) else {
                    panic!()
                };
                let mut claimed = !claimed.is_empty();
                if claimed && self.registry && self.writers.iter().any(|w| w.registered) {
                    apply_ok(&mut self.kv, Command::GcRelease { pass, ids: vec![X] });
                    claimed = false;
                }
                self.collector.claimed = claimed;
            }
            2 => {
                if self.collector.claimed {
                    self.shards = false;
                }
            }
            3 => {
                if self.collector.claimed {
                    let pass = self.collector.pass;
                    apply_ok(&mut self.kv, Command::GcDrop { pass, ids: vec![X] });
                }
            }
            4 => {
                let pass = self.collector.pass;
                apply_ok(&mut self.kv, Command::GcEnd { pass });
            }
            _ => {
                // Marks are purged once older than the grace period; with the registry, never
                // while an upload that began before their pass ended is in flight (as `Store`
                // does). Without it, at once: uploads outlasting the grace period.
                let mut through = self.collector.pass;
                if self.registry {
                    for w in self.writers.iter().filter(|w| w.registered) {
                        through = through.min(w.fence.passes_done);
                    }
                }
                if through > 0 {
                    apply_ok(&mut self.kv, Command::GcPurge { through, ids: vec![X] });
                }
            }
        }
    }

    /// No reference without shards.
    fn check(&self, trace: &[char]) {
        let rec = query::chunk(&self.kv, &X).unwrap();
        if rec.is_some_and(|r| r.refcount > 0) {
            assert!(
                self.shards,
                "X is referenced but its shards were deleted; steps {trace:?}"
            );
        }
        if let Some(GcMark::Deleting { .. }) = self.mark() {
            assert!(
                rec.is_none_or(|r| r.refcount == 0),
                "a chunk being deleted gained a reference"
            );
        }
    }
}

/// Explores every interleaving from `world`; returns how many complete histories it saw.
fn explore(world: &World, trace: &mut Vec<char>, outcomes: &mut impl FnMut(&World, &[char])) -> u64 {
    let mut histories = 0;
    let mut moved = false;
    for w in 0..world.writers.len() {
        if world.writer_ready(w) {
            let mut next = world.clone();
            next.writer_step(w);
            next.check(trace);
            trace.push(char::from(b'a' + w as u8));
            histories += explore(&next, trace, outcomes);
            trace.pop();
            moved = true;
        }
    }
    if world.collector.pc < COLLECTOR_STEPS {
        let mut next = world.clone();
        next.collector_step();
        next.check(trace);
        trace.push('C');
        histories += explore(&next, trace, outcomes);
        trace.pop();
        moved = true;
    }
    if !world.deleted {
        let mut next = world.clone();
        apply_ok(
            &mut next.kv,
            Command::DeleteObjects {
                bucket: "b1".into(),
                keys: vec!["src".into()],
            },
        );
        next.deleted = true;
        next.check(trace);
        trace.push('D');
        histories += explore(&next, trace, outcomes);
        trace.pop();
        moved = true;
    }
    if !moved {
        assert!(
            world.writers.iter().all(|w| w.pc == WRITER_STEPS),
            "a writer waits for ever; steps {trace:?}"
        );
        outcomes(world, trace);
        return 1;
    }
    histories
}

const STARTS: [Start; 5] = [
    Start::Live,
    Start::Unreferenced,
    Start::Absent,
    Start::Gone,
    Start::Orphan,
];

#[test]
fn no_interleaving_commits_a_reference_to_deleted_shards() {
    for start in STARTS {
        for registry in [false, true] {
            for writers in [1, 2] {
                let world = setup(start, registry, writers);
                let mut refused = 0u64;
                let n = explore(&world, &mut Vec::new(), &mut |w, trace| {
                    refused += w.writers.iter().filter(|w| w.committed == Some(false)).count() as u64;
                    // With the registry (one process), a writer is never refused: the collector
                    // gives back what an upload uses, and the upload waits out a deletion.
                    assert!(
                        !registry || w.writers.iter().all(|w| w.committed == Some(true)),
                        "{start:?}: a writer was refused although the collector sees uploads; steps {trace:?}"
                    );
                });
                assert!(n >= 20, "{start:?}: only {n} histories");
                if !registry && !matches!(start, Start::Live) {
                    // The fence is what saves the data when the collector cannot see uploads:
                    // some histories must have needed it.
                    assert!(refused > 0, "{start:?}: no history exercised the fence");
                }
            }
        }
    }
}

#[test]
fn a_commit_is_refused_while_its_chunk_is_being_deleted() {
    let mut world = setup(Start::Unreferenced, false, 0);
    world.collector_step();
    world.collector_step();
    assert!(matches!(world.mark(), Some(GcMark::Deleting { .. })));
    let r = super::tests::put(&mut world.kv, "again", &[7], &[7]);
    assert_eq!(r, Err(MetaError::ChunksGone(vec![X])));
    // Released, it is referenced again without a rewrite.
    let pass = world.collector.pass;
    apply_ok(&mut world.kv, Command::GcRelease { pass, ids: vec![X] });
    assert_eq!(world.mark(), Some(GcMark::Unreferenced));
    super::tests::put(&mut world.kv, "again", &[7], &[]).unwrap();
    assert_eq!(world.mark(), None);
    assert_eq!(query::chunk(&world.kv, &X).unwrap().unwrap().refcount, 1);
}

#[test]
fn collection_commands_refuse_a_pass_not_in_progress() {
    let mut kv = MemKv::default();
    assert_eq!(
        run(&mut kv, &Command::GcClaim { pass: 1, ids: vec![X] }),
        Err(MetaError::NotCurrentPass(1))
    );
    assert_eq!(apply_ok(&mut kv, Command::GcBegin), Response::Pass(1));
    // A collector that restarts resumes the pass in progress.
    assert_eq!(apply_ok(&mut kv, Command::GcBegin), Response::Pass(1));
    apply_ok(&mut kv, Command::GcEnd { pass: 1 });
    assert_eq!(
        run(&mut kv, &Command::GcEnd { pass: 1 }),
        Err(MetaError::NotCurrentPass(1))
    );
    assert_eq!(
        run(
            &mut kv,
            &Command::GcPurge {
                through: 2,
                ids: vec![]
            }
        ),
        Err(MetaError::NotCurrentPass(2))
    );
    assert_eq!(apply_ok(&mut kv, Command::GcBegin), Response::Pass(2));
}

#[test]
fn a_fence_wraps_only_writes_of_new_chunks() {
    let bad = Command::Fenced {
        fence: WriteFence::default(),
        command: Box::new(Command::DeleteBucket { name: "b1".into() }),
    };
    assert_eq!(bad.validate(), Err(crate::InvalidCommand::BadFence));
}
