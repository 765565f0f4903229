//! A config value that is either a number or RabbitMQ's `infinity` (no limit).
//!
//! RabbitMQ writes an absent limit as the atom `infinity` (`connection_max = infinity` in
//! rabbitmq.conf). TOML has no bare words, so here it is the string `"infinity"`; an
//! integer sets the limit.
use serde::{Deserialize, Deserializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Infinity,
    Value(u64),
}

impl Limit {
    /// The limit, or None when there is none.
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Infinity => None,
            Limit::Value(n) => Some(n),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Infinity => f.write_str("infinity"),
            Limit::Value(n) => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"infinity\"")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Limit, E> {
                u64::try_from(n).map(Limit::Value).map_err(|_| E::custom("a limit cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Limit, E> {
                Ok(Limit::Value(n))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Limit, E> {
                match s {
                    "infinity" => Ok(Limit::Infinity),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        l: Limit,
    }

    fn parse(v: &str) -> Result<Limit, toml::de::Error> {
        toml::from_str::<T>(&format!("l = {v}")).map(|t| t.l)
    }

    #[test]
    fn integers_and_infinity() {
        assert_eq!(parse("0").unwrap(), Limit::Value(0));
        assert_eq!(parse("1000").unwrap(), Limit::Value(1000));
        assert_eq!(parse("\"infinity\"").unwrap(), Limit::Infinity);
        assert_eq!(Limit::Infinity.value(), None);
        assert_eq!(Limit::Value(7).value(), Some(7));
        assert_eq!(Limit::Value(7).to_string(), "7");
    }

    #[test]
    fn anything_else_is_an_error() {
        assert!(parse("-1").is_err());
        assert!(parse("\"unlimited\"").is_err());
        assert!(parse("1.5").is_err());
    }
}
