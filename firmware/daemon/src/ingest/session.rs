//! One RTSP session with one camera, through retina: DESCRIBE, SETUP (the first H.264/H.265
//! video stream and the first AAC audio stream), PLAY, then frames until the stream fails.
//!
//! Receives a [`CameraSource`]; emits [`IngestEvent`]s: stream parameters before the first frame
//! and whenever they change, video access units (4-byte length-prefixed NAL units, the MP4 sample
//! format, parameter sets out of band) with 90 kHz media time, and AAC frames. Owns the socket
//! (through retina); async, driven by the caller's task. Media time starts near zero with each
//! session and runs forward: timestamp jumps are rebased ([`MediaTimeline`]). Streams are
//! expected without B-frames (retina does not reorder), as IP cameras send.
//!
//! What a camera gets wrong is named: a failure's [`IngestErrorKind`] comes from where in the
//! session it happened (connect, DESCRIBE, SETUP/PLAY, streaming) and what retina said; a fault
//! the session works around (a timestamp jump, new parameters on a non-key frame) is kept as a
//! [`Session::take_warning`] for the caller to log and show.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{self, Demuxed, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};

use super::packer::FramePacker;
use super::timeline::MediaTimeline;
use super::{CameraSource, IngestError, IngestErrorKind, Transport};
use crate::media::{
    AudioFrame, AudioParams, StreamParams, VideoCodec, VideoFrame, VideoParams, TIMESCALE_90K,
};

/// What a session delivers, in arrival order.
#[derive(Clone, Debug)]
pub enum IngestEvent {
    /// The parameters of the frames that follow (first of a session, or changed mid-stream).
    Params(Arc<StreamParams>),
    /// One video access unit.
    Video(VideoFrame),
    /// One AAC frame.
    Audio(AudioFrame),
}

/// A playing RTSP session.
pub struct Session {
    camera: String,
    url: String,
    source: CameraSource,
    demuxed: Pin<Box<Demuxed>>,
    video_stream_i: usize,
    video_clock_hz: u32,
    audio_stream_i: Option<usize>,
    audio: Option<AudioParams>,
    params: Option<Arc<StreamParams>>,
    /// A frame that brought new parameters: delivered right after its [`IngestEvent::Params`].
    pending: Option<retina::codec::VideoFrame>,
    stall_timeout: Duration,
    /// The stall watch: one timer for the session, firing every [`STALL_CHECKS`]th of the stall
    /// timeout, rather than a timer and a clock read per frame. Only video counts as a sign of
    /// life: audio and RTCP keep flowing from some cameras whose video encoder hung.
    stall_check: Pin<Box<tokio::time::Sleep>>,
    /// A video frame arrived since the last check.
    video_since_check: bool,
    /// Checks in a row that found no video; [`STALL_CHECKS`] of them is a stall.
    quiet_checks: u32,
    /// Video media time, rebased across timestamp jumps.
    timeline: MediaTimeline,
    /// Where the frames' bytes are copied to (see [`FramePacker`]).
    packer: FramePacker,
    /// A fault worked around since the caller last asked.
    warning: Option<(IngestErrorKind, String)>,
}

/// Checks per stall timeout. A stall is reported after this many checks in a row found no video,
/// i.e. between 1 and 1 + 1/STALL_CHECKS stall timeouts after the last frame.
const STALL_CHECKS: u32 = 4;

/// The largest video frame accepted: 8 MiB. A 4K H.265 key frame at a high bit rate is 1–2 MB;
/// a bigger "frame" is a broken or hostile camera, and holding it (and the GOP around it) would
/// cost a small box its memory. retina assembles a frame before the box sees it, so what a
/// camera can make it buffer is bounded by the stall timeout times the link's speed instead.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// Where in a session a retina error happened: part of what names its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Describe,
    SetupOrPlay,
    Streaming,
}

