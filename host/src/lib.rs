//! `nvrctl`, the host side of edgenvr: decodes and shows a box's state live, lists recordings and
//! pulls clips. The binary is a thin wrapper over [`cli`].
//!
//! # Layout
//!
//! - `view`: a box's catalog and values built from received frames, and their JSON form;
//! - `client`: a blocking connection to a box's TCP state port;
//! - `watch`: `nvrctl state` and `nvrctl watch` (reconnect loop, table and JSON output);
//! - `mqtt_watch`: `nvrctl watch --mqtt`, every box on a broker;
//! - `decode`: `nvrctl decode`, a captured byte stream as JSON lines.

pub mod cli;
pub mod client;
pub mod decode;
pub mod mqtt_watch;
pub mod view;
pub mod watch;
