//! The gallery's image intake, compiled on its own for fuzzing.
//!
//! `media` is `app/src/media/` itself (the same source files, included by path), so the
//! fuzzer exercises exactly the code the upload path runs (`images::ingest` →
//! `media::process`) without building the web server, the database drivers and the
//! AWS SDK under sanitizer instrumentation. `media` depends only on `image` (with the
//! app's features), `jpeg-decoder`, `memchr` and `thiserror`.

#[path = "../../app/src/media/mod.rs"]
pub mod media;

/// The pixel limit the fuzz target and the corpus replay test pass to `media::process`.
///
/// Smaller than the server's default (50 MP) so that each input decodes in milliseconds
/// and the fuzzer explores instead of spending its time on legitimately large images;
/// the header check and `Limits` logic are the same at any limit.
pub const FUZZ_MAX_PIXELS: u64 = 4_000_000;

/// Everything that must hold for any input: `process` returns (never panics, which the
/// fuzzer catches) and, when it accepts an image, its figures and thumbnail are bounded.
pub fn check(bytes: &[u8]) {
    use media::{process, Kind, MediaError, THUMB_EDGE};
    match process(std::io::Cursor::new(bytes), FUZZ_MAX_PIXELS) {
        Ok(p) => {
            let pixels = u64::from(p.width) * u64::from(p.height);
            assert!(
                pixels > 0 && pixels <= FUZZ_MAX_PIXELS,
                "accepted {}x{} over the limit",
                p.width,
                p.height
            );
            assert_eq!(Kind::sniff(bytes), Some(p.kind));
            assert!(matches!(p.thumb_kind, Kind::Jpeg | Kind::Png));
            // The thumbnail must itself be a valid, small image of the stated kind.
            let thumb = image::load_from_memory(&p.thumb).expect("thumbnail does not decode");
            assert_eq!(Kind::sniff(&p.thumb), Some(p.thumb_kind));
            assert!(
                thumb.width() >= 1
                    && thumb.height() >= 1
                    && thumb.width() <= THUMB_EDGE
                    && thumb.height() <= THUMB_EDGE,
                "thumbnail {}x{} for a {}x{} image",
                thumb.width(),
                thumb.height(),
                p.width,
                p.height
            );
            // 400x400 RGBA16 uncompressed is 1.28 MB; an encoded thumbnail is never bigger than 2 MB.
            assert!(
                p.thumb.len() <= 2 << 20,
                "thumbnail of {} bytes",
                p.thumb.len()
            );
        }
        Err(MediaError::Unsupported) => assert_eq!(Kind::sniff(bytes), None),
        Err(MediaError::TooManyPixels { limit, .. }) => assert_eq!(limit, FUZZ_MAX_PIXELS),
        Err(MediaError::Corrupt(_)) => {}
        Err(MediaError::Io(e)) => panic!("reading bytes in memory failed: {e}"),
    }
}
