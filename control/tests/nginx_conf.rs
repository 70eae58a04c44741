//! The nginx config in `tuning/nginx/corecast.conf` (TLS, the routers' internal address, the
//! regions table through the `geo` module, per-region upstreams, rate limits) is one nginx
//! accepts: `nginx -t` on it, with only its file paths and listen addresses moved into a
//! temporary directory and loopback ports. The regions table given to nginx is the one the
//! calls service reads (`calls.regions_file`), and it parses there too. Needs Debian's
//! `nginx-light` (`make deps`); without it the test is skipped, and fails under `make test`
//! (`CORECAST_TEST_REQUIRE_SERVERS`).

mod common;

use std::path::Path;
use std::process::Command;

use corecast_control::geo::RegionTable;

const NGINX: &str = "/usr/sbin/nginx";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn nginx_accepts_the_shipped_config_with_the_regions_table() {
    if !Path::new(NGINX).exists() {
        common::skip("nginx_accepts_the_shipped_config_with_the_regions_table", "nginx (apt-get install nginx-light)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // A throwaway certificate for the TLS server block.
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=corecast-test", "-keyout", &format!("{d}/key.pem"), "-out", &format!("{d}/cert.pem")])
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let regions = "# address range -> region\n10.1.0.0/16 eu-west;\n10.2.0.0/16 us-east;\ndefault eu-west;\n";
    std::fs::write(format!("{d}/regions.conf"), regions).unwrap();
    let table = RegionTable::parse(regions).expect("the calls service reads the same table");
    assert_eq!(table.region_of("10.2.3.4".parse().unwrap()), Some("us-east"));

    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tuning/nginx/corecast.conf")).unwrap();
    let moved = [
        ("/etc/corecast/regions.conf", format!("{d}/regions.conf")),
        ("/etc/corecast/tls/fullchain.pem", format!("{d}/cert.pem")),
        ("/etc/corecast/tls/privkey.pem", format!("{d}/key.pem")),
        ("listen 443 ssl http2;", format!("listen 127.0.0.1:{} ssl http2;", free_port())),
        ("listen 10.0.0.1:8090;", format!("listen 127.0.0.1:{};", free_port())),
    ];
    let mut conf = shipped.clone();
    for (from, to) in &moved {
        assert!(conf.contains(from), "the shipped config has {from:?}");
        conf = conf.replace(from, to);
    }
    std::fs::write(format!("{d}/corecast.conf"), conf).unwrap();
    let main = format!("pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  include {d}/corecast.conf;\n}}\n");
    std::fs::write(format!("{d}/nginx.conf"), main).unwrap();
    let t = Command::new(NGINX).args(["-t", "-p", &d, "-c", &format!("{d}/nginx.conf")]).output().expect("nginx runs");
    let said = String::from_utf8_lossy(&t.stderr);
    assert!(t.status.success() && said.contains("test is successful"), "nginx -t: {said}");
}
