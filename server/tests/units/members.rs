use etch_server::members::*;
use openraft::BasicNode;

#[test]
fn records_round_trip_through_node_values() {
    let record = MemberRecord {
        name: "infra1".into(),
        peer_urls: vec!["http://10.0.0.1:2380".into()],
        client_urls: vec!["http://10.0.0.1:2379".into(), "http://a:1".into()],
    };
    assert_eq!(MemberRecord::from_node(&record.to_node()), record);
}

#[test]
fn empty_and_foreign_node_values_read_as_unnamed_members() {
    assert_eq!(
        MemberRecord::from_node(&BasicNode::default()),
        MemberRecord::default()
    );
    let foreign = MemberRecord::from_node(&BasicNode::new("10.0.0.9:2380"));
    assert_eq!(foreign.name, "");
    assert_eq!(foreign.peer_urls, vec!["10.0.0.9:2380".to_string()]);
}
