//! Random identifiers for databases and WAL generations.

/// A random 64-bit value, from the OS-seeded hasher keys of the standard library, mixed with
/// the time and process id. Used for database ids and WAL salts, which need to differ between
/// files and generations, not to be secret.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}
