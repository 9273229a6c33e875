//! Decoding is total: arbitrary and hostile bytes give a frame or a typed error,
//! never a panic, and never an allocation or recursion past the limits.

use hearth_protocol::codec::{decode_request, decode_server_frame};
use hearth_protocol::{Codec, DecodeError, limits};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for codec in [Codec::MsgPack, Codec::Json] {
            let _ = decode_request(codec, &bytes);
            let _ = decode_server_frame(codec, &bytes);
        }
    }

    /// Mutations of a valid frame reach deeper into the decoders than random bytes.
    #[test]
    fn mutated_valid_frames_never_panic(pos in 0usize..64, byte in any::<u8>(), cut in 0usize..64) {
        let valid = [
            &b"\x85\xa2id\x07\xa2op\xa4send\xa4room\xa7cameras\xa4text\xa2hi\xa4cmid\xa2c1"[..],
            br#"{"id":7,"op":"send","room":"cameras","text":"hi","cmid":"c1"}"#,
        ];
        for (frame, codec) in valid.iter().zip([Codec::MsgPack, Codec::Json]) {
            let mut frame = frame.to_vec();
            let at = pos % frame.len();
            frame[at] = byte;
            frame.truncate(frame.len().saturating_sub(cut % 8));
            let _ = decode_request(codec, &frame);
        }
    }
}

#[test]
fn deep_nesting_is_refused_before_decoding() {
    // 100,000 nested arrays: a recursive decoder would overflow its stack.
    let mut frame = vec![0x91u8; 100_000];
    frame.push(0xc0);
    assert_eq!(
        decode_server_frame(Codec::MsgPack, &frame),
        Err(DecodeError::TooDeep { max: limits::MAX_SERVER_FRAME_DEPTH })
    );
    let small_deep = [&[0x81, 0xa1, b'a'][..], &[0x91; 12], &[0xc0]].concat();
    assert_eq!(
        decode_request(Codec::MsgPack, &small_deep).unwrap_err().error,
        DecodeError::TooDeep { max: limits::MAX_REQUEST_DEPTH }
    );
    let json = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(decode_server_frame(Codec::Json, json.as_bytes()), Err(DecodeError::TooDeep { .. })));
}

#[test]
fn huge_length_prefixes_are_refused_before_allocating() {
    // A map claiming 2^32-1 entries, a string claiming 4 GiB, a binary claiming 4 GiB.
    for frame in [
        &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, b'i', b'd'][..],
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'x'],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
    ] {
        let err = decode_request(Codec::MsgPack, frame).unwrap_err();
        assert!(matches!(err.error, DecodeError::LengthPastEnd { .. }), "{err:?}");
        assert_eq!(err.id, None);
    }
    // An array claiming 60,000 entries inside a plausible request.
    let frame = [&b"\x83\xa2id\x01\xa2op\xa4ping\xa1x\xdc\xea\x60"[..], &[0xc0; 100]].concat();
    assert!(matches!(decode_request(Codec::MsgPack, &frame).unwrap_err().error, DecodeError::LengthPastEnd { .. }));
}

#[test]
fn oversized_frames_are_refused() {
    let frame = vec![b' '; limits::MAX_REQUEST_BYTES + 1];
    assert!(matches!(decode_request(Codec::Json, &frame).unwrap_err().error, DecodeError::TooLarge { .. }));
}

