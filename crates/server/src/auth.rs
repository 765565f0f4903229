//! Users and SASL: PLAIN and AMQPLAIN, the two mechanisms RabbitMQ offers by default.
use crate::config::UserConfig;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::collections::HashMap;

/// The mechanisms advertised in connection.start, in RabbitMQ's order.
pub const MECHANISMS: &str = "PLAIN AMQPLAIN";

/// Who may log in. Later issues keep users in the metadata store with hashed passwords.
pub struct Users {
    by_name: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("unsupported authentication mechanism '{0}'")]
    UnknownMechanism(String),
    #[error("malformed {0} response")]
    Malformed(&'static str),
    #[error("user '{0}' - invalid credentials")]
    Refused(String),
}

impl Users {
    pub fn new(users: &[UserConfig]) -> Self {
        Users { by_name: users.iter().map(|u| (u.name.clone(), u.password.clone())).collect() }
    }

    /// Checks a start-ok response; returns the user name.
    pub fn authenticate(&self, mechanism: &str, response: &[u8]) -> Result<String, AuthError> {
        let (user, pass) = match mechanism {
            "PLAIN" => parse_plain(response)?,
            "AMQPLAIN" => parse_amqplain(response)?,
            other => return Err(AuthError::UnknownMechanism(other.into())),
        };
        match self.by_name.get(&user) {
            Some(p) if constant_time_eq(p.as_bytes(), pass.as_bytes()) => Ok(user),
            _ => Err(AuthError::Refused(user)),
        }
    }
}

/// Compares without an early exit, so response time says nothing about the password.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`.
fn parse_plain(r: &[u8]) -> Result<(String, String), AuthError> {
    let mut parts = r.split(|&b| b == 0);
    let (_authz, user, pass) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(u), Some(p), None) => (a, u, p),
        _ => return Err(AuthError::Malformed("PLAIN")),
    };
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| AuthError::Malformed("PLAIN"));
    Ok((s(user)?, s(pass)?))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(r: &[u8]) -> Result<(String, String), AuthError> {
    let mut framed = Vec::with_capacity(r.len() + 4);
    framed.extend_from_slice(&(r.len() as u32).to_be_bytes());
    framed.extend_from_slice(r);
    // Before authentication, too: amq-protocol's parser recurses once per nesting level.
    if warren_codec::table_too_deep(&framed) {
        return Err(AuthError::Malformed("AMQPLAIN"));
    }
    let (_, table): (_, FieldTable) = amq_protocol::types::parsing::parse_field_table(framed.as_slice())
        .map_err(|_| AuthError::Malformed("AMQPLAIN"))?;
    let get = |k: &str| match table.inner().get(k) {
        Some(AMQPValue::LongString(s)) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Ok(s.to_string()),
        _ => Err(AuthError::Malformed("AMQPLAIN")),
    };
    Ok((get("LOGIN")?, get("PASSWORD")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Users {
        Users::new(&[UserConfig { name: "guest".into(), password: "guest".into(), tags: vec![] }])
    }

    #[test]
    fn plain() {
        assert_eq!(users().authenticate("PLAIN", b"\0guest\0guest"), Ok("guest".into()));
        assert_eq!(users().authenticate("PLAIN", b"\0guest\0nope"), Err(AuthError::Refused("guest".into())));
        assert_eq!(users().authenticate("PLAIN", b"guest"), Err(AuthError::Malformed("PLAIN")));
    }

    #[test]
    fn amqplain() {
        // The table body as clients send it: key, type 'S', length-prefixed value.
        let mut buf = Vec::new();
        for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
            buf.push(k.len() as u8);
            buf.extend_from_slice(k.as_bytes());
            buf.push(b'S');
            buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        assert_eq!(users().authenticate("AMQPLAIN", &buf), Ok("guest".into()));
        assert!(matches!(users().authenticate("EXTERNAL", b""), Err(AuthError::UnknownMechanism(_))));
    }

    /// An AMQPLAIN response nesting tables 20,000 deep is refused before amq-protocol's
    /// recursive parser sees it (it overflowed the stack: a crash before authentication).
    #[test]
    fn amqplain_nesting_too_deep_is_malformed() {
        let t = warren_codec::testing::nested_table(20_000);
        // The response is the table without its length prefix.
        assert_eq!(users().authenticate("AMQPLAIN", &t[4..]), Err(AuthError::Malformed("AMQPLAIN")));
    }
}
