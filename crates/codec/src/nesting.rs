//! A bound on how deeply field tables and arrays may nest, checked before amq-protocol parses.
//!
//! amq-protocol's parser recurses once per nested table or array. A 105 KB content header of
//! 15,000 nested tables overflowed a tokio worker's stack and aborted the whole broker
//! ("thread 'tokio-rt-worker' has overflowed its stack"): one authenticated client could take
//! every other one down. This scan walks the same structures without allocating, recursing
//! at most [`MAX_NESTING`] levels, and stops at the first level past it. Anything else it
//! finds wrong (truncation, an unknown type tag) it leaves to amq-protocol, which reports it
//! as before and, given the bound already held up to that point, recurses no deeper than it.
//!
//! RabbitMQ sets no such limit. Real messages nest a few levels (`x-death` is an array of
//! tables holding arrays), so 64 leaves ample room.

/// The deepest accepted nesting: a table inside a table (or array) counts one level.
pub const MAX_NESTING: usize = 64;

/// Why a scan stopped early.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Nested deeper than [`MAX_NESTING`].
    TooDeep,
    /// Not well formed; amq-protocol will say how.
    Malformed,
}

/// Checks the table-valued arguments of a method, given its ids and its arguments (the payload
/// after class and method id). Only the AMQP 0-9-1 methods with a field-table argument have
/// one to check; for the others this is a no-op.
pub fn check_method(class_id: u16, method_id: u16, args: &[u8]) -> Result<(), Stop> {
    use Arg::*;
    // The arguments before the table, per the 0-9-1 spec (RabbitMQ's exchange.bind/unbind
    // included). Bits before the table are packed into one octet.
    let before: &[Arg] = match (class_id, method_id) {
        (10, 10) => &[Octet, Octet],                     // connection.start: version major, minor
        (10, 11) => &[],                                 // connection.start-ok: client-properties first
        (40, 10) => &[Short, ShortStr, ShortStr, Octet], // exchange.declare
        (40, 30) | (40, 40) => &[Short, ShortStr, ShortStr, ShortStr, Octet], // exchange.bind/unbind
        (50, 10) => &[Short, ShortStr, Octet],           // queue.declare
        (50, 20) => &[Short, ShortStr, ShortStr, ShortStr, Octet], // queue.bind
        (50, 50) => &[Short, ShortStr, ShortStr, ShortStr], // queue.unbind (no no-wait bit)
        (60, 20) => &[Short, ShortStr, ShortStr, Octet], // basic.consume
        _ => return Ok(()),
    };
    let mut at = 0;
    for arg in before {
        at += arg.len(args.get(at..).ok_or(Stop::Malformed)?)?;
    }
    table(args.get(at..).ok_or(Stop::Malformed)?, 0).map(drop)
}

/// Checks the headers table of content-header properties (the bytes after the property flags
/// of a basic-class header), if the flags say it is present.
pub fn check_properties(props: &[u8]) -> Result<(), Stop> {
    let flags = u16::from_be_bytes([*props.first().ok_or(Stop::Malformed)?, *props.get(1).ok_or(Stop::Malformed)?]);
    const HEADERS: u16 = 1 << 13;
    if flags & HEADERS == 0 {
        return Ok(());
    }
    let mut at = 2;
    // content-type and content-encoding, short strings, come before the headers.
    for bit in [15, 14] {
        if flags & (1 << bit) != 0 {
            at += Arg::ShortStr.len(props.get(at..).ok_or(Stop::Malformed)?)?;
        }
    }
    table(props.get(at..).ok_or(Stop::Malformed)?, 0).map(drop)
}

/// True if the length-prefixed field table at the start of `b` nests past [`MAX_NESTING`].
/// For tables parsed outside method and header decoding (the AMQPLAIN response).
pub fn table_too_deep(b: &[u8]) -> bool {
    table(b, 0) == Err(Stop::TooDeep)
}

#[derive(Clone, Copy)]
enum Arg {
    Octet,
    Short,
    ShortStr,
}

impl Arg {
    fn len(self, b: &[u8]) -> Result<usize, Stop> {
        let n = match self {
            Arg::Octet => 1,
            Arg::Short => 2,
            Arg::ShortStr => 1 + *b.first().ok_or(Stop::Malformed)? as usize,
        };
        if b.len() < n {
            return Err(Stop::Malformed);
        }
        Ok(n)
    }
}

/// A field table at the start of `b` (at nesting `depth`); returns the bytes it takes.
fn table(b: &[u8], depth: usize) -> Result<usize, Stop> {
    let body = sized(b)?;
    let mut at = 0;
    while at < body.len() {
        at += Arg::ShortStr.len(&body[at..])?;
        at += value(body.get(at..).ok_or(Stop::Malformed)?, depth)?;
    }
    Ok(4 + body.len())
}

/// A field array at the start of `b`; returns the bytes it takes.
fn array(b: &[u8], depth: usize) -> Result<usize, Stop> {
    let body = sized(b)?;
    let mut at = 0;
    while at < body.len() {
        at += value(&body[at..], depth)?;
    }
    Ok(4 + body.len())
}

/// One tagged field value (type octet and value), in a table or array at nesting `depth`.
/// The tags are amq-protocol's (which follow RabbitMQ's, not the spec's, where they differ).
fn value(b: &[u8], depth: usize) -> Result<usize, Stop> {
    let (&tag, rest) = b.split_first().ok_or(Stop::Malformed)?;
    let n = match tag {
        b'V' => 0,
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'L' | b'l' | b'd' | b'T' => 8,
        b'S' | b'x' => 4 + sized(rest)?.len(),
        b'F' | b'A' if depth + 1 > MAX_NESTING => return Err(Stop::TooDeep),
        b'F' => table(rest, depth + 1)?,
        b'A' => array(rest, depth + 1)?,
        _ => return Err(Stop::Malformed),
    };
    if rest.len() < n {
        return Err(Stop::Malformed);
    }
    Ok(1 + n)
}

