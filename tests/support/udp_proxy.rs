//! A UDP fault proxy for the peer links of a cluster on loopback: one proxy in front of each
//! member's peer port, forwarding QUIC datagrams and, on command from the test, dropping (all
//! or a fraction), delaying, duplicating, or partitioning them one way or both ways.
//!
//! ```text
//!   member b (real port Pb) ──► proxy of a (Xa) ──► member a (real port Pa)
//!                           ◄──               ◄──
//! ```
//! Every member advertises its proxy's address (`--initial-advertise-peer-urls`) and listens on
//! its real port (`--listen-peer-urls`), so every peer datagram crosses exactly one proxy: the
//! proxy of the member that was dialled. A proxy tells who sent a datagram from its source
//! address: a member's QUIC endpoint sends from its one peer port, which the [`FaultNet`] was
//! told when the member was added. Each datagram therefore has a direction (`from` → `to`), and
//! the rule of that directed link decides its fate; so "a cannot reach b" blocks a's connection
//! to b (at b's proxy, client to server) and a's answers on b's connection to a (at a's proxy,
//! server to client) alike.
//!
//! The proxy is real UDP (not a mock of the transport): what it does to a datagram is what a
//! network would do. It is plain `std` (threads and blocking sockets with short timeouts), so
//! any test or runtime can use it. Every thread stops when the [`FaultNet`] is dropped.

#![allow(dead_code)] // each test binary uses a different part of this support module

use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A member of the proxied cluster, numbered by the test (an index, not a Raft id).
pub type Node = usize;

/// How often a blocked thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Largest datagram forwarded (QUIC's datagrams are far smaller; this is the UDP maximum).
const MAX_DATAGRAM: usize = 65_536;

/// Most distinct source addresses one proxy keeps an upstream socket for: a sender of garbage
/// from many ports cannot make a proxy open sockets without bound.
const MAX_SOURCES: usize = 64;

/// What happens to the datagrams of one directed link.
/// The default is a healthy link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Fraction of datagrams dropped, 0.0 to 1.0 (1.0: the link is cut).
    pub drop: f64,
    /// Fraction of (surviving) datagrams sent twice.
    pub duplicate: f64,
    /// Fixed delay added to every datagram.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..jitter` (reorders datagrams when larger than their
    /// spacing).
    pub jitter: Duration,
}

impl LinkFaults {
    /// A healthy link.
    pub const NONE: LinkFaults = LinkFaults {
        drop: 0.0,
        duplicate: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
    };

    /// A cut link: every datagram dropped.
    pub const CUT: LinkFaults = LinkFaults {
        drop: 1.0,
        ..LinkFaults::NONE
    };

    /// A link that loses `fraction` of its datagrams.
    pub fn lossy(fraction: f64) -> LinkFaults {
        LinkFaults {
            drop: fraction,
            ..LinkFaults::NONE
        }
    }

    /// A link that delays every datagram by `delay` plus up to `jitter`.
    pub fn slow(delay: Duration, jitter: Duration) -> LinkFaults {
        LinkFaults {
            delay,
            jitter,
            ..LinkFaults::NONE
        }
    }
}

/// Counts of what the proxies did, over all links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Datagrams sent on (including duplicates).
    pub forwarded: u64,
    /// Datagrams dropped by a rule.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams held back by a delay before being sent.
    pub delayed: u64,
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
}

/// The rules and the address book every proxy thread reads.
#[derive(Default)]
struct Table {
    /// A member's real peer address → the member (to name a datagram's sender).
    members: HashMap<SocketAddr, Node>,
    /// Rules of directed links (from, to); missing links use `default`.
    links: HashMap<(Node, Node), LinkFaults>,
    /// The rule of every link without its own, and of datagrams from unknown senders.
    default: LinkFaults,
}

impl Table {
    fn rule(&self, from: Option<Node>, to: Option<Node>) -> LinkFaults {
        match (from, to) {
            (Some(f), Some(t)) => self.links.get(&(f, t)).copied().unwrap_or(self.default),
            _ => self.default,
        }
    }
}

