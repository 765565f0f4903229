//! Headers-exchange matching, as RabbitMQ's `rabbit_exchange_type_headers` does it.
//!
//! Rules (each confirmed against RabbitMQ 3.10.8):
//! - `x-match` is `all` (the default when absent), `any`, `all-with-x` or `any-with-x`.
//! - Binding keys starting with `x-` are ignored unless the mode is `all-with-x`/`any-with-x`;
//!   the `x-match` key itself is ignored in every mode. Message headers only count when a
//!   binding key names them, so message `x-` headers never match under `all`/`any`.
//! - `all`: every considered binding key must be present with an equal value, so a binding with
//!   no considered keys matches every message, headers or not. `any`: at least one must be, so
//!   such a binding matches nothing.
//! - A binding value of type void means "the header is present, whatever its value".
//! - Values compare as Erlang's `==` compares RabbitMQ's decoded terms: at the top level the
//!   AMQP type is ignored and numbers compare by value (`I 1` = `l 1` = `T 1` = `d 1.0`),
//!   strings compare by bytes (`S "ab"` = `x "ab"`), booleans only equal booleans, decimals
//!   compare as (scale, value) pairs. Inside tables and arrays each element is a
//!   (type, value) pair, so there the types must agree too (`[I 1]` ≠ `[l 1]`).
use amq_protocol::types::{AMQPValue, FieldTable};
use std::fmt::Write as _;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl Mode {
    /// RabbitMQ's `parse_x_match`: anything unrecognised counts as `all` (bindings made before
    /// validation existed); bind-time validation rejects those now.
    fn of(binding_args: &FieldTable) -> Mode {
        match binding_args.inner().get("x-match") {
            Some(AMQPValue::LongString(s)) => match s.as_bytes() {
                b"any" => Mode::Any,
                b"all-with-x" => Mode::AllWithX,
                b"any-with-x" => Mode::AnyWithX,
                _ => Mode::All,
            },
            _ => Mode::All,
        }
    }

    fn is_any(self) -> bool {
        matches!(self, Mode::Any | Mode::AnyWithX)
    }

    fn with_x(self) -> bool {
        matches!(self, Mode::AllWithX | Mode::AnyWithX)
    }
}

/// Does a binding with arguments `binding_args` match a message with headers `headers`?
pub fn headers_match(binding_args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = Mode::of(binding_args);
    let headers = headers.map(FieldTable::inner);
    for (key, want) in binding_args.inner() {
        let key = key.as_str();
        if key == "x-match" || (!mode.with_x() && key.starts_with("x-")) {
            continue;
        }
        let hit = match headers.and_then(|h| h.get(key)) {
            None => false,
            Some(_) if matches!(want, AMQPValue::Void) => true,
            Some(got) => term_eq(want, got),
        };
        if mode.is_any() && hit {
            return true;
        }
        if !mode.is_any() && !hit {
            return false;
        }
    }
    !mode.is_any()
}

/// A number as RabbitMQ decodes it: every integer type (and timestamps) is an Erlang integer,
/// `f` and `d` are Erlang floats (a 32-bit float widened exactly to 64 bits).
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

fn as_num(v: &AMQPValue) -> Option<Num> {
    Some(match *v {
        AMQPValue::ShortShortInt(n) => Num::Int(n.into()),
        AMQPValue::ShortShortUInt(n) => Num::Int(n.into()),
        AMQPValue::ShortInt(n) => Num::Int(n.into()),
        AMQPValue::ShortUInt(n) => Num::Int(n.into()),
        AMQPValue::LongInt(n) => Num::Int(n.into()),
        AMQPValue::LongUInt(n) => Num::Int(n.into()),
        AMQPValue::LongLongInt(n) => Num::Int(n.into()),
        AMQPValue::Timestamp(n) => Num::Int(n.into()),
        AMQPValue::Float(f) => Num::Float(f.into()),
        AMQPValue::Double(f) => Num::Float(f),
        _ => return None,
    })
}