impl Session {
    /// Connects and starts playing; gives up after `connect_timeout`. A stream that then delivers
    /// no video frame for `stall_timeout` fails [`Session::next_event`] with
    /// [`IngestError::Stalled`] (noticed by a check every quarter of it, so up to a quarter later).
    pub async fn open(
        source: &CameraSource,
        connect_timeout: Duration,
        stall_timeout: Duration,
    ) -> Result<Self, IngestError> {
        match tokio::time::timeout(connect_timeout, Self::open_inner(source, stall_timeout)).await {
            Ok(result) => result,
            Err(_) => Err(IngestError::ConnectTimeout {
                camera: source.name.clone(),
                url: source.url.to_string(),
                waited: connect_timeout,
            }),
        }
    }

    async fn open_inner(
        source: &CameraSource,
        stall_timeout: Duration,
    ) -> Result<Self, IngestError> {
        let rtsp_err = |phase| move |e: retina::Error| map_retina_error(source, &e, phase);
        let creds = source.credentials.as_ref().map(|c| client::Credentials {
            username: c.username.clone(),
            password: c.password.clone(),
        });
        let options = SessionOptions::default()
            .creds(creds)
            .user_agent(format!("edgenvr/{}", env!("CARGO_PKG_VERSION")));
        let mut described = client::Session::describe(source.url.clone(), options)
            .await
            .map_err(rtsp_err(Phase::Describe))?;

        let streams = described.streams();
        let video_stream_i = streams
            .iter()
            .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"));
        let Some(video_stream_i) = video_stream_i else {
            let found = streams
                .iter()
                .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(IngestError::NoVideo {
                camera: source.name.clone(),
                url: source.url.to_string(),
                found,
            });
        };
        let video_clock_hz = streams
            .get(video_stream_i)
            .map_or(TIMESCALE_90K, |s| s.clock_rate_hz());
        let audio_stream_i = streams
            .iter()
            .position(|s| s.media() == "audio" && s.encoding_name() == "mpeg4-generic");

        let transport = match source.transport {
            Transport::Tcp => client::Transport::Tcp(Default::default()),
            Transport::Udp => client::Transport::Udp(Default::default()),
        };
        let setup = || {
            SetupOptions::default()
                .transport(transport.clone())
                .frame_format(FrameFormat::MP4)
        };
        described
            .setup(video_stream_i, setup())
            .await
            .map_err(rtsp_err(Phase::SetupOrPlay))?;
        let mut audio = None;
        let mut audio_stream_i_set = None;
        if let Some(i) = audio_stream_i {
            // Audio is a bonus: a camera whose AAC stream cannot be set up still records video.
            match described.setup(i, setup()).await {
                Ok(()) => {
                    audio = described
                        .streams()
                        .get(i)
                        .and_then(|s| audio_params(s.parameters()));
                    audio_stream_i_set = audio.as_ref().map(|_| i);
                }
                Err(e) => tracing::warn!(
                    camera = %source.name,
                    error = %source.scrub(&e.to_string()),
                    "audio stream not recorded"
                ),
            }
        }
        let playing = described
            .play(PlayOptions::default())
            .await
            .map_err(rtsp_err(Phase::SetupOrPlay))?;
        let demuxed = playing.demuxed().map_err(rtsp_err(Phase::SetupOrPlay))?;
        Ok(Self {
            camera: source.name.clone(),
            url: source.url.to_string(),
            source: source.clone(),
            demuxed: Box::pin(demuxed),
            video_stream_i,
            video_clock_hz,
            audio_stream_i: audio_stream_i_set,
            audio,
            params: None,
            pending: None,
            stall_timeout,
            stall_check: Box::pin(tokio::time::sleep(stall_timeout / STALL_CHECKS)),
            video_since_check: false,
            quiet_checks: 0,
            timeline: MediaTimeline::new(),
            packer: FramePacker::new(),
            warning: None,
        })
    }

    /// The fault the session last worked around (kind and a message naming the camera), once:
    /// the caller logs it and marks the camera degraded.
    pub fn take_warning(&mut self) -> Option<(IngestErrorKind, String)> {
        self.warning.take()
    }

