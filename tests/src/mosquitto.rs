//! A real mosquitto broker for the MQTT tests: started on a free loopback port, ready once it
//! accepts a TCP connection, killed on drop. Its output is discarded. Also `mosquitto_sub` as a
//! [`Subscriber`] whose lines a test awaits, and [`publish`] through `mosquitto_pub`.

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

/// A `mosquitto_sub` on a broker, its output lines arriving on a channel; killed on drop.
pub struct Subscriber {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Subscriber {
    /// Subscribes to `topics` on `127.0.0.1:port`, each message printed as `-F format`
    /// (`%r` retained flag, `%t` topic, `%p` payload).
    pub fn start(port: u16, topics: &[&str], format: &str) -> anyhow::Result<Subscriber> {
        let mut command = Command::new("mosquitto_sub");
        command
            .args(["-p", &port.to_string(), "-F", format])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for topic in topics {
            command.args(["-t", topic]);
        }
        let mut child = command.spawn().context("starting mosquitto_sub")?;
        let stdout = child.stdout.take().context("mosquitto_sub stdout")?;
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Subscriber { child, lines })
    }

    /// The next line satisfying `wanted` (earlier lines are dropped); an error when none comes
    /// within `timeout` (a hang guard).
    pub fn wait_for(
        &self,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        crate::watcher::recv_matching(&self.lines, timeout, |line| wanted(line))
            .ok_or_else(|| anyhow::anyhow!("no matching MQTT message within {timeout:?}"))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes `payload` on `topic` at `127.0.0.1:port` with `mosquitto_pub` (QoS 1, not
/// retained).
pub fn publish(port: u16, topic: &str, payload: &str) -> anyhow::Result<()> {
    let status = Command::new("mosquitto_pub")
        .args([
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ])
        .status()
        .context("running mosquitto_pub")?;
    anyhow::ensure!(status.success(), "mosquitto_pub failed");
    Ok(())
}
