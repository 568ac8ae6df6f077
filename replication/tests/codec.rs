//! The byte form of replicated commands: round trips, and typed refusals of bad bytes.

use etch_engine as engine;
use etch_replication::codec::{decode, encode, CodecError, FORMAT_VERSION};
use etch_replication::command::{Command, Txn, TxnOp, MAX_TXN_DEPTH};

const LIMIT: usize = 1 << 20;

fn sample_txn() -> engine::Txn {
    engine::Txn::new()
        .when([engine::Compare::version("k", engine::CompareOp::Equal, 0)])
        .and_then([
            engine::TxnOp::put("k", "v"),
            engine::TxnOp::get("other"),
            engine::TxnOp::delete(engine::Range::prefix("tmp/")),
            engine::TxnOp::Txn(engine::Txn::new().and_then([engine::TxnOp::put("n", "1")])),
        ])
        .or_else([engine::TxnOp::get("k")])
}

#[test]
fn commands_round_trip_through_bytes_and_engine_types() {
    let txn = sample_txn();
    let commands = vec![
        Command::Batch(vec![
            (&engine::WriteOp::put("a", "1")).into(),
            (&engine::WriteOp::delete(engine::Range::between("b", "c"))).into(),
        ]),
        Command::Txn((&txn).into()),
        Command::Compact { revision: 42 },
        Command::LeaseGrant { id: 7, ttl: 30 },
        Command::LeaseRevoke { id: 7 },
    ];
    for command in &commands {
        let bytes = encode(command).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: Command = decode(&bytes, LIMIT).unwrap();
        assert_eq!(&back, command);
    }
    let Command::Txn(wire) = &commands[1] else {
        unreachable!()
    };
    assert_eq!(engine::Txn::try_from(wire).unwrap(), txn);
}

#[test]
fn bad_bytes_are_typed_errors() {
    let good = encode(&Command::Compact { revision: 3 }).unwrap();
    assert_eq!(decode::<Command>(&[], LIMIT), Err(CodecError::Empty));

    let mut newer = good.clone();
    newer[0] = FORMAT_VERSION + 1;
    assert_eq!(
        decode::<Command>(&newer, LIMIT),
        Err(CodecError::UnsupportedVersion(FORMAT_VERSION + 1))
    );

    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        decode::<Command>(&trailing, LIMIT),
        Err(CodecError::TrailingBytes(1))
    );

    assert!(matches!(
        decode::<Command>(&good[..good.len() - 1], LIMIT),
        Err(CodecError::Malformed(_))
    ));
    assert!(matches!(
        decode::<Command>(&[FORMAT_VERSION, 200], LIMIT),
        Err(CodecError::Malformed(_))
    ));
    assert_eq!(
        decode::<Command>(&good, 2),
        Err(CodecError::TooLarge {
            size: good.len(),
            limit: 2
        })
    );
}

fn nested(depth: usize) -> Txn {
    let mut txn = Txn::default();
    for _ in 0..depth {
        txn = Txn {
            success: vec![TxnOp::Txn(txn)],
            ..Txn::default()
        };
    }
    txn
}

#[test]
fn nesting_is_bounded_when_decoding() {
    let ok = encode(&Command::Txn(nested(MAX_TXN_DEPTH))).unwrap();
    assert!(decode::<Command>(&ok, LIMIT).is_ok());
    let deep = encode(&Command::Txn(nested(MAX_TXN_DEPTH + 1))).unwrap();
    assert!(matches!(
        decode::<Command>(&deep, LIMIT),
        Err(CodecError::Malformed(_))
    ));
    // Hand-made bytes nesting far deeper than the encoder would go: refused, not a stack
    // overflow. Command::Txn, then per level: 0 compares, 1 success op, TxnOp::Txn.
    let mut bytes = vec![FORMAT_VERSION, 1];
    for _ in 0..100_000 {
        bytes.extend_from_slice(&[0, 1, 3]);
    }
    assert!(matches!(
        decode::<Command>(&bytes, LIMIT),
        Err(CodecError::Malformed(_))
    ));
    // The depth counter is restored after a refusal: a legal command still decodes.
    assert!(decode::<Command>(&ok, LIMIT).is_ok());
}

#[test]
fn unknown_sort_codes_are_refused_when_converting_to_engine_types() {
    let wire = Txn {
        success: vec![TxnOp::Range {
            range: etch_replication::command::KeyRange {
                start: b"a".to_vec(),
                end: Vec::new(),
            },
            options: etch_replication::command::RangeOptions {
                sort_order: 9,
                ..Default::default()
            },
        }],
        ..Txn::default()
    };
    assert!(engine::Txn::try_from(&wire).is_err());
}
