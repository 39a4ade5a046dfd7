//! Shared harness for edgenvr's end-to-end tests: locating the built binaries, starting real
//! servers (gst-rtsp-server, mosquitto) on free ports, and checking files with ffprobe.

pub mod aac;
pub mod bins;
pub mod clips;
pub mod ffprobe;
pub mod gops;
pub mod h26x;
pub mod process;
pub mod recording;
pub mod rtsp_server;
