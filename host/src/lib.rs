//! `nvrctl`, the host side of edgenvr: decodes and shows a box's state live, lists recordings and
//! pulls clips. The binary is a thin wrapper over [`cli`].
//!
//! # Layout
//!
//! - `view`: a box's catalog and values built from received frames, and their JSON form;
//! - `cache`: the catalogs seen, under `~/.cache/nvrctl/`, so a reconnect skips the catalog;
//! - `client`: a blocking connection to a box's TCP state port;
//! - `watch`: `nvrctl state` and `nvrctl watch` (reconnect loop, table and JSON output);
//! - `mqtt_watch`: `nvrctl watch --mqtt`, every box on a broker;
//! - `decode`: `nvrctl decode`, a captured byte stream as JSON lines;
//! - `http`: the box's HTTP API client and where its token comes from;
//! - `times`: the time forms `--from`/`--to` accept;
//! - `recordings`: `nvrctl recordings` (table or JSON);
//! - `pull`: `nvrctl pull`, a clip to a file with progress and resume;
//! - `set`: `nvrctl set`, an output switched through the HTTP API.

pub mod cache;
pub mod cli;
pub mod client;
pub mod decode;
pub mod http;
pub mod mqtt_watch;
pub mod pull;
pub mod recordings;
pub mod set;
pub mod times;
pub mod view;
pub mod watch;
