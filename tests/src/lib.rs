//! Shared harness for edgenvr's end-to-end tests: locating the built binaries and driving the
//! `edgenvr` and `nvrctl` CLIs (`edgenvr_box`, `nvrctl_cli`, `process`) and `nvrctl watch`
//! (`watcher`), starting real servers (gst-rtsp-server, mosquitto and its clients, and
//! `edgenvr sim-camera`, healthy or faulty: `sim_camera`) on free ports, encoding test media with
//! ffmpeg (`clips`, `h26x`, `aac`, `gops`), setting up stores (`test_store`), checking what was
//! written with ffprobe (`ffprobe`, `recording`) and what survived a crash (`crash`), the fuzz targets' bodies, shared by `fuzz/`
//! and the corpus replay test (`fuzz`), and driving the box's page in a real headless Chromium
//! (`webdriver`, `page`).

pub mod aac;
pub mod bins;
pub mod clips;
pub mod crash;
pub mod edgenvr_box;
pub mod ffprobe;
pub mod fuzz;
pub mod gops;
pub mod guest;
pub mod h26x;
pub mod line_sink;
pub mod mosquitto;
pub mod nvrctl_cli;
pub mod page;
pub mod process;
pub mod recording;
pub mod rtsp_server;
pub mod sim_camera;
pub mod test_store;
pub mod watcher;
pub mod webdriver;
