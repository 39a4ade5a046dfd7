//! A fleet through an existing broker hierarchy: two sites, each a network namespace with its
//! own mosquitto and two real `edgenvr run` boxes, each site bridged to a head-office mosquitto
//! by `examples/mosquitto-bridge.conf` (only `address` and the site's name filled in) over a
//! veth link held to 256 kbit/s by `tc tbf` both ways. The real `nvrctl watch --mqtt` at the
//! office must see every box of both sites, their snapshots and their PIR edges, live. The link's
//! own counters (`tc -s qdisc`, Ethernet/IP/TCP headers included) give the bytes the bridge
//! sends upstream per change. Needs root (network namespaces), as CI runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use edgenvr_tests::bins;
use edgenvr_tests::edgenvr_box::{sim_set, BoxDir};
use edgenvr_tests::process::Process;
use edgenvr_tests::watcher::Watcher;

/// Guards against a hang only.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// PIR edges driven on one box for the bytes-per-change figure.
const MEASURED_EDGES: usize = 20;

fn sh(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?} failed");
}

/// A free TCP port on the office side.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One site's namespace and its veth pair to the office (the root namespace); removed on drop.
struct SiteNet {
    ns: String,
    office_end: String,
    site_end: String,
    office_ip: String,
}

impl SiteNet {
    fn new(index: u8) -> SiteNet {
        let tag = format!("{}{index}", std::process::id() % 100_000);
        let net = SiteNet {
            ns: format!("edgenvr-site{tag}"),
            office_end: format!("vo{tag}"),
            site_end: format!("vs{tag}"),
            // 10.233.N.0/24: private addresses on links this test makes, nothing else.
            office_ip: format!("10.233.{index}.1"),
        };
        let site_ip = format!("10.233.{index}.2/24");
        sh(&["ip", "netns", "add", &net.ns]);
        sh(&[
            "ip",
            "link",
            "add",
            &net.office_end,
            "type",
            "veth",
            "peer",
            "name",
            &net.site_end,
        ]);
        sh(&["ip", "link", "set", &net.site_end, "netns", &net.ns]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net.office_ip),
            "dev",
            &net.office_end,
        ]);
        sh(&["ip", "link", "set", &net.office_end, "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &net.ns,
            "ip",
            "addr",
            "add",
            &site_ip,
            "dev",
            &net.site_end,
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &net.ns,
            "ip",
            "link",
            "set",
            &net.site_end,
            "up",
        ]);
        sh(&[
            "ip", "netns", "exec", &net.ns, "ip", "link", "set", "lo", "up",
        ]);
        // 256 kbit/s both ways, as scripts/bench-state.sh shapes its link.
        let tbf = [
            "root", "tbf", "rate", "256kbit", "burst", "4kb", "latency", "400ms",
        ];
        let mut office = vec!["tc", "qdisc", "add", "dev", net.office_end.as_str()];
        office.extend(tbf);
        sh(&office);
        let mut site = vec![
            "ip",
            "netns",
            "exec",
            &net.ns,
            "tc",
            "qdisc",
            "add",
            "dev",
            &net.site_end,
        ];
        site.extend(tbf);
        sh(&site);
        net
    }

    /// Bytes the site has sent to the office so far (its end's qdisc counter).
    fn bytes_up(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "tc",
                "-s",
                "qdisc",
                "show",
                "dev",
                &self.site_end,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "Sent")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte counter in {text}"))
    }

    /// `ip netns exec NS PROGRAM ARGS...` as a harness process.
    fn spawn(&self, program: &Path, args: &[&str]) -> Process {
        let mut all = vec!["netns", "exec", &self.ns, program.to_str().unwrap()];
        all.extend_from_slice(args);
        Process::spawn(Path::new("ip"), &all, &[("RUST_LOG", "info")]).unwrap()
    }
}

impl Drop for SiteNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.office_end])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// The office broker, listening on loopback (for nvrctl) and on each site's link.
fn office_broker(work: &Path, port: u16, sites: &[&SiteNet]) -> Process {
    let mut config = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
    for site in sites {
        config.push_str(&format!("listener {port} {}\n", site.office_ip));
    }
    let path = work.join("office.conf");
    std::fs::write(&path, config).unwrap();
    let broker = Process::spawn(
        Path::new("mosquitto"),
        &["-c", path.to_str().unwrap(), "-v"],
        &[],
    )
    .unwrap();
    broker
        .wait_for_line("Opening ipv4 listen socket", HANG_GUARD)
        .unwrap();
    broker
}

