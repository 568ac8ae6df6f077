//! Tests of single server modules (HTTP/2 authority rewriting, configuration and etcd's config
//! file, watch dispatch and its index, error mapping, member records, launch settings). They
//! live here rather than in `src/` because the library's own test build would compile the
//! whole server crate a second time, about three minutes of CI on two cores, for tests that
//! run in milliseconds (`[lib] test = false` in Cargo.toml). Most go through the modules'
//! public items; two self-contained modules whose tests need their private parts are compiled
//! into this binary with those tests (`authority`, `watch_index`).

mod authority;
mod config;
mod dispatch;
mod errors;
mod etcd_config;
mod launch;
mod members;
mod watch_index;
