//! The examples in PROTOCOL.md are real: each JSON example decodes as the frame it
//! claims to be, re-encodes to the same text, and its MessagePack form is exactly
//! the hex shown beside it. Run with `HEARTH_PRINT_HEX=1` to print the hex of every
//! example when writing new ones.

use hearth_protocol::codec::{
    ServerFrame, decode_reply, decode_request, decode_server_frame, encode_error, encode_event, encode_reply,
};
use hearth_protocol::ops::*;
use hearth_protocol::{Codec, ErrorBody, Operation, RequestId};
use serde::de::DeserializeOwned;

struct Example {
    kind: String,
    json: String,
    hex: Option<String>,
    line: usize,
}

fn examples() -> Vec<Example> {
    // Read at run time: a build shared between checkouts must read this one's.
    let path = format!("{}/../PROTOCOL.md", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let text = std::fs::read_to_string(path).expect("PROTOCOL.md");
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(kind) = lines[i].strip_prefix("```json ") {
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while lines[i] != "```" {
                body.push(lines[i]);
                i += 1;
            }
            let mut hex = None;
            if lines.get(i + 1) == Some(&"```msgpack") {
                let mut h = Vec::new();
                i += 2;
                while lines[i] != "```" {
                    h.push(lines[i]);
                    i += 1;
                }
                hex = Some(h.join(" "));
            }
            examples.push(Example { kind: kind.trim().to_string(), json: body.join("\n"), hex, line: start + 1 });
        }
        i += 1;
    }
    examples
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// Re-encodes a reply example in both codecs via the reply type of op `O`.
fn reply<O: Operation>(json: &[u8]) -> (Vec<u8>, Vec<u8>)
where
    O::Reply: DeserializeOwned,
{
    let id = match decode_server_frame(Codec::Json, json).expect("reply decodes") {
        ServerFrame::Reply { id } => id,
        other => panic!("not a reply: {other:?}"),
    };
    match decode_reply::<O>(Codec::Json, json).expect("reply decodes") {
        Ok(ok) => (encode_reply(Codec::Json, id, &ok), encode_reply(Codec::MsgPack, id, &ok)),
        Err(err) => (encode_error(Codec::Json, id, &err), encode_error(Codec::MsgPack, id, &err)),
    }
}

fn reencode(kind: &str, json: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match kind {
        "request" => {
            let request = decode_request(Codec::Json, json).expect("request decodes");
            (request.op.encode(Codec::Json, request.id), request.op.encode(Codec::MsgPack, request.id))
        }
        "event" => match decode_server_frame(Codec::Json, json).expect("event decodes") {
            ServerFrame::Event(event) => (encode_event(Codec::Json, &event), encode_event(Codec::MsgPack, &event)),
            other => panic!("not an event: {other:?}"),
        },
        "error" => {
            let value: serde_json::Value = serde_json::from_slice(json).unwrap();
            let id = RequestId(value["id"].as_u64().unwrap());
            let err: ErrorBody = serde_json::from_value(value["err"].clone()).unwrap();
            (encode_error(Codec::Json, id, &err), encode_error(Codec::MsgPack, id, &err))
        }
        "reply=ping" => reply::<Ping>(json),
        "reply=create_room" => reply::<CreateRoom>(json),
        "reply=join" => reply::<Join>(json),
        "reply=send" => reply::<SendMessage>(json),
        "reply=history" => reply::<History>(json),
        "reply=pin" => reply::<AddPin>(json),
        "reply=list_rooms" => reply::<ListRooms>(json),
        "reply=auth" => reply::<Auth>(json),
        "reply=mod_log" => reply::<ModLog>(json),
        "reply=stats" => reply::<Stats>(json),
        "reply=create_invite" => reply::<CreateInvite>(json),
        "reply=read_state" => reply::<ReadState>(json),
        "reply=mentions" => reply::<Mentions>(json),
        "reply=search" => reply::<Search>(json),
        "reply=start_direct" => reply::<StartDirect>(json),
        "reply=block" => reply::<Block>(json),
        "reply=push_key" => reply::<PushKey>(json),
        "reply=push_levels" => reply::<PushLevels>(json),
        "reply=reports" => reply::<Reports>(json),
        "reply=warnings" => reply::<Warnings>(json),
        "reply=erase_account" => reply::<EraseAccount>(json),
        other => panic!("unknown example kind {other:?}; add it to this test"),
    }
}

#[test]
fn protocol_md_examples_are_exact() {
    let examples = examples();
    assert!(examples.len() >= 10, "PROTOCOL.md should show an example of each kind of frame");
    let print = std::env::var_os("HEARTH_PRINT_HEX").is_some();
    for example in examples {
        let (json, msgpack) = reencode(&example.kind, example.json.as_bytes());
        let json = String::from_utf8(json).unwrap();
        if print {
            println!("line {}:\n{}\n", example.line, hex(&msgpack));
            continue;
        }
        assert_eq!(json, example.json, "PROTOCOL.md line {}: JSON does not re-encode to itself", example.line);
        let shown = example.hex.unwrap_or_else(|| panic!("PROTOCOL.md line {}: no msgpack block", example.line));
        assert_eq!(
            hex(&msgpack),
            shown.split_whitespace().collect::<Vec<_>>().join(" "),
            "PROTOCOL.md line {}",
            example.line
        );
        // And the MessagePack form decodes to the same frame.
        let (json_again, _) = match example.kind.as_str() {
            "request" => {
                let request = decode_request(Codec::MsgPack, &msgpack).unwrap();
                (request.op.encode(Codec::Json, request.id), ())
            }
            _ => (json.clone().into_bytes(), ()),
        };
        assert_eq!(String::from_utf8(json_again).unwrap(), example.json);
    }
}