#[test]
fn long_lists_are_refused() {
    let items = vec!["1"; limits::MAX_REQUEST_LIST_LEN + 1].join(",");
    let frame = format!(r#"{{"id":1,"op":"ping","x":[{items}]}}"#);
    assert!(matches!(
        decode_request(Codec::Json, frame.as_bytes()).unwrap_err().error,
        DecodeError::ListTooLong { .. }
    ));
}

#[test]
fn text_on_the_msgpack_codec_is_an_error_not_a_panic() {
    let err = decode_request(Codec::MsgPack, br#"{"id":1,"op":"ping"}"#).unwrap_err();
    assert_eq!(err.id, None);
}

#[test]
fn a_top_level_array_is_not_a_request() {
    // `[1, "ping"]`: serde would read it as the fields in order; it is no map.
    for (codec, frame) in
        [(Codec::MsgPack, &b"\x92\x01\xa4ping"[..]), (Codec::Json, &b"[1,\"ping\"]"[..]), (Codec::Json, &b" [1]"[..])]
    {
        let error = decode_request(codec, frame).unwrap_err();
        assert_eq!(error.id, None, "{codec:?}: no id, so the connection closes with 4003");
    }
    // Leading whitespace before a JSON object is still a request.
    assert!(decode_request(Codec::Json, b"  {\"id\":1,\"op\":\"ping\"}").is_ok());
}

/// The fuzz target's corpus (`fuzz/corpus/decode_request`, grown by `cargo
/// fuzz` where a nightly toolchain exists) replayed on stable in every test run:
/// whatever a fuzzer once found stays fixed.
#[test]
fn the_fuzz_corpus_decodes_without_panicking() {
    // Read at run time: a build shared between checkouts must read this one's.
    let dir = format!("{}/../fuzz/corpus/decode_request", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).expect("the corpus directory is in the repository") {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for codec in [Codec::MsgPack, Codec::Json] {
            let _ = decode_request(codec, &bytes);
            let _ = decode_server_frame(codec, &bytes);
        }
        replayed += 1;
    }
    assert!(replayed >= 20, "only {replayed} corpus files");
}

#[test]
fn an_op_that_is_not_a_name_still_gets_an_error_reply_with_the_id() {
    for (codec, frame) in [(Codec::Json, &br#"{"id":7,"op":5}"#[..]), (Codec::MsgPack, b"\x82\xa2id\x07\xa2op\x05")] {
        let error = decode_request(codec, frame).unwrap_err();
        assert_eq!(error.id.map(|id| id.0), Some(7), "{codec:?}");
    }
}

#[test]
fn arguments_that_are_maps_are_not_read_from_lists() {
    // serde would read each list as the struct's fields in order.
    let by_position = [
        r#"{"id":7,"op":"join","room":"cameras","since":[4318829151,12]}"#,
        r#"{"id":7,"op":"set_room","room":"cameras","settings":["a topic"]}"#,
        r#"{"id":7,"op":"set_room","room":"cameras","settings":{"lockdown":["joins"]}}"#,
        r#"{"id":7,"op":"set_room","room":"cameras","settings":{"filters":[["spam",false,"refuse"]]}}"#,
    ];
    for json in by_position {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let msgpack = rmp_serde::to_vec_named(&value).unwrap();
        for (codec, frame) in [(Codec::Json, json.as_bytes()), (Codec::MsgPack, &msgpack[..])] {
            let error = decode_request(codec, frame).unwrap_err();
            assert_eq!(error.id.map(|id| id.0), Some(7), "{codec:?} {json}: an error reply, not a close");
            assert!(error.to_string().contains("a map of named fields"), "{codec:?} {json}: {error}");
        }
    }
    // The same arguments as maps are read, on both codecs.
    let by_name = [
        r#"{"id":7,"op":"join","room":"cameras","since":{"epoch":4318829151,"seq":12}}"#,
        r#"{"id":7,"op":"join","room":"cameras","since":null}"#,
        r#"{"id":7,"op":"set_room","room":"cameras","settings":{"topic":"a topic","lockdown":{"level":"joins"}}}"#,
        r#"{"id":7,"op":"set_room","room":"cameras","settings":{"filters":[{"pattern":"spam","action":"refuse"}]}}"#,
    ];
    for json in by_name {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let msgpack = rmp_serde::to_vec_named(&value).unwrap();
        for (codec, frame) in [(Codec::Json, json.as_bytes()), (Codec::MsgPack, &msgpack[..])] {
            decode_request(codec, frame).unwrap_or_else(|e| panic!("{codec:?} {json}: {e}"));
        }
    }
}