/// Erlang's `==` between an integer and a float is exact (the float is compared as a rational,
/// e.g. 2^53+1 ≠ 2^53 as a double), and `0.0 == -0.0`.
fn num_eq(a: Num, b: Num) -> bool {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x == y,
        (Num::Float(x), Num::Float(y)) => x == y,
        (Num::Int(i), Num::Float(f)) | (Num::Float(f), Num::Int(i)) => {
            // Every i128 we build fits in ±2^64, well inside f64's exponent range; a float with
            // a fraction or beyond that range cannot equal it.
            f.fract() == 0.0 && f.abs() < 1.8e19 && f as i128 == i
        }
    }
}

/// The bytes of a value that RabbitMQ holds as an Erlang binary.
fn as_bytes(v: &AMQPValue) -> Option<&[u8]> {
    match v {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ByteArray(b) => Some(b.as_slice()),
        // Never decoded from the wire (amq-protocol reads `s` as a short int), but a
        // locally-built table may hold one; RabbitMQ would see a binary.
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

/// Erlang `==` on the decoded values of `a` and `b`, ignoring their AMQP types (top level).
fn term_eq(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return num_eq(x, y);
    }
    if let (Some(x), Some(y)) = (as_bytes(a), as_bytes(b)) {
        return x == y;
    }
    match (a, b) {
        (AMQPValue::Boolean(x), AMQPValue::Boolean(y)) => x == y,
        (AMQPValue::Void, AMQPValue::Void) => true,
        (AMQPValue::DecimalValue(x), AMQPValue::DecimalValue(y)) => x.scale == y.scale && x.value == y.value,
        (AMQPValue::FieldArray(x), AMQPValue::FieldArray(y)) => {
            let (x, y) = (x.as_slice(), y.as_slice());
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| typed_eq(p, q))
        }
        (AMQPValue::FieldTable(x), AMQPValue::FieldTable(y)) => {
            // Element order: amq-protocol keeps tables sorted by key, so nested tables that
            // differ only in wire order compare equal here, where RabbitMQ (which compares
            // the lists as sent) would say unequal.
            let (x, y) = (x.inner(), y.inner());
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && typed_eq(vx, vy))
        }
        // Both decode to the empty list.
        (AMQPValue::FieldArray(x), AMQPValue::FieldTable(y)) | (AMQPValue::FieldTable(y), AMQPValue::FieldArray(x)) => {
            x.as_slice().is_empty() && y.inner().is_empty()
        }
        _ => false,
    }
}

/// RabbitMQ's type name for a value (`rabbit_binary_parser`), used for equality inside tables
/// and arrays and in error texts.
fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// Equality of `{Type, Value}` pairs inside arrays and tables.
fn typed_eq(a: &AMQPValue, b: &AMQPValue) -> bool {
    type_name(a) == type_name(b) && term_eq(a, b)
}

/// Validates binding arguments at bind time: `x-match` must be absent or one of `all`, `any`,
/// `all-with-x`, `any-with-x` as a long string.
///
/// The error is RabbitMQ's text without its `PRECONDITION_FAILED - ` prefix; the caller closes
/// the channel with 406 and that prefix, e.g. `PRECONDITION_FAILED - Invalid x-match field value
/// <<"foo">>; expected all, any, all-with-x, or any-with-x`.
pub fn validate_binding_args(binding_args: &FieldTable) -> Result<(), String> {
    match binding_args.inner().get("x-match") {
        None => Ok(()),
        Some(AMQPValue::LongString(s)) => match s.as_bytes() {
            b"all" | b"any" | b"all-with-x" | b"any-with-x" => Ok(()),
            other => {
                let mut v = String::new();
                erl_binary(&mut v, other);
                Err(format!("Invalid x-match field value {v}; expected all, any, all-with-x, or any-with-x"))
            }
        },
        Some(other) => {
            let mut v = String::new();
            erl_term(&mut v, other);
            Err(format!("Invalid x-match field type {} (value {v}); expected longstr", type_name(other)))
        }
    }
}

