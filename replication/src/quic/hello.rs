//! The first exchange on every peer connection, after TLS: who is calling whom, in which
//! cluster.
//!
//! TLS proves a peer holds a certificate from the cluster CA; it does not tell two clusters
//! that share a CA apart, nor catch an address book pointing at the wrong member. So the
//! connecting side opens a stream and sends a [`Hello`] (a hash of the initial-cluster-token,
//! its own id, the id it means to reach); the accepting side checks both and answers with its
//! own [`Hello`], which the connecting side checks in turn. A mismatch closes the connection
//! with one of the close codes here, and both sides log the reason.

use quinn::VarInt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::types::NodeId;

/// Largest hello frame body either side reads.
pub const HELLO_LIMIT: usize = 256;

/// Connection close code: the member is shutting down.
pub const CLOSE_SHUTDOWN: VarInt = VarInt::from_u32(0);
/// Connection close code: the peer belongs to another cluster (token hash differs).
pub const CLOSE_WRONG_CLUSTER: VarInt = VarInt::from_u32(0x10);
/// Connection close code: the peer meant to reach another member id.
pub const CLOSE_WRONG_MEMBER: VarInt = VarInt::from_u32(0x11);
/// Connection close code: no valid hello in time (malformed, missing, or another protocol).
pub const CLOSE_BAD_HELLO: VarInt = VarInt::from_u32(0x12);
/// Stream error code: the request frame was malformed or too large.
pub const STREAM_MALFORMED: VarInt = VarInt::from_u32(0x20);

/// What a close code means, for logs.
pub fn close_reason(code: VarInt) -> &'static str {
    match code.into_inner() {
        0 => "shutdown",
        0x10 => "another cluster (initial-cluster-token differs)",
        0x11 => "another member id than the one addressed",
        0x12 => "no valid hello",
        _ => "unknown close code",
    }
}

/// A cluster's identity as peers compare it: SHA-256 of the initial-cluster-token (the token
/// itself is not sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHash(pub [u8; 32]);

impl ClusterHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> ClusterHash {
        let mut h = Sha256::new();
        h.update(b"etch initial-cluster-token\0");
        h.update(token.as_bytes());
        ClusterHash(h.finalize().into())
    }
}

/// One side's introduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's cluster.
    pub cluster: ClusterHash,
    /// The sender's member id.
    pub from: NodeId,
    /// The member id the sender expects on the other side (0 in an answer: the caller checks
    /// `from` instead).
    pub to: NodeId,
}

/// Why a hello was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloRefusal {
    /// Another cluster.
    WrongCluster,
    /// The connection reached another member than the one the caller addressed.
    WrongMember {
        /// The member the caller addressed.
        expected: NodeId,
        /// The member it reached.
        found: NodeId,
    },
}

impl HelloRefusal {
    /// The close code that reports this refusal.
    pub fn code(self) -> VarInt {
        match self {
            HelloRefusal::WrongCluster => CLOSE_WRONG_CLUSTER,
            HelloRefusal::WrongMember { .. } => CLOSE_WRONG_MEMBER,
        }
    }
}

impl std::fmt::Display for HelloRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloRefusal::WrongCluster => {
                write!(
                    f,
                    "peer belongs to another cluster (initial-cluster-token differs)"
                )
            }
            HelloRefusal::WrongMember { expected, found } => {
                write!(
                    f,
                    "connection meant for member {expected} reached member {found}"
                )
            }
        }
    }
}

/// The accepting side's check of a caller's hello: same cluster, addressed to `me`.
pub fn check_incoming(hello: &Hello, cluster: ClusterHash, me: NodeId) -> Result<(), HelloRefusal> {
    if hello.cluster != cluster {
        return Err(HelloRefusal::WrongCluster);
    }
    if hello.to != me {
        return Err(HelloRefusal::WrongMember {
            expected: hello.to,
            found: me,
        });
    }
    Ok(())
}

/// The connecting side's check of the answer: same cluster, and it is the member `expected`.
pub fn check_answer(
    hello: &Hello,
    cluster: ClusterHash,
    expected: NodeId,
) -> Result<(), HelloRefusal> {
    if hello.cluster != cluster {
        return Err(HelloRefusal::WrongCluster);
    }
    if hello.from != expected {
        return Err(HelloRefusal::WrongMember {
            expected,
            found: hello.from,
        });
    }
    Ok(())
}
