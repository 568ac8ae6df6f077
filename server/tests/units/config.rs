use etch_engine::AutoCompaction;
use etch_server::config::*;
use std::time::Duration;

#[test]
fn listen_urls() {
    let addrs = parse_listen_urls(
        "listen-client-urls",
        "http://127.0.0.1:2379,http://127.0.0.1:22379",
    )
    .unwrap();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[1].addr.port(), 22379);
    assert!(!addrs[0].tls);
    assert!(parse_listen_urls("x", "https://127.0.0.1:2379").unwrap()[0].tls);
    assert!(parse_listen_urls("x", "127.0.0.1:2379").is_err());
    assert!(parse_listen_urls("x", "ftp://127.0.0.1:2379").is_err());
    assert!(parse_listen_urls("x", "http://127.0.0.1:notaport").is_err());
    assert!(parse_listen_urls("x", "").is_err());
}

#[test]
fn durations_and_compaction() {
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("2"), Some(Duration::from_secs(7200)));
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("1x"), None);
    assert_eq!(
        parse_auto_compaction("revision", "1000").unwrap(),
        Some(AutoCompaction::Revisions(1000))
    );
    assert_eq!(
        parse_auto_compaction("periodic", "0").unwrap(),
        Some(AutoCompaction::Off)
    );
    assert!(parse_auto_compaction("weekly", "1").is_err());
}
