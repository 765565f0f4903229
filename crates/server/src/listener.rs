//! Binding the AMQP listeners.
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binds one address. IPv6 sockets are made IPv6-only so that `0.0.0.0:5672` and
/// `[::]:5672` can both be bound, as RabbitMQ binds both by default.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}
