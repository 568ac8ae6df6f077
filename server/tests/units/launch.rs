use etch_server::launch::*;

#[test]
fn peer_addresses_keep_host_names() {
    let (addr, host) = peer_address("http://127.0.0.1:2380").unwrap();
    assert_eq!(addr, "127.0.0.1:2380".parse().unwrap());
    assert_eq!(host, None);
    let (addr, host) = peer_address("https://localhost:2380/").unwrap();
    assert_eq!(addr.port(), 2380);
    assert_eq!(host.as_deref(), Some("localhost"));
    assert!(peer_address("http://127.0.0.1:notaport").is_err());
}
