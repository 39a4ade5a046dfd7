//! A real mosquitto broker for the MQTT tests: started on a free loopback port, ready once it
//! accepts a TCP connection, killed on drop. Its output is discarded.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Guards against a broker that never comes up; mosquitto starts in a few milliseconds.
const START_GUARD: Duration = Duration::from_secs(30);

/// A running mosquitto on `127.0.0.1:port`, killed on drop.
pub struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    /// Starts mosquitto on a free loopback port and waits until it accepts connections.
    pub fn start() -> anyhow::Result<Broker> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let child = Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto (is it installed?)")?;
        // Built before the wait so an early return still kills the child.
        let broker = Broker { child, port };
        // Ready once it accepts a connection: nothing to await but the port itself.
        let deadline = Instant::now() + START_GUARD;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
            // 20 ms polls: short next to the guard, cheap for the 2-core CI.
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`, as `[mqtt] url` and `nvrctl watch --mqtt` take it.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
