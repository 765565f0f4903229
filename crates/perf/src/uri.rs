//! `amqp://user:pass@host:port/vhost`, as RabbitMQ's URI spec reads it.
use crate::error::PerfError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUri {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub vhost: String,
}

impl std::str::FromStr for AmqpUri {
    type Err = PerfError;

    fn from_str(s: &str) -> Result<Self, PerfError> {
        let bad = |why: &str| PerfError::Uri(format!("{s}: {why}"));
        let rest = s.strip_prefix("amqp://").ok_or_else(|| bad("only amqp:// is supported"))?;
        let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
        let (userinfo, hostport) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
        let (user, password) = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (
                    percent_decode(user).ok_or_else(|| bad("bad user"))?,
                    percent_decode(pass).ok_or_else(|| bad("bad password"))?,
                )
            }
            None => ("guest".into(), "guest".into()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                (h, p.parse().map_err(|_| bad("port is not a number"))?)
            }
            _ => (hostport, 5672),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "localhost" } else { host };
        // As in RabbitMQ's spec: no path means vhost "/", an empty path means vhost "".
        let vhost = match path {
            None => "/".into(),
            Some(p) => percent_decode(p).ok_or_else(|| bad("bad vhost"))?,
        };
        Ok(AmqpUri { user, password, host: host.into(), port, vhost })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AmqpUri {
        s.parse().unwrap()
    }

    #[test]
    fn parses_like_rabbitmq() {
        let u = parse("amqp://bob:s%40cret@broker.example:5673/%2f");
        assert_eq!((u.user.as_str(), u.password.as_str()), ("bob", "s@cret"));
        assert_eq!((u.host.as_str(), u.port, u.vhost.as_str()), ("broker.example", 5673, "/"));
        let d = parse("amqp://localhost");
        assert_eq!((d.user.as_str(), d.port, d.vhost.as_str()), ("guest", 5672, "/"));
        assert_eq!(parse("amqp://h/").vhost, "", "an empty path is the empty vhost");
        assert_eq!(parse("amqp://h/prod").vhost, "prod");
        assert_eq!(parse("amqp://[::1]:5700/x").host, "::1");
        assert_eq!(parse("amqp://[::1]:5700/x").port, 5700);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!("http://h".parse::<AmqpUri>().is_err());
        assert!("amqp://h:port".parse::<AmqpUri>().is_err());
        assert!("amqp://h/%zz".parse::<AmqpUri>().is_err());
    }
}