/// A datagram waiting for its delay to pass.
struct Delayed {
    due: Instant,
    /// Orders datagrams with the same due time by arrival.
    seq: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest datagram must come out first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// State shared by every thread of a [`FaultNet`].
struct Shared {
    table: Mutex<Table>,
    stop: AtomicBool,
    counters: Counters,
    delayed: Mutex<Sender<Delayed>>,
    seq: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A proxy thread that panicked leaves the data consistent (every update is one statement).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce() + Send + 'static) {
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .expect("spawn a proxy thread");
        lock(&self.threads).push(handle);
    }

    /// Sends `bytes` from `socket` to `to` under the rule of the link `from` → `to_node`.
    fn forward(
        &self,
        rng: &mut Rng,
        from: Option<Node>,
        to_node: Option<Node>,
        socket: &Arc<UdpSocket>,
        to: SocketAddr,
        bytes: &[u8],
    ) {
        let rule = lock(&self.table).rule(from, to_node);
        if rule.drop > 0.0 && rng.chance(rule.drop) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if rule.duplicate > 0.0 && rng.chance(rule.duplicate) {
            self.counters.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut wait = rule.delay;
            if !rule.jitter.is_zero() {
                wait += rule.jitter.mul_f64(rng.unit());
            }
            if wait.is_zero() {
                // Counted first, so a receiver never sees a datagram the stats do not.
                self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                // A send error (the receiver is gone, say) is what the network does too.
                let _ = socket.send_to(bytes, to);
            } else {
                self.counters.delayed.fetch_add(1, Ordering::Relaxed);
                let item = Delayed {
                    due: Instant::now() + wait,
                    seq: self.seq.fetch_add(1, Ordering::Relaxed),
                    socket: Arc::clone(socket),
                    to,
                    bytes: bytes.to_vec(),
                };
                let _ = lock(&self.delayed).send(item);
            }
        }
    }
}

/// A small xorshift generator: the proxy's choices need no quality beyond independence.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn step(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.step() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || self.unit() < p
    }
}

/// The proxies of one cluster and the rules they apply. Dropping it stops every thread.
pub struct FaultNet {
    shared: Arc<Shared>,
    proxies: HashMap<Node, SocketAddr>,
}

impl Default for FaultNet {
    fn default() -> Self {
        FaultNet::new()
    }
}

impl FaultNet {
    /// No proxies yet; every link healthy.
    pub fn new() -> FaultNet {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            table: Mutex::new(Table::default()),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            delayed: Mutex::new(tx),
            seq: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        shared.spawn("proxy-delay".into(), move || delay_loop(&s, rx));
        FaultNet {
            shared,
            proxies: HashMap::new(),
        }
    }

