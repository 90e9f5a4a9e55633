//! A linearizability checker for histories of one S3 key, used as a register: Wing & Gong's
//! search with Lowe's memoisation (the algorithm of Porcupine and Knossos). Linearizability is
//! local, so a history of many keys is checked key by key.
//!
//! An operation is invoked at `call`, answered at `ret` (times from one clock), and has the
//! outcome the client saw; an operation whose outcome the client never learnt (it gave up)
//! has no `ret`: it may have taken effect at any point after its call, or never.

use std::collections::HashSet;

/// What a client asked of the key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// PUT of `value`.
    Put {
        /// The body written (unique per write).
        value: String,
    },
    /// PUT of `value` with `If-None-Match: *`.
    PutIfAbsent {
        /// The body written.
        value: String,
    },
    /// PUT of `value` with `If-Match` the ETag of `expect`.
    PutIfMatch {
        /// The body the key must hold.
        expect: String,
        /// The body written.
        value: String,
    },
    /// GET.
    Get,
    /// DELETE.
    Delete,
}

/// What the client saw.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A write succeeded.
    Done,
    /// A conditional write was refused (412).
    PreconditionFailed,
    /// A GET found this body.
    Found {
        /// The body.
        value: String,
    },
    /// A GET found no object (404).
    Absent,
    /// The client gave up: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of the history.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Event {
    /// The key.
    #[serde(default)]
    pub key: String,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
    /// Its outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// When it was invoked.
    pub call: f64,
    /// When it was answered (`None`: never, for `Outcome::Unknown`).
    pub ret: Option<f64>,
}

/// Applies `op` to the register `state`: the outcome a linearizable store answers, and the
/// state after.
fn step(state: &Option<String>, op: &Op) -> (Outcome, Option<String>) {
    match op {
        Op::Put { value } => (Outcome::Done, Some(value.clone())),
        Op::PutIfAbsent { value } => match state {
            None => (Outcome::Done, Some(value.clone())),
            Some(_) => (Outcome::PreconditionFailed, state.clone()),
        },
        Op::PutIfMatch { expect, value } => match state {
            Some(v) if v == expect => (Outcome::Done, Some(value.clone())),
            _ => (Outcome::PreconditionFailed, state.clone()),
        },
        Op::Get => match state {
            Some(v) => (Outcome::Found { value: v.clone() }, state.clone()),
            None => (Outcome::Absent, None),
        },
        Op::Delete => (Outcome::Done, None),
    }
}

/// One node of the list of calls and returns, in time order.
#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return node.
    ret: usize,
    prev: usize,
    next: usize,
}

