//! Structural pre-checks run before serde sees a frame. They walk the bytes once,
//! without recursion or allocation, and refuse frames that nest too deeply, declare
//! lists that are too long, or carry length prefixes that point past the end. After
//! a frame passes, every allocation serde makes is bounded by the frame's own size
//! and every recursion by the depth limit.

use crate::error::DecodeError;

/// The limits a scan enforces; requests and server frames use different ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_list_len: usize,
}

/// Upper bound on `max_depth`, so the scanners' stacks live on the call stack.
const STACK: usize = 32;

/// Checks that `frame` is exactly one well-formed MessagePack value within `limits`.
pub(crate) fn scan_msgpack(frame: &[u8], limits: ScanLimits) -> Result<(), DecodeError> {
    check_size(frame, limits)?;
    debug_assert!(limits.max_depth <= STACK);
    // pending[d] = values still expected in the container open at depth d (a
    // map's keys and values both count); bit d of `maps` says it is a map.
    let mut pending = [0u64; STACK];
    let mut maps = 0u32;
    let mut depth = 0usize;
    let mut pos = 0usize;
    let mut values_left_at_top = 1u64;
    loop {
        // Pop every container that is complete.
        while depth > 0 && pending[depth - 1] == 0 {
            depth -= 1;
        }
        let mut is_key = false;
        if depth == 0 {
            if values_left_at_top == 0 {
                break;
            }
            values_left_at_top -= 1;
        } else {
            is_key = maps & (1 << (depth - 1)) != 0 && pending[depth - 1] % 2 == 0;
            pending[depth - 1] -= 1;
        }
        let remaining = frame.len() - pos;
        let Some(&marker) = frame.get(pos) else {
            return Err(DecodeError::Malformed("frame ends in the middle of a value".into()));
        };
        pos += 1;
        // Keys are names. serde would read an integer key as the position of a
        // field (`{0: 5, 1: "ping"}` as `{"id": 5, "op": "ping"}`), so one given
        // for anything else would quietly set a field the client never named.
        if is_key && !matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb | 0xc4..=0xc6) {
            return Err(DecodeError::Malformed("a map key is not a string: keys are field names".into()));
        }
        let (skip, entries): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, u64::from(marker & 0x0f) * 2),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc1 => {
                return Err(DecodeError::Malformed("byte 0xc1 is never used in MessagePack".into()));
            }
            0xc4 | 0xd9 => (read_len(frame, &mut pos, 1)?, 0),
            0xc5 | 0xda => (read_len(frame, &mut pos, 2)?, 0),
            0xc6 | 0xdb => (read_len(frame, &mut pos, 4)?, 0),
            // ext 8/16/32: length, then one type byte, then the data.
            0xc7 => (read_len(frame, &mut pos, 1)? + 1, 0),
            0xc8 => (read_len(frame, &mut pos, 2)? + 1, 0),
            0xc9 => (read_len(frame, &mut pos, 4)? + 1, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            // fixext 1/2/4/8/16: one type byte, then the data.
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, read_len(frame, &mut pos, 2)?),
            0xdd => (0, read_len(frame, &mut pos, 4)?),
            0xde => (0, read_len(frame, &mut pos, 2)? * 2),
            0xdf => (0, read_len(frame, &mut pos, 4)? * 2),
        };
        let remaining_after_header = frame.len() - pos;
        if skip > remaining_after_header as u64 {
            return Err(DecodeError::LengthPastEnd { declared: skip, remaining: remaining_after_header });
        }
        pos += skip as usize;
        if entries > 0 {
            // Each entry takes at least one byte, so a count past the end is a lie
            // told to make a decoder pre-allocate.
            if entries > remaining_after_header as u64 {
                return Err(DecodeError::LengthPastEnd { declared: entries, remaining: remaining.saturating_sub(1) });
            }
            let is_map = matches!(marker, 0x80..=0x8f | 0xde | 0xdf);
            let len = if is_map { entries / 2 } else { entries };
            if len > limits.max_list_len as u64 {
                return Err(DecodeError::ListTooLong { len: len as usize, max: limits.max_list_len });
            }
            if depth >= limits.max_depth {
                return Err(DecodeError::TooDeep { max: limits.max_depth });
            }
            pending[depth] = entries;
            maps = if is_map { maps | 1 << depth } else { maps & !(1 << depth) };
            depth += 1;
        }
    }
    if pos != frame.len() {
        return Err(DecodeError::Malformed(format!("{} bytes after the end of the frame's value", frame.len() - pos)));
    }
    Ok(())
}