    /// Puts a proxy in front of `node`, whose QUIC endpoint listens (and sends) on `member`, and
    /// returns the proxy's address (the one the member advertises to its peers).
    pub fn add(&mut self, node: Node, member: SocketAddr) -> std::io::Result<SocketAddr> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        self.add_on(node, member, front)
    }

    /// As [`FaultNet::add`], on a socket the caller bound (for a proxy on a chosen port).
    pub fn add_on(
        &mut self,
        node: Node,
        member: SocketAddr,
        front: UdpSocket,
    ) -> std::io::Result<SocketAddr> {
        front.set_read_timeout(Some(POLL))?;
        let addr = front.local_addr()?;
        lock(&self.shared.table).members.insert(member, node);
        let shared = Arc::clone(&self.shared);
        let front = Arc::new(front);
        self.shared.spawn(format!("proxy-{node}"), move || {
            front_loop(&shared, node, member, front)
        });
        self.proxies.insert(node, addr);
        Ok(addr)
    }

    /// The address of `node`'s proxy.
    pub fn proxy(&self, node: Node) -> SocketAddr {
        self.proxies[&node]
    }

    /// Sets the rule of the directed link `from` → `to`.
    pub fn set(&self, from: Node, to: Node, faults: LinkFaults) {
        lock(&self.shared.table).links.insert((from, to), faults);
    }

    /// Sets the rule of every link without its own (and of unknown senders).
    pub fn set_default(&self, faults: LinkFaults) {
        lock(&self.shared.table).default = faults;
    }

    /// Cuts `from` → `to` only: `to` still reaches `from`.
    pub fn cut_one_way(&self, from: Node, to: Node) {
        self.set(from, to, LinkFaults::CUT);
    }

    /// Cuts both directions between every member of `a` and every member of `b`.
    pub fn partition(&self, a: &[Node], b: &[Node]) {
        let mut table = lock(&self.shared.table);
        for &x in a {
            for &y in b {
                table.links.insert((x, y), LinkFaults::CUT);
                table.links.insert((y, x), LinkFaults::CUT);
            }
        }
    }

    /// Cuts `node` off from every other member, both ways.
    pub fn isolate(&self, node: Node) {
        let others: Vec<Node> = self
            .proxies
            .keys()
            .copied()
            .filter(|&n| n != node)
            .collect();
        self.partition(&[node], &others);
    }

    /// Every link healthy again.
    pub fn heal(&self) {
        let mut table = lock(&self.shared.table);
        table.links.clear();
        table.default = LinkFaults::NONE;
    }

    /// What the proxies have done so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            forwarded: c.forwarded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            duplicated: c.duplicated.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultNet {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Threads may start more threads until they see the flag: drain until none is left.
        loop {
            let batch: Vec<_> = lock(&self.shared.threads).drain(..).collect();
            if batch.is_empty() {
                break;
            }
            for handle in batch {
                let _ = handle.join();
            }
        }
    }
}

/// Receives datagrams on `node`'s proxy address and forwards each to the member through a
/// socket kept per sender, whose answers [`back_loop`] returns to that sender.
fn front_loop(shared: &Arc<Shared>, node: Node, member: SocketAddr, front: Arc<UdpSocket>) {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ node as u64);
    let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::Relaxed) {
        let (n, source) = match front.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            // ICMP-reported errors of an earlier send (a peer that is down): keep serving.
            Err(_) => continue,
        };
        let socket = match upstream.get(&source) {
            Some(s) => Arc::clone(s),
            None => {
                if upstream.len() >= MAX_SOURCES {
                    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Ok(socket) = open_upstream() else {
                    continue;
                };
                let socket = Arc::new(socket);
                upstream.insert(source, Arc::clone(&socket));
                let (s, f, u) = (Arc::clone(shared), Arc::clone(&front), Arc::clone(&socket));
                shared.spawn(format!("proxy-{node}-back"), move || {
                    back_loop(&s, node, member, u, f, source)
                });
                socket
            }
        };
        let from = lock(&shared.table).members.get(&source).copied();
        shared.forward(&mut rng, from, Some(node), &socket, member, &buf[..n]);
    }
}

fn open_upstream() -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Returns the member's answers on `upstream` to `client` from the proxy's address.
fn back_loop(
    shared: &Arc<Shared>,
    node: Node,
    member: SocketAddr,
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
) {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ ((node as u64) << 32) ^ client.port() as u64);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::Relaxed) {
        let (n, source) = match upstream.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue,
        };
        if source != member {
            continue; // only the member answers on this socket
        }
        let to = lock(&shared.table).members.get(&client).copied();
        shared.forward(&mut rng, Some(node), to, &front, client, &buf[..n]);
    }
}

/// Sends delayed datagrams when they are due.
fn delay_loop(shared: &Arc<Shared>, rx: Receiver<Delayed>) {
    let mut heap: BinaryHeap<Delayed> = BinaryHeap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while heap.peek().is_some_and(|d| d.due <= now) {
            let d = heap.pop().expect("peeked");
            shared.counters.forwarded.fetch_add(1, Ordering::Relaxed);
            let _ = d.socket.send_to(&d.bytes, d.to);
        }
        let wait = heap
            .peek()
            .map_or(POLL, |d| d.due.saturating_duration_since(now).min(POLL));
        match rx.recv_timeout(wait) {
            Ok(d) => heap.push(d),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}