/// Whether the history of one key, starting from `initial`, is linearizable.
pub fn check(initial: Option<String>, history: &[Event]) -> bool {
    // Node 0 is the list head; then a call and a return node per operation.
    let end = f64::INFINITY;
    let mut points: Vec<(f64, bool, usize)> = Vec::with_capacity(history.len() * 2);
    for (i, e) in history.iter().enumerate() {
        points.push((e.call, true, i));
        points.push((e.ret.unwrap_or(end), false, i));
    }
    // At equal times calls come first: overlapping is the permissive reading.
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let n = points.len();
    let mut nodes = vec![
        Node {
            op: usize::MAX,
            is_call: false,
            ret: 0,
            prev: 0,
            next: 1,
        };
        n + 1
    ];
    let mut ret_of = vec![0usize; history.len()];
    for (i, &(_, is_call, op)) in points.iter().enumerate() {
        nodes[i + 1] = Node {
            op,
            is_call,
            ret: 0,
            prev: i,
            next: i + 2,
        };
        if !is_call {
            ret_of[op] = i + 1;
        }
    }
    for node in nodes.iter_mut().skip(1) {
        if node.is_call {
            node.ret = ret_of[node.op];
        }
    }
    const NIL: usize = usize::MAX;
    if n == 0 {
        return true;
    }
    nodes[n].next = NIL;

    fn lift(nodes: &mut [Node], call: usize) {
        let ret = nodes[call].ret;
        for at in [call, ret] {
            let (p, nx) = (nodes[at].prev, nodes[at].next);
            nodes[p].next = nx;
            if nx != usize::MAX {
                nodes[nx].prev = p;
            }
        }
    }
    fn unlift(nodes: &mut [Node], call: usize) {
        let ret = nodes[call].ret;
        for at in [ret, call] {
            let (p, nx) = (nodes[at].prev, nodes[at].next);
            nodes[p].next = at;
            if nx != usize::MAX {
                nodes[nx].prev = at;
            }
        }
    }

    let words = history.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<String>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut state = initial;
    let mut cur = nodes[0].next;
    while nodes[0].next != NIL {
        let node = nodes[cur];
        if node.is_call {
            let event = &history[node.op];
            let (outcome, next_state) = step(&state, &event.op);
            if event.outcome == Outcome::Unknown || outcome == event.outcome {
                let mut with = linearized.clone();
                with[node.op / 64] |= 1 << (node.op % 64);
                if seen.insert((with.clone(), next_state.clone())) {
                    stack.push((cur, std::mem::replace(&mut state, next_state)));
                    linearized = with;
                    lift(&mut nodes, cur);
                    cur = nodes[0].next;
                    continue;
                }
            }
            cur = node.next;
        } else {
            // An operation returned before any order could place it: undo the last choice.
            let Some((call, before)) = stack.pop() else {
                return false;
            };
            state = before;
            let op = nodes[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut nodes, call);
            cur = nodes[call].next;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &str, call: f64, ret: f64) -> Event {
        Event {
            key: String::new(),
            op: Op::Put { value: v.into() },
            outcome: Outcome::Done,
            call,
            ret: Some(ret),
        }
    }

    fn get(found: Option<&str>, call: f64, ret: f64) -> Event {
        Event {
            key: String::new(),
            op: Op::Get,
            outcome: match found {
                Some(v) => Outcome::Found { value: v.into() },
                None => Outcome::Absent,
            },
            call,
            ret: Some(ret),
        }
    }

    fn cas(expect: &str, v: &str, done: bool, call: f64, ret: f64) -> Event {
        Event {
            key: String::new(),
            op: Op::PutIfMatch {
                expect: expect.into(),
                value: v.into(),
            },
            outcome: if done {
                Outcome::Done
            } else {
                Outcome::PreconditionFailed
            },
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn sequential_histories_that_follow_the_register_pass() {
        let h = [
            get(None, 0.0, 1.0),
            put("a", 2.0, 3.0),
            get(Some("a"), 4.0, 5.0),
            cas("a", "b", true, 6.0, 7.0),
            cas("a", "c", false, 8.0, 9.0),
            get(Some("b"), 10.0, 11.0),
        ];
        assert!(check(None, &h));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_rejected() {
        // b was acknowledged before the read began: reading a is what a deposed leader
        // answering from its own state would do.
        let h = [put("a", 0.0, 1.0), put("b", 2.0, 3.0), get(Some("a"), 4.0, 5.0)];
        assert!(!check(None, &h));
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let h = [put("a", 0.0, 10.0), put("b", 1.0, 9.0), get(Some("a"), 11.0, 12.0)];
        assert!(check(None, &h));
        let h = [put("a", 0.0, 10.0), put("b", 1.0, 9.0), get(Some("b"), 11.0, 12.0)];
        assert!(check(None, &h));
        // But both readers after both writes must agree.
        let h = [
            put("a", 0.0, 10.0),
            put("b", 1.0, 9.0),
            get(Some("b"), 11.0, 12.0),
            get(Some("a"), 13.0, 14.0),
        ];
        assert!(!check(None, &h));
    }

    #[test]
    fn a_read_going_back_in_time_is_rejected() {
        // Two reads overlapping one write: once a reader saw the new value, a later reader
        // may not see the old one.
        let h = [
            put("a", 0.0, 1.0),
            put("b", 2.0, 10.0),
            get(Some("b"), 3.0, 4.0),
            get(Some("a"), 5.0, 6.0),
        ];
        assert!(!check(None, &h));
    }

    #[test]
    fn two_successful_compare_and_sets_from_the_same_value_are_rejected() {
        let h = [
            put("a", 0.0, 1.0),
            cas("a", "b", true, 2.0, 5.0),
            cas("a", "c", true, 3.0, 6.0),
        ];
        assert!(!check(None, &h));
        let h = [
            put("a", 0.0, 1.0),
            cas("a", "b", true, 2.0, 5.0),
            cas("a", "c", false, 3.0, 6.0),
        ];
        assert!(check(None, &h));
    }

    #[test]
    fn a_lost_acknowledged_write_is_rejected() {
        let h = [put("a", 0.0, 1.0), get(None, 2.0, 3.0)];
        assert!(!check(None, &h));
    }

    #[test]
    fn an_operation_of_unknown_outcome_may_apply_late_or_never() {
        let unknown = Event {
            key: String::new(),
            op: Op::Put { value: "x".into() },
            outcome: Outcome::Unknown,
            call: 1.0,
            ret: None,
        };
        // Never applied.
        assert!(check(
            None,
            &[put("a", 0.0, 0.5), unknown.clone(), get(Some("a"), 5.0, 6.0)]
        ));
        // Applied late, long after the client gave up.
        let h = [
            put("a", 0.0, 0.5),
            unknown.clone(),
            get(Some("a"), 5.0, 6.0),
            get(Some("x"), 7.0, 8.0),
        ];
        assert!(check(None, &h));
        // But not before it was invoked.
        assert!(!check(None, &[get(Some("x"), 0.0, 0.5), unknown]));
    }

    #[test]
    fn put_if_absent_creates_once() {
        let create = |v: &str, done: bool, call: f64, ret: f64| Event {
            key: String::new(),
            op: Op::PutIfAbsent { value: v.into() },
            outcome: if done {
                Outcome::Done
            } else {
                Outcome::PreconditionFailed
            },
            call,
            ret: Some(ret),
        };
        assert!(check(
            None,
            &[create("a", true, 0.0, 2.0), create("b", false, 1.0, 3.0)]
        ));
        assert!(!check(
            None,
            &[create("a", true, 0.0, 2.0), create("b", true, 1.0, 3.0)]
        ));
    }

    #[test]
    fn histories_decode_from_the_clients_json() {
        let lines = [
            r#"{"op": "get", "key": "x", "call": 1.0, "outcome": "found", "value": "w0-1", "ret": 2.0}"#,
            r#"{"op": "put_if_match", "expect": "a", "value": "b", "key": "x", "call": 1.0, "outcome": "precondition_failed", "ret": 2.0}"#,
            r#"{"op": "delete", "key": "y", "call": 1.0, "outcome": "unknown", "error": "timeout"}"#,
        ];
        let events: Vec<Event> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events[0].outcome, Outcome::Found { value: "w0-1".into() });
        assert_eq!(events[0].op, Op::Get);
        assert_eq!(
            events[1].op,
            Op::PutIfMatch {
                expect: "a".into(),
                value: "b".into()
            }
        );
        assert_eq!(
            (events[2].key.as_str(), &events[2].outcome, events[2].ret),
            ("y", &Outcome::Unknown, None)
        );
    }

    #[test]
    fn long_concurrent_histories_are_checked_quickly() {
        // 4 clients, 400 operations on one key, each overlapping its neighbours: the memo
        // keeps the search from exploring every order.
        let mut h = Vec::new();
        let mut last = None::<String>;
        for i in 0..400u32 {
            let t = f64::from(i);
            if i % 3 == 0 {
                h.push(get(last.as_deref(), t, t + 2.5));
            } else {
                let v = format!("v{i}");
                h.push(put(&v, t, t + 0.5));
                last = Some(v);
            }
        }
        assert!(check(None, &h));
    }
}