/// The body of a u32-length-prefixed item at the start of `b`.
fn sized(b: &[u8]) -> Result<&[u8], Stop> {
    let len = u32::from_be_bytes(b.get(..4).ok_or(Stop::Malformed)?.try_into().expect("4 bytes")) as usize;
    b.get(4..4 + len).ok_or(Stop::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::nested_table;

    /// An array nesting `depth` arrays.
    fn nested_array(depth: usize) -> Vec<u8> {
        let mut a = 0u32.to_be_bytes().to_vec();
        for _ in 0..depth {
            let mut v = vec![b'A'];
            v.extend_from_slice(&a);
            a = (v.len() as u32).to_be_bytes().to_vec();
            a.extend_from_slice(&v);
        }
        a
    }

    fn queue_declare_args(table: &[u8]) -> Vec<u8> {
        let mut args = vec![0, 0, 1, b'q', 0];
        args.extend_from_slice(table);
        args
    }

    #[test]
    fn the_limit_is_exact() {
        assert_eq!(table(&nested_table(MAX_NESTING), 0), Ok(nested_table(MAX_NESTING).len()));
        assert_eq!(table(&nested_table(MAX_NESTING + 1), 0), Err(Stop::TooDeep));
        assert_eq!(array(&nested_array(MAX_NESTING), 0), Ok(nested_array(MAX_NESTING).len()));
        assert_eq!(array(&nested_array(MAX_NESTING + 1), 0), Err(Stop::TooDeep));
    }

    #[test]
    fn far_too_deep_stops_without_recursing_further() {
        // What crashed the broker before this check existed.
        assert_eq!(table(&nested_table(15_000), 0), Err(Stop::TooDeep));
        assert_eq!(check_method(50, 10, &queue_declare_args(&nested_table(15_000))), Err(Stop::TooDeep));
    }

    #[test]
    fn finds_the_table_behind_each_methods_other_arguments() {
        let deep = nested_table(MAX_NESTING + 1);
        let ok = nested_table(3);
        let cases: [(u16, u16, Vec<u8>); 9] = [
            (10, 10, vec![0, 9]),
            (10, 11, vec![]),
            (40, 10, [&[0, 0, 1, b'x', 6][..], b"direct", &[0]].concat()),
            (40, 30, vec![0, 0, 1, b'd', 1, b's', 2, b'r', b'k', 0]),
            (40, 40, vec![0, 0, 1, b'd', 1, b's', 2, b'r', b'k', 0]),
            (50, 10, vec![0, 0, 1, b'q', 0]),
            (50, 20, vec![0, 0, 1, b'q', 1, b'x', 0, 0]),
            (50, 50, vec![0, 0, 1, b'q', 1, b'x', 0]),
            (60, 20, vec![0, 0, 1, b'q', 3, b't', b'a', b'g', 0]),
        ];
        for (class, method, before) in cases {
            let with = |t: &[u8]| [before.as_slice(), t].concat();
            assert_eq!(check_method(class, method, &with(&ok)), Ok(()), "{class}.{method} nested 3");
            assert_eq!(check_method(class, method, &with(&deep)), Err(Stop::TooDeep), "{class}.{method} too deep");
        }
        // A method without a table is not looked at.
        assert_eq!(check_method(60, 40, &[0xFF]), Ok(()));
    }

    #[test]
    fn headers_are_found_behind_content_type_and_encoding() {
        let deep = nested_table(MAX_NESTING + 1);
        // content-type "a", content-encoding "b", headers.
        let mut props = vec![0b1110_0000, 0, 1, b'a', 1, b'b'];
        props.extend_from_slice(&deep);
        assert_eq!(check_properties(&props), Err(Stop::TooDeep));
        // No headers flag: nothing to scan, whatever follows.
        assert_eq!(check_properties(&[0x80, 0, 1, b'a']), Ok(()));
    }

    #[test]
    fn every_value_type_is_walked() {
        let mut entries = Vec::new();
        for (tag, payload) in [
            (b'V', vec![]),
            (b't', vec![1]),
            (b'b', vec![1]),
            (b'B', vec![1]),
            (b's', vec![0, 1]),
            (b'u', vec![0, 1]),
            (b'I', vec![0; 4]),
            (b'i', vec![0; 4]),
            (b'f', vec![0; 4]),
            (b'D', vec![0; 5]),
            (b'l', vec![0; 8]),
            (b'd', vec![0; 8]),
            (b'T', vec![0; 8]),
            (b'S', vec![0, 0, 0, 2, b'h', b'i']),
            (b'x', vec![0, 0, 0, 1, 7]),
        ] {
            entries.extend_from_slice(&[1, b'k', tag]);
            entries.extend_from_slice(&payload);
        }
        let mut t = (entries.len() as u32).to_be_bytes().to_vec();
        t.extend_from_slice(&entries);
        assert_eq!(table(&t, 0), Ok(t.len()));
        // Cut short anywhere: malformed, never a panic.
        for cut in 0..t.len() {
            let mut short = t.clone();
            short.truncate(cut);
            assert_eq!(table(&short, 0), Err(Stop::Malformed), "cut at {cut}");
        }
    }
}
