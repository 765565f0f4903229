//! Key layouts in sled's `meta` tree.

pub fn vhost(name: &str) -> Vec<u8> {
    [b"v/", name.as_bytes()].concat()
}

pub fn exchange(vhost: &str, name: &str) -> Vec<u8> {
    [b"e/", vhost.as_bytes(), b"\0", name.as_bytes()].concat()
}

pub fn queue(vhost: &str, name: &str) -> Vec<u8> {
    [b"q/", vhost.as_bytes(), b"\0", name.as_bytes()].concat()
}

pub fn binding_prefix(vhost: &str) -> Vec<u8> {
    [b"b/", vhost.as_bytes(), b"\0"].concat()
}

/// A binding is identified by all its parts; the arguments go in as their JSON text.
pub fn binding(vhost: &str, source: &str, dest_is_exchange: bool, dest: &str, key: &str, args_json: &str) -> Vec<u8> {
    let kind: &[u8] = if dest_is_exchange { b"e" } else { b"q" };
    [
        binding_prefix(vhost).as_slice(),
        source.as_bytes(),
        b"\0",
        kind,
        b"\0",
        dest.as_bytes(),
        b"\0",
        key.as_bytes(),
        b"\0",
        args_json.as_bytes(),
    ]
    .concat()
}