/// Writes `v`'s decoded Erlang term as `io_lib:format("~tp")` prints it (on one line: the
/// pretty-printer would also break terms that run past 80 columns, which only long tables or
/// arrays do).
fn erl_term(out: &mut String, v: &AMQPValue) {
    if let Some(n) = as_num(v) {
        match n {
            Num::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Num::Float(f) => erl_float(out, f),
        }
        return;
    }
    match v {
        AMQPValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        AMQPValue::Void => out.push_str("undefined"),
        AMQPValue::DecimalValue(d) => {
            let _ = write!(out, "{{{},{}}}", d.scale, d.value);
        }
        AMQPValue::FieldArray(a) => {
            out.push('[');
            for (i, e) in a.as_slice().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{{{},", type_name(e));
                erl_term(out, e);
                out.push('}');
            }
            out.push(']');
        }
        AMQPValue::FieldTable(t) => {
            out.push('[');
            for (i, (k, e)) in t.inner().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                erl_binary(out, k.as_str().as_bytes());
                let _ = write!(out, ",{},", type_name(e));
                erl_term(out, e);
                out.push('}');
            }
            out.push(']');
        }
        other => erl_binary(out, as_bytes(other).unwrap_or_default()),
    }
}

/// An Erlang binary as `~tp` prints it: `<<"text">>` when every byte is a printable Latin-1
/// character (so UTF-8 text made of Latin-1 letters still shows as text), else `<<1,2,3>>`.
fn erl_binary(out: &mut String, b: &[u8]) {
    let printable = |c: u8| matches!(c, 0x20..=0x7e | 0xa0..=0xff | b'\n' | b'\r' | b'\t' | 0x0b | 0x08 | 0x0c | 0x1b);
    if !b.is_empty() && b.iter().all(|&c| printable(c)) {
        let mut bytes = Vec::with_capacity(b.len() + 6);
        bytes.extend_from_slice(b"<<\"");
        for &c in b {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x0b => b"\\v",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x1b => b"\\e",
                _ => std::slice::from_ref(&c),
            };
            bytes.extend_from_slice(esc);
        }
        bytes.extend_from_slice(b"\">>");
        // RabbitMQ sends the raw bytes; a reply text here must be UTF-8, so bytes that are not
        // valid UTF-8 on their own become U+FFFD.
        out.push_str(&String::from_utf8_lossy(&bytes));
    } else {
        out.push_str("<<");
        for (i, c) in b.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{c}");
        }
        out.push_str(">>");
    }
}

