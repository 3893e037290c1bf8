//! The shipped deployment files hold no secret and keep the TURN relay off internal networks.
//! (They are not run here: these machines have no container engine.)

use std::net::IpAddr;

fn deploy_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `denied-peer-ip` ranges of a coturn configuration, as inclusive address ranges.
fn denied_ranges(conf: &str) -> Vec<(IpAddr, IpAddr)> {
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("denied-peer-ip="))
        .map(|range| {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            (from.parse().unwrap(), to.parse().unwrap())
        })
        .collect()
}

fn denied(ranges: &[(IpAddr, IpAddr)], ip: &str) -> bool {
    let ip: IpAddr = ip.parse().unwrap();
    ranges.iter().any(|(from, to)| match (from, to, ip) {
        (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => *a <= x && x <= *b,
        (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => *a <= x && x <= *b,
        _ => false,
    })
}

#[test]
fn the_turn_relay_has_no_default_secret_and_reaches_no_internal_network() {
    let conf = deploy_file("turnserver.conf");
    assert!(
        !conf
            .lines()
            .any(|l| l.trim_start().starts_with("static-auth-secret")),
        "the TURN secret must come from the environment"
    );
    assert!(conf.lines().any(|l| l.trim() == "use-auth-secret"));
    let ranges = denied_ranges(&conf);
    for ip in [
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(denied(&ranges, ip), "{ip} is reachable through the relay");
    }
    for ip in ["203.0.113.10", "8.8.8.8", "2001:db8::1"] {
        assert!(!denied(&ranges, ip), "{ip} should stay reachable");
    }
    let compose = deploy_file("compose.yaml");
    assert!(compose.contains("--static-auth-secret=${TURN_SECRET:?"));
    assert!(compose.contains("${SERVICE_TOKEN:?"));
}