    /// The next event, or the reason the session is over. Cancel-safe: dropping the future loses
    /// nothing but the wait.
    pub async fn next_event(&mut self) -> Result<IngestEvent, IngestError> {
        if let Some(frame) = self.pending.take() {
            return Ok(IngestEvent::Video(self.convert_video(frame)));
        }
        loop {
            let next = tokio::select! {
                biased;
                next = self.demuxed.next() => next,
                () = self.stall_check.as_mut() => {
                    if std::mem::take(&mut self.video_since_check) {
                        self.quiet_checks = 0;
                    } else {
                        self.quiet_checks += 1;
                    }
                    if self.quiet_checks >= STALL_CHECKS {
                        return Err(IngestError::Stalled {
                            camera: self.camera.clone(),
                            url: self.url.clone(),
                            stalled_for: self.stall_timeout,
                        });
                    }
                    let again = tokio::time::Instant::now() + self.stall_timeout / STALL_CHECKS;
                    self.stall_check.as_mut().reset(again);
                    continue;
                }
            };
            let item = match next {
                None => {
                    return Err(IngestError::Ended {
                        camera: self.camera.clone(),
                        url: self.url.clone(),
                    })
                }
                Some(Err(e)) => return Err(map_retina_error(&self.source, &e, Phase::Streaming)),
                Some(Ok(item)) => item,
            };
            match item {
                CodecItem::VideoFrame(frame) if frame.stream_id() == self.video_stream_i => {
                    self.video_since_check = true;
                    if frame.data().len() > MAX_FRAME_BYTES {
                        return Err(IngestError::OversizedFrame {
                            camera: self.camera.clone(),
                            url: self.url.clone(),
                            frame_bytes: frame.data().len(),
                            limit_bytes: MAX_FRAME_BYTES,
                        });
                    }
                    if self.params.is_none() || frame.has_new_parameters() {
                        if let Some(params) = self.current_params() {
                            if self.params.as_deref() != Some(&params) {
                                if self.params.is_some() && !frame.is_random_access_point() {
                                    self.warning = Some((
                                        IngestErrorKind::ParametersWithoutKeyFrame,
                                        format!(
                                            "camera {}: {} changed its stream parameters on a \
                                             frame that is not a key frame; frames up to the \
                                             next key frame cannot be decoded and are not \
                                             recorded",
                                            self.camera, self.url
                                        ),
                                    ));
                                }
                                let params = Arc::new(params);
                                self.params = Some(params.clone());
                                self.pending = Some(frame);
                                return Ok(IngestEvent::Params(params));
                            }
                        }
                    }
                    if self.params.is_none() {
                        // Parameters not known yet: nothing can decode this frame.
                        continue;
                    }
                    return Ok(IngestEvent::Video(self.convert_video(frame)));
                }
                CodecItem::AudioFrame(frame) if Some(frame.stream_id()) == self.audio_stream_i => {
                    if self.params.is_none() {
                        continue;
                    }
                    return Ok(IngestEvent::Audio(AudioFrame {
                        pts: frame.timestamp().elapsed(),
                        data: self.packer.pack(frame.data()),
                    }));
                }
                _ => continue,
            }
        }
    }

    fn current_params(&self) -> Option<StreamParams> {
        let stream = self.demuxed.streams().get(self.video_stream_i)?;
        let Some(ParametersRef::Video(v)) = stream.parameters() else {
            return None;
        };
        let codec = match v.codec_params() {
            VideoParametersCodec::H264 { .. } => VideoCodec::H264,
            VideoParametersCodec::H265 { .. } => VideoCodec::H265,
            _ => return None,
        };
        let (width, height) = v.pixel_dimensions();
        Some(StreamParams {
            video: VideoParams {
                codec,
                width: u16::try_from(width).ok()?,
                height: u16::try_from(height).ok()?,
                rfc6381_codec: v.rfc6381_codec().to_owned(),
                decoder_config: Bytes::copy_from_slice(v.extra_data()),
            },
            audio: self.audio.clone(),
        })
    }

