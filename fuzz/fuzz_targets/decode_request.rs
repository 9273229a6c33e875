//! Any bytes, as a request in either codec: decoding answers, never panics,
//! never allocates past the frame's size limits (see `protocol/src/scan.rs`).
#![no_main]

use hearth_protocol::Codec;
use hearth_protocol::codec::{decode_request, decode_server_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for codec in [Codec::MsgPack, Codec::Json] {
        let _ = decode_request(codec, data);
        let _ = decode_server_frame(codec, data);
    }
});
