//! The names of the box's own sensors in the state (health, storage, per camera): plain data
//! that `config` checks `[[report]]` against and `health` registers, so neither imports the
//! other's logic.

/// Share of the store's slots holding video, in percent.
pub const STORAGE_USED: &str = "storage_used";
/// Bytes written to the store since it was provisioned, in MB.
pub const STORAGE_WRITTEN: &str = "storage_written";
/// Share of the card's rated endurance used, in percent.
pub const ENDURANCE_USED: &str = "storage_endurance_used";
/// The store's state (ok, full, missing, io_error, read_only).
pub const STORAGE_STATUS: &str = "storage_status";
/// CPU temperature.
pub const CPU_TEMP: &str = "cpu_temp";

/// The box's scalar sensors that are not per camera.
pub const BOX_SCALARS: [&str; 4] = [STORAGE_USED, STORAGE_WRITTEN, ENDURANCE_USED, CPU_TEMP];

/// Suffix of a camera's frame-rate sensor (`<camera>_fps`).
pub const FPS_SUFFIX: &str = "_fps";
/// Suffix of a camera's bit-rate sensor (`<camera>_bitrate`).
pub const BITRATE_SUFFIX: &str = "_bitrate";
/// `<camera>_overwritten`: the camera's fragments (GOPs) the ring has wrapped over.
pub const OVERWRITTEN_SUFFIX: &str = "_overwritten";
/// `<camera>_dropped`: the camera's GOPs dropped before reaching the store (a disk slower than
/// the camera) since the box started.
pub const DROPPED_SUFFIX: &str = "_dropped";
/// Suffixes of a camera's scalar sensors (the counters are scalars reported by exception).
pub const CAMERA_SCALAR_SUFFIXES: [&str; 4] = [
    FPS_SUFFIX,
    BITRATE_SUFFIX,
    OVERWRITTEN_SUFFIX,
    DROPPED_SUFFIX,
];

/// The scalar sensor names a config's `[[report]]` may name, for the given cameras.
pub fn scalar_names<'a>(cameras: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = BOX_SCALARS.iter().map(|s| (*s).to_owned()).collect();
    for camera in cameras {
        for suffix in CAMERA_SCALAR_SUFFIXES {
            names.push(format!("{camera}{suffix}"));
        }
    }
    names
}