    fn convert_video(&mut self, frame: retina::codec::VideoFrame) -> VideoFrame {
        let elapsed = frame.timestamp().elapsed();
        let camera_pts_90k = if self.video_clock_hz == TIMESCALE_90K || self.video_clock_hz == 0 {
            elapsed
        } else {
            elapsed.saturating_mul(i64::from(TIMESCALE_90K)) / i64::from(self.video_clock_hz)
        };
        let (pts_90k, jump_90k) = self.timeline.place(camera_pts_90k);
        if let Some(jump_90k) = jump_90k {
            self.warning = Some((
                IngestErrorKind::TimestampJump,
                format!(
                    "camera {}: RTP timestamps from {} jumped {:+.3} s between two frames; \
                     rebased, recording continues",
                    self.camera,
                    self.url,
                    jump_90k as f64 / f64::from(TIMESCALE_90K)
                ),
            ));
        }
        VideoFrame {
            pts_90k,
            is_key: frame.is_random_access_point(),
            data: self.packer.pack(frame.data()),
        }
    }
}

fn audio_params(params: Option<ParametersRef<'_>>) -> Option<AudioParams> {
    let Some(ParametersRef::Audio(a)) = params else {
        return None;
    };
    if !a.rfc6381_codec().is_some_and(|c| c.starts_with("mp4a")) {
        return None;
    }
    Some(AudioParams {
        sample_rate: a.clock_rate(),
        channels: a.channels().get(),
        audio_specific_config: Bytes::copy_from_slice(a.extra_data()),
    })
}

fn map_retina_error(source: &CameraSource, e: &retina::Error, phase: Phase) -> IngestError {
    if e.status_code() == Some(401) {
        return IngestError::Unauthorized {
            camera: source.name.clone(),
            url: source.url.to_string(),
        };
    }
    // retina::Error is opaque (no public kind, no source chain); its messages start with what
    // failed, and the camera-fault tests (tests/tests/camera_faults.rs) pin the mapping.
    let message = e.to_string();
    // A 200 can carry an unusable body too (retina reports a bad SDP as an error on the 200
    // response to DESCRIBE): only an error status is a refusal.
    let kind = if e
        .status_code()
        .is_some_and(|status| !(200..300).contains(&status))
    {
        IngestErrorKind::Refused
    } else if message.starts_with("Unable to connect") {
        IngestErrorKind::Unreachable
    } else if message.starts_with("Error reading from RTSP peer")
        || message.starts_with("Error writing to RTSP peer")
    {
        IngestErrorKind::Ended
    } else if message.starts_with("Timeout") {
        match phase {
            Phase::Streaming => IngestErrorKind::Stalled,
            _ => IngestErrorKind::NoAnswer,
        }
    } else {
        match phase {
            Phase::Describe => IngestErrorKind::BadDescription,
            Phase::SetupOrPlay => IngestErrorKind::Transient,
            Phase::Streaming => IngestErrorKind::BadMedia,
        }
    };
    let what = match kind {
        IngestErrorKind::Refused => "RTSP request refused",
        IngestErrorKind::Unreachable => "cannot connect",
        IngestErrorKind::Ended => "connection lost",
        IngestErrorKind::NoAnswer => "no answer",
        IngestErrorKind::Stalled => "stream stalled",
        IngestErrorKind::BadDescription => "unusable stream description (DESCRIBE/SDP)",
        IngestErrorKind::BadMedia => "unusable media (RTP)",
        _ => "RTSP failure",
    };
    IngestError::Rtsp {
        camera: source.name.clone(),
        url: source.url.to_string(),
        kind,
        what,
        // retina's messages span lines (connection, message and packet contexts); one log line
        // per failure reads better.
        message: source
            .scrub(&message)
            .replace("\n\n", "; ")
            .replace('\n', "; "),
    }
}