fn read_len(frame: &[u8], pos: &mut usize, width: usize) -> Result<u64, DecodeError> {
    let bytes = frame
        .get(*pos..*pos + width)
        .ok_or_else(|| DecodeError::Malformed("frame ends inside a length prefix".into()))?;
    *pos += width;
    Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Checks nesting depth and list lengths of a JSON frame. Syntax is left to
/// serde_json; this only guarantees its recursion and allocations stay bounded.
pub(crate) fn scan_json(frame: &[u8], limits: ScanLimits) -> Result<(), DecodeError> {
    check_size(frame, limits)?;
    // entries[d] = separators seen so far in the container open at depth d, plus one
    // once the container holds anything.
    let mut entries = [0usize; STACK];
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in frame {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                mark_nonempty(&mut entries, depth);
            }
            b'[' | b'{' => {
                mark_nonempty(&mut entries, depth);
                if depth >= limits.max_depth {
                    return Err(DecodeError::TooDeep { max: limits.max_depth });
                }
                entries[depth] = 0;
                depth += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth > 0 => {
                entries[depth - 1] += 1;
                if entries[depth - 1] > limits.max_list_len {
                    return Err(DecodeError::ListTooLong { len: entries[depth - 1], max: limits.max_list_len });
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => {}
            _ => mark_nonempty(&mut entries, depth),
        }
    }
    Ok(())
}

fn mark_nonempty(entries: &mut [usize; STACK], depth: usize) {
    if depth > 0 && entries[depth - 1] == 0 {
        entries[depth - 1] = 1;
    }
}

fn check_size(frame: &[u8], limits: ScanLimits) -> Result<(), DecodeError> {
    if frame.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge { len: frame.len(), max: limits.max_bytes });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ScanLimits = ScanLimits { max_bytes: 1024, max_depth: 4, max_list_len: 8 };

    #[test]
    fn msgpack_accepts_nested_maps_within_limits() {
        // {"a": [1, {"b": nil}]}
        let frame = [0x81, 0xa1, b'a', 0x92, 0x01, 0x81, 0xa1, b'b', 0xc0];
        assert_eq!(scan_msgpack(&frame, LIMITS), Ok(()));
    }

    #[test]
    fn msgpack_refuses_deep_nesting() {
        let frame = [0x91u8; 10].iter().copied().chain([0xc0]).collect::<Vec<_>>();
        assert_eq!(scan_msgpack(&frame, LIMITS), Err(DecodeError::TooDeep { max: 4 }));
    }

    #[test]
    fn msgpack_refuses_length_past_end() {
        // array32 claiming 4 billion entries, then one byte.
        let frame = [0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0];
        assert!(matches!(scan_msgpack(&frame, LIMITS), Err(DecodeError::LengthPastEnd { .. })));
        // str32 claiming 4 GiB.
        let frame = [0xdb, 0xff, 0xff, 0xff, 0xff, b'x'];
        assert!(matches!(scan_msgpack(&frame, LIMITS), Err(DecodeError::LengthPastEnd { .. })));
    }

    #[test]
    fn msgpack_refuses_trailing_and_truncated_bytes() {
        assert!(scan_msgpack(&[0xc0, 0xc0], LIMITS).is_err());
        assert!(scan_msgpack(&[0x92, 0x01], LIMITS).is_err());
        assert!(scan_msgpack(&[], LIMITS).is_err());
    }

    #[test]
    fn msgpack_refuses_long_lists() {
        let mut frame = vec![0x99];
        frame.extend([0x01; 9]);
        assert!(matches!(scan_msgpack(&frame, LIMITS), Err(DecodeError::ListTooLong { len: 9, .. })));
    }

    #[test]
    fn msgpack_refuses_map_keys_that_are_not_strings_at_any_depth() {
        // {0: 5, 1: "ping"}: serde would take the integers for the fields' positions.
        let frame = [0x82, 0x00, 0x05, 0x01, 0xa4, b'p', b'i', b'n', b'g'];
        assert!(matches!(scan_msgpack(&frame, LIMITS), Err(DecodeError::Malformed(m)) if m.contains("not a string")));
        // {"a": [{"b": 1, 7: 2}]}: the nested map's second key.
        let frame = [0x81, 0xa1, b'a', 0x91, 0x82, 0xa1, b'b', 0x01, 0x07, 0x02];
        assert!(matches!(scan_msgpack(&frame, LIMITS), Err(DecodeError::Malformed(_))));
        // Integers as values (in maps and in lists), and keys as str or bin, pass.
        let frame = [0x82, 0xa1, b'a', 0x92, 0x00, 0x01, 0xc4, 0x01, b'b', 0x81, 0xd9, 0x01, b'c', 0x07];
        assert_eq!(scan_msgpack(&frame, LIMITS), Ok(()));
        // A list inside a map inside a list keeps each level's own kind.
        let frame = [0x92, 0x81, 0xa1, b'k', 0x92, 0x01, 0x02, 0x03];
        assert_eq!(scan_msgpack(&frame, LIMITS), Ok(()));
    }

    #[test]
    fn json_depth_and_lists() {
        assert_eq!(scan_json(br#"{"a":[1,{"b":"]]]]]"}]}"#, LIMITS), Ok(()));
        assert_eq!(scan_json(b"[[[[[1]]]]]", LIMITS), Err(DecodeError::TooDeep { max: 4 }));
        assert!(matches!(scan_json(b"[1,2,3,4,5,6,7,8,9]", LIMITS), Err(DecodeError::ListTooLong { .. })));
        assert_eq!(scan_json(b"[1,2,3,4,5,6,7,8]", LIMITS), Ok(()));
        assert_eq!(scan_json(br#"{"s":"a\"[[[[[[["}"#, LIMITS), Ok(()));
    }
}
