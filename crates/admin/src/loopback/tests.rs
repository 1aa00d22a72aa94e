//! Tests of the loopback names and origins.

use super::*;

#[test]
fn loopback_names_with_any_port_are_local_and_others_are_not() {
    let listen: SocketAddr = "127.0.0.1:8081".parse().unwrap();
    for local in [
        "localhost",
        "LOCALHOST:8081",
        "localhost.:1",
        "127.0.0.1",
        "127.0.0.1:9",
        "127.1.2.3:8081",
        "[::1]",
        "[::1]:8081",
    ] {
        assert!(authority_is_local(local, listen), "{local}");
    }
    for foreign in [
        "attacker.example",
        "attacker.example:8081",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "0.0.0.0:8081",
        "10.0.0.1",
        "[::2]:8081",
        "user@127.0.0.1",
        "",
    ] {
        assert!(!authority_is_local(foreign, listen), "{foreign}");
    }
    assert!(origin_is_local("http://localhost:3000", listen));
    assert!(origin_is_local("https://127.0.0.1", listen));
    for foreign in ["null", "http://attacker.example", "file://", "http://localhost:3000/path", "ftp://localhost"] {
        assert!(!origin_is_local(foreign, listen), "{foreign}");
    }
}