/// A float as Erlang/OTP 25 prints it (`float_to_list(F, [short])`): the shortest digits that
/// read back to `f`, in plain notation unless scientific is strictly shorter or |f| ≥ 2^53.
fn erl_float(out: &mut String, f: f64) {
    if f.is_sign_negative() {
        out.push('-');
    }
    let a = f.abs();
    if a == 0.0 {
        out.push_str("0.0");
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "1.2345e4".
    let sci = format!("{a:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;

    let scientific =
        if n == 1 { format!("{digits}.0e{exp}") } else { format!("{}.{}e{exp}", &digits[..1], &digits[1..]) };
    let plain = if exp < 0 {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else if exp >= n - 1 {
        format!("{digits}{}.0", "0".repeat((exp - n + 1) as usize))
    } else {
        format!("{}.{}", &digits[..=exp as usize], &digits[exp as usize + 1..])
    };
    if a < 9007199254740992.0 && plain.len() <= scientific.len() {
        out.push_str(&plain);
    } else {
        out.push_str(&scientific);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{DecimalValue, FieldArray, LongString};
    use AMQPValue as V;

    fn s(x: &str) -> AMQPValue {
        V::LongString(LongString::from(x.as_bytes().to_vec()))
    }

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn arr(items: &[AMQPValue]) -> AMQPValue {
        V::FieldArray(FieldArray::from(items.to_vec()))
    }

    fn dec(scale: u8, value: u32) -> AMQPValue {
        V::DecimalValue(DecimalValue { scale, value })
    }

    /// (description, binding arguments, message headers, routed by RabbitMQ 3.10.8?). Each
    /// was checked against the live broker: a headers exchange with that one binding, a
    /// mandatory publish, and whether the message came back.
    fn live_cases() -> Vec<(&'static str, FieldTable, Option<FieldTable>, bool)> {
        vec![
            ("no args, no headers", table(&[]), None, true),
            ("all, no keys, no headers", table(&[("x-match", s("all"))]), None, true),
            ("any, no keys, no headers", table(&[("x-match", s("any"))]), None, false),
            ("any, no keys, some headers", table(&[("x-match", s("any"))]), Some(table(&[("a", s("1"))])), false),
            ("all-with-x, no keys, no headers", table(&[("x-match", s("all-with-x"))]), None, true),
            (
                "any-with-x: x-match is never a key",
                table(&[("x-match", s("any-with-x"))]),
                Some(table(&[("x-match", s("any-with-x"))])),
                false,
            ),
            (
                "all-with-x: x-match is never a key",
                table(&[("x-match", s("all-with-x"))]),
                Some(table(&[("x-match", s("zzz"))])),
                true,
            ),
            ("S = S", table(&[("a", s("1"))]), Some(table(&[("a", s("1"))])), true),
            ("I 1 = l 1", table(&[("a", V::LongInt(1))]), Some(table(&[("a", V::LongLongInt(1))])), true),
            ("I 1 = d 1.0", table(&[("a", V::LongInt(1))]), Some(table(&[("a", V::Double(1.0))])), true),
            ("f 0.1 != d 0.1", table(&[("a", V::Float(0.1))]), Some(table(&[("a", V::Double(0.1))])), false),
            ("f 0.5 = d 0.5", table(&[("a", V::Float(0.5))]), Some(table(&[("a", V::Double(0.5))])), true),
            ("I 1 = T 1", table(&[("a", V::LongInt(1))]), Some(table(&[("a", V::Timestamp(1))])), true),
            ("I 1 != S \"1\"", table(&[("a", V::LongInt(1))]), Some(table(&[("a", s("1"))])), false),
            (
                "S = x (both binaries)",
                table(&[("a", s("ab"))]),
                Some(table(&[("a", V::ByteArray(b"ab".to_vec().into()))])),
                true,
            ),
            ("t true != I 1", table(&[("a", V::Boolean(true))]), Some(table(&[("a", V::LongInt(1))])), false),
            ("t true = t true", table(&[("a", V::Boolean(true))]), Some(table(&[("a", V::Boolean(true))])), true),
            ("b -1 = s -1", table(&[("a", V::ShortShortInt(-1))]), Some(table(&[("a", V::ShortInt(-1))])), true),
            ("B 255 = u 255", table(&[("a", V::ShortShortUInt(255))]), Some(table(&[("a", V::ShortUInt(255))])), true),
            (
                "i u32::MAX = l u32::MAX",
                table(&[("a", V::LongUInt(u32::MAX))]),
                Some(table(&[("a", V::LongLongInt(u32::MAX.into()))])),
                true,
            ),
            ("D(1,10) != D(2,100)", table(&[("a", dec(1, 10))]), Some(table(&[("a", dec(2, 100))])), false),
            ("D(1,10) = D(1,10)", table(&[("a", dec(1, 10))]), Some(table(&[("a", dec(1, 10))])), true),
            ("D(0,1) != I 1", table(&[("a", dec(0, 1))]), Some(table(&[("a", V::LongInt(1))])), false),
            ("void binding: any value", table(&[("a", V::Void)]), Some(table(&[("a", s("x"))])), true),
            ("void binding: key absent", table(&[("a", V::Void)]), Some(table(&[("b", s("x"))])), false),
            ("void binding: void header", table(&[("a", V::Void)]), Some(table(&[("a", V::Void)])), true),
            ("S binding vs void header", table(&[("a", s("x"))]), Some(table(&[("a", V::Void)])), false),
            (
                "nested F{k: I 1} != F{k: l 1}",
                table(&[("a", V::FieldTable(table(&[("k", V::LongInt(1))])))]),
                Some(table(&[("a", V::FieldTable(table(&[("k", V::LongLongInt(1))])))])),
                false,
            ),
            (
                "nested F{k: I 1} = F{k: I 1}",
                table(&[("a", V::FieldTable(table(&[("k", V::LongInt(1))])))]),
                Some(table(&[("a", V::FieldTable(table(&[("k", V::LongInt(1))])))])),
                true,
            ),
            (
                "A[I 1] != A[l 1]",
                table(&[("a", arr(&[V::LongInt(1)]))]),
                Some(table(&[("a", arr(&[V::LongLongInt(1)]))])),
                false,
            ),
            (
                "A[I 1, S x] = A[I 1, S x]",
                table(&[("a", arr(&[V::LongInt(1), s("x")]))]),
                Some(table(&[("a", arr(&[V::LongInt(1), s("x")]))])),
                true,
            ),
            (
                "A[] = F{} (both the empty list)",
                table(&[("a", arr(&[]))]),
                Some(table(&[("a", V::FieldTable(table(&[])))])),
                true,
            ),
            ("all: one key missing", table(&[("a", s("1")), ("b", s("2"))]), Some(table(&[("a", s("1"))])), false),
            (
                "any: one key present",
                table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]),
                Some(table(&[("a", s("1"))])),
                true,
            ),
            ("any: no headers", table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]), None, false),
            ("all: x- binding key ignored", table(&[("x-foo", s("1"))]), None, true),
            (
                "any: x- keys do not count",
                table(&[("x-match", s("any")), ("x-foo", s("1"))]),
                Some(table(&[("x-foo", s("1"))])),
                false,
            ),
            (
                "any-with-x: x- keys count",
                table(&[("x-match", s("any-with-x")), ("x-foo", s("1"))]),
                Some(table(&[("x-foo", s("1"))])),
                true,
            ),
            (
                "all-with-x: x- key required",
                table(&[("x-match", s("all-with-x")), ("x-foo", s("1")), ("a", s("1"))]),
                Some(table(&[("a", s("1"))])),
                false,
            ),
            (
                "all-with-x: all present",
                table(&[("x-match", s("all-with-x")), ("x-foo", s("1")), ("a", s("1"))]),
                Some(table(&[("a", s("1")), ("x-foo", s("1"))])),
                true,
            ),
            (
                "all: x- key ignored, rest matches",
                table(&[("x-foo", s("1")), ("a", s("1"))]),
                Some(table(&[("a", s("1"))])),
                true,
            ),
            ("all: `X-` prefix is case-sensitive", table(&[("X-foo", s("1"))]), None, false),
            ("d -0.0 = d 0.0", table(&[("a", V::Double(-0.0))]), Some(table(&[("a", V::Double(0.0))])), true),
            (
                "l 2^53+1 != d 2^53 (exact)",
                table(&[("a", V::LongLongInt((1 << 53) + 1))]),
                Some(table(&[("a", V::Double(9007199254740992.0))])),
                false,
            ),
            ("I 1 != F{}", table(&[("a", V::LongInt(1))]), Some(table(&[("a", V::FieldTable(table(&[])))])), false),
            (
                "F{} = F{}",
                table(&[("a", V::FieldTable(table(&[])))]),
                Some(table(&[("a", V::FieldTable(table(&[])))])),
                true,
            ),
            (
                "nested F{k: f 0.5} != F{k: d 0.5}",
                table(&[("a", V::FieldTable(table(&[("k", V::Float(0.5))])))]),
                Some(table(&[("a", V::FieldTable(table(&[("k", V::Double(0.5))])))])),
                false,
            ),
            (
                "A[T 1] != A[l 1]",
                table(&[("a", arr(&[V::Timestamp(1)]))]),
                Some(table(&[("a", arr(&[V::LongLongInt(1)]))])),
                false,
            ),
            (
                "A[S x] != A[x x]",
                table(&[("a", arr(&[s("x")]))]),
                Some(table(&[("a", arr(&[V::ByteArray(b"x".to_vec().into())]))])),
                false,
            ),
            ("A[V] = A[V]", table(&[("a", arr(&[V::Void]))]), Some(table(&[("a", arr(&[V::Void]))])), true),
            (
                "any: void binding, void header",
                table(&[("x-match", s("any")), ("a", V::Void)]),
                Some(table(&[("a", V::Void)])),
                true,
            ),
            ("all: only x- keys, no headers", table(&[("x-match", s("all")), ("x-foo", s("1"))]), None, true),
        ]
    }

    #[test]
    fn matches_like_rabbitmq() {
        for (name, args, headers, want) in live_cases() {
            assert_eq!(headers_match(&args, headers.as_ref()), want, "{name}");
        }
    }

    #[test]
    fn any_and_all_with_several_keys() {
        let args = table(&[("x-match", s("any")), ("a", s("1")), ("b", V::LongInt(2)), ("c", V::Void)]);
        assert!(headers_match(&args, Some(&table(&[("b", V::LongLongInt(2))]))));
        assert!(headers_match(&args, Some(&table(&[("c", V::Boolean(false))]))));
        assert!(!headers_match(&args, Some(&table(&[("a", s("2")), ("b", V::LongInt(3))]))));
        assert!(!headers_match(&args, Some(&table(&[]))));

        let args = table(&[("a", s("1")), ("b", V::LongInt(2)), ("c", V::Void)]);
        let full = table(&[("a", s("1")), ("b", V::Double(2.0)), ("c", s("")), ("extra", s("z"))]);
        assert!(headers_match(&args, Some(&full)), "extra headers do not matter");
        let wrong = table(&[("a", s("1")), ("b", V::LongInt(3)), ("c", s(""))]);
        assert!(!headers_match(&args, Some(&wrong)));
        assert!(!headers_match(&args, None));
    }

    #[test]
    fn message_x_headers_only_count_with_x_modes() {
        let hdrs = table(&[("x-death-reason", s("expired")), ("a", s("1"))]);
        let plain = table(&[("x-match", s("any")), ("x-death-reason", s("expired"))]);
        assert!(!headers_match(&plain, Some(&hdrs)));
        let with_x = table(&[("x-match", s("any-with-x")), ("x-death-reason", s("expired"))]);
        assert!(headers_match(&with_x, Some(&hdrs)));
        let with_x_wrong = table(&[("x-match", s("any-with-x")), ("x-death-reason", s("rejected"))]);
        assert!(!headers_match(&with_x_wrong, Some(&hdrs)));
    }

    /// Values RabbitMQ would reject at bind time still route (as `all`), as `parse_x_match` does
    /// for bindings that predate validation.
    #[test]
    fn unknown_x_match_routes_as_all() {
        let args = table(&[("x-match", s("ANY")), ("a", s("1")), ("b", s("2"))]);
        assert!(!headers_match(&args, Some(&table(&[("a", s("1"))]))));
        assert!(headers_match(&args, Some(&table(&[("a", s("1")), ("b", s("2"))]))));
        let args = table(&[("x-match", V::LongInt(1)), ("a", s("1"))]);
        assert!(headers_match(&args, Some(&table(&[("a", s("1"))]))));
    }

    #[test]
    fn validation_accepts_the_four_modes_and_absence() {
        assert_eq!(validate_binding_args(&table(&[])), Ok(()));
        assert_eq!(validate_binding_args(&table(&[("foo", V::LongInt(1))])), Ok(()));
        for m in ["all", "any", "all-with-x", "any-with-x"] {
            assert_eq!(validate_binding_args(&table(&[("x-match", s(m))])), Ok(()), "{m}");
        }
    }

    /// Error texts as RabbitMQ 3.10.8 sent them (after `PRECONDITION_FAILED - `), captured live.
    #[test]
    fn validation_errors_match_rabbitmq_texts() {
        let value = |v: &str| format!("Invalid x-match field value {v}; expected all, any, all-with-x, or any-with-x");
        let typ = |t: &str, v: &str| format!("Invalid x-match field type {t} (value {v}); expected longstr");
        let cases: Vec<(AMQPValue, String)> = vec![
            (s("ALL"), value(r#"<<"ALL">>"#)),
            (s("foo"), value(r#"<<"foo">>"#)),
            (s("All\n"), value(r#"<<"All\n">>"#)),
            (s("a\"b\\c"), value(r#"<<"a\"b\\c">>"#)),
            (s("a\tb"), value(r#"<<"a\tb">>"#)),
            (s("é"), value(r#"<<"é">>"#)),
            (s("€"), value("<<226,130,172>>")),
            (s("\u{1}"), value("<<1>>")),
            (s("\u{1b}\u{7f}"), value("<<27,127>>")),
            (s(""), value("<<>>")),
            (V::LongInt(1), typ("signedint", "1")),
            (V::ByteArray(b"all".to_vec().into()), typ("binary", r#"<<"all">>"#)),
            (V::ByteArray(vec![0, 255].into()), typ("binary", "<<0,255>>")),
            (V::Boolean(true), typ("bool", "true")),
            (V::Void, typ("void", "undefined")),
            (dec(1, 10), typ("decimal", "{1,10}")),
            (V::Timestamp(5), typ("timestamp", "5")),
            (V::LongLongInt(-7), typ("long", "-7")),
            (V::ShortShortInt(-1), typ("byte", "-1")),
            (V::ShortShortUInt(1), typ("unsignedbyte", "1")),
            (V::ShortInt(2), typ("short", "2")),
            (V::ShortUInt(3), typ("unsignedshort", "3")),
            (V::LongUInt(4), typ("unsignedint", "4")),
            (arr(&[V::LongInt(1), s("x")]), typ("array", r#"[{signedint,1},{longstr,<<"x">>}]"#)),
            (arr(&[]), typ("array", "[]")),
            (V::Float(0.1), typ("float", "0.10000000149011612")),
        ];
        for (v, want) in cases {
            assert_eq!(validate_binding_args(&table(&[("x-match", v.clone())])), Err(want), "{v:?}");
        }
    }

    /// Doubles as RabbitMQ 3.10.8 (OTP 25) printed them in the x-match type error, captured live.
    #[test]
    fn floats_print_like_erlang() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (1e10, "1.0e10"),
            (1e-5, "1.0e-5"),
            (123456.0, "123456.0"),
            (1e21, "1.0e21"),
            (0.1, "0.1"),
            (-2.0, "-2.0"),
            (1e15, "1.0e15"),
            (1e16, "1.0e16"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (100.0, "100.0"),
            (1000.0, "1.0e3"),
            (12300.0, "1.23e4"),
            (1.5e-4, "1.5e-4"),
            (1234567.0, "1234567.0"),
            (9007199254740992.0, "9.007199254740992e15"),
            (9007199254740991.0, "9007199254740991.0"),
            (10.0, "10.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.5, "0.5"),
            (12.5, "12.5"),
            (1e100, "1.0e100"),
            (1.25e-7, "1.25e-7"),
            (123456789012345.0, "123456789012345.0"),
            (12345678901234567.0, "1.2345678901234568e16"),
        ];
        for &(f, want) in cases {
            let got = validate_binding_args(&table(&[("x-match", V::Double(f))]));
            let want = format!("Invalid x-match field type double (value {want}); expected longstr");
            assert_eq!(got, Err(want), "{f:e}");
        }
    }
}
