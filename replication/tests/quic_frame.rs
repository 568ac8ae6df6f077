//! Fuzzing the peer frame decoder: arbitrary bytes give a typed error or a value, never a
//! panic, and never a large allocation. This binary counts the largest single allocation each
//! thread makes (a wrapping global allocator), so "never a huge allocation" is measured, not
//! assumed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use etch_replication::network::{RaftReply, RaftRequest};
use etch_replication::quic::frame::{self, FrameError};
use etch_replication::quic::hello::{Hello, HELLO_LIMIT};
use proptest::prelude::*;

/// The system allocator, recording per thread the largest block asked for.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the only addition is a store into a const-initialized thread-local `Cell`, which
// does not allocate (so no recursion into the allocator) and cannot unwind.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's guarantees for `alloc` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`; the caller guarantees `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns the largest single allocation it made on this thread.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    f();
    LARGEST.with(|l| l.get())
}

/// The limit peers use by default.
const LIMIT: usize = 64 << 20;

/// No decode of `input` may allocate more than this: a few times the input, plus slack.
fn allocation_bound(input: &[u8]) -> usize {
    4 * input.len() + (1 << 20)
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every decoder on `input`; panics are failures of the test by themselves.
fn decode_all(input: &[u8]) {
    let _ = frame::decode::<RaftRequest>(input, LIMIT);
    let _ = frame::decode::<RaftReply>(input, LIMIT);
    let _ = frame::decode::<Hello>(input, HELLO_LIMIT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic_nor_allocate_much(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let largest = largest_allocation(|| decode_all(&input));
        prop_assert!(largest <= allocation_bound(&input), "{largest} bytes allocated");
    }

    /// Bytes behind a well-formed prefix and version byte reach postcard's decoding of the
    /// message enums (not just the frame checks).
    #[test]
    fn arbitrary_bodies_behind_a_valid_header(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut input = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        input.push(etch_replication::codec::FORMAT_VERSION);
        input.extend_from_slice(&body);
        let largest = largest_allocation(|| decode_all(&input));
        prop_assert!(largest <= allocation_bound(&input), "{largest} bytes allocated");
        // The streaming reader agrees with the in-memory decoder on whether it is a request.
        let streamed = block_on(frame::read::<RaftRequest, _>(&mut input.as_slice(), LIMIT));
        let whole = frame::decode::<RaftRequest>(&input, LIMIT);
        prop_assert_eq!(streamed.is_ok(), whole.is_ok());
    }

    /// Valid frames with one byte flipped: a typed error or some value, never a panic.
    #[test]
    fn mutated_valid_frames(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let vote = RaftRequest::Vote(openraft::raft::VoteRequest::new(openraft::Vote::new(3, 1), None));
        let mut input = frame::encode(&vote, LIMIT).unwrap();
        let i = position.index(input.len());
        input[i] = byte;
        decode_all(&input);
    }
}

#[test]
fn a_valid_frame_round_trips() {
    let vote = RaftRequest::Vote(openraft::raft::VoteRequest::new(
        openraft::Vote::new(3, 1),
        None,
    ));
    let bytes = frame::encode(&vote, LIMIT).unwrap();
    match frame::decode::<RaftRequest>(&bytes, LIMIT).unwrap() {
        RaftRequest::Vote(v) => assert_eq!(v.vote, openraft::Vote::new(3, 1)),
        other => panic!("decoded {other:?}"),
    }
    let streamed: RaftRequest = block_on(frame::read(&mut bytes.as_slice(), LIMIT)).unwrap();
    assert_eq!(streamed.kind(), "vote");
}

#[test]
fn frames_over_the_limit_are_refused_before_reading_them() {
    // A prefix announcing 4 GiB: refused from the 4 prefix bytes alone, both ways.
    let mut input = u32::MAX.to_be_bytes().to_vec();
    input.extend_from_slice(&[1, 0, 0]);
    let expected = FrameError::TooLarge {
        size: u32::MAX as usize,
        limit: LIMIT,
    };
    assert_eq!(
        frame::decode::<RaftRequest>(&input, LIMIT).unwrap_err(),
        expected
    );
    let largest = largest_allocation(|| {
        let r = block_on(frame::read::<RaftRequest, _>(&mut input.as_slice(), LIMIT));
        assert_eq!(r.unwrap_err(), expected);
    });
    assert!(largest < 1 << 20, "{largest} bytes allocated");
    // Sending refuses what the peer would refuse.
    let big = RaftRequest::Vote(openraft::raft::VoteRequest::new(
        openraft::Vote::new(1, 1),
        None,
    ));
    assert!(matches!(
        frame::encode(&big, 4),
        Err(FrameError::TooLarge { limit: 4, .. })
    ));
}

#[test]
fn an_announced_but_missing_body_costs_no_memory() {
    // 60 MiB announced (under the limit), 3 bytes sent: the reader's buffer grows with the
    // bytes received, so it never holds anything near 60 MiB.
    let mut input = (60u32 << 20).to_be_bytes().to_vec();
    input.extend_from_slice(&[1, 2, 3]);
    let largest = largest_allocation(|| {
        let r = block_on(frame::read::<RaftRequest, _>(&mut input.as_slice(), LIMIT));
        assert_eq!(
            r.unwrap_err(),
            FrameError::Truncated {
                expected: 60 << 20,
                received: 3
            }
        );
    });
    assert!(largest < 1 << 20, "{largest} bytes allocated");
}

#[test]
fn a_huge_length_inside_the_message_is_not_preallocated() {
    // An AppendEntries whose entry vector claims u32::MAX elements, in a small frame.
    let mut body = vec![etch_replication::codec::FORMAT_VERSION, 0]; // version, variant 0
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // a varint near 2^32
    body.extend_from_slice(&[0; 64]);
    let mut input = (body.len() as u32).to_be_bytes().to_vec();
    input.extend_from_slice(&body);
    let largest = largest_allocation(|| {
        assert!(frame::decode::<RaftRequest>(&input, LIMIT).is_err());
    });
    assert!(largest < 2 << 20, "{largest} bytes allocated");
}