/// The site broker: loopback in its namespace for the boxes, and the documented bridge.
fn site_broker(work: &Path, site: &SiteNet, name: &str, office_port: u16) -> Process {
    let bridge =
        std::fs::read_to_string(bins::workspace_root().join("examples/mosquitto-bridge.conf"))
            .unwrap()
            .replace(
                "address office-broker.example:1883",
                &format!("address {}:{office_port}", site.office_ip),
            )
            .replace("edgenvr-bridge-SITE", &format!("edgenvr-bridge-{name}"));
    let path = work.join(format!("{name}-broker.conf"));
    std::fs::write(
        &path,
        format!("listener 1883 127.0.0.1\nallow_anonymous true\n{bridge}"),
    )
    .unwrap();
    let broker = site.spawn(
        Path::new("/usr/sbin/mosquitto"),
        &["-c", path.to_str().unwrap(), "-v"],
    );
    broker
        .wait_for_line("Opening ipv4 listen socket", HANG_GUARD)
        .unwrap();
    broker
}

struct FleetBox {
    dir: BoxDir,
    _process: Process,
}

fn start_box(site: &SiteNet, name: &str) -> FleetBox {
    let dir = BoxDir::small(
        name,
        "[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
         [[sensor]]\nname = \"pir\"\nkind = \"pir\"\nbackend = \"sim\"\ndebounce = \"1ms\"\n",
    );
    let config = dir.config.to_str().unwrap();
    let process = site.spawn(&bins::edgenvr(), &["run", "--config", config]);
    process.wait_for_line("mqtt connected", HANG_GUARD).unwrap();
    FleetBox {
        dir,
        _process: process,
    }
}

#[test]
fn the_office_sees_every_box_of_two_bridged_sites_through_a_256_kbit_link() {
    assert!(
        Command::new("id").arg("-u").output().unwrap().stdout == b"0\n",
        "this test makes network namespaces: run it as root (CI does)"
    );
    let work = tempfile::tempdir().unwrap();
    let (site_a, site_b) = (SiteNet::new(1), SiteNet::new(2));
    let office_port = free_port();
    let _office = office_broker(work.path(), office_port, &[&site_a, &site_b]);
    let mut brokers = Vec::new();
    let mut boxes = Vec::new();
    for (site, name) in [(&site_a, "site-a"), (&site_b, "site-b")] {
        brokers.push(site_broker(work.path(), site, name, office_port));
        for n in 1..=2 {
            let box_name = format!("{name}-{n}");
            boxes.push((box_name.clone(), start_box(site, &box_name)));
        }
    }

    // At the office: every box's snapshot arrives (retained, through its site's bridge).
    let watch = Watcher::start(&[
        "watch",
        "--mqtt",
        &format!("mqtt://127.0.0.1:{office_port}"),
    ]);
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + HANG_GUARD;
    while seen.len() < boxes.len() {
        assert!(
            Instant::now() < deadline,
            "only {seen:?} seen at the office"
        );
        let line = watch.wait_for_line(HANG_GUARD, |l| {
            l["event"] == "snapshot" && l["sensor"] == "pir"
        });
        seen.insert(line["box"].as_str().unwrap_or_default().to_owned());
    }
    // Every box's PIR edge, live.
    for (name, fleet_box) in &boxes {
        sim_set(&fleet_box.dir.config, "pir", "high").unwrap();
        watch.wait_for_line(HANG_GUARD, |l| {
            l["event"] == "change"
                && l["box"] == name.as_str()
                && l["sensor"] == "pir"
                && l["value"] == true
        });
    }

    // Bytes per change over site A's uplink: a quiet stretch as a baseline, then edges of one
    // box, each awaited at the office, over the same length of time.
    let (name, fleet_box) = &boxes[0];
    // Let the snapshots republished after the edges above cross first.
    std::thread::sleep(Duration::from_secs(2));
    let quiet_from = site_a.bytes_up();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let quiet_bytes = site_a.bytes_up() - quiet_from;
    let quiet_for = started.elapsed();
    let edges_from = site_a.bytes_up();
    let started = Instant::now();
    for n in 0..MEASURED_EDGES {
        let level = if n % 2 == 0 { "low" } else { "high" };
        sim_set(&fleet_box.dir.config, "pir", level).unwrap();
        watch.wait_for_line(HANG_GUARD, |l| {
            l["event"] == "change"
                && l["box"] == name.as_str()
                && l["sensor"] == "pir"
                && l["value"] == (level == "high")
        });
        // Five edges a second: a busy PIR, not a flood.
        std::thread::sleep(Duration::from_millis(200));
    }
    // The retained snapshot that follows the last change crosses too.
    std::thread::sleep(Duration::from_millis(1_500));
    let edge_bytes = site_a.bytes_up() - edges_from;
    let during = started.elapsed();
    let baseline = quiet_bytes as f64 * during.as_secs_f64() / quiet_for.as_secs_f64();
    let per_change = (edge_bytes as f64 - baseline) / MEASURED_EDGES as f64;
    eprintln!(
        "bridge uplink: {edge_bytes} B during {MEASURED_EDGES} changes in {:.1} s, baseline {baseline:.0} B: {per_change:.1} B per change on the link (headers included)",
        during.as_secs_f64()
    );
    // A change is one small state message plus its share of a retained snapshot per second;
    // hundreds of bytes would mean something republishes per change.
    assert!(
        per_change > 0.0 && per_change < 250.0,
        "{per_change} B per change"
    );
    drop(brokers);
}
