//! The TCP state port end to end, over real sockets on loopback: the box's state bus and port
//! in-process, `nvrctl`'s client code on the other side.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edgenvr::publish::tcp::{StatePort, TcpStateConfig};
use edgenvr::state::{SensorSpec, SensorValue, StateBus};
use edgenvr_proto::{ReportPolicy, Role, SensorId};
use edgenvr_tests::line_sink::{next_line_matching, LineSink};
use nvrctl::client::StateConnection;
use nvrctl::view::SensorValue as SeenValue;
use nvrctl::watch::{watch, WatchOutput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// A safety net so a broken build fails instead of hanging CI; never a timing assertion.
const GIVE_UP: Duration = Duration::from_secs(30);

struct Box_ {
    bus: StateBus,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

async fn start_box(config: TcpStateConfig) -> Box_ {
    let bus = StateBus::new();
    let port = StatePort::bind("127.0.0.1:0").await.expect("bind");
    let addr = port.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn({
        let bus = bus.clone();
        async move {
            port.serve(bus, config, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    Box_ {
        bus,
        addr,
        stop: Some(stop),
        server,
    }
}

impl Box_ {
    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(GIVE_UP, self.server)
            .await
            .expect("state port shuts down")
            .expect("server task");
    }
}

#[tokio::test]
async fn a_bus_change_is_seen_by_nvrctl_watch() {
    let mut config = TcpStateConfig::new("garage");
    config.heartbeat_interval = Duration::from_millis(200);
    let the_box = start_box(config).await;
    let pir = the_box
        .bus
        .register(SensorSpec::binary("front_door_pir", Role::Sensor))
        .unwrap();
    the_box
        .bus
        .set_now(pir, SensorValue::Binary(false))
        .unwrap();

    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let closed = Arc::new(AtomicBool::new(false));
    let target = the_box.addr.to_string();
    let watcher = std::thread::spawn({
        let closed = closed.clone();
        move || {
            let mut sink = LineSink::new(lines_tx, closed);
            watch(
                &[target],
                WatchOutput::JsonLines,
                &mut sink,
                &mut io::sink(),
            )
        }
    });

    let snapshot =
        next_line_matching(&mut lines, GIVE_UP, |json| json["event"] == "snapshot").await;
    assert_eq!(snapshot["sensor"], "front_door_pir");
    assert_eq!(snapshot["value"], false);
    assert_eq!(snapshot["box"], "garage");

    the_box.bus.set_now(pir, SensorValue::Binary(true)).unwrap();
    let change = next_line_matching(&mut lines, GIVE_UP, |json| json["event"] == "change").await;
    assert_eq!(change["sensor"], "front_door_pir");
    assert_eq!(change["value"], true);

    // Two edges in quick succession are two changes, in order.
    the_box
        .bus
        .set_now(pir, SensorValue::Binary(false))
        .unwrap();
    the_box.bus.set_now(pir, SensorValue::Binary(true)).unwrap();
    let falling = next_line_matching(&mut lines, GIVE_UP, |json| json["event"] == "change").await;
    let rising = next_line_matching(&mut lines, GIVE_UP, |json| json["event"] == "change").await;
    assert_eq!(
        (&falling["value"], &rising["value"]),
        (&false.into(), &true.into())
    );

    closed.store(true, Ordering::SeqCst);
    the_box
        .bus
        .set_now(pir, SensorValue::Binary(false))
        .unwrap();
    let result = tokio::task::spawn_blocking(move || watcher.join())
        .await
        .unwrap()
        .expect("watch thread");
    assert!(
        result.is_ok(),
        "watch ends cleanly on a closed pipe: {result:?}"
    );
    the_box.shut_down().await;
}

/// Connects with nvrctl's client and reads until sensor `id` shows `want`.
async fn client_sees(addr: SocketAddr, id: SensorId, want: bool) -> StateConnection {
    tokio::task::spawn_blocking(move || {
        let mut connection =
            StateConnection::open_with_cache(&addr.to_string(), None).expect("connect");
        loop {
            let seen = connection
                .view()
                .sensors
                .get(&id.0)
                .and_then(|sensor| sensor.value.as_ref())
                .map(|(value, _)| value.clone());
            if connection.view().snapshot_complete && seen == Some(SeenValue::Binary(want)) {
                return connection;
            }
            connection.read_updates().expect("a healthy session");
        }
    })
    .await
    .expect("client thread")
}

#[tokio::test]
async fn hostile_clients_leave_the_port_serving_others() {
    let mut config = TcpStateConfig::new("garage");
    config.write_timeout = Duration::from_millis(500);
    let the_box = start_box(config).await;
    let pir = the_box
        .bus
        .register(SensorSpec::binary("front_door_pir", Role::Sensor))
        .unwrap();
    // Enough sensors that a catalog and snapshot are many frames.
    let scalars: Vec<SensorId> = (0..3_000)
        .map(|n| {
            let spec = SensorSpec::scalar(
                format!("probe_{n:04}_with_a_long_descriptive_name"),
                "°C",
                Role::Sensor,
                ReportPolicy::EVERY_CHANGE,
            );
            the_box.bus.register(spec).unwrap()
        })
        .collect();
    the_box
        .bus
        .set_now(pir, SensorValue::Binary(false))
        .unwrap();

    // Garbage, a valid-looking half frame, and a flood, from a client that stays connected.
    let mut garbage = TcpStream::connect(the_box.addr).await.unwrap();
    let mut noise: Vec<u8> = (0..64 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    noise.extend_from_slice(&[0x0b, 0x0b, 0x80, 0xad]);
    garbage.write_all(&noise).await.unwrap();
    // A client that never reads.
    let never_reads = TcpStream::connect(the_box.addr).await.unwrap();
    // A client that leaves in the middle of a frame.
    let mut leaves = TcpStream::connect(the_box.addr).await.unwrap();
    let mut first_bytes = [0u8; 5];
    leaves.read_exact(&mut first_bytes).await.unwrap();
    drop(leaves);

    // A burst far larger than the bus's event ring, so slow clients lag and resynchronise.
    for round in 0..20 {
        for id in &scalars {
            the_box
                .bus
                .set_now(*id, SensorValue::Scalar(round as f32))
                .unwrap();
        }
    }
    the_box.bus.set_now(pir, SensorValue::Binary(true)).unwrap();

    // A well-behaved client connecting now gets the current state...
    let mut connection = client_sees(the_box.addr, pir, true).await;
    assert_eq!(connection.view().box_name.as_deref(), Some("garage"));
    assert_eq!(connection.view().sensors.len(), 3_001);
    let last_probe = scalars.last().unwrap().0;
    assert_eq!(
        connection.view().sensors[&last_probe]
            .value
            .as_ref()
            .map(|v| v.0.clone()),
        Some(SeenValue::Scalar(19.0))
    );
    // ...and the changes after it.
    the_box
        .bus
        .set_now(pir, SensorValue::Binary(false))
        .unwrap();
    let seen = tokio::task::spawn_blocking(move || loop {
        let updates = connection.read_updates().expect("healthy session");
        if let Some(update) = updates.iter().find(|u| u.id == pir.0 && !u.from_snapshot) {
            return update.value.clone();
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, SeenValue::Binary(false));

    drop((garbage, never_reads));
    the_box.shut_down().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_and_slots_come_back() {
    let mut config = TcpStateConfig::new("garage");
    config.max_clients = 2;
    let the_box = start_box(config).await;
    let first = TcpStream::connect(the_box.addr).await.unwrap();
    let mut second = TcpStream::connect(the_box.addr).await.unwrap();
    // The second is being served once its hello arrives.
    let mut byte = [0u8; 1];
    second.read_exact(&mut byte).await.unwrap();
    let mut third = TcpStream::connect(the_box.addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(GIVE_UP, third.read_to_end(&mut rest))
        .await
        .expect("the box closes the extra connection");
    assert!(read.is_err() || rest.is_empty(), "refused without a frame");
    drop(first);
    drop(second);
    // The slots come back: a new client is served (the box notices the closes first, so retry).
    let served = tokio::time::timeout(GIVE_UP, async {
        loop {
            let mut fourth = TcpStream::connect(the_box.addr).await.unwrap();
            if fourth.read_exact(&mut byte).await.is_ok() {
                return;
            }
        }
    })
    .await;
    assert!(served.is_ok());
    the_box.shut_down().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_frees_its_slot() {
    let mut config = TcpStateConfig::new("garage");
    config.max_clients = 1;
    config.write_timeout = Duration::from_millis(300);
    let the_box = start_box(config).await;
    // Large values make every snapshot ~1.8 MB, so the stalled client's socket buffers (a few
    // MB on loopback) fill after a few resynchronisations.
    let plates: Vec<SensorId> = (0..2_000)
        .map(|n| {
            let spec = SensorSpec::complex(format!("plate_{n}"), Role::Sensor);
            the_box.bus.register(spec).unwrap()
        })
        .collect();
    let never_reads = TcpStream::connect(the_box.addr).await.unwrap();

    let served = tokio::time::timeout(GIVE_UP, async {
        for round in 0u32.. {
            // More changes than the bus keeps: the stalled client is sent a fresh snapshot.
            let value: Arc<[u8]> = vec![(round % 251) as u8 + 1; 900].into();
            for id in &plates {
                the_box
                    .bus
                    .set_now(*id, SensorValue::Complex(value.clone()))
                    .unwrap();
            }
            // The only slot is taken until the box gives up on the stalled client.
            let mut probe = TcpStream::connect(the_box.addr).await.unwrap();
            let mut byte = [0u8; 1];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(1), probe.read_exact(&mut byte)).await
            {
                return round;
            }
        }
        unreachable!("rounds are unbounded")
    })
    .await
    .expect("the stalled client is dropped");
    assert!(served > 0, "the slot was taken at first");
    drop(never_reads);
    the_box.shut_down().await;
}

/// Connects with a catalog cache in `cache` and reads the snapshot; returns the bytes the
/// session took and whether the catalog came from the cache.
async fn connect_cached(addr: SocketAddr, cache: &std::path::Path) -> (u64, bool, usize) {
    let cache = nvrctl::cache::CatalogCache::new(cache);
    tokio::task::spawn_blocking(move || {
        let mut connection =
            StateConnection::open_with_cache(&addr.to_string(), Some(cache)).expect("connect");
        let sensors = connection.read_snapshot().expect("snapshot").sensors.len();
        (
            connection.bytes_received(),
            connection.catalog_from_cache(),
            sensors,
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_known_catalog_is_not_sent_again_and_a_grown_one_only_as_its_tail() {
    let the_box = start_box(TcpStateConfig::new("site")).await;
    for n in 0..5_000 {
        let spec = SensorSpec::binary(
            format!("b{:02}_f{:02}_pir_{n:04}", n / 500, n / 50 % 10),
            Role::Sensor,
        );
        let id = the_box.bus.register(spec).unwrap();
        the_box
            .bus
            .set_now(id, SensorValue::Binary(n % 7 == 0))
            .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let (first, from_cache, sensors) = connect_cached(the_box.addr, cache.path()).await;
    assert!(!from_cache);
    assert_eq!(sensors, 5_000);
    let (again, from_cache, sensors) = connect_cached(the_box.addr, cache.path()).await;
    assert!(from_cache, "the second session uses the cached catalog");
    assert_eq!(sensors, 5_000);
    assert!(again < first, "{again} bytes, the first session {first}");

    // The box gains sensors: the next session gets only the new entries, and caches the whole.
    for name in ["late_a", "late_b"] {
        the_box
            .bus
            .register(SensorSpec::binary(name, Role::Sensor))
            .unwrap();
    }
    let (grown, from_cache, sensors) = connect_cached(the_box.addr, cache.path()).await;
    assert!(!from_cache);
    assert_eq!(sensors, 5_002);
    // Hello, a two-entry pack and the snapshot: a few bytes more than a cached session.
    assert!(grown < again + 200, "{grown} bytes vs {again}");
    let (_, from_cache, sensors) = connect_cached(the_box.addr, cache.path()).await;
    assert!(from_cache);
    assert_eq!(sensors, 5_002);

    // Another box's catalog under the same name is not mistaken for it.
    let other = start_box(TcpStateConfig::new("site")).await;
    other
        .bus
        .register(SensorSpec::binary("only", Role::Sensor))
        .unwrap();
    let (_, from_cache, sensors) = connect_cached(other.addr, cache.path()).await;
    assert!(!from_cache);
    assert_eq!(sensors, 1);
    other.shut_down().await;
    the_box.shut_down().await;
}
