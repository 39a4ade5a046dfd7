//! Ingest against a real gst-rtsp-server, in-process: H.264 and H.265 parameters and frames as
//! retina delivers them, digest auth accepted and refused (without leaking the password).

use std::sync::Arc;

use edgenvr::ingest::{
    self, AuthFailurePolicy, CameraSource, IngestEvent, IngestHandler, Transport,
};
use edgenvr::media::{StreamParams, VideoCodec, VideoFrame};
use edgenvr::shutdown::{Shutdown, ShutdownTrigger};
use edgenvr_tests::clips::{make_clip, Codec, GOP_FRAMES};
use edgenvr_tests::rtsp_server::{RtspServer, ServerOptions};

/// Collects what a session delivers and asks for shutdown after `stop_after` frames.
struct Collect {
    params: Vec<Arc<StreamParams>>,
    frames: Vec<VideoFrame>,
    sessions: u32,
    stop_after: usize,
    trigger: ShutdownTrigger,
}

impl IngestHandler for Collect {
    fn session_started(&mut self) {
        self.sessions += 1;
    }
    fn event(&mut self, event: IngestEvent) {
        match event {
            IngestEvent::Params(p) => self.params.push(p),
            IngestEvent::Video(f) => {
                self.frames.push(f);
                if self.frames.len() >= self.stop_after {
                    self.trigger.trigger();
                }
            }
            IngestEvent::Audio(_) => {}
        }
    }
    fn session_ended(&mut self) {}
}

fn collector(stop_after: usize) -> (Collect, Shutdown) {
    let (trigger, shutdown) = ShutdownTrigger::new();
    (
        Collect {
            params: Vec::new(),
            frames: Vec::new(),
            sessions: 0,
            stop_after,
            trigger,
        },
        shutdown,
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn h264_and_h265_frames_and_parameters() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h264 = make_clip(dir.path(), Codec::H264, 2)?;
    let h265 = make_clip(dir.path(), Codec::H265, 2)?;
    let server = RtspServer::start(&[("/h264", &h264), ("/h265", &h265)], None)?;
    let rt = runtime();
    for (path, codec, transport) in [
        ("/h264", VideoCodec::H264, Transport::Tcp),
        ("/h265", VideoCodec::H265, Transport::Tcp),
        ("/h264", VideoCodec::H264, Transport::Udp),
    ] {
        let source = CameraSource::new("cam", &server.url(path, None), None, transport)?;
        // Two and a bit GOPs: enough to see key frames recur.
        let (mut collect, shutdown) = collector(2 * GOP_FRAMES as usize + 5);
        let (status, _) = tokio::sync::watch::channel(ingest::CameraStatus::Connecting);
        let options = ingest::IngestOptions::default();
        rt.block_on(ingest::run(
            &source,
            &options,
            shutdown,
            &status,
            &mut collect,
        ))?;

        assert_eq!(collect.sessions, 1, "{path} {transport}");
        let params = collect.params.first().expect("parameters before frames");
        assert_eq!(params.video.codec, codec);
        assert_eq!((params.video.width, params.video.height), (320, 240));
        let prefix = if codec == VideoCodec::H264 {
            "avc1."
        } else {
            "hvc1."
        };
        assert!(params.video.rfc6381_codec.starts_with(prefix), "{params:?}");
        // avcC starts with configurationVersion 1; so does hvcC.
        assert_eq!(params.video.decoder_config.first(), Some(&1));

        let frames = &collect.frames;
        let keys: Vec<usize> = (0..frames.len()).filter(|&i| frames[i].is_key).collect();
        assert!(keys.len() >= 2, "{keys:?}");
        for pair in keys.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                GOP_FRAMES as usize,
                "{path} {transport}: {keys:?}"
            );
        }
        for pair in frames.windows(2) {
            assert_eq!(
                pair[1].pts_90k - pair[0].pts_90k,
                3_600,
                "25 fps in 90 kHz ticks"
            );
        }
        // Length-prefixed NAL units that exactly fill each frame.
        for frame in frames {
            let mut rest = &frame.data[..];
            while !rest.is_empty() {
                let len = u32::from_be_bytes(rest[..4].try_into()?) as usize;
                rest = &rest[4 + len..];
            }
        }
    }
    Ok(())
}

#[test]
fn digest_auth_right_password_streams_wrong_one_fails_without_leaking() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h264 = make_clip(dir.path(), Codec::H264, 2)?;
    let server = RtspServer::start(&[("/h264", &h264)], Some(("viewer", "s3cret-pw")))?;
    let rt = runtime();
    let options = ingest::IngestOptions {
        on_unauthorized: AuthFailurePolicy::GiveUp,
        ..Default::default()
    };

    let good = CameraSource::new(
        "cam",
        &server.url("/h264", Some(("viewer", "s3cret-pw"))),
        None,
        Transport::Tcp,
    )?;
    let (mut collect, shutdown) = collector(10);
    let (status, _) = tokio::sync::watch::channel(ingest::CameraStatus::Connecting);
    rt.block_on(ingest::run(
        &good,
        &options,
        shutdown,
        &status,
        &mut collect,
    ))?;
    assert_eq!(collect.frames.len(), 10);

    let bad = CameraSource::new(
        "cam",
        &server.url("/h264", Some(("viewer", "wr0ng-guess"))),
        None,
        Transport::Tcp,
    )?;
    let (mut collect, shutdown) = collector(10);
    let error = rt
        .block_on(ingest::run(&bad, &options, shutdown, &status, &mut collect))
        .expect_err("a wrong password must fail");
    assert_eq!(error.kind(), ingest::IngestErrorKind::Unauthorized);
    let message = error.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("wr0ng-guess"), "{message}");
    assert!(collect.frames.is_empty());
    assert_eq!(*status.borrow(), ingest::CameraStatus::Stopped);
    Ok(())
}

#[test]
fn basic_auth_is_accepted_too() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h264 = make_clip(dir.path(), Codec::H264, 2)?;
    let options = ServerOptions {
        auth: Some(("viewer".into(), "b4sic-pw".into())),
        basic_auth: true,
        ..ServerOptions::default()
    };
    let server = RtspServer::start_with(&[("/h264", &h264)], options)?;
    let source = CameraSource::new(
        "cam",
        &server.url("/h264", Some(("viewer", "b4sic-pw"))),
        None,
        Transport::Tcp,
    )?;
    let (mut collect, shutdown) = collector(10);
    let (status, _) = tokio::sync::watch::channel(ingest::CameraStatus::Connecting);
    let options = ingest::IngestOptions::default();
    runtime().block_on(ingest::run(
        &source,
        &options,
        shutdown,
        &status,
        &mut collect,
    ))?;
    assert_eq!(collect.frames.len(), 10);
    Ok(())
}
