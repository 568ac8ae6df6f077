//! Wing–Gong / Lowe search for a linearization of one key's operations, memoized on
//! (set of operations linearized, model state) as in Lowe's "Testing for linearizability" and
//! porcupine.
//!
//! The history becomes a doubly linked list of call and return events in time order. The search
//! walks it: at a call it tries to linearize that operation now (apply it to the model, remove its
//! call and return from the list, restart from the front); at a return it has failed to place the
//! operation that return belongs to before it, so it undoes the latest choice and tries the next
//! alternative. The list is empty exactly when every operation has been placed. A configuration
//! already explored (same operations placed, same model state) is never explored twice, which
//! bounds the work by the number of distinct configurations rather than orderings.

use std::collections::HashSet;

use super::history::{Operation, Outcome};
use super::model::KeyState;

/// What the search concluded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A linearization exists.
    Linearizable,
    /// None exists. `placed` is the longest prefix of a linearization the search found (indices
    /// into the slice it was given), to help read a failure.
    Violation { placed: Vec<usize> },
    /// The budget of explored configurations ran out first.
    GaveUp,
}

const NONE: usize = usize::MAX;

struct Event {
    op: usize,
    is_call: bool,
    /// For a call, the index of its return event.
    partner: usize,
    prev: usize,
    next: usize,
}

/// The event list; index 0 is a sentinel head.
struct Events {
    events: Vec<Event>,
}

impl Events {
    fn new(ops: &[&Operation]) -> Events {
        // (time, is_return, op): calls sort before returns at the same time, so touching
        // intervals overlap.
        let mut points: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            points.push((op.invoke, false, i));
            let end = match op.outcome {
                Outcome::Returned { at, .. } => at,
                Outcome::Unknown => u64::MAX,
            };
            points.push((end, true, i));
        }
        points.sort_unstable();
        let mut events = vec![Event {
            op: NONE,
            is_call: false,
            partner: NONE,
            prev: NONE,
            next: NONE,
        }];
        let mut return_of = vec![NONE; ops.len()];
        for &(_, is_return, op) in &points {
            let index = events.len();
            if is_return {
                return_of[op] = index;
            }
            events.push(Event {
                op,
                is_call: !is_return,
                partner: NONE,
                prev: index - 1,
                next: NONE,
            });
            events[index - 1].next = index;
        }
        for event in events.iter_mut().skip(1) {
            if event.is_call {
                event.partner = return_of[event.op];
            }
        }
        Events { events }
    }

    fn first(&self) -> usize {
        self.events[0].next
    }

    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.events[i].prev, self.events[i].next);
        self.events[prev].next = next;
        if next != NONE {
            self.events[next].prev = prev;
        }
    }

    /// Re-inserts `i` where it was; valid when undone in the reverse order of unlinking.
    fn relink(&mut self, i: usize) {
        let (prev, next) = (self.events[i].prev, self.events[i].next);
        self.events[prev].next = i;
        if next != NONE {
            self.events[next].prev = i;
        }
    }

    /// Removes a call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.events[call].partner);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(self.events[call].partner);
        self.relink(call);
    }
}

/// One choice on the search stack: the call placed, the state before it, and the next
/// alternative successor to try if this choice is undone.
struct Choice {
    call: usize,
    before: KeyState,
    next_alternative: usize,
}

/// Searches for a linearization of `ops` (all on one key) from `initial`, exploring at most
/// `budget` configurations.
pub(crate) fn linearize(ops: &[&Operation], initial: KeyState, budget: u64) -> Found {
    let mut events = Events::new(ops);
    let mut placed = vec![0u64; ops.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, KeyState)> = HashSet::new();
    let mut stack: Vec<Choice> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut state = initial;
    let mut entry = events.first();
    let mut first_alternative = 0;
    let mut explored = 0u64;

    while events.first() != NONE {
        if entry == NONE {
            // Cannot happen: the last event is always a return, handled below.
            break;
        }
        let event = &events.events[entry];
        if event.is_call {
            let op = event.op;
            let mut taken = None;
            for (k, next) in state
                .step(ops[op])
                .into_iter()
                .enumerate()
                .skip(first_alternative)
            {
                explored += 1;
                if explored > budget {
                    return Found::GaveUp;
                }
                let mut key = placed.clone();
                key[op / 64] |= 1 << (op % 64);
                if seen.insert((key, next.clone())) {
                    taken = Some((k, next));
                    break;
                }
            }
            first_alternative = 0;
            match taken {
                Some((k, next)) => {
                    stack.push(Choice {
                        call: entry,
                        before: std::mem::replace(&mut state, next),
                        next_alternative: k + 1,
                    });
                    placed[op / 64] |= 1 << (op % 64);
                    events.lift(entry);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|c| events.events[c.call].op).collect();
                    }
                    entry = events.first();
                }
                None => entry = events.events[entry].next,
            }
        } else {
            // A return whose operation could not be placed before it: undo the latest choice.
            let Some(choice) = stack.pop() else {
                return Found::Violation { placed: longest };
            };
            let op = events.events[choice.call].op;
            placed[op / 64] &= !(1 << (op % 64));
            events.unlift(choice.call);
            state = choice.before;
            entry = choice.call;
            first_alternative = choice.next_alternative;
        }
    }
    Found::Linearizable
}
