//! openraft's async runtime for etch: tokio, with the one source of randomness openraft draws
//! from (its election timeouts) made seedable so a simulated run replays exactly.
//!
//! openraft 0.9 takes every random number it uses from `AsyncRuntime::thread_rng()` (the
//! election timeout, uniform in `[election_timeout_min, election_timeout_max)`). Its stock
//! `TokioRuntime` returns `rand::thread_rng()`, seeded from the OS, which a test cannot
//! control. [`SeededTokio`] is identical except that its generator is a per-thread `StdRng`
//! that [`seed_thread_rng`] can seed; unseeded threads seed themselves from the OS, so
//! production behaviour is unchanged. A simulation runs every node on one current-thread
//! runtime with paused time, so one seed fixes every timeout of every node.
//!
//! tokio's `select!` also picks a random first branch to poll (openraft's core loop uses it
//! unbiased); without `--cfg tokio_unstable` that choice is seeded from the OS and cannot be
//! fixed. Measured: a 3-node cluster run on one paused current-thread runtime, lossy network,
//! leader isolation and heal, replays message for message under the same seed (the test
//! `a_seed_replays_the_same_run` compares ~670 message fates with their times), and does not
//! replay when the election-timeout generator is left unseeded. So the seeded generator is what
//! replay needs; if a future run shows divergence, the next step is building the simulation
//! with `tokio_unstable` and `Builder::rng_seed`.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static RNG: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Seeds the generator openraft uses on the calling thread.
pub fn seed_thread_rng(seed: u64) {
    RNG.with(|rng| *rng.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// A handle to the calling thread's seedable generator (what [`SeededTokio::thread_rng`]
/// returns). Cheap: all state lives in a thread-local.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadRng;

impl ThreadRng {
    fn with<T>(f: impl FnOnce(&mut StdRng) -> T) -> T {
        RNG.with(|cell| {
            let mut slot = cell.borrow_mut();
            let rng = slot.get_or_insert_with(StdRng::from_entropy);
            f(rng)
        })
    }
}

impl RngCore for ThreadRng {
    fn next_u32(&mut self) -> u32 {
        ThreadRng::with(|r| r.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        ThreadRng::with(|r| r.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        ThreadRng::with(|r| r.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        ThreadRng::with(|r| r.try_fill_bytes(dest))
    }
}

/// tokio with a seedable random number generator; see the module documentation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeededTokio;

impl AsyncRuntime for SeededTokio {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ThreadRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ThreadRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::Config;

    fn timeouts(seed: u64) -> Vec<u64> {
        seed_thread_rng(seed);
        let config = Config::default();
        (0..16)
            .map(|_| config.new_rand_election_timeout::<SeededTokio>())
            .collect()
    }

    #[test]
    fn a_seed_fixes_openraft_election_timeouts() {
        let a = timeouts(7);
        assert_eq!(a, timeouts(7));
        assert_ne!(a, timeouts(8));
        let config = Config::default();
        assert!(a
            .iter()
            .all(|t| (config.election_timeout_min..config.election_timeout_max).contains(t)));
    }
}
